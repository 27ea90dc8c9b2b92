"""Each experiment's revision: a number that changes whenever the experiment or any of its attempts
changes, so that text made from them (an export's blocks, a results row) can be kept and reused
until it does.

SQLite keeps it with triggers, not irq's code: every write counts, whoever makes it (irq's ORM,
its stdlib quick paths, an older irq on the same schema, or `sqlite3` by hand), and a reader needs
to read only the experiment table to know what changed. A new revision is `random()`, 64 bits,
never a counter: a ledger made again from scratch must not reuse the revisions of the old one, or
text kept for the old one would be taken for the new one's.

The column and the triggers are added to a ledger the first time a command that may write opens
it (no schema version of their own: rows read the same with or without them); a reader that finds
no `rev` column uses nothing kept (`has_revisions`).
"""
from __future__ import annotations

import sqlite3
from typing import Any

COLUMN = "rev"

_TRIGGERS = {
    "irq_rev_experiment_insert": "AFTER INSERT ON experiment BEGIN "
                                 "UPDATE experiment SET rev = random() WHERE id = NEW.id; END",
    # the attempt triggers' own UPDATE changes rev, so this one does not fire again for it
    "irq_rev_experiment_update": "AFTER UPDATE ON experiment WHEN NEW.rev IS OLD.rev BEGIN "
                                 "UPDATE experiment SET rev = random() WHERE id = NEW.id; END",
    "irq_rev_attempt_insert": "AFTER INSERT ON attempt BEGIN "
                              "UPDATE experiment SET rev = random() WHERE id = NEW.experiment_id; END",
    "irq_rev_attempt_update": "AFTER UPDATE ON attempt BEGIN "
                              "UPDATE experiment SET rev = random() WHERE id IN (NEW.experiment_id, OLD.experiment_id); END",
    "irq_rev_attempt_delete": "AFTER DELETE ON attempt BEGIN "
                              "UPDATE experiment SET rev = random() WHERE id = OLD.experiment_id; END",
}


def install(conn: Any) -> None:
    """Add the column and the triggers where missing, in the caller's write transaction. `conn`
    is a stdlib connection or SQLAlchemy's (anything with exec_driver_sql or execute).

    Triggers found missing (dropped by hand, or by a tool that copied the tables alone) may have
    let writes through without a new revision: every experiment then gets a new one, so that
    no text kept while they were missing is taken for current."""
    run = getattr(conn, "exec_driver_sql", None) or conn.execute
    cols = {r[1] for r in run("PRAGMA table_info(experiment)")}
    present = {r[0] for r in run("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    missing = [name for name in _TRIGGERS if name not in present]
    if COLUMN not in cols:
        run(f"ALTER TABLE experiment ADD COLUMN {COLUMN} INTEGER NOT NULL DEFAULT 0")
        run(f"UPDATE experiment SET {COLUMN} = random()")
    elif missing:
        run(f"UPDATE experiment SET {COLUMN} = random()")
    for name in missing:
        run(f"CREATE TRIGGER IF NOT EXISTS {name} {_TRIGGERS[name]}")


def has_revisions(conn: sqlite3.Connection) -> bool:
    """Whether this ledger keeps revisions (a ledger only ever read since they came may not)."""
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    return set(_TRIGGERS) <= names
