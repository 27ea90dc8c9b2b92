"""On the real loopback cluster (2 jobs per user): the daemon alone runs a campaign; kill -9
at fault points never duplicates or forgets a job (checked against sacct); sshd going away
fails nothing; each preflight failure of seed 000's pilot is caught; real failing jobs are
diagnosed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from irq.ledger.database import Ledger

from .conftest import add_tiny, project_jobs, wait_states

pytestmark = pytest.mark.cluster


def with_daemon_config(project: Path) -> None:
    t = project / "irq.toml"
    t.write_text('export = "queue.md"\n' + t.read_text() + "\n[daemon]\ninterval = 1\nmax_interval = 4\n")


def add_campaign(irq) -> None:
    prios = ["LOW", "HIGHEST", "MEDIUM", "HIGH", "MEDIUM", "HIGHEST"]
    for i in range(1, 7):
        extra = ["--after", "Q-002"] if i == 3 else []
        add_tiny(irq, f"Q-00{i}", "--priority", prios[i - 1], "-p", "train_steps=20", *extra)


def env_for(project: Path, fault: str | None = None) -> dict:
    env = {**os.environ, "IRQ_USER_CONFIG": str(project / "none.toml")}
    env.pop("IRQ_FAULT", None)
    env.pop("IRQ_FAULT_ACTION", None)
    if fault:
        env["IRQ_FAULT"] = fault
    return env


def start_daemon(project: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "irq", "daemon", "run"], cwd=project, env=env_for(project),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_daemon(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    return out


def wait_all(project: Path, states=("DONE",), timeout: float = 400) -> dict:
    deadline = time.monotonic() + timeout
    got = {}
    while time.monotonic() < deadline:
        with Ledger(project / "queue.db").transaction() as s:
            got = {e.id: e.state for e in Ledger.experiments(s)}
        if set(got.values()) <= set(states):
            return got
        if "FAILED" in got.values() and "FAILED" not in states:  # no retries here: it cannot end as asked
            raise AssertionError(f"campaign failed: {got}")
        time.sleep(1)
    raise AssertionError(f"campaign unfinished: {got}")


def jobs_by_experiment(cluster, project) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for j in project_jobs(cluster, project):
        if "_" in j["JobID"] or not j["JobName"].startswith("Q-"):
            continue
        out.setdefault(j["JobName"].split(".")[0], []).append(j)
    return out


def test_the_daemon_alone_runs_a_campaign_of_six_under_the_two_job_limit(project, irq, slurm_cluster):
    with_daemon_config(project)
    add_campaign(irq)
    proc = start_daemon(project)
    try:
        max_seen = 0
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            max_seen = max(max_seen, len(slurm_cluster.squeue_jobs()))
            with Ledger(project / "queue.db").transaction() as s:
                states = {e.state for e in Ledger.experiments(s)}
            if states == {"DONE"} or "FAILED" in states:  # a failure: wait_all below says which
                break
            time.sleep(0.5)
    finally:
        log = stop_daemon(proc)
    assert wait_all(project) == {f"Q-00{i}": "DONE" for i in range(1, 7)}, log
    assert max_seen <= 2
    with Ledger(project / "queue.db").transaction() as s:
        atts = {a.experiment_id: a for a in Ledger.attempts(s)}
    order = [a.experiment_id for a in sorted(atts.values(), key=lambda a: (a.submitted_at, a.id))]
    assert set(order[:2]) == {"Q-002", "Q-006"} and order[-1] == "Q-001"
    assert atts["Q-003"].submitted_at >= atts["Q-002"].ended_at
    jobs = jobs_by_experiment(slurm_cluster, project)
    assert {k: len(v) for k, v in jobs.items()} == {f"Q-00{i}": 1 for i in range(1, 7)}
    assert (project / "queue.md").read_text().count("✓ COMPLETED") == 6


def test_kill_9_at_fault_points_then_restart_submits_each_exactly_once(project, irq, slurm_cluster):
    with_daemon_config(project)
    add_campaign(irq)
    for fault in ("after_sbatch", "after_sbatch", "mid_fetch", "before_export"):
        deadline = time.monotonic() + 120
        while True:  # run until the daemon dies at that point
            r = subprocess.run([sys.executable, "-m", "irq", "daemon", "run"], cwd=project, env=env_for(project, fault),
                               capture_output=True, text=True, timeout=180)
            if r.returncode == -9:
                break
            assert time.monotonic() < deadline, f"never reached {fault}: {r.stdout[-500:]}{r.stderr[-500:]}"
    proc = start_daemon(project)
    try:
        wait_all(project)
    finally:
        stop_daemon(proc)
    jobs = jobs_by_experiment(slurm_cluster, project)
    assert {k: len(v) for k, v in jobs.items()} == {f"Q-00{i}": 1 for i in range(1, 7)}
    with Ledger(project / "queue.db").transaction() as s:
        recorded = sorted(a.job_id for a in Ledger.attempts(s) if a.job_id)
    assert recorded == sorted(j[0]["JobID"] for j in jobs.values())  # every job known to the ledger
    assert (project / "queue.md").read_text().count("✓ COMPLETED") == 6


def outage_mid_campaign(project, irq, cluster, stop, start, status_says: str | None = None) -> str:
    """Run a small campaign with the daemon; take a piece of the cluster away while jobs run;
    nothing may be FAILED meanwhile, states show as unknown; then everything finishes."""
    with_daemon_config(project)
    for i in (1, 2):
        add_tiny(irq, f"Q-00{i}", "-p", "train_steps=300")  # they run through the outage
    add_tiny(irq, "Q-003", "-p", "train_steps=20")  # waits for a slot, submitted after it: a short run
    proc = start_daemon(project)
    try:
        deadline = time.monotonic() + 120
        while not cluster.squeue_jobs():
            assert time.monotonic() < deadline
            time.sleep(0.5)
        stop()
        try:
            deadline = time.monotonic() + 90  # squeue needs ~10 s to give up on a dead controller
            unknown = False
            while not unknown and time.monotonic() < deadline:
                time.sleep(1)
                with Ledger(project / "queue.db").transaction() as s:
                    assert "FAILED" not in {e.state for e in Ledger.experiments(s)}
                    unknown = any(a.unknown_since for a in Ledger.attempts(s))
            assert unknown, "states should show as unknown while the cluster does not answer"
            if status_says:
                r = irq("status", "--json")
                assert r.code == 0 and status_says in r.err, r
        finally:
            start()
        wait_all(project)
    finally:
        log = stop_daemon(proc)
    assert "unreachable" in log
    with Ledger(project / "queue.db").transaction() as s:
        assert all(a.unknown_since is None for a in Ledger.attempts(s))
    return log


def drop_masters(control_dir: Path) -> None:
    """The link to the login node drops: every master connection irq had open dies with it."""
    for sock in control_dir.iterdir():
        p = subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "check", "x"], capture_output=True, text=True)
        pid = p.stderr.partition("pid=")[2].partition(")")[0]
        if pid.isdigit():
            os.kill(int(pid), signal.SIGKILL)


def test_sshd_down_mid_campaign_fails_nothing_and_the_daemon_recovers(project, irq, slurm_cluster, control_dir):
    def down() -> None:
        slurm_cluster.stop_sshd()
        drop_masters(control_dir)

    outage_mid_campaign(project, irq, slurm_cluster, down, slurm_cluster.start_sshd)


def test_a_slurmctld_outage_fails_nothing_and_the_daemon_recovers(project, irq, slurm_cluster):
    outage_mid_campaign(project, irq, slurm_cluster, slurm_cluster.stop_slurmctld, slurm_cluster.start_slurmctld,
                        status_says="did not answer")


def test_preflight_catches_each_failed_pilot(project, irq, slurm_cluster):
    add_tiny(irq, "Q-004")
    r = irq("check", "Q-004")
    assert r.code == 0, r
    assert "ok   commit pushed" in r.out and "ok   module python/3.10.13-fasrc01" in r.out
    # an unpushed commit (seed 000, attempt 5)
    (project / "note.txt").write_text("local only\n")
    subprocess.run(["git", "-C", str(project), "add", "note.txt"], check=True)
    subprocess.run(["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "local"],
                   check=True)
    r = irq("check", "Q-004")
    assert r.code == 1 and "FAIL commit pushed" in r.out and "pushed?" in r.out and "git push" in r.out, r
    r = irq("submit", "Q-004")
    assert "Q-004: held" in r.out and not slurm_cluster.squeue_jobs(), r
    subprocess.run(["git", "-C", str(project), "reset", "-q", "--hard", "HEAD~1"], check=True)
    # a module that does not exist (attempt 3) and no module at all (attempt 1)
    toml = project / "irq.toml"
    good = toml.read_text()
    toml.write_text(good.replace(slurm_cluster.python_module, "python/3.9"))
    r = irq("check", "Q-004")
    assert "FAIL module python/3.9: module python/3.9 does not exist on the cluster" in r.out, r
    assert "FAIL python" in r.out
    toml.write_text(good.replace(f'modules = ["{slurm_cluster.python_module}"]', "modules = []"))
    r = irq("check", "Q-004")
    assert "FAIL python: `python` is not found after loading no modules" in r.out, r
    toml.write_text(good)
    # a partition that does not exist, and resources over a partition's limit
    add_tiny(irq, "Q-005", "--partition", "nope")
    r = irq("check", "Q-005")
    assert "FAIL partition nope: partition nope does not exist" in r.out, r
    # a controller that does not answer is not a missing partition (it said "fix partition", and held)
    slurm_cluster.stop_slurmctld()
    try:
        r = irq("check", "Q-004")
        assert r.code == 1 and "sinfo did not answer about partition gpu_test" in r.err, r
        assert "does not exist" not in r.out + r.err
        r = irq("submit", "Q-004")  # squeue or sinfo: an infrastructure fault, nothing held or failed
        assert r.code == 1 and "held" not in r.out and "does not exist" not in r.out + r.err, r
    finally:
        slurm_cluster.start_slurmctld()
    add_tiny(irq, "Q-006", "--partition", "gpu_test", "--time", "3 days")
    r = irq("check", "Q-006")
    assert "FAIL time fits: 72 hours is over gpu_test's limit" in r.out, r
    # a file missing from the commit, and files inside a gitlink (attempt 4)
    tiny = (project / "trainer" / "configs" / "tiny.json").read_text()
    (project / "configs").mkdir()
    (project / "configs" / "q004_pilot.json").write_text(tiny)  # written, never committed
    assert irq("add", "Q-007", "--title", "missing config", "--config-file", "configs/q004_pilot.json").code == 0
    r = irq("check", "Q-007")
    assert "FAIL file configs/q004_pilot.json: configs/q004_pilot.json does not exist in commit" in r.out, r
    sha = subprocess.run(["git", "-C", str(project), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "-C", str(project), "update-index", "--add", "--cacheinfo", f"160000,{sha},projects/ired"],
                   check=True)
    subprocess.run(["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "gitlink"],
                   check=True)
    bare = good.split('repo_url = "')[1].split('"')[0]
    subprocess.run(["git", "-C", str(project), "push", "-q", bare, "HEAD:refs/heads/main"], check=True)
    (project / "projects" / "ired" / "configs").mkdir(parents=True)
    (project / "projects" / "ired" / "configs" / "q004_pilot.json").write_text(tiny)
    assert irq("add", "Q-008", "--title", "in a gitlink",
               "--config-file", "projects/ired/configs/q004_pilot.json").code == 0
    r = irq("check", "Q-008")
    assert "is inside a gitlink (submodule), not files" in r.out, r
    # scratch not writable
    toml.write_text(good.replace(str(slurm_cluster.scratch), "/root/forbidden"))
    r = irq("check", "Q-004")
    assert "FAIL writable /root/forbidden" in r.out, r


def test_a_commented_out_module_load_is_caught(project, irq, slurm_cluster, monkeypatch, tmp_path):
    from irq.backends.target import REPO_ROOT

    tpl = (REPO_ROOT / "irq" / "formats" / "templates" / "job.sbatch.j2").read_text()
    custom = tmp_path / "tpl"
    custom.mkdir()
    (custom / "job.sbatch.j2").write_text(tpl.replace("module load {{ m | q }}", "# module load {{ m | q }}"))
    monkeypatch.setenv("IRQ_TEMPLATES", str(custom))
    add_tiny(irq, "Q-004")
    r = irq("check", "Q-004")
    assert r.code == 1 and "FAIL module loads: commented out: # module load python/3.10.13-fasrc01" in r.out, r


@pytest.mark.parametrize("case", ["missing_file", "cuda", "traceback", "memory", "timeout"])
def test_real_failing_jobs_are_diagnosed(project, irq, slurm_cluster, case):
    if case == "missing_file":
        # written here, never committed: the job's clone of the pinned commit lacks it (seed 000, attempt 5)
        (project / "trainer" / "configs" / "does_not_exist.json").write_text(
            (project / "trainer" / "configs" / "tiny.json").read_text())
        assert irq("add", "Q-010", "--title", "uncommitted config",
                   "--config-file", "trainer/configs/does_not_exist.json").code == 0
        expect = "File not found - `trainer/configs/does_not_exist.json` doesn't exist in the job's clone"
    elif case == "cuda":  # the trainer's own one-line refusal (exit 2), no traceback
        add_tiny(irq, "Q-010", "-p", "device=cuda")
        expect = "CUDA unavailable: CUDA is not available"
    elif case == "traceback":  # a command that raises: its last frame is the root cause
        assert irq("add", "Q-010", "--title", "raises", "--command",
                   "python -c 'import fractions; fractions.Fraction(1, 0)'").code == 0
        expect = "ZeroDivisionError"
    elif case == "memory":
        add_tiny(irq, "Q-010", "--mem", "60MB", "-p", "train_steps=100000")
        expect = "OUT_OF_MEMORY" if slurm_cluster.oom_state == "OUT_OF_MEMORY" else "FAILED"
    else:
        add_tiny(irq, "Q-010", "--time", "1 minute", "-p", "train_steps=1000000")
        expect = "TIMEOUT: the job reached its time limit"
    r = irq("submit", "Q-010", "--no-check")
    assert "submitted" in r.out, r
    wait_states(irq, ["Q-010"], timeout=240)
    r = irq("fetch")
    assert "Q-010 attempt 1: FAILED" in r.out, r
    att = json.loads(irq("show", "Q-010", "--json").out)["attempts"][0]
    assert expect in att["error"], att
    assert att["root_cause"] and att["suggested_fix"]
    if case == "traceback":
        assert 'fractions.py", line' in att["root_cause"] and "in __new__" in att["root_cause"], att
    if case == "cuda":
        assert "Traceback" not in att["root_cause"] and "GPU" in att["root_cause"], att
    if case == "timeout":
        assert att["state"] == "TIMEOUT"



@pytest.mark.parametrize("transport", ["paramiko", "openssh"])
def test_a_running_daemon_logs_in_once_for_its_lifetime(project, irq, slurm_cluster, transport):
    with_daemon_config(project)
    add_tiny(irq, "Q-001", "-p", "train_steps=20")
    add_tiny(irq, "Q-002", "-p", "train_steps=20")
    log = slurm_cluster.state_dir / "log" / "sshd.log"

    def logins() -> int:
        return log.read_text(errors="replace").count(f"Accepted publickey for {slurm_cluster.user}")

    before = logins()
    proc = start_daemon(project)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            with Ledger(project / "queue.db").transaction() as s:
                states = {e.state for e in Ledger.experiments(s)}
            if states == {"DONE"} or "FAILED" in states:  # a failure: wait_all below says which
                break
            time.sleep(1)
    finally:
        out = stop_daemon(proc)
    with Ledger(project / "queue.db").transaction() as s:
        assert {e.state for e in Ledger.experiments(s)} == {"DONE"}, out[-2000:]
    assert out.count("cycle") + out.count("submitted") >= 3, out[-2000:]
    assert logins() - before == 1, out[-2000:]
