"""The user's story on a real SLURM cluster over SSH: submit, watch, fetch; job limits;
arrays; failures with their causes; cancel; host keys; hostile names; a dropped link.

Over OpenSSH (the default transport) every story; over paramiko those where the transport does
the work itself: a job's whole round (exec, log tail and fetch over SFTP), a refused host key and
`irq trust`, and hostile names in paths and titles. The rest (slots, arrays, failures, cancel,
adoption) is the same code above the session on either transport."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from irq.ledger.database import Ledger

from .conftest import add_tiny, since, wait_states

pytestmark = pytest.mark.cluster


BOTH = pytest.mark.parametrize("transport", ["openssh", "paramiko"])


@BOTH
def test_submit_run_complete_fetch(project, irq, slurm_cluster):
    add_tiny(irq, "Q-001")
    r = irq("submit", "Q-001")
    assert r.code == 0 and "Q-001: submitted as job" in r.out, r
    job_id = r.out.split("as job ")[1].split()[0]
    seen = set()
    for _ in range(120):
        row = {x["id"]: x for x in json.loads(irq("status", "--json").out)["experiments"]}["Q-001"]
        seen.add(row["scheduler_state"])
        if row["scheduler_state"] == "COMPLETED":
            break
        time.sleep(0.5)
    assert "COMPLETED" in seen and seen & {"PENDING", "RUNNING"}
    r = irq("fetch")
    assert "Q-001 attempt 1: DONE" in r.out, r
    r = irq("log", "Q-001")  # the job log's tail, read over the transport
    assert r.code == 0 and r.out.strip(), r
    show = json.loads(irq("show", "Q-001", "--json").out)
    att = show["attempts"][0]
    assert show["experiment"]["state"] == "DONE"
    assert att["job_id"] == job_id and att["backend"] == "slurm:loopback" and att["partition"] == "gpu_test"
    assert att["results"]["val_mse"] < att["results"]["baseline_zero_mse"]
    assert att["git_sha"] == subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                            cwd=project).stdout.strip()
    assert att["started_at"] and att["ended_at"] and att["exit_code"] == 0
    assert (project / att["output"] / "metrics.json").exists()
    assert [j for j in slurm_cluster.sacct_jobs(since()) if j["JobID"] == job_id][0]["State"] == "COMPLETED"
    # the clone was removed after the run
    assert not list(slurm_cluster.scratch.glob(f"irq-job-{job_id}.*"))


def test_a_third_submission_stays_queued_locally(project, irq, slurm_cluster):
    for i in (1, 2, 3):
        add_tiny(irq, f"Q-00{i}", "-p", "train_steps=100000")
    r = irq("submit", "Q-001", "Q-002", "Q-003")
    assert "Q-001: submitted" in r.out and "Q-002: submitted" in r.out, r
    assert "Q-003: queued: no free job slot (2 of 2 used)" in r.out
    assert len(slurm_cluster.squeue_jobs()) == 2
    rows = {x["id"]: x for x in json.loads(irq("status", "--json").out)["experiments"]}
    assert rows["Q-003"]["state"] == "IN_PROGRESS" and rows["Q-003"]["attempts"] == 0
    data = json.loads(irq("status", "--json").out)
    assert data["slots"]["limit"] == 2 and data["slots"]["free"] == 0


def test_a_job_submitted_outside_irq_holds_a_slot(project, irq, slurm_cluster):
    slurm_cluster.run_as_user("sbatch --wrap 'sleep 120' -J outside", check=True)
    add_tiny(irq, "Q-001", "-p", "train_steps=100000")
    add_tiny(irq, "Q-002")
    r = irq("submit", "Q-001", "Q-002")
    assert "Q-001: submitted" in r.out, r
    assert "Q-002: queued: no free job slot (2 of 2 used)" in r.out


def test_sbatch_refusing_for_the_limit_keeps_it_queued(project, irq, slurm_cluster, monkeypatch):
    """Even if the slot count is stale, the scheduler's own refusal queues, never fails."""
    from irq.backends.base import Slots
    from irq.backends.slurm import SlurmBackend

    for _ in range(2):
        slurm_cluster.run_as_user("sbatch --wrap 'sleep 120'", check=True)
    monkeypatch.setattr(SlurmBackend, "slots", lambda self: Slots(limit=2, used=0, source="stale"))
    add_tiny(irq, "Q-001")
    r = irq("submit", "Q-001")
    assert "Q-001: queued" in r.out and "QOSMaxSubmitJobPerUserLimit" in r.out, r
    show = json.loads(irq("show", "Q-001", "--json").out)
    assert show["experiment"]["state"] == "IN_PROGRESS" and "QOSMaxSubmitJobPerUserLimit" in show["experiment"]["waiting_reason"]
    assert show["attempts"][0]["state"] == "NOT_SUBMITTED"  # nothing ran; the scheduler never had the job


def test_a_multi_seed_array(project, irq, slurm_cluster):
    add_tiny(irq, "Q-101", "--seeds", "0-1")
    r = irq("submit", "Q-101")
    assert "Q-101: submitted" in r.out, r
    wait_states(irq, ["Q-101"])
    r = irq("fetch")
    assert "Q-101 attempt 1: DONE" in r.out, r
    att = json.loads(irq("show", "Q-101", "--json").out)["attempts"][0]
    assert att["array"] == "0-1%2" and set(att["tasks"]) == {"0", "1"}
    assert att["results"]["seed_0.val_mse"] != att["results"]["seed_1.val_mse"]
    jobs = [j for j in slurm_cluster.sacct_jobs(since()) if j["JobID"].startswith(att["job_id"] + "_")]
    assert sorted(j["JobID"] for j in jobs) == [f"{att['job_id']}_0", f"{att['job_id']}_1"]


def test_failures_are_classified_with_their_root_cause(project, irq, slurm_cluster):
    toml = project / "irq.toml"
    # attempt 1 of the seed: no module loaded -> python: command not found
    toml.write_text(toml.read_text().replace(f'modules = ["{slurm_cluster.python_module}"]', "modules = []"))
    add_tiny(irq, "Q-004")
    irq("submit", "Q-004", "--no-check")
    wait_states(irq, ["Q-004"])
    r = irq("fetch")
    assert "Q-004 attempt 1: FAILED (`python: command not found`)" in r.out, r
    # attempt 3 of the seed: a module name that does not exist
    toml.write_text(toml.read_text().replace("modules = []", 'modules = ["python/3.9"]'))
    assert irq("retry", "Q-004").code == 0
    irq("submit", "Q-004", "--no-check")
    wait_states(irq, ["Q-004"])
    r = irq("fetch")
    assert "Q-004 attempt 2: FAILED (Module not found - `python/3.9` doesn't exist on cluster)" in r.out, r
    show = json.loads(irq("show", "Q-004", "--json").out)
    assert [a["state"] for a in show["attempts"]] == ["FAILED", "FAILED"]
    assert "versioned names" in show["attempts"][1]["root_cause"]
    assert "command not found" in irq("log", "Q-004").out or "module" in irq("log", "Q-004").out


def test_cancel_a_running_job(project, irq, slurm_cluster):
    add_tiny(irq, "Q-001", "-p", "train_steps=100000")
    irq("submit", "Q-001")
    r = irq("cancel", "Q-001")
    assert "cancel sent for job" in r.out, r
    wait_states(irq, ["Q-001"])
    r = irq("fetch")
    assert "Q-001 attempt 1: FAILED (CANCELLED" in r.out, r
    deadline = time.monotonic() + 20  # squeue may list it as COMPLETING a moment after sacct says CANCELLED
    while slurm_cluster.squeue_jobs():
        assert time.monotonic() < deadline, slurm_cluster.squeue_jobs()
        time.sleep(0.5)


@BOTH
def test_an_unknown_host_key_is_refused(project, irq, slurm_cluster, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    toml = project / "irq.toml"
    toml.write_text(toml.read_text().replace(str(slurm_cluster.known_hosts), str(empty)))
    add_tiny(irq, "Q-001")
    r = irq("submit", "Q-001")
    assert r.code != 0 and "SHA256:" in r.err and "irq trust" in r.err, r
    assert empty.read_text() == ""  # never added silently
    with Ledger(project / "queue.db").transaction() as s:
        assert Ledger.attempts(s) == [] and Ledger.experiment(s, "Q-001").state == "READY"
    r = irq("trust", "--yes")
    assert r.code == 0 and "fingerprint SHA256:" in r.out
    assert irq("submit", "Q-001").code == 0


@BOTH
@pytest.mark.parametrize("project", ["/home/irqtest/irq-work/odd dir $(touch PWNED) it's; ls"], indirect=True)
def test_shell_metacharacters_in_titles_and_paths_are_harmless(project, irq, slurm_cluster):
    r = irq("add", "Q-001", "--title", 'Quote " and $(touch PWNED) `id`; rm -rf ~', "--config-file",
            "trainer/configs/tiny.json", "-p", "train_steps=30", "--time", "10 minutes")
    assert r.code == 0
    r = irq("submit", "Q-001")
    assert "submitted" in r.out, r
    wait_states(irq, ["Q-001"])
    r = irq("fetch")
    assert "Q-001 attempt 1: DONE" in r.out, r
    odd = Path("/home/irqtest/irq-work/odd dir $(touch PWNED) it's; ls")
    assert odd.is_dir()
    assert not list(Path("/home/irqtest").rglob("PWNED")) and not Path("PWNED").exists()


def test_a_link_cut_between_sbatch_and_recording_is_adopted_once(project, irq, slurm_cluster, monkeypatch):
    add_tiny(irq, "Q-001")
    monkeypatch.setenv("IRQ_FAULT", "after_sbatch")
    monkeypatch.setenv("IRQ_FAULT_ACTION", "drop")
    r = irq("submit", "Q-001")
    assert r.code != 0 and "connection dropped" in r.err, r
    with Ledger(project / "queue.db").transaction() as s:
        (a,) = Ledger.attempts(s, "Q-001")
        assert a.state == "SUBMITTING" and a.job_id is None
        name = f"Q-001.{a.token}"
    monkeypatch.delenv("IRQ_FAULT")
    r = irq("status")
    assert "adopted job" in r.err, r
    r = irq("submit", "Q-001")
    assert "skipped: already submitted" in r.out
    wait_states(irq, ["Q-001"])
    jobs = [j for j in slurm_cluster.sacct_jobs(since()) if j["JobName"] == name]
    assert len(jobs) == 1
    with Ledger(project / "queue.db").transaction() as s:
        (a,) = Ledger.attempts(s, "Q-001")
    assert a.job_id == jobs[0]["JobID"]


def test_a_second_status_in_a_row_as_the_irq_program(project, irq, slurm_cluster):
    """`irq status` as the program itself (a process), a job running: the status after one that
    changed nothing starts the last query before it reads the ledger, uses that answer (one exec,
    no login, squeue recorded once and sacct not run: squeue shows the job live); when the job then ends, the full refresh records it
    on the same answer and the calls are still recorded once."""
    import os
    import sys

    from irq.backends.ssh import ahead

    add_tiny(irq, "Q-001", "-p", "train_steps=100000")
    assert "Q-001: submitted" in irq("submit", "Q-001").out
    job = json.loads(irq("show", "Q-001", "--json").out)["attempts"][0]["job_id"]
    deadline = time.monotonic() + 120
    while json.loads(irq("status", "--json").out)["experiments"][0]["scheduler_state"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.5)

    def status() -> dict:
        p = subprocess.run([sys.executable, "-m", "irq", "status", "--json"], cwd=project, env=os.environ,
                           capture_output=True, text=True, timeout=120, check=False)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def calls(command: str = "") -> int:
        import sqlite3

        con = sqlite3.connect(project / "queue.db")
        try:
            return con.execute("SELECT COUNT(*) FROM schedulercall WHERE ? IN ('', command)", (command,)).fetchone()[0]
        finally:
            con.close()

    def logins() -> int:
        return (slurm_cluster.state_dir / "log" / "sshd.log").read_text(errors="replace").count(
            f"Accepted publickey for {slurm_cluster.user}")

    assert status()["experiments"][0]["scheduler_state"] == "RUNNING"  # nothing changed: the quick path
    kept = ahead.memo()[ahead.query_key(project / "queue.db")]
    assert kept["sacct_args"][-2:] == ["-j", job]
    probe = ("import sys, json\nsys.argv = ['irq', 'status']\nfrom irq.backends.ssh import ahead\nseen = []\n"
             "init = ahead.Started.__init__\n"
             "def spy(self, argv):\n    seen.append('sqlite3' in sys.modules)\n    init(self, argv)\n"
             "ahead.Started.__init__ = spy\nimport irq.cli\nprint(json.dumps(seen))\n")
    p = subprocess.run([sys.executable, "-c", probe], cwd=project, env=os.environ, capture_output=True, text=True,
                       timeout=60, check=False)
    assert json.loads(p.stdout) == [False], p  # started from what the last status kept, the ledger unread
    n, asked_slurmdbd, before = calls(), calls("sacct"), logins()
    out = status()
    assert out["experiments"][0]["scheduler_state"] == "RUNNING" and "1 of 2 used" in json.dumps(out)
    # squeue alone, through the master: it shows the job live, so slurmdbd is not asked (sacct)
    assert calls() == n + 1 and calls("sacct") == asked_slurmdbd and logins() == before
    slurm_cluster.run_as_user(f"scancel {job}", check=True)
    refreshes, before = 0, calls("squeue")
    while status()["experiments"][0]["scheduler_state"] != "CANCELLED":
        refreshes += 1
        assert refreshes < 120
        time.sleep(0.5)
    assert calls("squeue") == before + refreshes + 1  # the full refresh's squeue counted once, not twice
    n = calls()
    assert status()["experiments"][0]["scheduler_state"] == "CANCELLED" and calls() == n  # nothing active now
