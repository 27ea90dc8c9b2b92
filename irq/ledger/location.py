"""Where the ledger is, and whether it changed: standard library only (`irq status` asks before
anything else loads, irq/cli/early.py)."""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB = "queue.db"


def resolve_db_path(db: str | os.PathLike[str] | None) -> Path:
    """--db wins, then IRQ_DB, then the project's ledger (project_db)."""
    return given_db(db) or project_db()


def given_db(db: str | os.PathLike[str] | None) -> Path | None:
    """The ledger the user named: --db, else $IRQ_DB; None when neither is set."""
    named = db or os.environ.get("IRQ_DB")
    return Path(named) if named else None


def project_db(here: Path | None = None) -> Path:
    """queue.db of the nearest folder, from here upwards, that holds a queue.db or an irq.toml (as
    irq.toml itself is found), so that a command run in a project's subfolder reads the project's
    ledger; ./queue.db when there is none. Relative when it is this folder's."""
    start = (here or Path.cwd()).absolute()
    for d in (start, *start.parents):
        if (d / DEFAULT_DB).exists() or (d / "irq.toml").is_file():
            return Path(DEFAULT_DB) if d == start else d / DEFAULT_DB
    return Path(DEFAULT_DB)


def access_mode(path: Path) -> str:
    """How this process may open the ledger: "rw", "ro" (file not writable) or "immutable"
    (folder not writable: SQLite could not create the WAL's -shm file beside it)."""
    if os.environ.get("IRQ_READ_ONLY", "") not in ("", "0"):
        return "ro" if os.access(path.parent, os.W_OK) else "immutable"
    if not os.access(path.parent, os.W_OK):
        return "immutable"
    return "rw" if os.access(path, os.W_OK) else "ro"


def stamp(path: Path) -> list | None:
    """What any write to the ledger changes: inode, size and modification time of its file and of
    its WAL (None for a WAL that is not there). None if the file cannot be looked at. (Not the
    change time: SQLite run as root chowns the WAL to the ledger's owner as it opens it, reads too.)"""
    out: list = []
    for p in (path, path.with_name(path.name + "-wal")):
        try:
            st = os.stat(p)
        except FileNotFoundError:
            if p == path:
                return None
            out.append(None)
            continue
        except OSError:
            return None
        out.append([st.st_ino, st.st_size, st.st_mtime_ns])
    return out
