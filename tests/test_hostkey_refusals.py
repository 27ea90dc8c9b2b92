"""The exit-code table of a refused host key over the paramiko transport, without a cluster: an
in-process SSH server (tests/test_ssh_auth.py's) shows a key the known_hosts file lacks (unknown)
or contradicts (changed). Every command that needs the cluster exits 1 with the refusal on
stderr, `status` still prints the last-known states, and nothing is marked FAILED. Over OpenSSH
the same table runs against the loopback cluster's real sshd (tests/cluster/test_cluster_hostkeys.py)."""
from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import paramiko
import pytest

from irq.ledger.database import Ledger
from irq.ledger.models import Experiment
from tests.cluster.test_cluster_hostkeys import COMMANDS
from tests.test_ssh_auth import _keygen, server  # noqa: F401 - the in-process SSH server (a fixture)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clone of this repository with an empty ledger of its own (as tests/cluster's project)."""
    proj = tmp_path / "proj"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(proj)], check=True)
    git = ["git", "-C", str(proj), "-c", "user.name=irq tests", "-c", "user.email=tests@irq"]
    subprocess.run([*git, "rm", "-q", "queue.db"], check=True)
    subprocess.run([*git, "commit", "-qm", "a project of its own"], check=True)
    (proj / ".git" / "info" / "exclude").write_text("queue.db*\nirq.toml\n.irq/\n")
    monkeypatch.chdir(proj)
    monkeypatch.setenv("HOME", str(tmp_path))  # no keys, no ~/.ssh/config
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return proj


def known_hosts(kind: str, tmp_path: Path, port: int) -> Path:
    path = tmp_path / f"known_hosts_{kind}"
    if kind == "unknown":
        path.write_text("")
    else:  # another key recorded for the same host and port
        other = paramiko.Ed25519Key.from_private_key_file(_keygen(tmp_path / "impostor"))
        path.write_text(f"[127.0.0.1]:{port} {other.get_name()} {other.get_base64()}\n")
    return path


def write_cluster_toml(project: Path, tmp_path: Path, name: str, port: int, kh: Path) -> None:
    """irq.toml of a cluster on 127.0.0.1:port reached over paramiko, with its own known_hosts."""
    (tmp_path / "ssh_config").write_text("")
    (project / "irq.toml").write_text(f"""backend = "{name}"
[clusters.{name}]
host = "127.0.0.1"
port = {port}
user = "me"
known_hosts = "{kh}"
ssh_config = "{tmp_path / 'ssh_config'}"
repo_url = "unused"
workdir = "/w"
transport = "paramiko"
connect_timeout = 5
""")


@pytest.mark.parametrize("kind", ["unknown", "changed"])
def test_every_command_exits_non_zero_on_a_refused_host_key_over_paramiko(project, irq, server, tmp_path, kind):  # noqa: F811
    port, _, iface = server
    write_cluster_toml(project, tmp_path, "twofa", port, known_hosts(kind, tmp_path, port))
    ledger = Ledger(project / "queue.db", create=True)
    with ledger.transaction() as s:
        exp = Ledger.add_experiment(s, Experiment(id="Q-001", seq=1, title="running", state="IN_PROGRESS"))
        Ledger.new_attempt(s, exp, backend="slurm:twofa", state="RUNNING", job_id="101", run_dir="/w/runs/r1",
                           submitted_at=datetime.now(timezone.utc))
    assert irq("add", "Q-002", "--title", "ready", "--config-file", "trainer/configs/tiny.json").code == 0
    table = {}
    for args in COMMANDS:
        r = irq(*args)
        table[" ".join(args)] = (r.code, "host key" in r.err.lower())
        if args[0] == "status":
            assert "Q-001" in r.out, (args, r.out)  # last-known states still printed
    assert table == {" ".join(a): (1, True) for a in COMMANDS}, table
    assert iface.answers == [] and iface.commands == []  # never logged in, never ran anything
    show = json.loads(irq("show", "Q-001", "--json").out)
    assert show["experiment"]["state"] == "IN_PROGRESS" and show["attempts"][0]["state"] == "RUNNING"
    assert json.loads(irq("show", "Q-002", "--json").out)["experiment"]["state"] == "READY"


def test_a_fetch_that_could_not_ask_the_cluster_says_so_and_fails(project, irq, tmp_path):
    """`irq fetch` with the login node down printed "nothing to fetch: no attempt has finished" and
    exited 0, and named a job "still RUNNING" whose state it could not ask: a cron job could not
    tell "nothing finished" from "could not look". It says what it could not do, and exits 1."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there: connection refused
    (tmp_path / "kh").write_text("")
    write_cluster_toml(project, tmp_path, "down", port, tmp_path / "kh")
    ledger = Ledger(project / "queue.db", create=True)
    now = datetime.now(timezone.utc)
    with ledger.transaction() as s:
        run = Ledger.add_experiment(s, Experiment(id="Q-001", seq=1, title="running", state="IN_PROGRESS"))
        Ledger.new_attempt(s, run, backend="slurm:down", state="RUNNING", job_id="101", run_dir="/w/runs/r1",
                           submitted_at=now)
        done = Ledger.add_experiment(s, Experiment(id="Q-002", seq=2, title="ended", state="IN_PROGRESS"))
        Ledger.new_attempt(s, done, backend="slurm:down", state="COMPLETED", job_id="102", run_dir="/w/runs/r2",
                           submitted_at=now, ended_at=now)
    r = irq("fetch")
    assert r.code == 1, r
    assert "nothing to fetch" not in r.out
    assert "Q-002 attempt 1: cannot fetch yet:" in r.out
    assert "error: not everything could be fetched:" in r.err and "`irq fetch` again once the cluster answers" in r.err
    r = irq("fetch", "Q-001")
    assert r.code == 1 and "job 101 was RUNNING when last seen (the cluster did not answer)" in r.out, r
    show = json.loads(irq("show", "Q-002", "--json").out)
    assert show["experiment"]["state"] == "IN_PROGRESS"  # kept, to be fetched later
