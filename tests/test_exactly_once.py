"""Exactly once under every command: two `irq submit` of one experiment at the same moment, or
`irq submit` beside `irq daemon --once`, start one job, never two (real processes, one real
SQLite file, the local backend). And an experiment that already has a job is never submitted
again, whatever queue entry an imported queue.md gave it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from irq.ledger.database import Ledger

REPO = Path(__file__).resolve().parent.parent
ROUNDS = 20


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "IRQ_DB"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["IRQ_USER_CONFIG"] = str(tmp_path / "no-user-config.toml")
    return env


def _start(tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "irq", *args], cwd=tmp_path, env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(p: subprocess.Popen) -> str:
    out, err = p.communicate(timeout=180)
    assert p.returncode == 0, (out, err)
    return out


def _jobs_named(tmp_path: Path, exp_id: str) -> int:
    """Jobs the local backend actually started for the experiment (its job.json carries the name)."""
    jobs = tmp_path / ".irq" / "local" / "jobs"
    return sum(1 for d in jobs.iterdir() if (d / "job.json").exists()
               and json.loads((d / "job.json").read_text()).get("name", "").startswith(exp_id + "."))


@pytest.fixture
def project(tmp_path: Path, irq) -> Path:
    assert irq("init").code == 0
    # many slots: a full machine would queue the second submission and hide a duplicate;
    # `true` as the interpreter: each job ends at once and needs no torch
    (tmp_path / "irq.toml").write_text('backend = "local"\n[local]\nslots = 100\npython = "true"\n')
    return tmp_path


def _add(irq, exp_id: str) -> None:
    r = irq("add", exp_id, "--title", f"race {exp_id}", "--config-file", str(REPO / "trainer" / "configs" / "tiny.json"),
            "--force")  # the same run under several ids, on purpose
    assert r.code == 0, r


def _counts(tmp_path: Path, exp_id: str) -> tuple[int, int]:
    with Ledger(tmp_path / "queue.db").transaction() as s:
        attempts = len(Ledger.attempts(s, exp_id))
    return attempts, _jobs_named(tmp_path, exp_id)


@pytest.mark.parametrize("other", [("submit", "{id}", "--no-check"), ("daemon", "run", "--once")],
                         ids=["submit-submit", "submit-daemon"])
def test_two_submitters_at_once_start_one_job(project, irq, other):
    duplicates = []
    for n in range(ROUNDS):
        exp_id = f"Q-{100 + n}"
        _add(irq, exp_id)
        procs = [_start(project, "submit", exp_id, "--no-check"),
                 _start(project, *(a.format(id=exp_id) for a in other))]
        outs = [_finish(p) for p in procs]
        attempts, jobs = _counts(project, exp_id)
        if (attempts, jobs) != (1, 1):
            duplicates.append((exp_id, attempts, jobs, outs))
    assert duplicates == []


QUEUE_MD = """# Experiment Queue

## READY

### Q-001: Baseline
- **Priority**: HIGH

## IN_PROGRESS

### Q-001: Baseline - ATTEMPT 1
- **Status**: RUNNING
- **Job ID**: 55239690
- **Submitted**: 2026-01-14T04:20:54Z

### Q-001: Baseline (QUEUED - waiting for a slot)
- **Status**: QUEUED LOCALLY (waiting for job slot)
- **Reason**: SLURM QOSMaxSubmitJobPerUserLimit (max 2 jobs per user)
"""


def test_an_imported_running_experiment_with_a_queue_entry_is_never_submitted_again(project, irq):
    (project / "queue.md").write_text(QUEUE_MD)
    assert irq("import", "queue.md").code == 0, "import"
    with Ledger(project / "queue.db").transaction() as s:
        exp = Ledger.experiment(s, "Q-001")
        assert exp.state == "IN_PROGRESS" and exp.waiting_reason is not None
    r = irq("submit", "Q-001", "--no-check")
    assert "Q-001: skipped" in r.out, r
    irq("submit", "--all-ready", "--no-check")
    assert irq("daemon", "run", "--once").code == 0
    _finish(_start(project, "daemon", "run", "--once"))
    assert _counts(project, "Q-001") == (1, 0)
    # it says what it is doing: its job, not "queued locally"
    row = {x["id"]: x for x in json.loads(irq("status", "--json", "--offline").out)["experiments"]}["Q-001"]
    assert row["scheduler_state"] == "RUNNING" and not row["detail"].startswith("queued")


def test_ready_moves_only_a_proposed_experiment(project, irq):
    _add(irq, "Q-010")
    r = irq("submit", "Q-010", "--no-check")
    assert "Q-010: submitted" in r.out, r
    r = irq("ready", "Q-010")
    assert r.code != 0 and "only a PROPOSED experiment" in (r.out + r.err)
    r = irq("submit", "Q-010", "--no-check")
    assert "Q-010: skipped" in r.out, r
    assert _counts(project, "Q-010") == (1, 1)


def test_a_failed_preflight_stays_held_while_the_experiment_also_waits_for_a_slot(ledger):
    from irq.experiments.edit import add_experiment
    from irq.jobs.submit import _wait
    from irq.ledger.transitions import Waiting, waiting

    add_experiment(ledger, "Q-004", "Pilot")
    add_experiment(ledger, "Q-005", "Other", depends_on=["Q-004"])
    _wait(ledger, "Q-004", "preflight failed: no python", "set [local] python")
    _wait(ledger, "Q-004", "no free job slot (2 of 2 used)")
    _wait(ledger, "Q-005", "dependency Q-004 FAILED", "retry it, or drop the dependency")
    _wait(ledger, "Q-005", "waiting for Q-004 (READY)")  # its dependency was retried: no longer held
    with ledger.transaction() as s:
        q4, q5 = Ledger.experiment(s, "Q-004"), Ledger.experiment(s, "Q-005")
        assert (waiting(q4, False), q4.waiting_reason) == (Waiting.HELD, "preflight failed: no python")
        assert (waiting(q5, False), q5.waiting_reason) == (Waiting.QUEUED, "waiting for Q-004 (READY)")


FROZEN = "2026-01-14T04:20:54+00:00"


def _frozen(monkeypatch) -> None:
    """Every submission in the same second: run names built from the id and the time collide."""
    from datetime import datetime

    import irq.jobs.submit as submit_module

    monkeypatch.setattr(submit_module, "utcnow", lambda: datetime.fromisoformat(FROZEN))


def _runs(tmp_path: Path) -> dict[str, tuple[str, str]]:
    with Ledger(tmp_path / "queue.db").transaction() as s:
        return {a.experiment_id: (a.run_id, a.run_dir) for a in Ledger.attempts(s)}


def test_experiments_named_alike_get_run_folders_of_their_own(project, irq, monkeypatch):
    """Q-001, q-001, Q001 and Q-0-01 all fold to the run name q001_<time>: submitted in the same
    second, they once shared one run folder (each job's results over another's)."""
    _frozen(monkeypatch)
    ids = ["Q-001", "q-001", "Q001", "Q-0-01"]
    for exp_id in ids:
        _add(irq, exp_id)
    r = irq("submit", *ids, "--no-check")
    assert r.code == 0 and r.out.count("submitted as job") == 4, r
    runs = _runs(project)
    assert sorted(run for run, _ in runs.values()) == ["q001_20260114_042054", "q001_20260114_042054_2",
                                                      "q001_20260114_042054_3", "q001_20260114_042054_4"]
    assert len({run_dir for _, run_dir in runs.values()}) == 4


def test_a_run_name_taken_meanwhile_leaves_the_experiment_ready(project, irq, monkeypatch):
    """Another irq names a run alike between the planning read and the attempt's write: the
    write sees it, writes nothing, and the experiment waits READY for the next submit."""
    _frozen(monkeypatch)
    _add(irq, "Q-001")
    _add(irq, "q001")
    assert irq("submit", "Q-001", "--no-check").code == 0
    real = Ledger.run_id_taken
    calls = []

    def blind_first(s, name):  # the planning read misses the other run; the write's check does not
        calls.append(name)
        return False if len(calls) == 1 else real(s, name)

    _add(irq, "R-009")
    monkeypatch.setattr(Ledger, "run_id_taken", staticmethod(blind_first))
    r = irq("submit", "q001", "R-009", "--no-check")
    assert "q001: skipped: run name q001_20260114_042054 was just taken; the next submit picks another" in r.out, r
    assert "R-009: submitted" in r.out, r  # the limit was not reached: the next one goes (it read "queued", and stopped all)
    assert set(_runs(project)) == {"Q-001", "R-009"}
    state = {e["id"]: e["state"] for e in json.loads(irq("status", "--offline", "--json").out)["experiments"]}
    assert state["q001"] == "READY"
    monkeypatch.setattr(Ledger, "run_id_taken", staticmethod(real))
    assert "q001: submitted" in irq("submit", "q001", "--no-check").out
    assert _runs(project)["q001"][0] == "q001_20260114_042054_2"
