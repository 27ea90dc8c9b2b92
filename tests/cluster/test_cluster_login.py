"""A cluster that asks for a one-time code after the key (the loopback's second-factor sshd):
one `irq login` serves every later command and one long-running daemon process; a lost master
is reported as "needs login" (states kept, never FAILED, nothing prompted) and a new login
resumes that same daemon process by itself."""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


def master_pid(project: Path) -> int:
    from irq.backends.ssh.openssh import OpenSSHSession
    from irq.config import load_config

    s = OpenSSHSession(load_config(project / "irq.toml").cluster("loopback"))
    args = s.options()
    p = subprocess.run([*args[:-1], "-O", "check", args[-1]], capture_output=True, text=True, timeout=15)
    m = re.search(r"pid=(\d+)", p.stderr)
    assert m, p.stderr
    return int(m.group(1))


def start_daemon(project: Path) -> tuple[subprocess.Popen, Path]:
    """`irq daemon run` as one process of its own, without a terminal (as `irq daemon start` runs it)."""
    log = project / "daemon.out"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "irq", "daemon", "run"], cwd=project, env=env_for(project),
                                stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def stop_daemon(proc: subprocess.Popen, log: Path) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    out = log.read_text()
    assert proc.returncode == 0, out[-2000:]
    return out


def wait_for(what: str, check, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while not (got := check()):
        assert proc is None or proc.poll() is None, f"the daemon exited: {log.read_text()[-2000:] if log else ''}"
        assert time.monotonic() < deadline, f"{what}: {log.read_text()[-2000:] if log else ''}"
        time.sleep(0.3)
    return got


def refreshes(project: Path) -> int:
    """Refreshes recorded in the ledger: one squeue per query of the active jobs (a daemon cycle;
    sacct only when squeue no longer shows a job)."""
    with sqlite3.connect(project / "queue.db") as con:
        return con.execute("SELECT COUNT(*) FROM schedulercall WHERE command = 'squeue'").fetchone()[0]


def attempt(irq, exp_id: str) -> dict:
    shown = json.loads(irq("show", exp_id, "--json").out)
    return shown["attempts"][-1] | {"experiment_state": shown["experiment"]["state"]} if shown["attempts"] else {}


def with_daemon(project: Path, max_interval: int) -> None:
    """A daemon that polls every half second and backs off up to max_interval."""
    t = project / "irq.toml"
    t.write_text(t.read_text().replace("poll_interval = 1\n", "poll_interval = 0.5\n")
                 + f"\n[daemon]\ninterval = 0.5\nmax_interval = {max_interval}\n")


def test_one_daemon_process_runs_20_cycles_on_one_code(mfa_project, irq, second_factor):
    with_daemon(mfa_project, 2)
    before, runs = oks(second_factor), len(second_factor.runs())
    login(mfa_project, second_factor)
    add_tiny(irq, "Q-001", "-p", "train_steps=100000")  # runs through every cycle: each one asks the cluster
    add_tiny(irq, "Q-002", "-p", "train_steps=20")  # submitted, finished and fetched over the same master
    proc, log = start_daemon(mfa_project)
    try:
        wait_for("20 cycles and Q-002 fetched", lambda: refreshes(mfa_project) >= 20
                 and attempt(irq, "Q-002").get("experiment_state") == "DONE", 240, proc, log)
        assert proc.poll() is None  # one process all along
    finally:
        out = stop_daemon(proc, log)
    assert "needs login" not in out and "Traceback" not in out, out[-2000:]
    assert oks(second_factor) == before + 1 and len(second_factor.runs()) == runs + 1, second_factor.runs()
    assert attempt(irq, "Q-001")["state"] == "RUNNING"


def test_a_killed_master_under_a_running_daemon_is_needs_login_and_login_resumes_it(mfa_project, irq,
                                                                                    second_factor, control_dir):
    with_daemon(mfa_project, 60)  # backoff grows to a minute: only the login itself can end it early
    before = oks(second_factor)
    login(mfa_project, second_factor)
    add_tiny(irq, "Q-001", "-p", "train_steps=100000")
    proc, log = start_daemon(mfa_project)
    try:
        wait_for("Q-001 running", lambda: attempt(irq, "Q-001").get("state") == "RUNNING", 90, proc, log)
        os.kill(master_pid(mfa_project), signal.SIGKILL)
        runs = len(second_factor.runs())
        wait_for("the daemon sees the lost login", lambda: log.read_text().count("login needs a person") >= 1,
                 30, proc, log)
        st = irq_sub(mfa_project, "daemon", "status")
        assert f"running (pid {proc.pid})" in st.stdout and "needs login: run irq login loopback" in st.stdout, st
        r = irq_sub(mfa_project, "status")
        assert "needs login: run irq login loopback" in r.stderr and "Q-001" in r.stdout, r
        add_tiny(irq, "Q-002", "-p", "train_steps=20")  # new work while nobody is logged in: it waits
        wait_for("four cycles without a login", lambda: log.read_text().count("login needs a person") >= 4,
                 60, proc, log)  # the daemon now waits 8 s before it asks again
        att = attempt(irq, "Q-001")
        assert att["state"] == "RUNNING" and att["unknown_since"] and att["experiment_state"] == "IN_PROGRESS", att
        assert attempt(irq, "Q-002") == {}
        assert len(second_factor.runs()) == runs  # nothing prompted, nothing reached the code check
        login(mfa_project, second_factor)
        t0 = time.monotonic()
        wait_for("the same daemon resumes", lambda: not attempt(irq, "Q-001")["unknown_since"], 5, proc, log)
        assert time.monotonic() - t0 < 5  # the login, not the end of the backoff, woke it
        wait_for("Q-002 submitted", lambda: attempt(irq, "Q-002").get("job_id"), 60, proc, log)
        assert attempt(irq, "Q-001")["state"] == "RUNNING"
        st = irq_sub(mfa_project, "daemon", "status")
        assert f"running (pid {proc.pid})" in st.stdout and "needs login" not in st.stdout, st
    finally:
        out = stop_daemon(proc, log)
    assert "Traceback" not in out, out[-2000:]
    assert oks(second_factor) == before + 2, second_factor.runs()  # two logins, two codes, nothing else
