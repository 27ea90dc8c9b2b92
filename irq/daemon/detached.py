"""The daemon as a detached process: start, stop and report on it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from irq import errors
from irq.daemon.loop import DaemonLock
from irq.ledger.database import Ledger
from irq.ledger.models import utcnow


def start_detached(db: Path, config_path: Path | None, log: Path, extra: list[str]) -> int:
    if (pid := DaemonLock(db).holder()) is not None:
        raise errors.IrqError(f"a daemon already serves {db} (pid {pid})", "`irq daemon stop` first")
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "irq", "--db", str(db)]
    if config_path:
        cmd += ["--config", str(config_path)]
    cmd += ["daemon", "run", *extra]
    with open(log, "ab") as fh:
        before = fh.tell()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh, start_new_session=True)
    for _ in range(50):  # wait until it holds the lock, or died
        if DaemonLock(db).holder() == proc.pid:
            return proc.pid
        if proc.poll() is not None:
            raise _why_it_died(log, before, proc.returncode)
        time.sleep(0.1)
    return proc.pid


def _why_it_died(log: Path, since: int, code: int) -> errors.IrqError:
    """The daemon's own error (what it wrote to the log since `since`), with its exit code's kind:
    a mistake in what was typed (2) is a UsageError, as the same mistake in `irq daemon run`."""
    try:
        with open(log, "rb") as f:
            f.seek(since)
            said = f.read(1 << 16).decode("utf-8", "replace").splitlines()
    except OSError:
        said = []
    error = next((line[len("error: "):] for line in said if line.startswith("error: ")), None)
    hint = next((line[len("hint: "):] for line in said if line.startswith("hint: ")), None)
    if error is None:
        return errors.IrqError(f"the daemon exited at once (code {code})", f"see {log}")
    kind = errors.UsageError if code == errors.UsageError.exit_code else errors.IrqError
    return kind(f"the daemon exited at once: {error}", hint or f"see {log}")


def stop_detached(db: Path, timeout: float = 30) -> int | None:
    pid = DaemonLock(db).holder()
    if pid is None or pid < 0:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and DaemonLock(db).holder() is not None:
        time.sleep(0.2)
    if DaemonLock(db).holder() is not None:  # still finishing its step (a long fetch): not "stopped"
        raise errors.IrqError(f"the daemon (pid {pid}) was asked to stop and is still finishing its current step "
                              f"after {timeout:g}s", f"`irq daemon status` shows when it is gone; `kill {pid}` again to insist")
    return pid


def status_detached(ledger: Ledger) -> dict[str, Any]:
    pid = DaemonLock(ledger.path).holder()
    last = ledger.get_meta("daemon_last_cycle")
    with ledger.transaction() as s:
        calls = Ledger.calls_since(s, utcnow() - timedelta(hours=1))
    return {"running": pid is not None, "pid": pid, "last_cycle": last, "scheduler_calls_last_hour": calls,
            "needs_login": ledger.get_meta("daemon_needs_login") or None}
