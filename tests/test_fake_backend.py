"""Submission, adoption, refusal and refresh through the real irq/jobs code and a real SQLite
ledger, against the in-memory FakeBackend: the crash and link-loss cases in milliseconds."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from irq import errors
from irq.backends.fake import FakeBackend, fake_target
from irq.backends.registry import Backends
from irq.backends.target import Target
from irq.config import Config
from irq.experiments.edit import Changes, add_experiment
from irq.jobs.preflight import run_checks
from irq.jobs.submit import submit
from irq.jobs.sync import reconcile, refresh
from irq.ledger.database import Ledger
from irq.ledger.models import Attempt, utcnow
from irq.ui import UI


@pytest.fixture
def fake() -> FakeBackend:
    return FakeBackend(limit=2)


@pytest.fixture
def backends(tmp_path: Path, fake: FakeBackend):
    b = Backends(Config(path=None, root=tmp_path))
    b.provide(fake, fake_target(tmp_path / "work"))
    yield b
    b.close()
    assert fake.closed


def go(ledger: Ledger, backends: Backends, *ids: str, **kw):
    outs = submit(ledger, backends.config, backends, UI(), list(ids) if ids else None, backend_name="fake", **kw)
    return {o.id: o for o in outs}


def attempts(ledger: Ledger, exp_id: str = "Q-001") -> list[Attempt]:
    with ledger.transaction() as s:
        return Ledger.attempts(s, exp_id)


def experiment(ledger: Ledger, exp_id: str = "Q-001"):
    with ledger.transaction() as s:
        return Ledger.experiment(s, exp_id)


def ever_failed(ledger: Ledger, exp_id: str = "Q-001") -> bool:
    with ledger.transaction() as s:
        return any(e.to_state == "FAILED" for e in Ledger.events(s, exp_id))


def test_submit_refresh_to_completed(ledger, backends, fake) -> None:
    add_experiment(ledger, "Q-001", "first")
    out = go(ledger, backends, "Q-001")["Q-001"]
    assert (out.status, out.job_id) == ("submitted", "100")
    (att,) = attempts(ledger)
    assert (att.state, att.job_id, att.backend) == ("PENDING", "100", "fake")
    assert fake.jobs["100"].request.name == f"Q-001.{att.token}"  # the token is in the job name
    fake.set_state("100", "RUNNING")
    assert refresh(ledger, backends, UI()).changed == ["Q-001: PENDING -> RUNNING"]
    fake.set_state("100", "COMPLETED", exit_code=0)
    rep = refresh(ledger, backends, UI())
    (att,) = attempts(ledger)
    assert rep.finished == [att.id] and (att.state, att.exit_code) == ("COMPLETED", 0)
    assert att.started_at is not None and att.ended_at is not None


def test_adopts_the_orphan_of_a_crash_between_sbatch_and_recording(ledger, backends, fake, monkeypatch) -> None:
    add_experiment(ledger, "Q-001", "crashes after sbatch")
    monkeypatch.setenv("IRQ_FAULT", "after_sbatch")  # irq dies right after the scheduler took the job
    monkeypatch.setenv("IRQ_FAULT_ACTION", "drop")
    with pytest.raises(errors.BackendError):
        go(ledger, backends, "Q-001")
    monkeypatch.delenv("IRQ_FAULT")
    (att,) = attempts(ledger)
    assert (att.state, att.job_id) == ("SUBMITTING", None) and list(fake.jobs) == ["100"]
    notes = reconcile(ledger, backends, UI())  # the next command, after the restart
    assert notes == ["Q-001: adopted job 100 (submitted before irq could record it)"]
    (att,) = attempts(ledger)
    assert (att.state, att.job_id, att.unknown_since) == ("PENDING", "100", None)
    assert go(ledger, backends, all_ready=True) == {}  # nothing submitted twice
    assert list(fake.jobs) == ["100"] and experiment(ledger).state == "IN_PROGRESS"


def test_a_crash_before_sbatch_queues_the_experiment_again(ledger, backends, fake, monkeypatch) -> None:
    add_experiment(ledger, "Q-001", "crashes before sbatch")
    monkeypatch.setenv("IRQ_FAULT", "before_sbatch")
    monkeypatch.setenv("IRQ_FAULT_ACTION", "drop")
    with pytest.raises(errors.BackendError):
        go(ledger, backends, "Q-001")
    monkeypatch.delenv("IRQ_FAULT")
    assert fake.jobs == {}
    reconcile(ledger, backends, UI())  # young: it may still be in flight, so it is left alone
    assert attempts(ledger)[0].state == "SUBMITTING"
    with ledger.transaction() as s:
        a = Ledger.attempts(s, "Q-001")[0]
        a.submitted_at = utcnow() - timedelta(minutes=2)
        s.add(a)
    assert reconcile(ledger, backends, UI()) == ["Q-001: attempt 1 never reached the scheduler; queued again"]
    assert attempts(ledger)[0].state == "NOT_SUBMITTED"
    assert go(ledger, backends, all_ready=True)["Q-001"].status == "submitted"
    assert [a.state for a in attempts(ledger)] == ["NOT_SUBMITTED", "PENDING"] and not ever_failed(ledger)


def test_refusal_by_qos_waits_and_never_fails(ledger, backends, fake) -> None:
    """Slots looked free, but sbatch says the QOS is full (a job from elsewhere, or another irq
    submitting at the same moment). Nothing ran: the attempt is NOT_SUBMITTED (it was REFUSED, the
    word for a job the scheduler will never run), the experiment waits for a slot with why."""
    add_experiment(ledger, "Q-001", "refused")
    fake.refuse_next()
    out = go(ledger, backends, "Q-001")["Q-001"]
    assert out.status == "queued" and "QOSMaxSubmitJobPerUserLimit" in out.message
    (att,) = attempts(ledger)
    exp = experiment(ledger)
    assert att.state == "NOT_SUBMITTED" and att.job_id is None and "QOSMaxSubmitJobPerUserLimit" in att.error
    assert exp.state == "IN_PROGRESS" and "QOSMaxSubmitJobPerUserLimit" in exp.waiting_reason
    assert not ever_failed(ledger) and fake.jobs == {}
    out = go(ledger, backends, all_ready=True)["Q-001"]  # the next cycle: the QOS has room again
    assert out.status == "submitted" and [a.state for a in attempts(ledger)] == ["NOT_SUBMITTED", "PENDING"]
    assert experiment(ledger).waiting_reason is None


def test_a_full_queue_is_never_sent_to_sbatch(ledger, backends, fake) -> None:
    fake.occupy(2)  # two jobs the user submitted by hand
    add_experiment(ledger, "Q-001", "waits")
    out = go(ledger, backends, "Q-001")["Q-001"]
    assert (out.status, out.message) == ("queued", "no free job slot (2 of 2 used)")
    assert "sbatch" not in fake.counter.calls and attempts(ledger) == []
    assert fake.find(["outside"], utcnow() - timedelta(minutes=1))  # theirs, and never adopted by irq


def test_other_refusals_fail_the_experiment(ledger, backends, fake) -> None:
    add_experiment(ledger, "Q-001", "bad partition")
    fake.refuse_next(errors.SubmissionRefused("sbatch refused the job: invalid partition specified: nope"))
    assert go(ledger, backends, "Q-001")["Q-001"].status == "refused"
    assert experiment(ledger).state == "FAILED" and attempts(ledger)[0].state == "REFUSED"


def test_array_tasks_cost_one_slot_each_when_the_backend_says_so(ledger, backends, fake) -> None:
    add_experiment(ledger, "Q-001", "three seeds", seeds="0-2")
    out = go(ledger, backends, "Q-001")["Q-001"]  # 3 tasks, limit 2: can never fit
    assert out.status == "held" and "3 array tasks exceed the job limit of 2" in out.message
    fake.counts_array_tasks = False  # e.g. the local backend: an array holds one slot
    out = go(ledger, backends, "Q-001")["Q-001"]
    assert out.status == "submitted" and [r.job_id for r in fake.query([out.job_id], utcnow())[out.job_id]] == [
        f"{out.job_id}_0", f"{out.job_id}_1", f"{out.job_id}_2"]


def test_a_drop_after_accept_is_unknown_then_adopted(ledger, backends, fake) -> None:
    add_experiment(ledger, "Q-001", "link drops")
    fake.drop_after_accept()
    out = go(ledger, backends, "Q-001")["Q-001"]
    assert out.status == "unknown" and "dropped during sbatch" in out.message
    (att,) = attempts(ledger)
    assert att.state == "SUBMITTING" and att.unknown_since is not None
    assert att.error.startswith("submission unconfirmed")
    assert experiment(ledger).state == "IN_PROGRESS" and not ever_failed(ledger)
    rep = refresh(ledger, backends, UI())  # the next refresh adopts it by its token
    (att,) = attempts(ledger)
    assert (att.state, att.job_id, att.unknown_since, att.error) == ("PENDING", "100", None, None)
    assert rep.unreachable == {} and len(fake.jobs) == 1


def test_a_failing_squeue_is_unknown_since_t_never_failed(ledger, backends, fake) -> None:
    add_experiment(ledger, "Q-001", "scheduler goes away")
    go(ledger, backends, "Q-001")
    fake.set_state("100", "RUNNING")
    refresh(ledger, backends, UI())
    fake.go_down()
    before = utcnow()
    rep = refresh(ledger, backends, UI())
    assert "Unable to contact slurm controller" in rep.unreachable["fake"]
    (att,) = attempts(ledger)
    since = att.unknown_since
    assert att.state == "RUNNING" and since is not None and before <= since <= utcnow()
    refresh(ledger, backends, UI())  # still down: "unknown since" keeps the first moment
    assert attempts(ledger)[0].unknown_since == since
    assert experiment(ledger).state == "IN_PROGRESS" and not ever_failed(ledger)
    fake.come_back()
    fake.set_state("100", "FAILED", exit_code=3)  # what happened meanwhile is then read as it was
    refresh(ledger, backends, UI())
    (att,) = attempts(ledger)
    assert (att.state, att.exit_code, att.unknown_since) == ("FAILED", 3, None)


def test_scheduler_calls_are_recorded(ledger, backends, fake) -> None:
    add_experiment(ledger, "Q-001", "counted")
    go(ledger, backends, "Q-001")
    with ledger.transaction() as s:
        assert Ledger.calls_since(s, utcnow() - timedelta(minutes=1)) == len(["squeue", "sbatch"])
    assert fake.counter.calls == []  # moved to the ledger


def test_preflight_runs_its_script_through_the_protocol(fake) -> None:
    from irq.ledger.models import Experiment

    exp = Experiment(id="Q-001", seq=1, title="t", parameters={}, resources={}, depends_on=[], seeds=[])
    target = Target(kind="slurm", name="fake", workdir="/w", repo_url="git@example.org:lab/proj.git",
                    modules=("python/3.11",), scratch="/s")
    lines = "COMMIT|missing\nMODULE|python/3.11|missing\nPYTHON|missing\nWRITABLE|/s|ok\nWRITABLE|/w|ok\n"
    fake.check_reply = (0, lines, "")
    checks = {c.name: c for c in run_checks(None, exp, target, "0123456789abcdef", fake)}
    assert not checks["commit pushed"].ok and "pushed?" in checks["commit pushed"].detail
    assert not checks["module python/3.11"].ok and not checks["python"].ok and checks["writable /w"].ok
    ((_, args),) = fake.checks
    assert args[:2] == ("git@example.org:lab/proj.git", "0123456789abcdef") and "python/3.11" in args
    assert fake.counter.calls == ["git", "module", "sinfo"]


def test_cancel_and_files(fake, tmp_path: Path) -> None:
    job = fake.submit(fake_request("0-1"))
    fake.set_state(f"{job}_0", "RUNNING")
    fake.cancel(f"{job}_1")
    rows = fake.query([job], utcnow())[job]
    assert [(r.state, r.reason) for r in rows] == [("RUNNING", None), ("CANCELLED", "by user")]
    with pytest.raises(errors.BackendError):
        fake.cancel("999")
    fake.files = {"/r/metrics.json": "{}", "/r/checkpoints/m.pt": "x", "/r/seed_0/log": "ok", "/other": "no"}
    got = sorted(str(p.relative_to(tmp_path)) for p in fake.fetch("/r", tmp_path))
    assert got == ["metrics.json", "seed_0/log"]
    assert fake.read_file("/r/seed_0/log", max_bytes=1) == "k" and fake.read_file("/nope") is None


def fake_request(array: str | None = None):
    from irq.backends.base import JobRequest

    return JobRequest(token="irq-x", name="T-001.irq-x", script="#!/bin/bash\n", run_dir="/r", array=array)


# ---------------------------------------------------------------------- the protocol itself
def _members(proto: type) -> dict[str, object]:
    names = set(getattr(proto, "__annotations__", {})) | {n for n in vars(proto) if not n.startswith("_")}
    return {n: vars(proto).get(n) for n in names}


def _params(fn: object) -> list[str]:
    import inspect

    return list(inspect.signature(fn).parameters)


def test_every_backend_and_remote_implements_its_whole_protocol(tmp_path: Path) -> None:
    from irq.backends.base import Backend, Remote
    from irq.backends.fakeshell import FakeShell
    from irq.backends.local import LocalBackend
    from irq.backends.slurm import SlurmBackend
    from irq.backends.ssh.session import SSHSession
    from irq.config import ClusterConfig

    cfg = ClusterConfig(name="c", host="login.example.org", repo_url="x", workdir="/w", ssh_config="/dev/null",
                        user="me")
    shell = FakeShell(tmp_path / "sh")
    cases = [(Backend, [LocalBackend(tmp_path / "local"), SlurmBackend(cfg, remote=shell), FakeBackend()]),
             (Remote, [shell, SSHSession(cfg)])]
    for proto, impls in cases:
        for name, spec in _members(proto).items():
            for impl in impls:
                assert hasattr(impl, name), f"{type(impl).__name__} lacks {proto.__name__}.{name}"
                if callable(spec) and not isinstance(spec, property):
                    assert _params(getattr(type(impl), name)) == _params(spec), (type(impl).__name__, name)


def test_callers_use_only_what_the_protocol_declares() -> None:
    """No reaching into one backend's insides (its SSH session, a getattr for an optional flag)."""
    import ast

    from irq.backends.base import Backend

    declared = set(_members(Backend))
    root = Path(__file__).resolve().parent.parent / "irq"
    used: dict[str, str] = {}
    for path in root.rglob("*.py"):
        if "backends" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr" and node.args:
                assert getattr(node.args[0], "id", None) != "backend", f"getattr(backend, ...) in {path}"
            if not isinstance(node, ast.Attribute):
                continue
            v = node.value
            via_get = (isinstance(v, ast.Call) and isinstance(v.func, ast.Attribute) and v.func.attr == "get"
                       and getattr(v.func.value, "id", None) == "backends")
            if getattr(v, "id", None) == "backend" or via_get:
                used[node.attr] = str(path.relative_to(root))
    # slots are read through irq.backends.registry.slots (the ledger caches the job limit), inside backends/
    assert {"submit", "find", "query", "cancel", "run_check", "counts_array_tasks"} <= set(used)
    assert {k: f for k, f in used.items() if k not in declared} == {}


def test_an_experiment_removed_while_its_script_is_made_is_skipped_not_a_crash(ledger, backends, fake) -> None:
    """`irq rm` beside the daemon, between its plan and its attempt: 'unknown experiment' ended
    the daemon's cycle, and the daemon with it."""
    from irq.experiments.edit import remove

    add_experiment(ledger, "Q-001", "first")
    add_experiment(ledger, "Q-002", "second")
    out = go(ledger, backends, preflight=lambda exp, *_a: remove(ledger, exp.id) if exp.id == "Q-001" else None,
             all_ready=True)
    assert out["Q-001"].status == "skipped" and "removed meanwhile" in out["Q-001"].message
    assert out["Q-002"].status == "submitted" and list(fake.jobs) == ["100"]


@pytest.mark.parametrize("change", [Changes(params={"lr": 0.2}), Changes(after=["Q-002"])],
                         ids=["a parameter", "a new dependency"])
def test_an_experiment_edited_while_its_script_is_made_is_sent_as_edited_never_as_it_was(ledger, backends, fake,
                                                                                         change) -> None:
    """`irq edit` between the plan and the attempt was 'edited' for the user, while the job ran
    the old definition (or before its new dependency)."""
    from irq.experiments.edit import edit

    add_experiment(ledger, "Q-001", "first", params={"lr": 0.1}, command="echo {lr}")
    add_experiment(ledger, "Q-002", "blocker", proposed=True)
    out = go(ledger, backends, "Q-001", preflight=lambda exp, *_a: edit(ledger, exp.id, change))
    assert out["Q-001"].status == "skipped" and "edited meanwhile" in out["Q-001"].message
    assert fake.jobs == {} and attempts(ledger) == []
    out = go(ledger, backends, "Q-001")  # the next submit: the edited definition, or a wait for the dependency
    if change.params:
        assert out["Q-001"].status == "submitted" and "echo 0.2" in fake.jobs["100"].request.script
    else:
        assert out["Q-001"].status == "queued" and "waiting for Q-002" in out["Q-001"].message


def test_a_cycle_that_meets_an_error_says_it_and_the_daemon_serves_on(ledger, backends, monkeypatch) -> None:
    import irq.daemon.loop as loop

    def refused(*_a, **_k):
        raise errors.IllegalTransition("Q-009 is DONE; it cannot move to READY", "run `irq status`")

    logged: list[str] = []
    ui = UI()
    ui.log = logged.append  # type: ignore[method-assign]
    monkeypatch.setattr(loop, "submit", refused)
    rep = loop.cycle(ledger, backends.config, ui, backends)  # once: the exception ended the daemon
    assert rep.submitted == [] and logged == ["cycle ended early: Q-009 is DONE; it cannot move to READY (run `irq status`)"]


def test_a_submission_still_in_flight_is_never_given_up(ledger, backends, fake, monkeypatch) -> None:
    """A SUBMITTING attempt was given up after 30 s whoever still sent it: an sbatch slower than
    that, or an `irq submit` suspended with Ctrl-Z, then sent its job after the experiment had been
    queued again and submitted a second time. While a live process claims it, reconcile waits; once
    that process is gone (killed: the kernel drops its claim), it is given up as before."""
    import subprocess
    import sys

    add_experiment(ledger, "Q-001", "slow sbatch")
    monkeypatch.setenv("IRQ_FAULT", "before_sbatch")
    monkeypatch.setenv("IRQ_FAULT_ACTION", "drop")
    with pytest.raises(errors.BackendError):  # leaves a SUBMITTING row, as a sender would mid-sbatch
        go(ledger, backends, "Q-001")
    monkeypatch.delenv("IRQ_FAULT")
    with ledger.transaction() as s:
        a = Ledger.attempts(s, "Q-001")[0]
        a.submitted_at = utcnow() - timedelta(minutes=2)
        s.add(a)
        aid = a.id
    sender = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from irq.ledger.claims import Claims; "
        f"c = Claims(Path({str(ledger.path)!r})); c.hold({aid}); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert sender.stdout.readline().strip() == "held"
        assert reconcile(ledger, backends, UI()) == []  # still being sent elsewhere: left alone
        assert attempts(ledger)[0].state == "SUBMITTING"
        assert go(ledger, backends, all_ready=True) == {}  # and nothing is sent a second time
    finally:
        sender.kill()
        sender.wait()
    assert reconcile(ledger, backends, UI()) == ["Q-001: attempt 1 never reached the scheduler; queued again"]
    assert fake.jobs == {}


def test_this_process_claims_what_it_sends_and_lets_go_after(ledger) -> None:
    """POSIX locks never conflict within their own process: the claims this process holds are
    counted as held, and released ones are free again."""
    ledger.claims.hold(7)
    assert ledger.claims.in_flight(7) and not ledger.claims.in_flight(8)
    ledger.claims.release(7)
    assert not ledger.claims.in_flight(7)


def test_a_job_the_accounting_lost_the_name_of_is_adopted_by_its_log(ledger, backends, fake, monkeypatch) -> None:
    """After an accounting outage SLURM listed a finished job without its name: no job carried the
    token, the attempt was given up and the experiment ran a second time. The log the job wrote in
    the attempt's run folder (slurm-<id>.out) proves it ran: it is adopted by that."""
    add_experiment(ledger, "Q-001", "sbatch answered, the answer lost")
    monkeypatch.setenv("IRQ_FAULT", "after_sbatch")
    monkeypatch.setenv("IRQ_FAULT_ACTION", "drop")
    with pytest.raises(errors.BackendError):
        go(ledger, backends, "Q-001")
    monkeypatch.delenv("IRQ_FAULT")
    (job_id,) = fake.jobs
    fake.names_lost = True
    with ledger.transaction() as s:
        a = Ledger.attempts(s, "Q-001")[0]
        a.submitted_at = utcnow() - timedelta(minutes=2)
        s.add(a)
    calls = fake.counter.round_trips
    assert reconcile(ledger, backends, UI()) == [f"Q-001: adopted job {job_id} (submitted before irq could record it)"]
    assert fake.counter.round_trips - calls == 2  # squeue/sacct by name, then one look into the run folders
    (att,) = attempts(ledger)
    assert att.state == "PENDING" and att.job_id == job_id
    assert go(ledger, backends, all_ready=True) == {} and list(fake.jobs) == [job_id]


def test_two_fetches_at_once_record_and_report_an_attempt_once(ledger, backends, fake, monkeypatch) -> None:
    """Three `irq fetch` at once each fetched and printed the same attempts (the write did not
    re-check that nobody had recorded it meanwhile): the second one now leaves it to the first."""
    from irq.jobs.fetch import fetch

    add_experiment(ledger, "Q-001", "fetched twice")
    job_id = go(ledger, backends, "Q-001")["Q-001"].job_id
    run_dir = attempts(ledger)[0].run_dir
    fake.files[f"{run_dir}/metrics.json"] = '{"val_mse": 0.5}'
    fake.set_state(job_id, "COMPLETED", exit_code=0)
    refresh(ledger, backends, UI())
    real = fake.fetch

    def meanwhile(run_dir_: str, dest: Path, exclude=("checkpoints",)):
        got = real(run_dir_, dest, exclude)
        with ledger.transaction() as s:  # another irq fetch records the attempt while this one copies
            a = Ledger.attempts(s, "Q-001")[0]
            a.fetched_at = utcnow()
            s.add(a)
        return got

    monkeypatch.setattr(fake, "fetch", meanwhile)
    assert fetch(ledger, backends.config, backends, UI()) == []
    assert experiment(ledger).state == "IN_PROGRESS"  # the other fetch moves it, once


def test_show_names_the_commit_of_an_attempt_that_ran_never_of_one_that_did_not(ledger, backends, fake, monkeypatch) -> None:
    """After a submission that never reached the scheduler, `irq show` said "latest attempt: ran commit …"."""
    from irq.experiments.views import show

    add_experiment(ledger, "Q-001", "never sent")
    monkeypatch.setenv("IRQ_FAULT", "before_sbatch")
    monkeypatch.setenv("IRQ_FAULT_ACTION", "drop")
    with pytest.raises(errors.BackendError):
        go(ledger, backends, "Q-001")
    with ledger.transaction() as s:
        a = Ledger.attempts(s, "Q-001")[0]
        a.git_sha, a.submitted_at = "abc1234", utcnow() - timedelta(minutes=2)
        s.add(a)
    reconcile(ledger, backends, UI())
    assert attempts(ledger)[0].state == "NOT_SUBMITTED"
    assert show(ledger.path, "Q-001").commit is None


def test_ctrl_c_in_a_long_submit_says_what_was_submitted(ledger, backends, fake, monkeypatch) -> None:
    """Ctrl-C during `irq submit --all-ready` exited 130 saying nothing: the jobs it had sent were
    never reported. It now says which were sent before the interrupt (exit 130)."""
    fake.limit = 10
    for i in range(1, 5):
        add_experiment(ledger, f"Q-00{i}", f"number {i}", params={"i": i})
    real, calls = fake.submit, []

    def interrupted_at_the_third(req):
        calls.append(req.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(req)

    monkeypatch.setattr(fake, "submit", interrupted_at_the_third)
    with pytest.raises(errors.Interrupted) as exc:
        go(ledger, backends, all_ready=True)
    assert exc.value.exit_code == 130
    assert exc.value.message.startswith("interrupted after submitting 2 of 4: Q-001 (job ")
    assert "Q-002 (job " in exc.value.message and "READY" in exc.value.hint


def test_held_experiments_give_their_planned_slots_to_the_next_ready_ones(ledger, backends, fake) -> None:
    """Two experiments whose preflight fails sat first in the queue of a 2-slot limit: each submit
    (and every daemon cycle) planned them, held them again and sent nothing, while Q-003 and Q-004
    waited for ever. A slot a held experiment leaves goes to the next in order, in the same run."""
    for i in range(1, 5):
        add_experiment(ledger, f"Q-00{i}", f"exp {i}", priority="HIGH" if i <= 2 else "MEDIUM")

    def broken(exp, *_a):
        if exp.id in ("Q-001", "Q-002"):
            raise errors.PreflightFailed(f"{exp.id}: data file missing", "copy it")

    out = go(ledger, backends, preflight=broken, all_ready=True)
    assert {i: o.status for i, o in out.items()} == {
        "Q-001": "held", "Q-002": "held", "Q-003": "submitted", "Q-004": "submitted"}, out
    assert len(fake.jobs) == 2
    out = go(ledger, backends, preflight=broken, all_ready=True)  # full now: the held ones stay held, nothing more
    assert {o.status for o in out.values()} <= {"held", "queued"} and len(fake.jobs) == 2, out


def test_a_fetch_that_could_not_look_everywhere_says_what_to_do_for_its_backend() -> None:
    """A local run that could not be fetched was told to wait "once the cluster answers": there is
    no cluster. The deferred attempts are data (id, attempt, backend, why), for --json too."""
    from irq.jobs.actions import FetchReport
    from irq.jobs.fetch import Deferred

    local = FetchReport([], [], deferred=[Deferred("Q-001", 1, "local", "run folder unreadable")])
    exc = local.incomplete()
    assert exc.message == "not everything could be fetched: Q-001 attempt 1: cannot fetch yet: run folder unreadable"
    assert exc.hint.endswith("once the cause above is fixed")
    remote = FetchReport([], [], unreachable={"slurm:hpc": "no answer"},
                         deferred=[Deferred("Q-002", 2, "slurm:hpc", "link lost")])
    assert remote.incomplete().hint.endswith("once the cluster answers")
    assert FetchReport([], []).incomplete() is None


def test_cancel_of_a_job_on_a_cluster_no_longer_in_irq_toml_records_it_and_says_to_stop_it_there(ledger, backends,
                                                                                                  fake) -> None:
    """The cluster was taken out of irq.toml while a job ran there: `irq cancel` failed with an
    error about the configuration, and the attempt stayed RUNNING for good."""
    import sqlite3

    from irq.jobs.cancel import cancel

    add_experiment(ledger, "Q-001", "first")
    go(ledger, backends, "Q-001")
    con = sqlite3.connect(ledger.path)
    con.execute("UPDATE attempt SET backend = 'slurm:gone'")
    con.commit()
    con.close()
    said = cancel(ledger, backends, UI(), "Q-001")
    assert said.startswith("Q-001: attempt 1 ran on slurm:gone, which irq.toml no longer names, so irq cannot reach job 100")
    assert "stop it where it runs (e.g. scancel 100)" in said
    (att,) = attempts(ledger)
    assert att.state == "CANCELLED" and experiment(ledger).state == "FAILED"
    assert "scancel" not in fake.counter.calls  # nothing was sent anywhere


def test_what_waits_for_an_experiment_submitted_in_the_same_run_says_it_waits_for_a_job(ledger, backends, fake) -> None:
    """Q-002 runs after Q-001; one `irq submit --all-ready` sent Q-001 and queued Q-002 "waiting for
    Q-001 (READY)", a state Q-001 had already left."""
    add_experiment(ledger, "Q-001", "first")
    add_experiment(ledger, "Q-002", "second", depends_on=["Q-001"])
    out = go(ledger, backends, all_ready=True)
    assert out["Q-001"].status == "submitted"
    assert (out["Q-002"].status, out["Q-002"].message) == ("queued", "waiting for Q-001 (IN_PROGRESS)")
    assert experiment(ledger, "Q-002").waiting_reason == "waiting for Q-001 (IN_PROGRESS)"


def test_a_failure_that_holds_every_experiment_costs_a_bounded_number_of_preflights(ledger, backends, fake) -> None:
    """A preflight failing for all (a commit not pushed): the slots left by held experiments went to
    the next and the next, so one submit preflighted and held every READY experiment, each a round
    trip, again every daemon cycle. Extra tries stop at the number of free slots."""
    for i in range(1, 21):
        add_experiment(ledger, f"Q-{i:03d}", f"exp {i}")
    tried = []

    def unpushed(exp, *_a):
        tried.append(exp.id)
        raise errors.PreflightFailed("commit abc is not on the cluster's remote", "git push")

    out = go(ledger, backends, preflight=unpushed, all_ready=True)
    assert tried == ["Q-001", "Q-002", "Q-003", "Q-004"] and not fake.jobs  # 2 free slots, 2 extra tries
    assert sum(o.status == "held" for o in out.values()) == 4 and out["Q-005"].status == "queued"
    tried.clear()  # the held ones now go after the others: the next run tries new ones first
    go(ledger, backends, preflight=unpushed, all_ready=True)
    assert tried == ["Q-005", "Q-006", "Q-007", "Q-008"]


def test_cancel_opens_a_cluster_irq_toml_still_names_even_when_it_cannot_connect(ledger, tmp_path) -> None:
    """Any configuration error opening the backend (a missing ssh_config) was read as "the cluster
    is gone": the attempt was recorded CANCELLED and its job kept running. Only a cluster irq.toml
    no longer names is closed that way; another error is said as it is."""
    import sqlite3

    from irq.config import ClusterConfig
    from irq.jobs.cancel import cancel

    add_experiment(ledger, "Q-001", "first")
    config = Config(path=None, root=tmp_path, clusters={"c1": ClusterConfig(
        name="c1", host="h", ssh_config="/nonexistent", repo_url="git@x:y.git", workdir="/w")})
    with ledger.transaction() as s:
        Ledger.new_attempt(s, Ledger.experiment(s, "Q-001"), backend="slurm:c1", state="RUNNING", job_id="7",
                           submitted_at=utcnow())
    with Backends(config) as b, pytest.raises(errors.IrqError) as exc:
        cancel(ledger, b, UI(), "Q-001")
    assert "no longer names" not in exc.value.message
    (att,) = attempts(ledger)
    assert att.state == "RUNNING"
    con = sqlite3.connect(ledger.path)
    con.execute("UPDATE attempt SET backend = 'slurm:gone'")
    con.commit()
    con.close()
    with Backends(config) as b:
        assert "ran on slurm:gone, which irq.toml no longer names" in cancel(ledger, b, UI(), "Q-001")


def test_an_experiment_retired_while_its_script_is_made_is_said_to_be_retired(ledger, backends, fake) -> None:
    """A retire beside a submit was reported as "submitted meanwhile by another irq"."""
    from irq.experiments.edit import retire

    add_experiment(ledger, "Q-001", "first")
    out = go(ledger, backends, "Q-001", preflight=lambda exp, *_a: retire(ledger, exp.id))
    assert out["Q-001"].status == "skipped" and out["Q-001"].message.startswith("RETIRED meanwhile"), out
    assert fake.jobs == {} and attempts(ledger) == []


def test_a_sender_whose_job_lands_while_reconcile_asks_is_never_given_up(ledger, backends, fake, monkeypatch) -> None:
    """reconcile asked the scheduler, then looked at the sender's claim: a sender whose sbatch was
    accepted just after the scheduler answered, and whose link then dropped (claim let go), was
    given up although its job existed; the experiment was queued again and sent twice. Whom no
    live process sends is now read before the scheduler is asked."""
    import subprocess
    import sys

    from irq.backends.base import JobRequest

    add_experiment(ledger, "Q-001", "slow sbatch")
    monkeypatch.setenv("IRQ_FAULT", "before_sbatch")
    monkeypatch.setenv("IRQ_FAULT_ACTION", "drop")
    with pytest.raises(errors.BackendError):  # leaves a SUBMITTING row, as a sender mid-sbatch has
        go(ledger, backends, "Q-001")
    monkeypatch.delenv("IRQ_FAULT")
    with ledger.transaction() as s:
        a = Ledger.attempts(s, "Q-001")[0]
        a.submitted_at = utcnow() - timedelta(minutes=2)  # a slow sbatch: long in flight
        s.add(a)
        aid, token, run_dir = a.id, a.token, a.run_dir
    sender = subprocess.Popen([sys.executable, "-c", (
        "import sys; from pathlib import Path; from irq.ledger.claims import Claims; "
        f"c = Claims(Path({str(ledger.path)!r})); c.hold({aid}); print('held', flush=True); "
        f"sys.stdin.readline(); c.release({aid})")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert sender.stdout.readline().strip() == "held"
    asked = fake.ran

    def ran(run_dirs):
        out = asked(run_dirs)  # the scheduler answers: no such job yet; then it accepts the sender's
        fake._create(JobRequest(token=token, name=f"Q-001.{token}", script="", run_dir=run_dir))
        sender.stdin.write("go\n")  # and the sender's link drops: it lets go of its claim
        sender.stdin.flush()
        sender.wait()
        return out

    monkeypatch.setattr(fake, "ran", ran)
    assert reconcile(ledger, backends, UI()) == []
    assert attempts(ledger)[0].state == "SUBMITTING"
    monkeypatch.setattr(fake, "ran", asked)
    assert reconcile(ledger, backends, UI()) == ["Q-001: adopted job 100 (submitted before irq could record it)"]
    assert go(ledger, backends, all_ready=True) == {} and list(fake.jobs) == ["100"]


def test_a_sender_that_lost_the_link_is_waited_for_before_its_attempt_is_given_up(ledger, backends, fake,
                                                                                    monkeypatch) -> None:
    """An sbatch the link dropped under may still be accepted: the grace before an attempt is given
    up counts from the drop, not from when the attempt was written."""
    add_experiment(ledger, "Q-001", "link drops")
    monkeypatch.setattr(fake, "submit", lambda req: (_ for _ in ()).throw(errors.BackendError("link dropped")))
    assert go(ledger, backends, "Q-001")["Q-001"].status == "unknown"
    with ledger.transaction() as s:
        a = Ledger.attempts(s, "Q-001")[0]
        a.submitted_at = utcnow() - timedelta(minutes=2)  # a slow sbatch, whose link dropped just now
        s.add(a)
    assert reconcile(ledger, backends, UI()) == []
    with ledger.transaction() as s:
        a = Ledger.attempts(s, "Q-001")[0]
        a.unknown_since = utcnow() - timedelta(minutes=1)
        s.add(a)
    assert reconcile(ledger, backends, UI()) == ["Q-001: attempt 1 never reached the scheduler; queued again"]


def test_a_config_outside_the_cloned_repository_holds_that_experiment_only(tmp_path: Path) -> None:
    """The check that an experiment's config lies in the repository a cluster job clones ran
    before the checks that hold an experiment: one such experiment stopped the whole submit, and
    every daemon cycle after it, with no READY experiment sent."""
    import subprocess

    from irq.ledger.models import Experiment

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "irq.toml").write_text("")
    git = ["git", "-C", str(repo), "-c", "user.email=t@irq", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    outside = tmp_path / "elsewhere.json"
    outside.write_text("{}")
    ledger = Ledger(repo / "queue.db", create=True)
    with ledger.transaction() as s:
        Ledger.add_experiment(s, Experiment(id="Q-001", seq=0, title="outside", command="true",
                                            config_path=str(outside), priority="HIGH"))
        Ledger.add_experiment(s, Experiment(id="Q-002", seq=1, title="fine", command="true"))
    fake = FakeBackend(name="slurm:c", limit=None)
    config = Config(path=repo / "irq.toml", root=repo)
    with Backends(config) as b:
        b.provide(fake, Target(kind="slurm", name="slurm:c", workdir="/scratch/u", clone=True, repo_url="git@x:y.git"))
        outs = {o.id: o for o in submit(ledger, config, b, UI(), all_ready=True, backend_name="slurm:c")}
    assert outs["Q-001"].status == "held" and "outside the repository" in outs["Q-001"].message
    assert outs["Q-002"].status == "submitted" and len(fake.jobs) == 1
    with ledger.transaction() as s:
        held = Ledger.experiment(s, "Q-001")
        assert "outside the repository" in held.waiting_reason and held.held_fix
    ledger.close()


def test_a_process_killed_as_the_job_limit_refuses_leaves_the_experiment_to_be_sent_again(ledger, backends, fake,
                                                                                          monkeypatch) -> None:
    """The job limit's refusal closed the attempt and queued the experiment again in two
    transactions: a process killed between them left the experiment with no job and no place in
    the queue, so `irq submit` said "already submitted" and `irq cancel` "nothing to cancel"."""
    from irq.jobs import submit as submitting

    add_experiment(ledger, "Q-001", "refused for the limit")
    fake.refuse_next()

    def killed(*args, **kwargs):
        raise SystemExit("killed")

    monkeypatch.setattr(submitting, "wait_locally", killed)
    with pytest.raises(SystemExit):
        go(ledger, backends, "Q-001")
    monkeypatch.undo()
    (att,) = attempts(ledger)
    assert att.state == "SUBMITTING"  # nothing of the refusal was kept without the queue entry
    with ledger.transaction() as s:
        a = Ledger.attempts(s, "Q-001")[0]
        a.submitted_at = utcnow() - timedelta(minutes=2)
        s.add(a)
    assert reconcile(ledger, backends, UI()) == ["Q-001: attempt 1 never reached the scheduler; queued again"]
    assert go(ledger, backends, all_ready=True)["Q-001"].status == "submitted"


def _given_up_while_sbatch_runs(ledger: Ledger, fake: FakeBackend, monkeypatch, then=None) -> None:
    """fake.submit that, before the scheduler accepts, lets another irq give the attempt up (as a
    reconcile that could not see its sender's claim does) and then run `then`."""
    from irq.ledger.states import NOT_SUBMITTED
    from irq.ledger.transitions import wait_locally

    accept = fake.submit

    def submit(req):
        with ledger.transaction() as s:
            a = next(a for a in Ledger.attempts(s, "Q-001") if a.token == req.token)
            Ledger.set_attempt_state(s, a, NOT_SUBMITTED, "no job carries its token")
            wait_locally(s, Ledger.experiment(s, "Q-001"), "re-queued")
        if then is not None:
            then()
        return accept(req)

    monkeypatch.setattr(fake, "submit", submit)


def test_a_job_accepted_after_its_attempt_was_given_up_is_recorded_and_not_sent_again(ledger, backends, fake,
                                                                                       monkeypatch) -> None:
    """sbatch answered after a reconcile elsewhere had given the attempt up: the job id was
    dropped (the attempt stayed NOT_SUBMITTED, the experiment queued again) and the next submit
    started a second job, the first one followed by nobody."""
    add_experiment(ledger, "Q-001", "late answer")
    _given_up_while_sbatch_runs(ledger, fake, monkeypatch)
    assert go(ledger, backends, "Q-001")["Q-001"].status == "submitted"
    monkeypatch.undo()
    (att,) = attempts(ledger)
    assert (att.state, att.job_id) == ("PENDING", "100")
    assert experiment(ledger).waiting_reason is None
    assert go(ledger, backends, all_ready=True) == {} and list(fake.jobs) == ["100"]


def test_a_job_accepted_after_its_experiment_was_sent_again_is_recorded_and_cancelled(ledger, backends, fake,
                                                                                      monkeypatch) -> None:
    add_experiment(ledger, "Q-001", "late answer, sent again meanwhile")

    def sent_again() -> None:
        monkeypatch.setattr(fake, "submit", type(fake).submit.__get__(fake))
        assert go(ledger, backends, "Q-001")["Q-001"].status == "submitted"  # another irq sends it again

    _given_up_while_sbatch_runs(ledger, fake, monkeypatch, then=sent_again)
    monkeypatch.setattr(fake, "submit", fake.submit)
    out = go(ledger, backends, "Q-001")["Q-001"]
    assert out.status == "skipped" and "recorded and cancelled" in out.message, out
    by_number = {a.number: a for a in attempts(ledger)}
    assert by_number[1].job_id == out.job_id
    assert [r.state for r in fake.jobs[out.job_id].rows.values()] == ["CANCELLED"]
    assert [r.state for r in fake.jobs[by_number[2].job_id].rows.values()] == ["PENDING"]


def test_the_claims_file_has_the_ledgers_permissions_and_an_unreadable_one_counts_as_claimed(tmp_path: Path) -> None:
    """It was made 0600 whatever the ledger's mode: on a ledger a group shares, another member's
    irq could not open it and took every claim for free, giving up attempts still being sent."""
    import os
    import stat

    from irq.ledger.claims import Claims

    db = tmp_path / "queue.db"
    db.write_bytes(b"")
    os.chmod(db, 0o664)
    c = Claims(db)
    c.hold(3)
    assert stat.S_IMODE(os.stat(c.path).st_mode) == 0o664
    c.close()
    other = tmp_path / "other.db"
    other.write_bytes(b"")
    blocked = Claims(other)
    os.mkdir(blocked.path)  # there, but cannot be opened for writing (as another user's 0600 file)
    assert blocked.in_flight(3)
    assert not Claims(tmp_path / "gone" / "x.db").in_flight(3)  # none, and none can be made


def test_the_script_and_the_ledger_give_an_attempt_one_number_after_an_imported_gap(ledger, backends, fake) -> None:
    """A queue.md may record only a later attempt (3, its 1 and 2 never written down): the ledger
    numbered the new attempt 4 while its job script said attempt 2 (IRQ_ATTEMPT=2)."""
    import re

    from irq.ledger.models import Experiment

    with ledger.transaction() as s:
        Ledger.add_experiment(s, Experiment(id="Q-004", seq=0, title="t", command="true", state="FAILED"))
    with ledger.transaction() as s:
        s.add(Attempt(experiment_id="Q-004", number=3, token="irq-imported0", backend="imported", state="FAILED"))
    with ledger.transaction() as s:
        Ledger.set_state(s, Ledger.experiment(s, "Q-004"), "READY", "retry")
    assert go(ledger, backends, "Q-004")["Q-004"].status == "submitted"
    with ledger.transaction() as s:
        a = Ledger.latest_attempt(s, "Q-004")
    assert a.number == 4 and "IRQ_ATTEMPT=4" in a.script and re.search(r"\battempt 4\b", a.script), a.script[:400]


def test_a_refusal_after_the_attempt_was_given_up_is_said_not_a_crash(ledger, backends, fake, monkeypatch) -> None:
    """sbatch refused after a reconcile elsewhere had given the attempt up: NOT_SUBMITTED -> REFUSED
    is no move the states allow, and the whole submit ended on IllegalTransition."""
    add_experiment(ledger, "Q-001", "refused late")
    fake.refuse_next(errors.SubmissionRefused("sbatch: error: invalid partition"))
    _given_up_while_sbatch_runs(ledger, fake, monkeypatch)
    assert go(ledger, backends, "Q-001")["Q-001"].status == "refused"
    assert attempts(ledger)[0].state == "NOT_SUBMITTED" and experiment(ledger).waiting_reason == "re-queued"


def test_a_claims_file_that_cannot_be_opened_stops_the_send_in_one_line(tmp_path: Path) -> None:
    import os

    from irq.ledger.claims import Claims

    (tmp_path / "queue.db").write_bytes(b"")
    c = Claims(tmp_path / "queue.db")
    os.mkdir(c.path)
    with pytest.raises(errors.LedgerError, match="cannot claim the submission"):
        c.hold(1)
