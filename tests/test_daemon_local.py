"""`irq daemon` alone runs a campaign to the end on the local backend: slots refilled as jobs
finish, priorities and dependencies respected, queue.md re-exported; killed with SIGKILL at
the worst moments and restarted, it submits every experiment exactly once."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from irq.daemon.loop import apply_retry_policies
from irq.ledger.database import Ledger
from irq.ledger.models import Experiment

REPO = Path(__file__).resolve().parent.parent
TINY = str(REPO / "trainer" / "configs" / "tiny.json")


def campaign(irq, tmp_path: Path, n: int = 6) -> None:
    irq("init")
    (tmp_path / "irq.toml").write_text('export = "queue.md"\n[local]\nslots = 2\n[daemon]\ninterval = 1\nmax_interval = 2\n')
    prios = ["LOW", "HIGHEST", "MEDIUM", "HIGH", "MEDIUM", "HIGHEST"]
    for i in range(1, n + 1):
        extra = ["--after", "Q-002"] if i == 3 else []
        r = irq("add", f"Q-00{i}", "--title", f"campaign {i}", "--config-file", TINY, "-p", "train_steps=30",
                "-p", "val_size=64", "--priority", prios[i - 1], "--force", *extra)
        assert r.code == 0, r


def daemon(tmp_path: Path, *args: str, fault: str | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "IRQ_USER_CONFIG": str(tmp_path / "none.toml")}
    env.pop("IRQ_FAULT", None)
    if fault:
        env["IRQ_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "irq", "daemon", "run", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_until_done(tmp_path: Path, limit: float = 240) -> None:
    """Start the daemon, stop it (SIGTERM) once the queue is empty."""
    env = {**os.environ, "IRQ_USER_CONFIG": str(tmp_path / "none.toml")}
    env.pop("IRQ_FAULT", None)
    proc = subprocess.Popen([sys.executable, "-m", "irq", "daemon", "run"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            with Ledger(tmp_path / "queue.db").transaction() as s:
                states = {e.state for e in Ledger.experiments(s)}
            if states <= {"DONE", "FAILED"}:
                break
            time.sleep(1)
        else:
            raise AssertionError("campaign did not finish")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "finishing the current step" in out and "daemon stopped" in out


def local_jobs(tmp_path: Path) -> list[dict]:
    jobs = tmp_path / ".irq" / "local" / "jobs"
    return [json.loads((d / "job.json").read_text()) for d in jobs.iterdir() if (d / "job.json").exists()]


def test_the_daemon_alone_runs_a_campaign_under_the_slot_limit(tmp_path, irq):
    campaign(irq, tmp_path)
    run_until_done(tmp_path)
    with Ledger(tmp_path / "queue.db").transaction() as s:
        exps = {e.id: e for e in Ledger.experiments(s)}
        atts = {a.experiment_id: a for a in Ledger.attempts(s)}
        events = Ledger.events(s)
    assert {e.state for e in exps.values()} == {"DONE"}
    assert all(a.results.get("val_mse") for a in atts.values())
    # never more than two jobs at once: the submission order respects priority and dependency
    order = sorted(atts.values(), key=lambda a: (a.submitted_at, a.id))
    first_two = {a.experiment_id for a in order[:2]}
    assert first_two == {"Q-002", "Q-006"}  # the two HIGHEST
    assert atts["Q-003"].submitted_at >= atts["Q-002"].ended_at  # ran after its dependency finished
    assert order[-1].experiment_id == "Q-001"  # LOW goes last
    running = []
    for a in order:
        running = [b for b in running if b.ended_at > a.submitted_at]
        assert len(running) < 2
        running.append(a)
    text = (tmp_path / "queue.md").read_text()
    assert text.count("✓ COMPLETED") == 6 and "## DONE" in text
    assert len(local_jobs(tmp_path)) == 6


@pytest.mark.parametrize("fault", ["after_sbatch", "mid_fetch", "before_export", "before_sbatch"])
def test_kill_9_at_any_point_and_restart_loses_and_duplicates_nothing(tmp_path, irq, fault, monkeypatch):
    import irq.jobs.sync as runner

    campaign(irq, tmp_path)
    killed = 0
    for _ in range(3):  # die at the fault point a few times in a row, at different jobs
        r = daemon(tmp_path, fault=fault)
        if r.returncode == -9:
            killed += 1
        time.sleep(0.5)
    assert killed >= 1, "the fault point was never reached"
    # attempts left SUBMITTING by a kill before sbatch are requeued after the grace period
    (tmp_path / "irq.toml").write_text((tmp_path / "irq.toml").read_text())
    if fault == "before_sbatch":
        time.sleep(runner.ADOPT_GRACE.total_seconds() + 1)
    run_until_done(tmp_path)
    with Ledger(tmp_path / "queue.db").transaction() as s:
        exps = Ledger.experiments(s)
        atts = Ledger.attempts(s)
    assert {e.state for e in exps} == {"DONE"}
    jobs = local_jobs(tmp_path)
    names = [j["name"] for j in jobs]
    assert len(names) == len(set(names))  # no attempt's job was submitted twice
    per_exp = {}
    for j in jobs:
        per_exp.setdefault(j["name"].split(".")[0], []).append(j)
    assert sorted(per_exp) == [f"Q-00{i}" for i in range(1, 7)]
    assert all(len(v) == 1 for v in per_exp.values())  # every experiment ran exactly once
    with_job = [a for a in atts if a.job_id]
    assert sorted(a.job_id for a in with_job) == sorted(j["id"] for j in jobs)  # nothing forgotten
    assert (tmp_path / "queue.md").read_text().count("✓ COMPLETED") == 6


def test_one_daemon_per_ledger_and_start_stop_status(tmp_path, irq):
    irq("init")
    (tmp_path / "irq.toml").write_text("[daemon]\ninterval = 1\n")
    r = irq("daemon", "start")
    assert r.code == 0 and "daemon started (pid" in r.out, r
    r = daemon(tmp_path, "--once", timeout=30)
    assert r.returncode == 1 and "a daemon already serves" in r.stderr
    st = json.loads(irq("daemon", "status", "--json").out)
    assert st["running"] is True and st["pid"] > 0
    r = irq("daemon", "stop")
    assert "stopped the daemon" in r.out
    assert json.loads(irq("daemon", "status", "--json").out)["running"] is False


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path, irq):
    campaign(irq, tmp_path)
    before = (tmp_path / "queue.db").read_bytes()
    r = irq("daemon", "run", "--dry-run")
    assert r.code == 0
    assert "submit Q-002" in r.out and "submit Q-006" in r.out and "wait   Q-003: waiting for Q-002 (READY)" in r.out
    with Ledger(tmp_path / "queue.db").transaction() as s:
        assert {e.state for e in Ledger.experiments(s)} == {"READY"} and not Ledger.attempts(s)


def test_retry_policy_grows_time_after_a_timeout_up_to_the_cap(tmp_path, ledger):
    with ledger.transaction() as s:
        Ledger.add_experiment(s, Experiment(id="Q-001", seq=0, title="t", state="FAILED",
                                            resources={"time_minutes": 60, "memory_mb": 4096},
                                            retry_policy={"on": ["TIMEOUT", "OUT_OF_MEMORY"], "max_time_minutes": 90,
                                                          "max_attempts": 3}))
        Ledger.new_attempt(s, Ledger.experiment(s, "Q-001"), state="TIMEOUT")
    assert apply_retry_policies(ledger) == ["Q-001: time 1 hour -> 1.5 hours after TIMEOUT"]
    with ledger.transaction() as s:
        e = Ledger.experiment(s, "Q-001")
        assert e.state == "READY" and e.resources["time_minutes"] == 90
        assert e.pending_resource_change == "time 1 hour -> 1.5 hours after TIMEOUT"
        Ledger.set_state(s, e, "IN_PROGRESS", "t")
        Ledger.set_state(s, e, "FAILED", "t")
        Ledger.new_attempt(s, e, state="TIMEOUT")
    assert apply_retry_policies(ledger) == []  # at the cap: a person decides


def test_a_login_that_needs_a_person_is_said_clearly_and_the_daemon_waits(tmp_path, irq, monkeypatch):
    from irq import errors
    from irq.backends.registry import Backends
    from irq.config import load_config
    from irq.daemon.loop import cycle
    from irq.ui import UI

    irq("init")
    add = irq("add", "Q-001", "--title", "t", "--config-file", TINY)
    assert add.code == 0

    def needs_person(self, name):
        raise errors.AuthError("login to fasrc needs a password and a one-time code (no terminal to ask)")

    monkeypatch.setattr(Backends, "get", needs_person)
    ledger = Ledger(tmp_path / "queue.db")
    with Backends(load_config()) as b:
        rep = cycle(ledger, load_config(), UI(), b)
    assert rep.needs_person.startswith("login to fasrc needs a password")
    with ledger.transaction() as s:
        assert Ledger.experiment(s, "Q-001").state == "READY" and Ledger.attempts(s) == []


def test_status_says_why_a_ready_experiment_waits(tmp_path, irq):
    irq("init")
    irq("add", "Q-001", "--title", "a")
    irq("add", "Q-002", "--title", "b", "--after", "Q-001")
    rows = {r["id"]: r for r in json.loads(irq("status", "--json").out)["experiments"]}
    assert rows["Q-002"]["detail"] == "waiting for Q-001 (READY)"
    with Ledger(tmp_path / "queue.db").transaction() as s:
        e = Ledger.experiment(s, "Q-001")
        Ledger.set_state(s, e, "IN_PROGRESS", "t")
        Ledger.set_state(s, e, "FAILED", "t")
    rows = {r["id"]: r for r in json.loads(irq("status", "--json").out)["experiments"]}
    assert rows["Q-002"]["detail"] == "held: dependency Q-001 FAILED"


@pytest.mark.parametrize("how", ["a backup restored over it", "deleted"])
def test_a_daemon_whose_ledger_is_replaced_stops_instead_of_serving_the_old_file(tmp_path, irq, how):
    """errors.md says to restore a backup copy: the daemon went on submitting from the replaced file
    (jobs the restored ledger never learned of, run again by the next submit) and refused a new
    daemon for the new file. It stops with one line now."""
    irq("init")
    import shutil

    shutil.copy(tmp_path / "queue.db", tmp_path / "backup.db")
    env = {**os.environ, "IRQ_USER_CONFIG": str(tmp_path / "none.toml")}
    env.pop("IRQ_FAULT", None)
    proc = subprocess.Popen([sys.executable, "-m", "irq", "daemon", "run", "--interval", "0.2"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "queue.db.daemon.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)
        if how == "deleted":
            (tmp_path / "queue.db").unlink()
        else:
            os.replace(tmp_path / "backup.db", tmp_path / "queue.db")
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1, (out, err)
    assert "was replaced or removed while the daemon served it: the daemon stopped" in err
    assert "Traceback" not in err


def test_the_daemon_refuses_a_read_only_ledger_in_one_line(tmp_path, irq, monkeypatch):
    irq("init")
    from irq.ledger import reader

    monkeypatch.setattr(reader, "access_mode", lambda path: "ro")  # what another user's file opens as
    r = irq("daemon", "run", "--once")
    assert r.code == 1 and "is read-only for you" in r.err and "the daemon writes every cycle" in r.err, r


def test_a_ledger_opened_through_a_symlink_has_the_same_daemon_and_submit_locks(tmp_path):
    """The locks were named after the path given: the ledger opened through a symlink got a second
    daemon beside the first, and a second sender's claims that reconcile could not see."""
    from irq.daemon.loop import DaemonLock
    from irq.ledger.claims import Claims

    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "queue.db").write_bytes(b"")
    (tmp_path / "alias.db").symlink_to(tmp_path / "real" / "queue.db")
    (tmp_path / "linked").symlink_to(tmp_path / "real", target_is_directory=True)
    first = DaemonLock(tmp_path / "real" / "queue.db")
    first.acquire()
    try:
        for other in (tmp_path / "alias.db", tmp_path / "linked" / "queue.db"):
            with pytest.raises(Exception, match="a daemon already serves queue.db"):
                DaemonLock(other).acquire()
            assert DaemonLock(other).holder() == os.getpid()
            assert Claims(other).path == Claims(tmp_path / "real" / "queue.db").path
    finally:
        first.release()


def test_stop_says_so_when_the_daemon_is_still_finishing_its_step(tmp_path):
    """It printed "stopped the daemon" for one still running after the wait."""
    import signal
    import subprocess
    import sys

    from irq import errors
    from irq.daemon.detached import stop_detached

    db = tmp_path / "queue.db"
    db.write_bytes(b"")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import signal, sys, time; from pathlib import Path; from irq.daemon.loop import DaemonLock; "
        f"signal.signal(signal.SIGTERM, signal.SIG_IGN); l = DaemonLock(Path({str(db)!r})); l.acquire(); "
        "print('held', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(errors.IrqError, match="still finishing its current step"):
            stop_detached(db, timeout=0.5)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
