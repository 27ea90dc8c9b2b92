"""Submission, refresh and fetch: the core that moves attempts through a backend."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .ledger import Ledger
from .states import is_active
from .ui import UI


def refresh_for_status(ledger: Ledger, config_path: Path | None, ui: UI) -> dict[str, Any] | None:
    """Before `irq status`: ask the backend about active attempts (none active: no call)."""
    with ledger.transaction() as s:
        active = [a for a in Ledger.attempts(s) if is_active(a.state) and a.backend != "imported"]
    if not active:
        return None
    return None
