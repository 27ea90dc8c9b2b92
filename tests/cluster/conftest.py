"""Fixtures for stories against the real loopback cluster: a project (a git clone of this
repository whose commit is pushed to a bare repo the cluster clones) configured for it."""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def toml_str(v: str) -> str:
    return json.dumps(v)


@pytest.fixture
def transport() -> str:
    """The SSH transport the project's irq.toml names (a test module may parametrize it)."""
    return "openssh"


@pytest.fixture
def control_dir(monkeypatch):
    """irq's master sockets for this test: a short directory of its own (sun_path is ~104 bytes),
    every master in it closed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="irqcm", dir="/tmp"))
    monkeypatch.setenv("IRQ_CONTROL_DIR", str(d))
    yield d
    for sock in d.iterdir():
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"], capture_output=True, timeout=15)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def project(slurm_cluster, tmp_path, monkeypatch, request, transport, control_dir):
    """A project checkout with irq.toml for the loopback cluster; cwd is inside it."""
    c = slurm_cluster
    c.cancel_all()
    proj = tmp_path / "proj"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(proj)], check=True)
    # the repository's own study ledger goes: this project starts empty, its ledger untracked
    git = ["git", "-C", str(proj), "-c", "user.name=irq tests", "-c", "user.email=tests@irq"]
    subprocess.run([*git, "rm", "-q", "queue.db"], check=True)
    subprocess.run([*git, "commit", "-qm", "a project of its own"], check=True)
    (proj / ".git" / "info" / "exclude").write_text("queue.db*\nresults/\n.irq/\n")
    from irq.ledger.database import Ledger

    Ledger(proj / "queue.db", create=True).close()
    bare = c.new_bare_repo(f"irq-{request.node.name[:40]}-{time.time_ns()}")
    subprocess.run(["git", "-C", str(proj), "push", "--quiet", str(bare), "HEAD:refs/heads/main"], check=True)
    # each test its own work dir on the cluster, so sacct rows can be told apart by WorkDir
    workdir = getattr(request, "param", None) or f"{c.workdir}/t{time.time_ns()}"
    (proj / "irq.toml").write_text('backend = "loopback"\n\n' + cluster_table(c, bare, workdir, transport))
    monkeypatch.chdir(proj)
    yield proj
    c.cancel_all()


def cluster_table(c, bare, workdir: str, transport: str = "openssh") -> str:
    """irq.toml's [clusters.loopback] for the loopback cluster `c`, cloning `bare`, jobs in `workdir`."""
    return f"""[clusters.loopback]
host = {toml_str(c.host)}
port = {c.port}
user = {toml_str(c.user)}
identity_file = {toml_str(str(c.key))}
known_hosts = {toml_str(str(c.known_hosts))}
repo_url = {toml_str(str(bare))}
workdir = {toml_str(workdir)}
scratch = {toml_str(str(c.scratch))}
partition = "gpu_test"
modules = [{toml_str(c.python_module)}]
poll_interval = 1
transport = {toml_str(transport)}
"""


def add_tiny(irq, exp_id: str, *extra: str) -> None:
    r = irq("add", exp_id, "--title", f"tiny {exp_id}", "--config-file", "trainer/configs/tiny.json",
            "-p", "train_steps=40", "-p", "checkpoint_interval=20", "-p", "val_size=64",
            "--time", "10 minutes", "--mem", "2GB", "--force", *extra)  # the same tiny run under many ids
    assert r.code == 0, r


def wait_states(irq, ids: list[str], done=("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY"),
                timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    rows = {}
    while time.monotonic() < deadline:
        r = irq("status", "--json")
        assert r.code == 0, r
        rows = {x["id"]: x for x in json.loads(r.out)["experiments"]}
        if all(rows[i]["scheduler_state"] in done for i in ids):
            return rows
        time.sleep(1)
    raise AssertionError(f"not finished: {[(i, rows.get(i, {}).get('scheduler_state')) for i in ids]}")


def project_jobs(cluster, project) -> list[dict]:
    """sacct rows (allocations, array tasks included) of jobs this project's irq submitted."""
    import tomllib

    workdir = tomllib.loads((project / "irq.toml").read_text())["clusters"]["loopback"]["workdir"]
    rows = cluster.sacct_jobs(since(), fields=("JobID", "JobName", "State", "WorkDir"))
    return [r for r in rows if r["WorkDir"].startswith(workdir + "/")]


def since() -> datetime:
    return datetime.now() - timedelta(minutes=10)
