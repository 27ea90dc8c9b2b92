"""What `irq status` shows: states refreshed from the backend first (unless offline), and job slots."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irq.experiments.views import StatusRow, status_rows
from irq.jobs.sync import refresh_for_status
from irq.ledger.database import Ledger
from irq.ui import UI

STATE_ORDER = ("IN_PROGRESS", "READY", "FAILED", "DONE", "PROPOSED", "RETIRED")


@dataclass
class StatusReport:
    rows: list[StatusRow]
    slots: dict[str, Any] | None  # limit, used, free, summary, scheduler_calls_last_hour, unreachable
    unreachable: dict[str, str] = field(default_factory=dict)

    def groups(self) -> list[tuple[str, list[StatusRow]]]:
        """Rows by state, in the order a person reads them; empty states left out."""
        out = [(st, [r for r in self.rows if r.state == st]) for st in STATE_ORDER]
        return [(st, rows) for st, rows in out if rows]


def status_report(ledger: Ledger, config_path: Path | None, ui: UI, offline: bool = False) -> StatusReport:
    """Refresh active attempts (one batched scheduler query; none when nothing is active), then read rows."""
    slots = None if offline else refresh_for_status(ledger, config_path, ui)
    unreachable = dict((slots or {}).get("unreachable") or {})
    from irq.config import load_config

    return StatusReport(status_rows(ledger, load_config(config_path).project.metric), slots, unreachable)

