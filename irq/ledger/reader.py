"""The read path: the stdlib ``sqlite3`` module, no ORM, and never a write.

Read commands (status, show, export) open the ledger here. Importing sqlmodel alone costs
more CPU than the whole `irq --help`, and a status at 10,000 experiments must not build
50,000 ORM objects to show the latest attempt of each; so reads select the columns they show,
with the latest attempt per experiment found in SQL, and rows come back as light ``Record``s
that carry the same attribute names as the tables in ``models.py``.

Opening never creates, migrates or alters a file: a missing, empty or foreign file is refused
with a hint, a corrupt one with how to recover. A ledger the user may not write (another
user's file, a read-only folder) opens read-only: ``mode=ro``, or ``immutable=1`` when the
folder does not let SQLite create the WAL's ``-shm`` file. ``IRQ_READ_ONLY=1`` forces the
read-only opening (to look at a shared ledger without any risk of changing it).
"""
from __future__ import annotations

import difflib
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from irq import errors
from irq.ledger.location import DEFAULT_DB, access_mode, resolve_db_path  # noqa: F401 (re-exported)

SCHEMA_VERSION = 3  # the schema this irq writes (database.py migrates older ones)
# any slug: a letter, then letters, digits, ".", "_", "-", at most 64 characters (ASCII); Q-003 is the default style
ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$", re.ASCII)
RECOVER_HINT = ("restore a backup copy of {path}, or rescue what SQLite can still read: "
                "`sqlite3 {path} .recover | sqlite3 recovered.db`, then `irq --db recovered.db status`")

JSON_COLUMNS = frozenset({"parameters", "resources", "depends_on", "seeds", "annotations", "extras",
                          "queue_extras", "retry_policy", "tasks", "modules", "results"})
TIME_COLUMNS = frozenset({"created_at", "updated_at", "queued_since", "submitted_at", "started_at", "ended_at",
                          "unknown_since", "fetched_at", "at"})


def uri(path: Path, mode: str) -> str:
    """The SQLite URI for a mode of access_mode() ("rwc": read, write, create). The path's own bytes
    are quoted: a folder named in another encoding than UTF-8 is a path like any other."""
    base = "file:" + quote(os.fsencode(path.resolve()))
    return base + {"rwc": "?mode=rwc", "rw": "?mode=rw", "ro": "?mode=ro", "immutable": "?mode=ro&immutable=1"}[mode]


def damaged(exc: BaseException | None) -> bool:
    """Whether SQLite's error says the file itself is damaged or not a database (SQLITE_CORRUPT,
    SQLITE_NOTADB), not that a statement broke a rule."""
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "disk image" in text


def corrupt(path: Path, exc: BaseException) -> errors.LedgerError:
    return errors.LedgerError(f"cannot open ledger {path}: it is damaged or not a SQLite file ({exc})",
                              RECOVER_HINT.format(path=path))


def check_ledger(conn: sqlite3.Connection, path: Path) -> int:
    """The ledger's schema version; refuses an empty or foreign file without touching it."""
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise corrupt(path, exc) from exc
    if "meta" not in tables:
        what = "an empty file" if not tables else "a SQLite file of something else (no meta table)"
        raise errors.LedgerError(f"{path} is not an irq ledger: it is {what}",
                                 "point --db / IRQ_DB at your queue.db, or run `irq init` to make a new ledger")
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise corrupt(path, exc) from exc
    try:
        version = int(row[0]) if row else 0
    except (TypeError, ValueError):
        raise corrupt(path, ValueError(f"its schema version is {row[0]!r}, not a number")) from None
    if version > SCHEMA_VERSION:
        raise errors.SchemaTooNew(
            f"ledger {path} has schema version {version}; this irq reads up to {SCHEMA_VERSION}")
    return version


def connect(path: Path, mode: str | None = None) -> sqlite3.Connection:
    """A stdlib connection in autocommit mode (we issue BEGIN ourselves); never creates the file."""
    if not path.exists():
        raise errors.LedgerError(f"no ledger at {path}", "run `irq init` here, or point --db / IRQ_DB at one")
    if path.is_dir():
        raise errors.LedgerError(f"{path} is a folder, not a ledger", "point --db / IRQ_DB at a queue.db file")
    if not path.is_file():
        raise errors.LedgerError(f"{path} is not a regular file (a pipe or a device), not a ledger",
                                 "point --db / IRQ_DB at a queue.db file")
    mode = mode or access_mode(path)
    wal = path.with_name(path.name + "-wal")
    if mode == "immutable" and wal.exists() and wal.stat().st_size:
        try:  # changes still in the WAL: read them through its -shm if SQLite can
            return _open(path, "ro", probe=True)
        except errors.LedgerError:
            pass
    return _open(path, mode)


def _open(path: Path, mode: str, probe: bool = False) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(uri(path, mode), uri=True, timeout=30, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=30000")
        if probe:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise errors.LedgerError(f"cannot open ledger {path}: {exc}",
                                 "check that you may read the file and its folder") from exc
    return conn


@contextmanager
def reading(path: Path) -> Iterator[sqlite3.Connection]:
    """One consistent snapshot of the ledger (a deferred read transaction), for reads only."""
    conn = connect(path)
    try:
        version = check_ledger(conn, path)
        if version < SCHEMA_VERSION:
            raise errors.LedgerError(f"ledger {path} has the older schema version {version}",
                                     "run any command that changes the ledger (e.g. `irq status` online) "
                                     "as its owner once to upgrade it")
        conn.execute("BEGIN")
        yield conn
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:  # locked past the timeout, or unreadable
        raise errors.LedgerError(f"ledger {path}: {exc}", "try again; if it persists, look for a hung irq process") from exc
    except sqlite3.DatabaseError as exc:
        raise corrupt(path, exc) from exc
    finally:
        conn.close()


class Record:
    """One row as an object with the table's attribute names; JSON and time columns decoded."""

    def __repr__(self) -> str:
        return f"Record({self.__dict__!r})"

    def model_dump(self, mode: str = "json") -> dict[str, Any]:
        """What the ORM's model_dump(mode="json") gives, so views can render either."""
        return {k: v.isoformat().replace("+00:00", "Z") if isinstance(v, datetime) else v
                for k, v in self.__dict__.items()}


_EMPTY = {"{}": dict, "[]": list}


def _time(raw: str) -> datetime:
    """Stored as naive UTC text; read back aware, as the ORM's models give it."""
    t = datetime.fromisoformat(raw)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _json(raw: str) -> Any:
    empty = _EMPTY.get(raw)
    return empty() if empty else json.loads(raw)


def records(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> Iterator[Record]:
    """Rows of a query as Records, decoded as they are read (no list of everything); the
    decoding plan is made once per query, not once per row."""
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    convs = [(n, _json if n in JSON_COLUMNS else _time) for n in names
             if n in JSON_COLUMNS or n in TIME_COLUMNS]
    new = Record.__new__
    for row in cur:
        d = dict(zip(names, row))
        for name, fn in convs:
            if (v := d[name]) is not None:
                d[name] = fn(v)
        rec = new(Record)
        rec.__dict__ = d
        yield rec


def unknown_id(exp_id: str, known: list[str]) -> errors.IrqError:
    """The error for an id not in the ledger: malformed, or unknown with the closest ids."""
    close = difflib.get_close_matches(exp_id.strip(), known, n=3, cutoff=0.6)
    if not ID_RE.match(exp_id.strip()):
        hint = errors.InvalidId.default_hint + (f"; did you mean {', '.join(close)}?" if close else "")
        return errors.InvalidId(f"invalid experiment id {exp_id!r}", hint)
    return errors.NotFound(exp_id, close)


def meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None
