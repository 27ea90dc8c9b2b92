"""Scheduler calls appended without the ORM: the one write `irq status` makes when its refresh
changed nothing (irq/jobs/quickstatus.py). The same rows `Ledger.record_call` writes (time as
the ORM stores it: naive UTC text, second precision), in one `BEGIN IMMEDIATE` transaction."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from irq import errors

STORED = "%Y-%m-%d %H:%M:%S.000000"  # SQLAlchemy's SQLite DateTime text, at second precision


def append_calls(path: Path, backend: str, commands: Sequence[str], written: list[int] | None = None) -> int:
    """Record one row per scheduler command; return the calls of the last hour (all backends).
    The ids of the rows written go into `written`, if given (for take_back)."""
    now = datetime.now(timezone.utc)
    with _connection(path) as con:
        con.execute("BEGIN IMMEDIATE")
        ids = [con.execute("INSERT INTO schedulercall (at, backend, command) VALUES (?, ?, ?)",
                           (now.strftime(STORED), backend, c)).lastrowid for c in commands]
        con.execute("COMMIT")
        if written is not None:
            written.extend(ids)
        since = (now - timedelta(hours=1)).strftime(STORED)
        return con.execute("SELECT COUNT(*) FROM schedulercall WHERE at >= ?", (since,)).fetchone()[0]


def take_back(path: Path, ids: Sequence[int]) -> None:
    """Remove rows append_calls wrote (`irq status` records its calls before the answer is in; when
    the full refresh runs instead, that one records them)."""
    with _connection(path) as con:
        con.execute("BEGIN IMMEDIATE")
        con.executemany("DELETE FROM schedulercall WHERE id = ?", [(i,) for i in ids])
        con.execute("COMMIT")


@contextmanager
def _connection(path: Path) -> Iterator[sqlite3.Connection]:
    con = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        con.execute("PRAGMA busy_timeout=30000")
        con.execute("PRAGMA synchronous=NORMAL")  # as the ORM's connections (WAL: no fsync per commit)
        yield con
    except sqlite3.Error as exc:
        raise errors.LedgerError(f"ledger {path}: {exc}", "try again; if it persists, look for a hung irq process") \
            from exc
    finally:
        con.close()
