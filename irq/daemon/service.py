"""What the `irq daemon` sub-commands call: run, start, stop, status and the dry run."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from irq.backends.registry import Backends
from irq.config import Config
from irq.daemon import detached
from irq.daemon.loop import dry_run_plan, run
from irq.jobs.preflight import preflight_hook
from irq.ledger.database import Ledger
from irq.policy.scheduler import Plan
from irq.ui import UI


@dataclass
class DryRun:
    """What one cycle would submit now, and the job slots it saw."""

    plan: Plan
    slots: Any

    def as_json(self) -> dict[str, Any]:
        return {"slots": self.slots.summary(), "submit": self.plan.submit, "wait": self.plan.wait,
                "hold": self.plan.hold}

    def lines(self) -> list[str]:
        return [self.slots.summary(), *(self.plan.describe() or ["nothing to submit"])]


@dataclass
class Started:
    pid: int
    log: Path


def dry_run(ledger: Ledger, config: Config, prompt: Callable[..., Any] | None = None) -> DryRun:
    """Ask the scheduler for free slots and plan; write nothing."""
    with Backends(config, prompt=prompt) as backends:
        p, slots = dry_run_plan(ledger, config, backends)
    return DryRun(p, slots)


def run_foreground(ledger: Ledger, config: Config, ui: UI, interval: float | None, once: bool) -> int:
    """The daemon in this process, with preflight before every submission."""
    return run(ledger, config, ui, interval=interval, once=once, preflight=preflight_hook(config, ledger))


def start(db: Path, config_path: Path | None, interval: float | None) -> Started:
    """The daemon as a detached process logging to .irq/daemon.log beside the ledger."""
    log = db.parent / ".irq" / "daemon.log"
    extra = [f"--interval={interval}"] if interval is not None else []  # 0 too: the daemon refuses it, said at once
    return Started(detached.start_detached(db, config_path, log, extra), log)


def stop(db: Path) -> int | None:
    return detached.stop_detached(db)


def status(ledger: Ledger) -> dict[str, Any]:
    return detached.status_detached(ledger)
