"""A refused host key (unknown or changed) fails every command that needs the cluster: exit code
non-zero, the refusal on stderr, and `status` still shows the last-known states. Nothing is
marked FAILED. Against the real sshd over OpenSSH (the default transport); the same table over
paramiko runs without a cluster against an in-process SSH server (tests/test_hostkey_refusals.py),
and paramiko's refusals of the real sshd's key are in test_slurm_backend.py and test_cluster_e2e.py."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import add_tiny

pytestmark = pytest.mark.cluster

COMMANDS = [
    ("status",),
    ("status", "--json"),
    ("fetch",),
    ("submit", "Q-002"),
    ("check", "Q-002"),
    ("log", "Q-001"),
    ("cancel", "Q-001"),
    ("daemon", "run", "--once"),
    ("daemon", "run", "--dry-run"),
]


def refused_known_hosts(kind: str, real: Path, tmp: Path, port: int) -> Path:
    path = tmp / f"known_hosts_{kind}"
    if kind == "unknown":
        path.write_text("")
    else:  # another ed25519 key recorded for the same host: a changed key
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / "other")], check=True)
        pub = (tmp / "other.pub").read_text().split()
        path.write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
    return path


@pytest.mark.parametrize("kind", ["unknown", "changed"])
def test_every_command_exits_non_zero_on_a_refused_host_key(project, irq, slurm_cluster, tmp_path, kind):
    add_tiny(irq, "Q-001", "-p", "train_steps=100000")
    add_tiny(irq, "Q-002")
    r = irq("submit", "Q-001")
    assert "Q-001: submitted" in r.out, r
    irq("logout")  # a master opened with the right key would carry on: the key is checked at login
    toml = project / "irq.toml"
    bad = refused_known_hosts(kind, slurm_cluster.known_hosts, tmp_path, slurm_cluster.port)
    toml.write_text(toml.read_text().replace(str(slurm_cluster.known_hosts), str(bad)))
    table = {}
    for args in COMMANDS:
        r = irq(*args)
        table[" ".join(args)] = (r.code, "host key" in r.err.lower() or "HOST KEY" in r.err)
        if args[0] == "status":
            assert "Q-001" in r.out, (args, r.out)  # last-known states still printed
    assert table == {" ".join(a): (1, True) for a in COMMANDS}, table
    show = json.loads(irq("show", "Q-001", "--json").out)
    assert show["experiment"]["state"] == "IN_PROGRESS" and show["attempts"][0]["state"] in ("PENDING", "RUNNING")
    assert json.loads(irq("show", "Q-002", "--json").out)["experiment"]["state"] != "FAILED"
    toml.write_text(toml.read_text().replace(str(bad), str(slurm_cluster.known_hosts)))
    assert irq("cancel", "Q-001").code == 0
