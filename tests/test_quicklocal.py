"""`irq status` on the local backend when nothing changed (irq/jobs/quicklocal.py): the same
states as the full refresh, neither the ORM nor pydantic loaded, the settings the last status
validated and no others. The local jobs are folders as the local supervisor writes them
(irq/backends/localrun.py), their pid this test's process: running jobs without running any."""
from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest

from irq.ledger.database import Ledger
from irq.ledger.models import Experiment
from tests.test_quickstatus import calls, status_process, the_attempt

START = "2026-11-23T16:48:00+00:00"


def write_job(root: Path, job_id: str, state: dict) -> None:
    d = root / ".irq" / "local" / "jobs" / job_id
    d.mkdir(parents=True, exist_ok=True)
    (d / "job.json").write_text(json.dumps({"id": job_id, "name": "Q-001.irq-x", "tasks": None, "throttle": 1}))
    (d / "supervisor.json").write_text(json.dumps({"pid": os.getpid(), "start": START}))
    (d / "task-x.json").write_text(json.dumps(state))


@pytest.fixture
def project(tmp_path: Path, monkeypatch, ledger: Ledger) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IRQ_CONTROL_DIR", str(tmp_path / "cm"))
    (tmp_path / "irq.toml").write_text('backend = "local"\n[local]\nslots = 3\n')
    with ledger.transaction() as s:
        exp = Ledger.add_experiment(s, Experiment(id="Q-001", seq=1, title="t", state="IN_PROGRESS"))
        Ledger.new_attempt(s, exp, token="irq-x", backend="local", state="PENDING", job_id="1000",
                           submitted_at=datetime.now(timezone.utc))
    write_job(tmp_path, "1000", {"state": "RUNNING", "pid": os.getpid(), "start": START})
    return tmp_path


def memo(root: Path) -> dict:
    return json.loads((root / "cm" / "status-local.json").read_text())


def test_a_second_status_in_a_row_loads_neither_the_orm_nor_pydantic(project, irq):
    r = irq("status", "--json")  # PENDING -> RUNNING: the full refresh
    assert r.code == 0, r
    assert the_attempt(project).state == "RUNNING" and calls(project) == 3  # squeue+sacct, then squeue (slots)
    out, loaded = status_process(project)
    assert not loaded, loaded
    assert out["experiments"][0]["scheduler_state"] == "RUNNING"
    assert "job slots: 1 of 3 used, 2 free (limit from local slots)" in json.dumps(out)
    assert calls(project) == 6  # the same calls the full refresh records
    assert memo(project)[str((project / "queue.db").resolve())]["local"] == {
        "workdir": str((project / ".irq" / "local").resolve()), "slots": 3}


def test_the_remembered_workdir_is_the_one_the_backend_opens(project):
    from irq.backends.registry import Backends
    from irq.config import load_config
    from irq.jobs.quicklocal import local_settings

    with Backends(load_config(None)) as backends:
        root = backends.get("local").root
    assert local_settings(project / "queue.db", None) == {"workdir": str(root), "slots": 3}


def test_a_finished_job_goes_through_the_full_refresh(project, irq):
    assert irq("status", "--json").code == 0
    write_job(project, "1000", {"state": "FAILED", "pid": os.getpid(), "start": START,
                                "end": "2026-11-23T16:58:00+00:00", "exit_code": 3})
    assert irq("status", "--json").code == 0
    att = the_attempt(project)
    assert att.state == "FAILED" and att.exit_code == 3


def test_a_job_folder_gone_is_left_to_the_full_refresh_which_records_it_lost(project, irq):
    """Not the quick path's to decide; the local backend knows every job it ran, so one without
    its folder is lost (NODE_FAIL, with why), never 'unknown' for ever (tests/test_local_backend.py)."""
    import shutil

    assert irq("status", "--json").code == 0
    shutil.rmtree(project / ".irq" / "local" / "jobs" / "1000")
    assert irq("status", "--json").code == 0
    att = the_attempt(project)
    assert att.state == "NODE_FAIL" and "is gone" in att.error


def test_an_irq_toml_changed_since_is_validated_again(project, irq):
    assert irq("status", "--json").code == 0
    (project / "irq.toml").write_text('backend = "local"\n[local]\nslots = 0\n')
    r = irq("status", "--json")
    assert r.code != 0 and "slots" in r.err, r  # pydantic's word, not the remembered settings
    (project / "irq.toml").write_text('backend = "local"\n[local]\nslots = 5\n')
    out, _ = status_process(project)
    assert "job slots: 1 of 5 used, 4 free" in json.dumps(out)


def test_without_irq_toml_each_folder_is_validated_on_its_own(project, irq, monkeypatch):
    """With no irq.toml the project is the folder irq runs in, and a relative workdir resolves
    against it: the same (empty) configuration from another folder names another workdir."""
    from irq.jobs.quicklocal import local_settings

    (project / "irq.toml").unlink()
    monkeypatch.setenv("IRQ_DB", str(project / "queue.db"))
    assert irq("status", "--json").code == 0
    sub = project / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)
    assert local_settings(project / "queue.db", None)["workdir"] == str((sub / ".irq" / "local").resolve())
    assert len(memo(project)) == 1  # one ledger: the newer validation replaced the older


def test_a_cluster_as_the_default_backend_takes_the_full_refresh(project):
    from irq.jobs.quicklocal import local_settings, refresh

    (project / "irq.toml").write_text('backend = "c"\n[clusters.c]\nhost = "h"\nrepo_url = "x"\nworkdir = "/w"\n')
    assert local_settings(project / "queue.db", None) is None  # its slots are the cluster's
    assert refresh(project / "queue.db", None) is None


def test_a_memo_others_may_write_is_not_read(project, irq):
    assert irq("status", "--json").code == 0
    path = project / "cm" / "status-local.json"
    data = memo(project)
    key = str((project / "queue.db").resolve())
    data[key]["local"]["slots"] = 7
    path.write_text(json.dumps(data))
    path.chmod(path.stat().st_mode | stat.S_IWGRP)
    from irq.jobs.quicklocal import local_settings

    assert local_settings(project / "queue.db", None)["slots"] == 3  # validated again, not the 7
    path.write_text("{not json")
    assert local_settings(project / "queue.db", None)["slots"] == 3


def test_a_job_is_this_attempts_when_its_name_is_the_experiments_even_with_another_token():
    """An attempt exported and imported again gets a new token while its job keeps the old name:
    it was declared lost ("now another job") though it ran on. A job of another experiment under
    the same id is still never read as this attempt's."""
    from types import SimpleNamespace

    from irq.backends.base import JobInfo
    from irq.jobs.observed import mine

    att = SimpleNamespace(token="irq-new", experiment_id="Q-001", job_id="1000")
    same = [JobInfo(job_id="1000", state="RUNNING", name="Q-001.irq-old")]
    assert mine(att, same) is same
    (lost,) = mine(att, [JobInfo(job_id="1000", state="COMPLETED", name="Q-002.irq-abc")])
    assert lost.state == "NODE_FAIL" and "job 1000 is now another job (Q-002.irq-abc)" in lost.reason
    assert mine(att, [JobInfo(job_id="1000", state="RUNNING")]) is not None  # no name: nothing to tell
