"""What `irq status` shows: states refreshed from the backend first (unless offline), and job slots.

The query side reads through the stdlib read path (``irq.experiments.views``); the ORM and the
backends are loaded only when there are active attempts to refresh.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from irq.experiments.views import StatusQuery, StatusRow, ledger_path, read_status
from irq.ledger import reader
from irq.ledger.states import ACTIVE_STATES
from irq.ui import UI

EMPTY = ("no experiments yet: `irq add Q-001 --title Baseline` (-p NAME=VALUE sets a parameter, -c a trainer config) "
         "or `irq import queue.md`")
STATE_ORDER = ("IN_PROGRESS", "READY", "FAILED", "DONE", "PROPOSED", "RETIRED")


@dataclass
class StatusReport:
    rows: list[StatusRow]
    slots: dict[str, Any] | None  # limit, used, free, summary, scheduler_calls_last_hour, unreachable
    unreachable: dict[str, str] = field(default_factory=dict)
    folded: dict[str, int] = field(default_factory=dict)  # state -> experiments left out by a limit
    notes: list[str] = field(default_factory=list)  # lines to print after the tables
    refused: Any = None  # a refused host key (HostKeyError): shown states are last known, the command fails
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> newest curve row (--watch)
    counts: dict[str, int] = field(default_factory=dict)  # state -> experiments in the ledger, shown or not
    changed: list[str] = field(default_factory=list)  # states the refresh recorded ("Q-001: RUNNING -> COMPLETED")

    def groups(self) -> list[tuple[str, list[StatusRow]]]:
        """Rows by state, in the order a person reads them; empty states left out."""
        out = [(st, [r for r in self.rows if r.state == st]) for st in STATE_ORDER]
        return [(st, rows) for st, rows in out if rows]

    def none_shown(self) -> str:
        """What to say when no row is shown: the next step on an empty ledger, else what it holds."""
        if not self.counts:
            return EMPTY
        held = ", ".join(f"{self.counts[st]:,} {st}" for st in STATE_ORDER if self.counts.get(st))
        total = sum(self.counts.values())
        return f"no experiment in the states asked for; the ledger holds {total:,} ({held}): `irq status --all` lists them"

    def folded_lines(self) -> list[str]:
        """'… and 9,800 more DONE: irq status --state DONE', one per state with rows left out."""
        return [f"… and {n:,} more {st}: irq status --state {st}"
                for st in STATE_ORDER if (n := self.folded.get(st, 0))]


def status_report(ledger: Any, config_path: Path | None, ui: UI, offline: bool = False,
                  query: StatusQuery | None = None, curves: bool = False) -> StatusReport:
    """Refresh active attempts (one batched scheduler query; none when nothing is active), then
    read the rows the query asks for; with `curves`, the newest learning-curve row of each running
    attempt too. `ledger` is a Ledger or the ledger file's path."""
    path = ledger_path(ledger)
    notes: list[str] = []
    slots = None
    if not offline:
        slots, note = _refresh(path, config_path, ui)
        notes += [note] if note else []
    unreachable = dict((slots or {}).get("unreachable") or {})
    refused = slots.pop("refused", None) if slots else None
    changed = slots.pop("changed", []) if slots else []
    got = read_status(path, replace(query or StatusQuery(), metric=_metric(config_path)))
    if not got.counts:  # an empty ledger: its next step is `irq add`, which needs a valid irq.toml
        from irq.config import load_config

        load_config(config_path)
    report = StatusReport(got.rows, slots, unreachable, got.folded, notes, refused, counts=got.counts, changed=changed)
    if curves and any(r.state == "IN_PROGRESS" and r.job_id for r in report.rows):
        report.curves = _curves(path, config_path)
    return report


def _metric(config_path: Path | None) -> str:
    """The project's headline metric (irq.toml [project] metric), read without pydantic."""
    from irq.config_files import read_settings

    return read_settings(config_path).metric


def _curves(path: Path, config_path: Path | None) -> dict[str, dict[str, Any]]:
    from irq.backends.registry import Backends
    from irq.config import load_config
    from irq.jobs.follow import curve_heads
    from irq.ledger.database import Ledger

    with Backends(load_config(config_path)) as backends:
        return curve_heads(Ledger(path), backends)


def _refresh(path: Path, config_path: Path | None, ui: UI) -> tuple[dict[str, Any] | None, str | None]:
    """Ask the backends about active attempts; read-only ledgers and idle ones skip it (no ORM)."""
    marks = ", ".join("?" for _ in ACTIVE_STATES)
    with reader.reading(path) as conn:
        active = conn.execute(f"SELECT COUNT(*) FROM attempt WHERE backend != 'imported' AND state IN ({marks})",
                              [s.value for s in ACTIVE_STATES]).fetchone()[0]
        calls = conn.execute("SELECT COUNT(*) FROM schedulercall WHERE at >= datetime('now', '-1 hour')").fetchone()[0]
    if not active:
        return {"scheduler_calls_last_hour": calls}, None
    if reader.access_mode(path) != "rw":
        return None, "ledger is read-only here: states shown as last recorded, not refreshed"
    from irq.jobs import quicklocal, quickstatus

    try:
        plan = quickstatus.start(path)  # may start the refresh's exec before the config loads
        info = (quickstatus.refresh(plan, path, config_path) if plan else
                quicklocal.refresh(path, config_path))
        if info is None:  # something changed, or failed: the full refresh, through the ORM
            from irq.jobs.sync import refresh_for_status
            from irq.ledger.database import Ledger

            info = refresh_for_status(Ledger(path), config_path, ui)
    finally:
        quickstatus.done()
    return info, None
