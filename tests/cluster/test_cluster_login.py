"""A cluster that asks for a one-time code after the key (the loopback's second-factor sshd):
one `irq login` serves every later command and the daemon; a lost master is reported as
"needs login" (states kept, never FAILED) and a new login resumes."""
from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from irq.ledger.database import Ledger

from .conftest import add_tiny
from .fixture import _check, _script
from .mfa import SecondFactor, run_in_pty

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def second_factor(slurm_cluster):
    out = _check(_script("start-sshd-mfa"), "start-sshd-mfa").stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if line.startswith("IRQ_CLUSTER_MFA_"))
    yield SecondFactor(port=int(env["IRQ_CLUSTER_MFA_PORT"]), dir=Path(env["IRQ_CLUSTER_MFA_DIR"]))
    _check(_script("stop-sshd-mfa"), "stop-sshd-mfa")


@pytest.fixture
def mfa_project(project, slurm_cluster, second_factor):
    """The project, pointed at the second-factor sshd, with a fresh code."""
    t = project / "irq.toml"
    t.write_text(t.read_text().replace(f"port = {slurm_cluster.port}\n", f"port = {second_factor.port}\n"))
    second_factor.set_code(f"{secrets.randbelow(10**6):06d}")
    return project


def env_for(project: Path) -> dict:
    env = {**os.environ, "IRQ_USER_CONFIG": str(project / "none.toml"), "TERM": "dumb"}
    env.pop("IRQ_FAULT", None)
    return env


def login(project: Path, sf: SecondFactor, code: str | None = None) -> str:
    rc, out, prompts = run_in_pty([sys.executable, "-m", "irq", "login", "loopback"], code or sf.code,
                                  env=env_for(project), cwd=project, timeout=90)
    assert rc == 0 and prompts == 1, out
    return out


def irq_sub(project: Path, *args: str) -> subprocess.CompletedProcess:
    """irq in a process of its own without a terminal (as cron or a script runs it)."""
    return subprocess.run([sys.executable, "-m", "irq", *args], cwd=project, env=env_for(project),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)


def oks(sf: SecondFactor) -> int:
    return sum(1 for r in sf.runs() if r.startswith("ok"))


def test_without_a_login_nothing_prompts_and_it_says_needs_login(mfa_project, irq, second_factor):
    before = len(second_factor.runs())
    add_tiny(irq, "Q-001")
    r = irq_sub(mfa_project, "submit", "Q-001")
    assert r.returncode != 0
    assert "needs login: run irq login loopback" in r.stderr, r
    assert len(second_factor.runs()) == before  # BatchMode: never reached the code prompt
    show = json.loads(irq("show", "Q-001", "--json").out)
    assert show["experiment"]["state"] != "FAILED"


def test_one_code_serves_ten_commands(mfa_project, irq, second_factor):
    before = oks(second_factor)
    out = login(mfa_project, second_factor)
    assert "logged in to loopback" in out
    assert oks(second_factor) == before + 1
    add_tiny(irq, "Q-001", "-p", "train_steps=100000")
    add_tiny(irq, "Q-002")
    commands = [("login", "loopback"), ("submit", "Q-001"), ("status",), ("status", "--json"), ("check", "Q-002"),
                ("log", "Q-001"), ("fetch",), ("daemon", "run", "--dry-run"), ("cancel", "Q-001"), ("status",),
                ("show", "Q-001")]
    for args in commands:
        r = irq_sub(mfa_project, *args)
        assert r.returncode == 0, (args, r.stdout[-800:], r.stderr[-800:])
        assert "needs login" not in r.stderr, args
    assert "already logged in" in irq_sub(mfa_project, "login", "loopback").stdout
    assert oks(second_factor) == before + 1, second_factor.runs()  # 11 commands, one code
    assert "logged out of loopback" in irq_sub(mfa_project, "logout", "loopback").stdout
    r = irq_sub(mfa_project, "submit", "Q-002")
    assert r.returncode != 0 and "needs login: run irq login loopback" in r.stderr, r


def test_the_daemon_runs_20_cycles_on_one_code(mfa_project, irq, second_factor):
    t = mfa_project / "irq.toml"
    t.write_text(t.read_text() + "\n[daemon]\ninterval = 1\nmax_interval = 2\n")
    before = oks(second_factor)
    login(mfa_project, second_factor)
    for i in (1, 2, 3):
        add_tiny(irq, f"Q-00{i}", "-p", "train_steps=20")
    for n in range(20):
        r = irq_sub(mfa_project, "daemon", "run", "--once")
        assert r.returncode == 0, (n, r.stdout[-800:], r.stderr[-800:])
        assert "needs login" not in r.stdout + r.stderr, (n, r.stdout, r.stderr)
    assert oks(second_factor) == before + 1, second_factor.runs()
    with Ledger(mfa_project / "queue.db").transaction() as s:
        assert Ledger.calls_since(s, datetime(2000, 1, 1, tzinfo=timezone.utc)) > 0
    rows = {x["id"]: x for x in json.loads(irq("status", "--json").out)["experiments"]}
    assert all(rows[i]["attempts"] >= 1 for i in ("Q-001", "Q-002")), rows


def master_pid(project: Path) -> int:
    from irq.backends.ssh.openssh import OpenSSHSession
    from irq.config import load_config

    s = OpenSSHSession(load_config(project / "irq.toml").cluster("loopback"))
    args = s.options()
    p = subprocess.run([*args[:-1], "-O", "check", args[-1]], capture_output=True, text=True, timeout=15)
    m = re.search(r"pid=(\d+)", p.stderr)
    assert m, p.stderr
    return int(m.group(1))


def test_a_killed_master_is_needs_login_never_failed_and_login_resumes(mfa_project, irq, second_factor,
                                                                        control_dir):
    login(mfa_project, second_factor)
    add_tiny(irq, "Q-001", "-p", "train_steps=100000")
    assert irq_sub(mfa_project, "submit", "Q-001").returncode == 0
    os.kill(master_pid(mfa_project), 9)
    assert list(control_dir.iterdir())  # the dead master's socket is still there
    runs = len(second_factor.runs())
    r = irq_sub(mfa_project, "status")
    assert "needs login: run irq login loopback" in r.stderr, r
    assert "Q-001" in r.stdout  # last-known states are still shown
    d = irq_sub(mfa_project, "daemon", "run", "--once")
    assert "needs login" in d.stdout + d.stderr, d
    assert len(second_factor.runs()) == runs  # nothing prompted, nothing reached the code check
    att = json.loads(irq("show", "Q-001", "--json").out)["attempts"][0]
    assert att["state"] in ("PENDING", "RUNNING") and att["unknown_since"], att
    assert json.loads(irq("show", "Q-001", "--json").out)["experiment"]["state"] == "IN_PROGRESS"
    login(mfa_project, second_factor)  # the stale socket is cleaned, a new master opens
    r = irq_sub(mfa_project, "status", "--json")
    assert r.returncode == 0, r
    att = json.loads(irq("show", "Q-001", "--json").out)["attempts"][0]
    assert att["state"] == "RUNNING" and not att["unknown_since"], att
    assert irq_sub(mfa_project, "cancel", "Q-001").returncode == 0
