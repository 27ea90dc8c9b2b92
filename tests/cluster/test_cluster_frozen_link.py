"""A link that goes silent (a laptop's network gone, a frozen login node): no refused or reset
connection, the bytes simply stop. The master's keepalives give up on it (about 10 s x 3,
irq/backends/ssh/openssh.py), so a command fails as an unreachable cluster, not after the
command's own two-minute limit; nothing in the ledger changes, and once the link answers again
the next command opens a new master by itself and goes on."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .conftest import add_tiny
from .test_cluster_login import env_for

pytestmark = pytest.mark.cluster


class SilentLink:
    """A TCP relay from a port of its own to the cluster's sshd that can stop relaying without
    closing anything: what ssh sees when the network between it and the server disappears."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.frozen = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = [self.server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                while self.frozen.is_set():  # hold the bytes: nothing passes, nothing closes
                    time.sleep(0.05)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.frozen.clear()
        for s in self.sockets:
            s.close()


def irq_sub(project: Path, *args: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "irq", *args], cwd=project, env=env_for(project),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    return r, time.monotonic() - start


@pytest.fixture
def silent_link(project, slurm_cluster):
    """The project's irq.toml pointed at the relay (its host key known under the relay's port)."""
    link = SilentLink("127.0.0.1", slurm_cluster.port)
    known = project / "known_hosts"
    keys = slurm_cluster.known_hosts.read_text().splitlines()
    known.write_text("".join(line.replace(f"]:{slurm_cluster.port} ", f"]:{link.port} ", 1) + "\n" for line in keys))
    t = project / "irq.toml"
    t.write_text(t.read_text().replace(f"port = {slurm_cluster.port}\n", f"port = {link.port}\n")
                 .replace(str(slurm_cluster.known_hosts), str(known)))
    yield link
    link.close()


def test_a_silent_link_fails_as_unreachable_keeps_the_ledger_and_a_new_master_resumes(project, irq, silent_link):
    add_tiny(irq, "Q-001", "-p", "train_steps=100000")
    r, _ = irq_sub(project, "submit", "Q-001")
    assert r.returncode == 0, r.stderr
    before = json.loads(irq("show", "Q-001", "--json").out)
    job = before["attempts"][-1]["job_id"]
    assert job

    silent_link.frozen.set()
    r, took = irq_sub(project, "status")
    said = r.stdout + r.stderr
    # the keepalives, not the command's two-minute limit, ended it: the master gave up on the link
    assert "within 120s" not in said, said
    assert "loopback" in said and ("SSH to" in said or "ssh to" in said), said
    after = json.loads(irq("show", "Q-001", "--json").out)
    assert after["experiment"]["state"] == before["experiment"]["state"] == "IN_PROGRESS"
    assert [a["state"] for a in after["attempts"]] == [a["state"] for a in before["attempts"]]
    assert after["attempts"][-1]["job_id"] == job

    silent_link.frozen.clear()
    r, _ = irq_sub(project, "cancel", "Q-001")
    assert r.returncode == 0, r.stdout + r.stderr
    shown = json.loads(irq("show", "Q-001", "--json").out)
    assert shown["attempts"][-1]["job_id"] == job and len(shown["attempts"]) == 1
    print(f"status over the silent link took {took:.0f}s")  # for the log; not asserted (shared machines)
