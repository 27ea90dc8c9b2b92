"""`irq daemon`: keep the job slots full until the queue is empty.

Each cycle: refresh (one batched query per backend), fetch what finished, apply retry
policies, submit READY experiments into free slots (the scheduler's plan), re-export
queue.md if anything changed. Restart-safe: a cycle begins by reconciling attempts whose
submission was never confirmed, so `kill -9` at any point loses and duplicates nothing. An
unreachable cluster leaves every state as it was and is retried with backoff.
"""
from __future__ import annotations

import fcntl
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irq import errors, faults
from irq.backends.registry import Backends, record_calls
from irq.backends.registry import slots as cached_slots
from irq.config import Config
from irq.formats.fields import fmt_memory, fmt_minutes
from irq.formats.queue_io import export_queue
from irq.jobs.fetch import fetch
from irq.jobs.submit import candidates, submit
from irq.jobs.sync import refresh
from irq.ledger.database import Ledger
from irq.ledger.models import utcnow
from irq.ledger.states import State
from irq.policy.scheduler import Plan, plan
from irq.ui import UI


@dataclass
class CycleReport:
    changed: list[str] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    needs_person: str | None = None
    refused: errors.HostKeyError | None = None  # a host key was refused: stop, a person must check it
    exported: bool = False

    @property
    def anything(self) -> bool:
        return bool(self.changed or self.submitted or self.fetched or self.retried)


def dry_run_plan(ledger: Ledger, config: Config, backends: Backends) -> tuple[Plan, Any]:
    """What a cycle would submit now; reads the scheduler, writes nothing."""
    backend = backends.get(backends.default_name())
    slots = cached_slots(ledger, backends)
    per_task = getattr(backend, "counts_array_tasks", False)
    with ledger.transaction() as s:
        cands, states = candidates(s, per_task)
    return plan(cands, states, slots.free, slots.limit if per_task else None), slots


def apply_retry_policies(ledger: Ledger) -> list[str]:
    """After TIMEOUT / OUT_OF_MEMORY: more time or memory (up to the policy's cap), READY again."""
    out = []
    with ledger.transaction() as s:
        for exp in Ledger.experiments(s, {State.FAILED.value}):
            pol = exp.retry_policy
            if not pol:
                continue
            last = Ledger.latest_attempt(s, exp.id)
            if last is None or last.state not in pol.get("on", ["TIMEOUT", "OUT_OF_MEMORY"]):
                continue
            if len(Ledger.attempts(s, exp.id)) >= pol.get("max_attempts", 3):
                continue
            res = dict(exp.resources)
            change = None
            if last.state == "TIMEOUT" and res.get("time_minutes"):
                new = min(res["time_minutes"] * 2, pol.get("max_time_minutes") or res["time_minutes"] * 2)
                if new > res["time_minutes"]:
                    change = f"time {fmt_minutes(res['time_minutes'])} -> {fmt_minutes(new)} after TIMEOUT"
                    res["time_minutes"] = new
            elif last.state == "OUT_OF_MEMORY" and res.get("memory_mb"):
                new = min(res["memory_mb"] * 2, pol.get("max_memory_mb") or res["memory_mb"] * 2)
                if new > res["memory_mb"]:
                    change = f"memory {fmt_memory(res['memory_mb'])} -> {fmt_memory(new)} after OUT_OF_MEMORY"
                    res["memory_mb"] = new
            if change is None:
                continue  # at the cap: a person decides
            exp.resources = res
            exp.annotations = {**exp.annotations, "pending_resource_change": change}
            Ledger.set_state(s, exp, State.READY, f"retry policy: {change}")
            out.append(f"{exp.id}: {change}")
    return out


def cycle(ledger: Ledger, config: Config, ui: UI, backends: Backends,
          preflight: Any = None) -> CycleReport:
    rep = CycleReport()
    try:
        r = refresh(ledger, backends, ui)
        rep.changed, rep.unreachable = r.changed, dict(r.unreachable)
        rep.refused = next(iter(r.refused.values()), None)
        rep.needs_person = next((m for m in r.unreachable.values() if m.startswith("needs login")), None)
        if not rep.unreachable:
            rep.fetched = [f"{o.id}: {o.state}" for o in fetch(ledger, config, backends, ui)]
            rep.retried = apply_retry_policies(ledger)
            outs = submit(ledger, config, backends, ui, all_ready=True, preflight=preflight, queue_waiting=False)
            rep.submitted = [o.id for o in outs if o.status == "submitted"]
            rep.waiting = {o.id: o.message for o in outs if o.status in ("queued", "held")}
    except errors.HostKeyError as exc:
        rep.refused = exc
    except errors.AuthError as exc:
        rep.needs_person = exc.message
    except errors.BackendError as exc:
        rep.unreachable[backends.default_name()] = exc.message
    finally:
        try:
            record_calls(ledger, backends)
        except errors.IrqError:
            pass
    if config.export:
        _export_if_stale(ledger, config.resolve(config.export), rep)
    ledger.set_meta("daemon_last_cycle", utcnow().isoformat())
    ledger.set_meta("daemon_needs_login", rep.needs_person or "")
    return rep


def _export_if_stale(ledger: Ledger, path: Path, rep: CycleReport) -> None:
    """Re-export queue.md whenever it differs from the ledger (also after a crash mid-export)."""
    from irq.formats.export import export_text

    text = export_text(ledger)
    try:
        current = path.read_text(encoding="utf-8")
    except OSError:
        current = None
    if text != current:
        faults.point("before_export")
        export_queue(ledger, path)
        rep.exported = True


class DaemonLock:
    """One daemon per ledger: an exclusive lock on `<ledger>.daemon.lock` holding its pid."""

    def __init__(self, db: Path) -> None:
        self.path = db.with_name(db.name + ".daemon.lock")
        self.fh: Any = None

    def acquire(self) -> None:
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.seek(0)
            pid = self.fh.read().strip() or "?"
            self.fh.close()
            raise errors.IrqError(f"a daemon already serves {self.path.name[:-12]} (pid {pid})",
                                  "`irq daemon stop` stops it; one daemon per ledger") from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(str(os.getpid()))
        self.fh.flush()

    def holder(self) -> int | None:
        """The pid of the running daemon, if any."""
        if not self.path.exists():
            return None
        with open(self.path, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                txt = fh.read().strip()
                return int(txt) if txt.isdigit() else -1
            fcntl.flock(fh, fcntl.LOCK_UN)
        return None

    def release(self) -> None:
        if self.fh:
            fcntl.flock(self.fh, fcntl.LOCK_UN)
            self.fh.close()
            self.fh = None


def run(ledger: Ledger, config: Config, ui: UI, *, interval: float | None = None, once: bool = False,
        preflight: Any = None, max_cycles: int | None = None) -> int:
    """The daemon loop. SIGINT / SIGTERM finish the current step, then exit 0."""
    lock = DaemonLock(ledger.path)
    lock.acquire()
    stop = {"flag": False}

    def on_signal(signum: int, _frame: Any) -> None:
        stop["flag"] = True
        ui.log(f"received {signal.Signals(signum).name}: finishing the current step")

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    if interval is None:  # the larger of [daemon] interval and the cluster's own poll_interval
        interval = config.daemon.interval
        if config.backend != "local":
            interval = max(interval, config.cluster().poll_interval)
    base = max(1.0, float(interval))
    wait = base
    cycles = 0
    backends = Backends(config)  # one connection for the daemon's lifetime; a drop reconnects on use
    try:
        ui.log(f"daemon serving {ledger.path} (backend {config.backend}, interval {base:g}s)")
        while not stop["flag"]:
            cycles += 1
            backends.new_cycle()
            rep = cycle(ledger, config, ui, backends, preflight)
            _log_cycle(ui, rep)
            if rep.refused:  # a changed or unknown host key: never retried unattended
                raise rep.refused
            if once or (max_cycles and cycles >= max_cycles):
                break
            if rep.unreachable or rep.needs_person or not rep.anything:
                wait = min(wait * 2, float(config.daemon.max_interval))  # back off: nothing to do, or down
            else:
                wait = base
            if _queue_empty(ledger):
                ui.log("queue empty: every experiment is DONE, FAILED or PROPOSED")
                if not rep.anything:
                    wait = float(config.daemon.max_interval)
            deadline = time.monotonic() + wait
            while not stop["flag"] and time.monotonic() < deadline:
                time.sleep(min(0.5, deadline - time.monotonic()))
    finally:
        backends.close()
        for s, h in old.items():
            signal.signal(s, h)
        lock.release()
    ui.log("daemon stopped")
    return 0


def _queue_empty(ledger: Ledger) -> bool:
    with ledger.transaction() as s:
        return not Ledger.experiments(s, {State.READY.value, State.IN_PROGRESS.value})


def _log_cycle(ui: UI, rep: CycleReport) -> None:
    for c in rep.changed:
        ui.log(c)
    for f in rep.fetched:
        ui.log(f"fetched {f}")
    for r in rep.retried:
        ui.log(f"retry policy {r}")
    if rep.submitted:
        ui.log("submitted " + ", ".join(rep.submitted))
    for name, msg in rep.unreachable.items():
        ui.log(f"{name} unreachable: {msg}; states unchanged, retrying with backoff")
    if rep.needs_person:
        ui.log(f"login needs a person: {rep.needs_person}. The daemon waits and resumes by itself once you "
               "run `irq login CLUSTER` at a terminal.")
    if rep.exported:
        ui.log("re-exported queue.md")
    if not (rep.anything or rep.unreachable or rep.needs_person):
        ui.log("cycle: nothing changed")


# -- detached ------------------------------------------------------------------------------




