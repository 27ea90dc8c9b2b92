"""Starting a project: a ledger and a commented irq.toml, or a ledger filled from a queue.md."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from irq.config import write_default_config
from irq.formats.queue_io import ImportReport, import_queue
from irq.ledger.database import Ledger


@dataclass
class Initialized:
    db: Path
    existed: bool  # the ledger was already there (init is safe to repeat)
    config: Path | None  # the irq.toml written, or None when one was there


def init_project(db: Path, folder: Path) -> Initialized:
    """`irq init`: create the ledger and write a commented irq.toml in `folder`, keeping existing ones."""
    existed = db.exists()
    Ledger(db, create=True).close()
    return Initialized(db, existed, write_default_config(folder / "irq.toml"))


def import_file(db: Path, path: Path) -> ImportReport:
    """`irq import`: into this ledger (created if missing), all of the file or nothing."""
    ledger = Ledger(db, create=not db.exists())
    try:
        return import_queue(ledger, path)
    finally:
        ledger.close()
