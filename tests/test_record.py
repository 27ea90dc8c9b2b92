"""A study brought in from its hand-kept queue.md has jobs that were running then: irq never
submitted them and cannot ask their scheduler, so they stayed RUNNING for ever and every
experiment after them waited. `irq record` is how the person who knows their fate says it."""
from __future__ import annotations

import json
import sqlite3

import pytest


@pytest.fixture
def study(irq, seed_queue, tmp_path):
    assert irq("init").code == 0
    assert irq("import", str(seed_queue)).code == 0
    return tmp_path / "queue.db"


def dump(db) -> str:
    return "\n".join(sqlite3.connect(db).iterdump())


def test_a_job_imported_as_running_is_recorded_done_with_its_results_and_its_dependents_go_on(irq, study):
    r = irq("daemon", "run", "--once", "--dry-run")
    assert "Q-003: waiting for Q-001 (IN_PROGRESS), Q-002 (IN_PROGRESS)" in r.out + r.err
    r = irq("record", "Q-001", "completed", "--result", "val_mse=0.0096761", "--ended", "2026-01-14T06:31:00Z",
            "--note", "from the job's log on the cluster")
    assert r.code == 0 and "Q-001: attempt 1 recorded as COMPLETED (val_mse = 0.0096761); Q-001 is DONE" in r.out, r
    shown = json.loads(irq("show", "Q-001", "--json").out)
    (a,) = shown["attempts"]
    assert (shown["experiment"]["state"], a["state"], a["results"]["val_mse"]) == ("DONE", "COMPLETED", 0.0096761)
    assert a["ended_at"].startswith("2026-01-14T06:31:00") and a["job_id"] == "55239690"
    assert any("from the job's log on the cluster" in (e["reason"] or "") for e in shown["events"])
    r = irq("record", "Q-002", "cancelled")
    assert r.code == 0 and "Q-002 is FAILED (`irq retry Q-002` runs it again)" in r.out
    r = irq("daemon", "run", "--once", "--dry-run")
    assert "Q-003: dependency Q-002 FAILED" in r.out + r.err  # no longer waiting on a job nobody follows
    assert "0.0096761" in irq("export").out


@pytest.mark.parametrize("args, said", [
    (["Q-001", "done"], "'done' is not how a job ends"),
    (["Q-001", "failed", "--result", "val_mse=1"], "--result goes with `completed`, not `failed`"),
    (["Q-001", "completed", "--result", "val_mse"], "--result 'val_mse' is not KEY=VALUE"),
    (["Q-001", "completed", "--ended", "yesterday"], "--ended: not a UTC time: 'yesterday'"),
    (["Q-001", "completed", "--ended", "2099-01-01T00:00:00Z"], "is in the future"),
    (["Q-001", "completed", "--ended", "2020-01-01T00:00:00Z"], "is before the job was submitted"),
    (["Q-004", "completed"], "Q-004 is DONE with no running or pending attempt: nothing to record"),
    (["Q-404", "completed"], "unknown experiment Q-404"),
])
def test_what_cannot_be_recorded_is_refused_in_one_line_and_changes_nothing(irq, study, args, said):
    before = dump(study)
    r = irq("record", *args)
    assert r.code != 0 and said in r.err, r
    assert r.err.count("error:") == 1 and r.err.count("hint:") == 1 and "Traceback" not in r.err
    assert dump(study) == before


def test_a_job_irq_follows_itself_is_not_recorded_by_hand(irq, tmp_path):
    assert irq("init").code == 0
    assert irq("add", "Q-001", "-p", "lr=1", "--command", "sleep 30").code == 0
    assert irq("submit", "Q-001").code == 0
    try:
        r = irq("record", "Q-001", "completed")
        assert r.code != 0 and "which irq follows itself" in r.err and "irq cancel Q-001" in r.err, r
    finally:
        irq("cancel", "Q-001")


def test_fetch_and_log_say_how_to_close_an_imported_job(irq, study):
    r = irq("fetch", "Q-001")
    assert "Q-001 attempt 1: imported from queue.md as RUNNING; irq cannot ask its scheduler" in r.out, r
    assert "nothing to fetch" not in r.out
    r = irq("log", "Q-001")
    assert r.code != 0 and "irq never ran them, so it has no log" in r.err
    assert "hint: look where the job ran; once it ended, `irq record Q-001 completed|failed|cancelled`" in r.err


def test_a_queued_experiment_says_what_its_dependencies_are_now(irq, study):
    """Q-003 waits in the local queue for Q-001 and Q-002; once Q-001 failed, status still gave
    the reason the last submit had recorded (the job limit), until the next submit."""
    row = lambda: next(e for e in json.loads(irq("status", "--offline", "--json").out)["experiments"] if e["id"] == "Q-003")
    assert row()["detail"] == "queued locally, waiting for Q-001 (IN_PROGRESS), Q-002 (IN_PROGRESS)"
    assert irq("record", "Q-001", "failed").code == 0
    assert row()["detail"] == "queued locally, held: dependency Q-001 FAILED"


def test_a_job_on_a_cluster_taken_out_of_irq_toml_is_recorded_and_fetch_goes_on(irq, tmp_path):
    """Recording (or cancelling) it left an attempt to fetch on a backend irq.toml no longer
    names: every later `irq fetch` and daemon cycle stopped there ("no cluster 'gone'")."""
    assert irq("init").code == 0
    assert irq("add", "Q-001", "-t", "a", "--command", "true").code == 0
    assert irq("add", "Q-002", "-t", "b", "--command", "true", "--force").code == 0
    assert irq("submit", "Q-001", "Q-002").code == 0
    con = sqlite3.connect(tmp_path / "queue.db")
    con.execute("UPDATE attempt SET backend = 'slurm:gone', state = 'RUNNING', job_id = '4242'")
    con.commit()
    con.close()
    r = irq("status")
    assert r.code == 0 and "slurm:gone is no longer in irq.toml" in r.err, r
    assert irq("record", "Q-001", "completed", "-r", "val_mse=0.1").code == 0
    assert irq("cancel", "Q-002").code == 0
    r = irq("fetch")
    assert r.code == 0 and "nothing to fetch" in r.out, r
    r = irq("daemon", "run", "--once")
    assert r.code == 0 and "cycle ended early" not in r.out + r.err, r


def test_a_queued_experiment_whose_dependencies_are_done_says_so(irq, tmp_path):
    """Once A was DONE, status still said B was "waiting for A (IN_PROGRESS)"."""
    import time

    assert irq("init").code == 0
    assert irq("add", "A", "-t", "a", "--command", "echo '{{\"val_mse\": 1}}' > {run_dir}/metrics.json").code == 0
    assert irq("add", "B", "-t", "b", "--command", "true", "--after", "A").code == 0
    assert irq("submit", "A", "B").code == 0
    detail = lambda: next(e for e in json.loads(irq("status", "--json").out)["experiments"] if e["id"] == "B")["detail"]
    assert detail() == "queued locally, waiting for A (IN_PROGRESS)"
    for _ in range(100):
        if "A attempt 1: DONE" in irq("fetch").out:
            break
        time.sleep(0.2)
    assert detail() == "queued locally: its dependencies are done; the next submit or daemon cycle sends it"


def test_fetch_json_says_how_to_close_an_imported_job(irq, study):
    (row,) = [r for r in json.loads(irq("fetch", "Q-001", "--json").out) if r["id"] == "Q-001"]
    assert "irq record Q-001 completed|failed|cancelled" in row["detail"], row
