"""The real SlurmBackend (its sh scripts, quoting, marker lines and parsers) against a fake
login shell replaying recorded output of the loopback SLURM 22.05 cluster; then the real
submit/refresh/reconcile code and a SQLite ledger on top of it. No cluster, no SSH."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from irq import errors
from irq.backends.base import JobRequest
from irq.backends.fakeshell import FakeShell
from irq.backends.registry import Backends
from irq.backends.slurm import SlurmBackend
from irq.backends.slurm_output import slurm_time
from irq.backends.target import REPO_ROOT, Target
from irq.config import ClusterConfig, Config
from irq.experiments.edit import add_experiment
from irq.jobs.submit import submit
from irq.jobs.sync import refresh
from irq.ledger.database import Ledger
from irq.ui import UI
from tests.test_ssh_auth import SACCT, SQUEUE

# recorded on the loopback cluster (docs/test-cluster.md): the QOS twojobs allows 2 jobs per user
QOS_REFUSED = ("sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed: Job "
               "violates accounting/QOS policy (job submit limit, user's size and/or time limits)\n")
BAD_PARTITION = ("sbatch: error: invalid partition specified: nope\n"
                 "sbatch: error: Batch job submission failed: Invalid partition name specified\n")
CONTROLLER_DOWN = "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"
ASSOC = "loopback|irq||normal,twojobs|twojobs|\n"
QOS = "normal||\ntwojobs|2|\n"
SINCE = datetime(2026, 11, 23, 16, 0, tzinfo=timezone.utc)


@pytest.fixture
def shell(tmp_path: Path) -> FakeShell:
    sh = FakeShell(tmp_path / "login")
    sh.reply("sbatch", "4242\n")
    sh.reply("squeue", "")
    sh.reply("sacct", "")
    sh.reply("sacctmgr", ASSOC, when="assoc")
    sh.reply("sacctmgr", QOS, when="qos")
    sh.reply("sacctmgr", "irq\n", when="user")
    sh.reply("scontrol", "ClusterName             = loopback\n")
    return sh


@pytest.fixture
def cfg(tmp_path: Path) -> ClusterConfig:
    return ClusterConfig(name="loopback", host="login.example.org", repo_url="https://example.org/lab/proj.git",
                         workdir=str(tmp_path / "remote"), scratch=str(tmp_path / "scratch"))


@pytest.fixture
def backend(cfg: ClusterConfig, shell: FakeShell) -> SlurmBackend:
    return SlurmBackend(cfg, remote=shell)


def req(run_dir: str, name: str = "Q-001.irq-0a1b2c3d4e", array: str | None = None) -> JobRequest:
    return JobRequest(token="irq-0a1b2c3d4e", name=name, script="#!/bin/bash\necho hi\n", run_dir=run_dir,
                      array=array)


# ---------------------------------------------------------------------- the backend alone
def test_submit_passes_values_as_arguments_and_reads_the_id(backend, shell, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    run_dir = str(tmp_path / f"a b 'q' $(touch {marker}) `touch {marker}`")
    name = f"Q-001.irq-0a1b2c3d4e ;$(touch {marker})"
    assert backend.submit(req(run_dir, name, array="0-3%2")) == "4242"
    assert shell.calls("sbatch") == [["sbatch", "--parsable", f"--job-name={name}", "--array=0-3%2", "job.sbatch"]]
    assert (Path(run_dir) / "job.sbatch").read_text() == "#!/bin/bash\necho hi\n"  # written from stdin
    assert not marker.exists()
    shell.reply("sbatch", "4243;loopback\n")  # --parsable on a multi-cluster setup
    assert backend.submit(req(run_dir)) == "4243"
    assert backend.counter.calls == ["sbatch", "sbatch"] and backend.counter.round_trips == 2


@pytest.mark.parametrize(("stderr", "rc", "kind", "words"), [
    (QOS_REFUSED, 1, errors.SlotLimit, "QOSMaxSubmitJobPerUserLimit"),
    (BAD_PARTITION, 1, errors.SubmissionRefused, "invalid partition specified: nope"),
    ("sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)\n", 1,
     errors.BackendError, "could not submit"),
    ("sh: 1: exec: sbatch: not found\n", 127, errors.BackendError, "not on the PATH"),
])
def test_sbatch_refusals(backend, shell, tmp_path: Path, stderr: str, rc: int, kind: type, words: str) -> None:
    shell.reply("sbatch", "", stderr, rc)
    with pytest.raises(errors.IrqError) as exc:
        backend.submit(req(str(tmp_path / "run")))
    assert type(exc.value) is kind and words in exc.value.message


def test_limit_discovery_reads_sacctmgr_once_per_session(backend, shell, cfg) -> None:
    shell.reply("squeue", "4242|PENDING\n4243_0|RUNNING\n")
    first = backend.slots()
    assert (first.limit, first.used, first.free) == (2, 2, 0)
    assert first.source == "sacctmgr QOS twojobs MaxSubmitJobsPerUser"
    assert [c[4] for c in shell.calls("sacctmgr")] == ["assoc", "qos", "user"]
    assert ["-u", "irqtest"] == shell.calls("squeue")[0][3:5]
    again = backend.slots()  # same session, nothing submitted since: the count and the limit are reused
    assert (again.limit, again.used) == (2, 2) and len(shell.calls("sacctmgr")) == 3
    assert backend.counter.round_trips == 1
    assert backend.counter.calls == ["squeue", "sacctmgr", "sacctmgr", "sacctmgr", "scontrol"]
    backend.new_cycle()  # a daemon's next cycle: the limit comes back from the ledger's cache
    backend.known_limit(2, "cached")
    shell.reply("squeue", "")
    assert backend.slots().used == 0 and len(shell.calls("sacctmgr")) == 3
    assert backend.counter.calls[-1] == "squeue" and backend.counter.round_trips == 2
    configured = SlurmBackend(replace(cfg, job_limit=5), remote=FakeShell(Path(shell.root) / "other"))
    configured.remote.reply("squeue", "1|PENDING\n")
    assert (configured.slots().limit, configured.slots().source) == (5, "config")
    assert configured.remote.calls("sacctmgr") == []


def test_sacctmgr_unavailable_means_no_limit_known(backend, shell) -> None:
    shell.reply("sacctmgr", "", "sacctmgr: error: Problem talking to the database: Connection refused\n", 1,
                when="assoc")
    s = backend.slots()
    assert (s.limit, s.source) == (None, "sacctmgr unavailable")


def test_query_is_one_round_trip_and_merges_recorded_output(backend, shell) -> None:
    shell.reply("squeue", SQUEUE)
    shell.reply("sacct", SACCT)
    out = backend.query(["8_1", "5", "99"], SINCE)
    assert sorted(out) == ["5", "8"] and out["5"][0].state == "CANCELLED"
    assert [r.job_id for r in out["8"]] == ["8_0", "8_1", "8_2", "8_3"] and out["8"][0].state == "COMPLETED"
    (sacct,) = shell.calls("sacct")
    assert sacct[1:] == ["-X", "-P", "-n", "--starttime", slurm_time(SINCE - timedelta(hours=1)), "-j", "5,8,99",
                         "-o", "JobID,State,ExitCode,Start,End,JobName"]
    assert backend.counter.round_trips == 1 and backend.counter.calls == ["squeue", "sacct"]


def test_query_of_live_plain_jobs_asks_squeue_alone(backend, shell) -> None:
    """squeue shows every job asked about live: sacct (slurmdbd) is not run nor counted; the rows
    are squeue's. A job squeue no longer shows brings sacct back in the same exec."""
    shell.reply("squeue", "5|RUNNING|None|2026-11-23T16:58:00|Q-001.irq-a\n6|PENDING|Priority|N/A|Q-002.irq-b\n")
    shell.reply("sacct", "7|COMPLETED|0:0|2026-11-23T16:58:00|2026-11-23T16:59:00|Q-003.irq-c\n")
    out = backend.query(["5", "6"], SINCE)
    assert {k: [r.state for r in v] for k, v in out.items()} == {"5": ["RUNNING"], "6": ["PENDING"]}
    assert shell.calls("sacct") == [] and backend.counter.calls == ["squeue"] and backend.counter.round_trips == 1
    out = backend.query(["5", "7"], SINCE)
    assert out["7"][0].state == "COMPLETED" and len(shell.calls("sacct")) == 1
    assert backend.counter.calls == ["squeue", "squeue", "sacct"] and backend.counter.round_trips == 2


def test_find_adopts_by_name_newest_first(backend, shell) -> None:
    shell.reply("squeue", "31|PENDING|Priority|N/A|Q-002.irq-bbbb\n")
    shell.reply("sacct", "30|FAILED|1:0|2026-11-23T16:58:11|2026-11-23T16:58:12|Q-002.irq-bbbb\n"
                         "29|COMPLETED|0:0|2026-11-23T16:58:08|2026-11-23T16:58:10|Q-001.irq-aaaa\n")
    assert backend.find(["Q-002.irq-bbbb", "Q-001.irq-aaaa", "Q-009.irq-none"], SINCE) == {
        "Q-002.irq-bbbb": "31", "Q-001.irq-aaaa": "29"}


@pytest.mark.parametrize("failing", ["squeue", "sacct"])
def test_a_failing_scheduler_command_is_a_backend_error(backend, shell, failing: str) -> None:
    shell.reply(failing, "", CONTROLLER_DOWN, 1)
    with pytest.raises(errors.BackendError) as exc:
        backend.query(["8"], SINCE)
    assert f"{failing} failed on loopback" in exc.value.message and "Unable to contact" in exc.value.message
    assert "asks again later" in exc.value.hint


def test_cancel_and_check_scripts(backend, shell) -> None:
    shell.reply("scancel", "", "scancel: error: Kill job error on job id 7: Job/step already completing or "
                               "completed\n", 1)
    backend.cancel("7")  # already over: nothing to do
    shell.reply("scancel", "", "scancel: error: Invalid job id specified\n", 1)
    with pytest.raises(errors.BackendError, match="knows no job 7"):
        backend.cancel("7")
    rc, out, _ = backend.run_check('echo "$1|$2"', ["a b", "$(c)"], calls=("git",))
    assert (rc, out) == (0, "a b|$(c)\n") and backend.counter.calls[-1] == "git"


# ---------------------------------------------------------------------- with the ledger
@pytest.fixture
def world(tmp_path: Path, ledger: Ledger, cfg: ClusterConfig, backend: SlurmBackend):
    b = Backends(Config(path=None, root=REPO_ROOT, backend="loopback", clusters={"loopback": cfg}))
    b.provide(backend, Target.cluster(cfg))
    yield b
    b.close()
    assert backend.remote.closed == 1


def run_submit(ledger: Ledger, b: Backends, *ids: str):
    return {o.id: o for o in submit(ledger, b.config, b, UI(), list(ids) or None, all_ready=not ids)}


def only_attempt(ledger: Ledger):
    with ledger.transaction() as s:
        (a,) = Ledger.attempts(s, "Q-001")
        return a, Ledger.experiment(s, "Q-001"), [e.to_state for e in Ledger.events(s, "Q-001")]


def test_qos_refusal_through_submit_waits_never_fails(ledger, world, shell) -> None:
    add_experiment(ledger, "Q-001", "refused by the QOS")
    shell.reply("sbatch", "", QOS_REFUSED, 1)
    out = run_submit(ledger, world, "Q-001")["Q-001"]
    assert out.status == "queued" and "QOSMaxSubmitJobPerUserLimit" in out.message
    att, exp, states = only_attempt(ledger)
    assert att.state == "NOT_SUBMITTED" and exp.state == "IN_PROGRESS" and "FAILED" not in states
    assert "QOSMaxSubmitJobPerUserLimit" in exp.waiting_reason


def test_drop_after_sbatch_then_adoption_then_unknown_since(ledger, world, shell) -> None:
    add_experiment(ledger, "Q-001", "the link drops while sbatch answers")
    shell.drop_during("sbatch")
    out = run_submit(ledger, world, "Q-001")["Q-001"]
    assert out.status == "unknown" and "dropped during sbatch" in out.message
    att, exp, _ = only_attempt(ledger)
    assert (att.state, att.job_id) == ("SUBMITTING", None) and att.unknown_since is not None
    assert len(shell.calls("sbatch")) == 1  # the job exists on the cluster
    name = f"Q-001.{att.token}"
    shell.reply("squeue", f"4242|PENDING|Priority|N/A|{name}\n")
    refresh(ledger, world, UI())
    att, _, _ = only_attempt(ledger)
    assert (att.state, att.job_id, att.unknown_since) == ("PENDING", "4242", None)
    assert len(shell.calls("sbatch")) == 1  # adopted, not submitted again
    shell.reply("squeue", "", CONTROLLER_DOWN, 1)  # the controller goes away
    rep = refresh(ledger, world, UI())
    att, exp, states = only_attempt(ledger)
    assert "Unable to contact" in rep.unreachable["slurm:loopback"]
    assert att.state == "PENDING" and att.unknown_since is not None
    assert exp.state == "IN_PROGRESS" and "FAILED" not in states
    shell.reply("squeue", "")
    shell.reply("sacct", f"4242|COMPLETED|0:0|2026-11-23T16:58:08|2026-11-23T16:58:10|{name}\n")
    refresh(ledger, world, UI())
    att, _, _ = only_attempt(ledger)
    assert (att.state, att.exit_code, att.unknown_since) == ("COMPLETED", 0, None)


def _refresh_shell(tmp_path, squeue_lines: str, squeue_rc: int = 0) -> tuple[str, "object"]:
    """The refresh's exact shell (SQUEUE_SACCT) run with squeue and sacct stubs that print their
    arguments (squeue also the given lines); returns its output and the stubs' folder."""
    import os
    import subprocess

    from irq.backends.slurm_output import squeue_sacct_command

    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "squeue").write_text(f'#!/bin/sh\nprintf "squeue|%s\\n" "$@"; echo "TZ=$TZ"; printf "%s" \'{squeue_lines}\'; '
                                 f'exit {squeue_rc}\n')
    (bin_ / "sacct").write_text('#!/bin/sh\nprintf "sacct|%s\\n" "$@"; echo "TZ=$TZ"; exit 1\n')
    for stub in bin_.iterdir():
        stub.chmod(0o755)
    argv = squeue_sacct_command("me", ["--starttime", "$(touch y)", "-j", "1;touch x"])
    env = {**os.environ, "PATH": f"{bin_}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout, bin_


SQ_ARGS = "".join(f"squeue|{a}\n" for a in ("-h", "-r", "-u", "me", "-o", "%i|%T|%r|%S|%j")) + "TZ=UTC0\n"
SA_ARGS = "".join(f"sacct|{a}\n" for a in ("-X", "-P", "-n", "--starttime", "$(touch y)", "-j", "1;touch x", "-o",
                                            "JobID,State,ExitCode,Start,End,JobName")) + "TZ=UTC0\n"


@pytest.mark.parametrize("lines, rc", [("", 0), ("1;touch x_1|RUNNING|None|N/A|n\n", 0),  # an array's task
                                       ("1;touch xy|RUNNING|None|N/A|n\n", 0), ("1;touch x|RUNNING|None|N/A|n\n", 2)])
def test_sacct_runs_after_squeue_when_squeue_does_not_answer_for_every_job(tmp_path, lines, rc):
    """The sections in order, each with its own exit code, the arguments as given (never spliced
    into shell text), and no file left, when squeue does not show every job asked about as a
    live plain job (or failed)."""
    from irq.backends.slurm_output import MARK, split_sections

    out, _ = _refresh_shell(tmp_path, lines, rc)
    assert out == f"{MARK}\n{SQ_ARGS}{lines}{MARK} rc={rc}\n{SA_ARGS}{MARK} rc=1\n"
    assert split_sections(out, 2) == [(SQ_ARGS + lines, rc), (SA_ARGS, 1)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]


def test_sacct_is_not_run_when_squeue_shows_every_job_live(tmp_path):
    """squeue knows a live job best: when it lists every job asked about, slurmdbd is not asked."""
    from irq.backends.slurm_output import squeue_sacct_sections

    lines = "7|PENDING|Priority|N/A|other\n1;touch x|RUNNING|None|N/A|n\n"
    out, _ = _refresh_shell(tmp_path, lines)
    assert "sacct|" not in out
    assert squeue_sacct_sections(out, "", "here", "c") == (SQ_ARGS + lines, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]
