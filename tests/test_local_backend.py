"""The embedded default: with no cluster configured, irq runs jobs on this machine, keeps the
job limit, and everything (slots, arrays, failures, cancel, crash safety) behaves as on SLURM."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from irq.ledger.database import Ledger

REPO = Path(__file__).resolve().parent.parent
TINY = str(REPO / "trainer" / "configs" / "tiny.json")
FAST = ["-p", "train_steps=40", "-p", "checkpoint_interval=20", "-p", "val_size=64"]


def add(irq, exp_id: str, *extra: str) -> None:
    r = irq("add", exp_id, "--title", f"tiny {exp_id}", "--config-file", TINY, *FAST, "--force", *extra)
    assert r.code == 0, r


def wait_until_finished(irq, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = json.loads(irq("status", "--json").out)
        rows = data["experiments"]
        if not any(r["scheduler_state"] in ("PENDING", "RUNNING", "SUBMITTING") for r in rows):
            return {r["id"]: r for r in rows}
        time.sleep(0.5)
    raise AssertionError("jobs did not finish in time")


def test_submit_run_fetch_records_metrics_and_marks_done(tmp_path, irq):
    irq("init")
    add(irq, "Q-001", "-p", "num_threads=null")  # torch's default: what the local backend sets
    r = irq("submit", "Q-001")
    assert r.code == 0 and "Q-001: submitted as job" in r.out
    rows = wait_until_finished(irq)
    assert rows["Q-001"]["scheduler_state"] == "COMPLETED" and rows["Q-001"]["state"] == "IN_PROGRESS"
    r = irq("fetch")
    assert "Q-001 attempt 1: DONE" in r.out
    show = json.loads(irq("show", "Q-001", "--json").out)
    (att,) = show["attempts"]
    assert att["backend"] == "local" and att["state"] == "COMPLETED" and att["exit_code"] == 0
    assert 0 < att["results"]["val_mse"] < att["results"]["baseline_zero_mse"]
    assert att["results"]["steps"] == 40 and att["run_id"].startswith("q001_")
    if "OMP_NUM_THREADS" not in os.environ:  # two slots share the cores instead of fighting over them
        assert att["results"]["num_threads"] == max(1, (os.cpu_count() or 1) // 2)
    assert (tmp_path / att["output"] / "metrics.json").exists()
    assert not (tmp_path / att["output"] / "checkpoints").exists()  # checkpoints stay in the run dir
    assert show["experiment"]["state"] == "DONE"
    stored = Ledger(tmp_path / "queue.db")
    with stored.transaction() as s:
        a = Ledger.attempts(s, "Q-001")[0]
    assert f"-m trainer --config {TINY}" in a.script  # the script that ran is kept


def test_a_third_submission_waits_queued_locally_for_a_slot(tmp_path, irq):
    irq("init")
    (tmp_path / "irq.toml").write_text("[local]\nslots = 2\n")
    for i in (1, 2, 3):
        add(irq, f"Q-00{i}", "-p", "train_steps=150")
    r = irq("submit", "Q-001", "Q-002", "Q-003")
    assert "Q-001: submitted" in r.out and "Q-002: submitted" in r.out
    assert "Q-003: queued: no free job slot (2 of 2 used)" in r.out
    rows = {x["id"]: x for x in json.loads(irq("status", "--json").out)["experiments"]}
    assert rows["Q-003"]["state"] == "IN_PROGRESS" and rows["Q-003"]["attempts"] == 0
    assert rows["Q-003"]["detail"].startswith("queued locally, waiting for a slot")
    wait_until_finished(irq)
    irq("fetch")
    r = irq("submit", "--all-ready")  # a queued experiment is picked up once slots free
    assert "Q-003: submitted" in r.out
    wait_until_finished(irq)
    irq("fetch")
    rows = {x["id"]: x for x in json.loads(irq("status", "--json").out)["experiments"]}
    assert {i: x["state"] for i, x in rows.items()} == {"Q-001": "DONE", "Q-002": "DONE", "Q-003": "DONE"}


def test_dependencies_and_priorities_order_the_submissions(tmp_path, irq):
    irq("init")
    (tmp_path / "irq.toml").write_text("[local]\nslots = 1\n")
    add(irq, "Q-001", "--priority", "LOW")
    add(irq, "Q-002", "--priority", "HIGHEST", "--after", "Q-001")
    add(irq, "Q-003", "--priority", "HIGH")
    r = irq("submit", "--all-ready")
    assert "Q-003: submitted" in r.out  # HIGH beats LOW; Q-002 waits for Q-001
    assert "Q-002: queued: waiting for Q-001 (READY)" in r.out
    assert "Q-001: queued: no free job slot" in r.out


def test_a_seed_array_runs_every_seed(tmp_path, irq):
    irq("init")
    add(irq, "Q-101", "--seeds", "0-2")
    r = irq("submit", "Q-101")
    assert r.code == 0
    wait_until_finished(irq)
    irq("fetch")
    att = json.loads(irq("show", "Q-101", "--json").out)["attempts"][0]
    assert att["array"] == "0-2%2"
    assert sorted(att["tasks"]) == ["0", "1", "2"] and {t["state"] for t in att["tasks"].values()} == {"COMPLETED"}
    vals = [att["results"][f"seed_{i}.val_mse"] for i in range(3)]
    assert len(set(vals)) == 3  # three different seeds, three different runs
    assert att["results"]["val_mse_mean"] == pytest.approx(sum(vals) / 3)


def test_a_failing_job_is_failed_with_its_root_cause(tmp_path, irq):
    irq("init")
    (tmp_path / "irq.toml").write_text('[local]\npython = "python-not-installed"\n')
    add(irq, "Q-004")
    r = irq("submit", "Q-004")  # the preflight sees it coming and holds it
    assert "Q-004: held: python: `python-not-installed` is not found" in r.out, r
    assert irq("cancel", "Q-004").code == 0  # off the local queue
    irq("submit", "Q-004", "--no-check")  # run it anyway: the job fails, and fetch says why
    wait_until_finished(irq)
    r = irq("fetch")
    assert "Q-004 attempt 1: FAILED (`python-not-installed: command not found`)" in r.out
    att = json.loads(irq("show", "Q-004", "--json").out)["attempts"][0]
    assert att["state"] == "FAILED" and att["exit_code"] == 127
    assert "not on the job's PATH" in att["root_cause"]
    r = irq("log", "Q-004")
    assert "command not found" in r.out
    assert irq("retry", "Q-004").code == 0


def test_cancel_a_running_job(tmp_path, irq):
    irq("init")
    add(irq, "Q-001", "-p", "train_steps=100000")
    irq("submit", "Q-001")
    time.sleep(1)
    r = irq("cancel", "Q-001")
    assert "cancel sent for job" in r.out
    wait_until_finished(irq)
    r = irq("fetch")
    assert "Q-001 attempt 1: FAILED (CANCELLED" in r.out


def test_cancel_of_a_locally_queued_experiment_makes_it_ready(tmp_path, irq):
    irq("init")
    (tmp_path / "irq.toml").write_text("[local]\nslots = 1\n")
    add(irq, "Q-001", "-p", "train_steps=100000")
    add(irq, "Q-002")
    irq("submit", "Q-001", "Q-002")
    r = irq("cancel", "Q-002")
    assert "it is READY again" in r.out
    irq("cancel", "Q-001")


def test_jobs_outlive_the_irq_process_and_a_kill_after_sbatch_is_adopted_once(tmp_path, irq):
    irq("init")
    add(irq, "Q-001")
    env = {**os.environ, "IRQ_FAULT": "after_sbatch", "IRQ_USER_CONFIG": str(tmp_path / "none.toml")}
    proc = subprocess.run([sys.executable, "-m", "irq", "submit", "Q-001"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9  # killed like `kill -9` right after the job was submitted
    with Ledger(tmp_path / "queue.db").transaction() as s:
        (a,) = Ledger.attempts(s, "Q-001")
        assert a.state == "SUBMITTING" and a.job_id is None
    r = irq("status")  # a later irq finds the job by its token
    assert "adopted job" in r.err
    rows = wait_until_finished(irq)
    assert rows["Q-001"]["attempts"] == 1
    jobs = list((tmp_path / ".irq" / "local" / "jobs").iterdir())
    assert len([j for j in jobs if j.is_dir()]) == 1  # submitted exactly once
    assert irq("submit", "Q-001").out.strip() == "Q-001: skipped: already submitted; see `irq status`"


def test_a_kill_before_sbatch_requeues_and_never_duplicates(tmp_path, irq, monkeypatch):
    from datetime import timedelta

    import irq.jobs.sync as runner

    irq("init")
    add(irq, "Q-001")
    env = {**os.environ, "IRQ_FAULT": "before_sbatch", "IRQ_USER_CONFIG": str(tmp_path / "none.toml")}
    proc = subprocess.run([sys.executable, "-m", "irq", "submit", "Q-001"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9
    monkeypatch.setattr(runner, "ADOPT_GRACE", timedelta(seconds=0))
    r = irq("submit", "Q-001")
    assert "never reached the scheduler; queued again" in r.err and "Q-001: submitted" in r.out
    wait_until_finished(irq)
    irq("fetch")
    show = json.loads(irq("show", "Q-001", "--json").out)
    assert [a["state"] for a in show["attempts"]] == ["NOT_SUBMITTED", "COMPLETED"]
    assert show["experiment"]["state"] == "DONE"


def test_a_dead_local_runner_is_noticed(tmp_path, irq):
    import signal

    irq("init")
    add(irq, "Q-001", "-p", "train_steps=100000")
    irq("submit", "Q-001")
    job = next((tmp_path / ".irq" / "local" / "jobs").iterdir())
    task: dict = {}
    for _ in range(100):  # the runner writes the task PENDING first, then RUNNING with its pid
        if (job / "task-x.json").exists() and "pid" in (task := json.loads((job / "task-x.json").read_text())):
            break
        time.sleep(0.1)
    sup = json.loads((job / "supervisor.json").read_text())["pid"]
    os.kill(sup, signal.SIGKILL)
    os.killpg(task["pid"], signal.SIGKILL)
    time.sleep(0.5)
    rows = wait_until_finished(irq)
    assert rows["Q-001"]["scheduler_state"] == "NODE_FAIL"
    r = irq("fetch")
    assert "NODE_FAIL" in r.out


def test_render_shows_what_submit_sends(tmp_path, irq):
    irq("init")
    add(irq, "Q-001", "-p", "colour=blue")
    r = irq("render", "Q-001")
    assert r.out.startswith("#!/bin/bash\n#SBATCH --job-name=Q-001.irq-")
    assert f"-m trainer --config {TINY}" in r.out
    assert "not passed to the trainer (not trainer config keys): colour" in r.err


def _running_folder(jobs: Path, job_id: str, pid: int) -> None:
    """A job folder as the local runner leaves it while its one task runs (supervisor `pid`)."""
    d = jobs / job_id
    d.mkdir(parents=True)
    now = "2026-01-01T00:00:00+00:00"
    (d / "job.json").write_text(json.dumps({"id": job_id, "name": f"job {job_id}", "tasks": None, "submitted": now}))
    (d / "supervisor.json").write_text(json.dumps({"pid": pid, "start": now}))
    (d / "task-x.json").write_text(json.dumps({"state": "RUNNING", "pid": pid, "start": now}))


def test_slots_take_the_folders_the_query_read_until_a_submit_a_cancel_or_a_new_cycle(tmp_path):
    """A status tells the slots from the query's own reading (as SLURM's from the same squeue);
    folders the query did not read are read, and nothing is reused once the queue may have changed."""
    from datetime import datetime, timezone

    from irq.backends.local import LocalBackend

    backend = LocalBackend(tmp_path / "work", slots=3)
    for job_id in ("1000", "1001"):
        _running_folder(backend.jobs, job_id, os.getpid())
    assert backend.query(["1000"], datetime(2026, 1, 1, tzinfo=timezone.utc))["1000"][0].state == "RUNNING"

    def finish(job_id: str) -> None:
        p = backend.jobs / job_id / "task-x.json"
        p.write_text(json.dumps({**json.loads(p.read_text()), "state": "COMPLETED", "exit_code": 0}))

    finish("1000")
    finish("1001")
    assert backend.slots().used == 1  # 1000 as the query read it; 1001, which it did not read, afresh
    backend.new_cycle()
    assert backend.slots().used == 0
    _running_folder(backend.jobs, "1002", os.getpid())
    backend.query(["1002"], datetime(2026, 1, 1, tzinfo=timezone.utc))
    finish("1002")
    backend.cancel("9999")  # no such job (its folder gone): nothing to stop, and the reading is dropped all the same
    assert backend.slots().used == 0

    one = LocalBackend(tmp_path / "one", slots=1)
    _running_folder(one.jobs, "999", os.getpid())
    one.query(["999"], datetime(2026, 1, 1, tzinfo=timezone.utc))
    p = one.jobs / "999" / "task-x.json"
    p.write_text(json.dumps({**json.loads(p.read_text()), "state": "COMPLETED", "exit_code": 0}))
    from irq.backends.base import JobRequest

    # the slot check of a submission reads every folder afresh: the one slot is free again
    job_id = one.submit(JobRequest("tok", "job tok", "#!/bin/bash\ntrue\n", str(tmp_path / "run")))
    assert (one.jobs / job_id / "job.json").exists()


def test_a_job_whose_folder_is_gone_is_lost_not_unknown_for_ever(tmp_path, irq):
    """rm -rf .irq/local (or a workdir on a tmpfs after a restart) once left the attempt 'state
    unknown' for ever: fetch said PENDING, cancel 'no local job', retire and retry refused."""
    import shutil

    irq("init")
    (tmp_path / "irq.toml").write_text('[local]\npython = "true"\n')
    add(irq, "Q-001")
    assert "submitted as job" in irq("submit", "Q-001").out
    shutil.rmtree(tmp_path / ".irq" / "local" / "jobs")
    rows = {r["id"]: r for r in json.loads(irq("status", "--json").out)["experiments"]}
    assert rows["Q-001"]["scheduler_state"] == "NODE_FAIL", rows
    irq("fetch")
    show = json.loads(irq("show", "Q-001", "--json").out)
    assert show["experiment"]["state"] == "FAILED"
    assert "job folder" in show["attempts"][-1]["error"] and "is gone" in show["attempts"][-1]["error"], show
    assert irq("retry", "Q-001").code == 0


def test_a_failed_seed_of_an_array_is_diagnosed_from_its_own_log(tmp_path, irq):
    """The root cause once quoted the last lines of every task's log: those of the seeds that ran
    well, never the failing seed's own words."""
    import subprocess

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    irq("init")
    (tmp_path / "irq.toml").write_text('[project]\nmetric = "v"\n')
    script = ('if [ "$IRQ_SEED" = 0 ]; then echo "seed zero broke: bad shapes" >&2; exit 1; fi; '
              'echo "{{\\"v\\": 1}}" > "$IRQ_RUN_DIR/metrics.json"')
    assert irq("add", "arr", "-t", "t", "--seeds", "0-2", "--command", script).code == 0
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"], cwd=tmp_path, check=True)
    assert "submitted as job" in irq("submit", "arr").out
    wait_until_finished(irq)
    irq("fetch")
    a = json.loads(irq("show", "arr", "--json").out)["attempts"][-1]
    assert "seed zero broke: bad shapes" in a["root_cause"], a["root_cause"]
    assert "command exited with 0" not in a["root_cause"]


def test_status_that_records_new_job_states_re_exports_queue_md(tmp_path, irq):
    """`irq status` wrote the jobs' new states into the ledger, and queue.md kept the old ones."""
    irq("init")
    (tmp_path / "irq.toml").write_text('export = "queue.md"\n[local]\npython = "true"\n')
    add(irq, "Q-001")
    assert "submitted as job" in irq("submit", "Q-001").out
    assert "- **Status**: PENDING" in (tmp_path / "queue.md").read_text() or \
        "- **Status**: RUNNING" in (tmp_path / "queue.md").read_text()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "COMPLETED" not in (tmp_path / "queue.md").read_text():
        irq("status")
        time.sleep(0.3)
    assert "- **Status**: COMPLETED" in (tmp_path / "queue.md").read_text()


@pytest.mark.parametrize("counter", ["", "10x", None], ids=["emptied by a kill", "garbled", "a folder in the way"])
def test_a_broken_job_counter_never_stops_the_queue(tmp_path, irq, counter):
    """`next_id` was rewritten in place: a kill mid-write left it empty, and every later submit and
    daemon cycle failed (int('')) until it was fixed by hand. It is replaced whole now, and a broken
    one is read past: the next id follows the highest job, never an id whose folder exists."""
    irq("init")
    r = irq("add", "Q-001", "--title", "quick", "--command", "true", "--force")
    assert r.code == 0, r
    local = tmp_path / ".irq" / "local"
    (local / "jobs" / "1004").mkdir(parents=True)
    (local / "jobs" / "1004" / "job.json").write_text("{}")
    (local / "jobs" / "1007").mkdir()  # a folder a killed submit made, before its job.json
    if counter is None:
        (local / "next_id").write_text("1007")
    else:
        (local / "next_id").write_text(counter)
    r = irq("submit", "Q-001")
    assert r.code == 0 and "Q-001: submitted as job" in r.out, r
    job = r.out.split("submitted as job ")[1].split()[0]
    assert int(job) >= 1005 and job != "1007"
    assert int((local / "next_id").read_text()) == int(job) + 1


def test_a_job_whose_runner_never_came_up_says_that_nothing_ran(tmp_path):
    """A runner started (its `started` mark made) that never wrote its state: reported as never
    started, nothing ran, not as "the local runner died"."""
    from irq.backends.local import LocalBackend

    backend = LocalBackend(tmp_path / ".irq" / "local", slots=2)
    d = backend.jobs / "1000"
    d.mkdir(parents=True)
    (d / "job.json").write_text(json.dumps({"id": "1000", "name": "Q-001.t", "tasks": None,
                                            "run_dir": str(tmp_path / "run")}))
    (d / "started").write_text("")
    old = time.time() - 120
    os.utime(d / "started", (old, old))
    (info,) = backend.query(["1000"], datetime_now())["1000"]
    assert info.state == "NODE_FAIL" and info.reason.startswith("the job never started") and "nothing ran" in info.reason


def test_a_job_its_submitter_never_started_is_started_by_the_next_query_once(tmp_path, monkeypatch):
    """The submitter stopped (Ctrl-Z, a loaded machine) or was killed between writing job.json and
    starting the runner: 30 s later any irq declared the job dead ("never started") and its
    experiment FAILED, though the resumed submitter then ran it (or, killed, nothing ran and nothing
    retried). The job was accepted: the next query starts it, and a resumed submitter starts nothing."""
    from irq.backends.base import JobRequest
    from irq.backends.local import FINAL, LocalBackend

    backend = LocalBackend(tmp_path / ".irq" / "local", slots=2)
    run = tmp_path / "run"
    script = "#!/bin/bash\necho ran >> " + str(tmp_path / "ran.txt") + "\n"
    real_start = LocalBackend._start
    monkeypatch.setattr(LocalBackend, "_start", lambda self, d, run_dir: None)  # the submitter stops here
    job = backend.submit(JobRequest(token="t", name="Q-001.t", script=script, run_dir=str(run), array=None,
                                    log_name="slurm-%j.out"))
    monkeypatch.setattr(LocalBackend, "_start", real_start)
    d = backend.jobs / job
    (info,) = backend.query([job], datetime_now())[job]
    assert info.state == "PENDING" and not (d / "started").exists()  # its submitter may still start it
    old = time.time() - 60
    os.utime(d, (old, old))
    deadline = time.monotonic() + 30
    while (info := backend.query([job], datetime_now())[job][0]).state not in FINAL and time.monotonic() < deadline:
        time.sleep(0.2)
    assert info.state == "COMPLETED", info
    backend._start(d, str(run))  # the submitter, resumed, launches its runner: it finds the job claimed
    time.sleep(3)
    assert (tmp_path / "ran.txt").read_text() == "ran\n" and backend.query([job], datetime_now())[job][0] == info


def datetime_now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


def test_a_job_id_used_again_in_a_new_workdir_is_never_read_as_the_old_jobs(tmp_path, irq):
    """`[local] workdir` changed while a job ran: job ids started again at 1000 in the new folder,
    the old attempt was read from the new job 1000 (DONE, exit 0, the new job's times) though its
    own run failed, and the new job's checkout folder was the running job's, which it deleted."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    irq("init")
    (tmp_path / "irq.toml").write_text('[project]\ncommand = "sleep {t}"\nrequire_metrics = false\n')
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.email=a@b", "-c", "user.name=t", "commit", "-qm", "a"], cwd=tmp_path, check=True)
    assert irq("add", "old", "-p", "t=30").code == 0 and "as job 1000" in irq("submit", "old").out
    (tmp_path / "irq.toml").write_text('[project]\ncommand = "sleep {t}"\nrequire_metrics = false\n'
                                       '[local]\nworkdir = "jobs2"\n')
    assert irq("add", "new", "-p", "t=0").code == 0 and "as job 1000" in irq("submit", "new").out
    rows = wait_until_finished(irq, 60)
    assert rows["new"]["scheduler_state"] == "COMPLETED", rows
    assert rows["old"]["scheduler_state"] == "NODE_FAIL", rows
    irq("fetch")
    old = json.loads(irq("show", "old", "--json").out)["attempts"][-1]
    assert old["state"] == "NODE_FAIL" and "job 1000 is now another job (new." in old["error"], old
    runs = sorted(p.name for p in (tmp_path / ".irq" / "worktrees").iterdir()) if (tmp_path / ".irq" / "worktrees").exists() else []
    assert len(runs) <= 1 and all(r.startswith("old_") for r in runs), runs  # old's own checkout, if it still runs
    from irq.backends.local import LocalBackend

    LocalBackend(tmp_path / ".irq" / "local", 2).cancel("1000")  # the old job, which irq no longer sees


def test_a_run_that_ended_before_the_project_moved_is_fetched_from_where_it_is_now(tmp_path, irq, monkeypatch):
    """The attempt recorded its run folder's path; after `mv proj proj-moved` the job was found in
    the moved workdir, but fetch looked at the old path and failed the good run ("the job deleted
    it"), and `irq log` printed nothing."""
    proj = tmp_path / "proj"
    proj.mkdir()
    monkeypatch.chdir(proj)
    irq("init")
    cmd = "echo 'hello from the run'; echo '{{\"val_loss\": 0.1}}' > {run_dir}/metrics.json"
    assert irq("add", "a", "-t", "t", "--command", cmd).code == 0
    assert irq("submit", "a").code == 0
    assert wait_until_finished(irq)["a"]["scheduler_state"] == "COMPLETED"
    moved = tmp_path / "proj-moved"
    proj.rename(moved)
    monkeypatch.chdir(moved)
    assert "hello from the run" in irq("log", "a").out
    r = irq("fetch")
    assert "a attempt 1: DONE" in r.out, r
    assert json.loads((next((moved / "results").iterdir()) / "metrics.json").read_text()) == {"val_loss": 0.1}


def test_a_job_id_that_is_a_path_names_no_folder(tmp_path):
    """An imported `Job ID: ../../../evil` made the local backend read, and start a runner in, a
    folder of the file's choosing (a cloned repository's, on `irq import` and `irq status`)."""
    from irq import errors
    from irq.backends.local import LocalBackend

    evil = tmp_path / "work" / "evil"  # where jobs/../../../evil lands
    evil.mkdir(parents=True)
    (evil / "job.json").write_text(json.dumps({"id": "1", "name": "X-1.irq-0", "run_dir": "run", "tasks": None}))
    b = LocalBackend(tmp_path / "work" / ".irq" / "local")
    rows = b.query(["../../../evil"], datetime.now(timezone.utc))
    assert [r.state for r in rows["../../../evil"]] == ["NODE_FAIL"]
    assert sorted(p.name for p in evil.iterdir()) == ["job.json"]  # nothing started or written there
    with pytest.raises(errors.BackendError, match="is no job id of this machine's"):
        b.cancel("../../../evil")


def test_a_run_name_that_is_a_path_is_fetched_inside_results():
    from irq.jobs.fetch import results_folder
    from irq.ledger.models import Attempt

    assert results_folder(Attempt(experiment_id="X-1", number=2, token="t", run_id="../../escaped")) == "X-1-2"
    assert results_folder(Attempt(experiment_id="X-1", number=2, token="t", run_id="x1_20260101_000000")) == \
        "x1_20260101_000000"


def test_a_local_job_finds_python_where_irq_runs_when_nothing_else_provides_it(tmp_path, irq, monkeypatch):
    """Run as `.venv/bin/irq` (its venv not activated) on a machine with no other `python`, a job's
    `python train.py` failed with "command not found" (and was diagnosed as a missing module load)."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # python3 lives there; `python` does not
    irq("init")
    cmd = "python -c 'import sys; print(sys.prefix)' > {run_dir}/which.txt; echo '{{\"val_loss\": 1}}' > {run_dir}/metrics.json"
    assert irq("add", "py", "-t", "t", "--command", cmd).code == 0
    assert irq("submit", "py").code == 0
    assert wait_until_finished(irq)["py"]["scheduler_state"] == "COMPLETED"
    assert "py attempt 1: DONE" in irq("fetch").out
    assert (next((tmp_path / "results").iterdir()) / "which.txt").read_text().strip() == sys.prefix


def test_a_python_earlier_on_path_still_wins():
    from irq.backends.localrun import with_own_bin

    here = os.path.dirname(sys.executable)
    assert with_own_bin("/opt/conda/bin:/usr/bin") == f"/opt/conda/bin:/usr/bin:{here}"
    assert with_own_bin(f"{here}:/usr/bin") == f"{here}:/usr/bin"
    assert with_own_bin("") == f"{os.defpath}:{here}"  # no PATH: the default search, then irq's folder


def test_check_names_the_python_a_local_command_runs(monkeypatch):
    """`irq check` reported [local] python (the trainer's) for a script of the user's own, not the
    python its command finds on PATH."""
    from irq.jobs.preflight import _command_python

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    (ok,) = _command_python("python3 train.py --lr {lr}")
    assert ok.ok and ok.detail == "the command's python3 is /usr/bin/python3"
    (bad,) = _command_python("python9 train.py")
    assert not bad.ok and "`python9` is not on this machine's PATH" in bad.detail
    assert _command_python("bash run.sh") == [] and _command_python("'unclosed") == []


def test_a_command_not_found_on_this_machine_is_not_blamed_on_a_module_load(tmp_path, irq):
    """On the local backend the cause read "a module load is missing or commented out" and the fix
    "load the module that provides it (irq.toml modules)": there are no modules here."""
    irq("init")
    assert irq("add", "nf", "-t", "t", "--command", "no-such-tool-xyz --go").code == 0
    assert irq("submit", "nf").code == 0
    wait_until_finished(irq)
    irq("fetch")
    a = json.loads(irq("show", "nf", "--json").out)["attempts"][-1]
    assert "`no-such-tool-xyz` is not on the job's PATH: it is not installed on this machine" in a["root_cause"], a
    assert "module" not in a["suggested_fix"], a
