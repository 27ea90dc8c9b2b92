"""The ledger: one SQLite file (WAL, busy timeout) shared by the CLI and the daemon.

Every write happens inside ``Ledger.transaction()``: BEGIN IMMEDIATE takes the write lock up
front, so two processes never interleave half-done changes, and a failure rolls back whole.
Never hold a transaction open across a network call.
"""
from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import event, func, text
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.pool import QueuePool
from sqlmodel import Session, SQLModel, create_engine, select

from irq import errors
from irq.ledger import reader, revisions, transitions
from irq.ledger.claims import Claims
from irq.ledger.models import Attempt, Event, Experiment, Meta, SchedulerCall, utcnow
from irq.ledger.reader import DEFAULT_DB, ID_RE, SCHEMA_VERSION, resolve_db_path  # noqa: F401 (re-exported)
from irq.ledger.states import Priority
from irq.ledger.transitions import new_token  # noqa: F401 (re-exported: callers mint tokens here)


def _v1_to_v2(s: Session) -> None:
    """Held experiments get a column for their fix; a retry policy's pending resource bump
    moves from the annotations JSON into its own column. Plain SQL: the model has columns
    that later versions add."""
    conn = s.connection()
    cols = {r[1] for r in conn.exec_driver_sql("PRAGMA table_info(experiment)")}
    for col in ("held_fix", "pending_resource_change"):
        if col not in cols:
            conn.exec_driver_sql(f"ALTER TABLE experiment ADD COLUMN {col} VARCHAR")
    for exp_id, raw in list(conn.exec_driver_sql("SELECT id, annotations FROM experiment")):
        ann = json.loads(raw or "{}")
        if "pending_resource_change" in ann:
            bump = ann.pop("pending_resource_change")
            conn.exec_driver_sql("UPDATE experiment SET pending_resource_change = ?, annotations = ? WHERE id = ?",
                                 (bump, json.dumps(ann), exp_id))


def _v2_to_v3(s: Session) -> None:
    """An experiment runs a command of its own (None: the project's default)."""
    conn = s.connection()
    if "command" not in {r[1] for r in conn.exec_driver_sql("PRAGMA table_info(experiment)")}:
        conn.exec_driver_sql("ALTER TABLE experiment ADD COLUMN command TEXT")


# a new run's name is looked up in any case (Ledger.run_id_taken): an index, not a scan of every attempt
RUN_ID_INDEX = "CREATE INDEX IF NOT EXISTS ix_attempt_run_id ON attempt (run_id COLLATE NOCASE)"

# version -> function that upgrades a database from that version to the next one
MIGRATIONS: dict[int, Callable[[Session], None]] = {1: _v1_to_v2, 2: _v2_to_v3}


def validate_id(exp_id: str) -> str:
    exp_id = exp_id.strip()
    if not ID_RE.match(exp_id):
        raise errors.InvalidId(f"invalid experiment id {exp_id!r}")
    return exp_id


class Ledger:
    """Handle on one ledger file. Cheap to create; holds no open transaction.

    A file this process may not write (another user's, or in a read-only folder) opens
    read-only (see ``reader.access_mode``): reads work, a write is refused with a hint."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False) -> None:
        self.path = Path(path)
        self.claims = Claims(self.path)  # the SUBMITTING attempts this process is still sending
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.mode = "rw"
        else:  # missing, a folder, empty, foreign or corrupt: refused here, the file untouched
            conn = reader.connect(self.path)
            try:
                reader.check_ledger(conn, self.path)
            finally:
                conn.close()
            self.mode = reader.access_mode(self.path)
        self.readonly = self.mode != "rw"
        if self.readonly:
            mode = self.mode
            self.engine = create_engine("sqlite://", creator=lambda: reader.connect(self.path, mode))
            event.listen(self.engine, "begin", _on_begin_read)
        else:
            # the path's own bytes in a URI (a folder named in Latin-1 too); a pool of connections, as
            # for any file ledger: "sqlite://" alone would make SQLAlchemy share one per thread
            self.engine = create_engine("sqlite://", poolclass=QueuePool, creator=lambda: sqlite3.connect(
                reader.uri(self.path, "rwc"), uri=True, timeout=30, check_same_thread=False))
            event.listen(self.engine, "connect", _on_connect)
            event.listen(self.engine, "begin", _on_begin)
        if not self.readonly:  # new tables, migrations: never on a read-only ledger
            try:
                self._prepare()
            except DatabaseError as exc:  # not SQLite, corrupt, unreadable
                raise reader.corrupt(self.path, exc.orig) from exc

    # -- schema -------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Make a new ledger, migrate an older one, add tables new since it was made."""
        with self.transaction() as s:
            conn = s.connection()
            tables = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'")}
            if "meta" not in tables:
                if tables - {"meta"}:
                    raise errors.LedgerError(f"{self.path} is not an irq ledger (no meta table)")
                SQLModel.metadata.create_all(conn)
                s.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
                s.add(Meta(key="created_at", value=utcnow().isoformat()))
                conn.exec_driver_sql(RUN_ID_INDEX)
                revisions.install(conn)
                return
            row = s.get(Meta, "schema_version")
            version = int(row.value) if row else 0
            if version > SCHEMA_VERSION:
                raise errors.SchemaTooNew(
                    f"ledger {self.path} has schema version {version}; this irq reads up to {SCHEMA_VERSION}"
                )
            while version < SCHEMA_VERSION:
                if version not in MIGRATIONS:
                    raise errors.LedgerError(f"no migration from schema version {version}")
                MIGRATIONS[version](s)
                version += 1
                self._set_meta(s, "schema_version", str(version))
            SQLModel.metadata.create_all(conn)  # tables added since: harmless when present
            # indexes added to existing tables since (no schema change: readers see the same rows)
            conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_attempt_state ON attempt (state)")
            conn.exec_driver_sql(RUN_ID_INDEX)
            revisions.install(conn)  # each experiment's revision, kept by triggers

    # -- sessions -----------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One atomic unit of work. Commits on success, rolls back on any exception."""
        with Session(self.engine, expire_on_commit=False) as s:
            try:
                yield s
                s.commit()
            except OperationalError as exc:
                s.rollback()
                if "readonly" in str(exc.orig):
                    raise errors.LedgerError(
                        f"ledger {self.path} is read-only for you (another user's file, or a read-only folder)",
                        "read commands work (status --offline, show, export); to change it, ask its owner "
                        "or copy it: cp queue.db mine.db && irq --db mine.db ...",
                    ) from exc
                if "locked" in str(exc.orig) or "busy" in str(exc.orig):
                    raise errors.LedgerError(
                        f"ledger {self.path} stayed locked by another irq process for 30 s",
                        "try again; if it persists, look for a hung irq process",
                    ) from exc
                raise errors.LedgerError(f"ledger {self.path}: {exc.orig}") from exc
            except DatabaseError as exc:
                try:
                    s.rollback()
                except DatabaseError:
                    pass
                if reader.damaged(exc.orig):  # a damaged page: said as a read says it
                    raise reader.corrupt(self.path, exc.orig) from exc
                raise  # a constraint (a bug of irq's), never "restore a backup"
            except BaseException:
                s.rollback()
                raise

    def close(self) -> None:
        self.engine.dispose()
        self.claims.close()

    # -- meta ---------------------------------------------------------------------------
    @staticmethod
    def _set_meta(s: Session, key: str, value: str) -> None:
        row = s.get(Meta, key)
        if row:
            row.value = value
        else:
            s.add(Meta(key=key, value=value))

    @staticmethod
    def _get_meta(s: Session, key: str) -> str | None:
        row = s.get(Meta, key)
        return row.value if row else None

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self.transaction() as s:
            row = s.get(Meta, key)
            return row.value if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as s:
            self._set_meta(s, key, value)

    # -- lookups ------------------------------------------------------------------------
    @staticmethod
    def experiment(s: Session, exp_id: str) -> Experiment:
        exp = s.get(Experiment, exp_id.strip())
        if exp is None:
            raise reader.unknown_id(exp_id, list(s.exec(select(Experiment.id))))
        return exp

    @staticmethod
    def experiments(s: Session, states: Collection[str] | None = None) -> list[Experiment]:
        q = select(Experiment).order_by(Experiment.seq)
        if states is not None:  # in SQL: a state filter never loads the other rows
            q = q.where(Experiment.state.in_([str(st) for st in states]))
        return list(s.exec(q))

    @staticmethod
    def with_retry_policy(s: Session, state: str) -> list[Experiment]:
        """The experiments in `state` that have a retry policy: a daemon cycle asks for the FAILED
        ones, and most have none (its JSON is `{}`), so SQL leaves those out."""
        q = (select(Experiment).where(Experiment.state == state)
             .where(text("experiment.retry_policy NOT IN ('{}', 'null')")).order_by(Experiment.seq))
        return list(s.exec(q))

    @staticmethod
    def attempts(s: Session, exp_id: str | None = None, states: Collection[str] | None = None,
                 unfetched: bool = False) -> list[Attempt]:
        """Attempts in order; `states` (e.g. ACTIVE_STATES) and `unfetched` (no fetch recorded)
        filter in SQL, so a refresh of 200 running jobs or a fetch of the few that ended does
        not load 50,000 finished attempts."""
        q = select(Attempt).order_by(Attempt.experiment_id, Attempt.number)
        if exp_id is not None:
            q = q.where(Attempt.experiment_id == exp_id)
        if states is not None:
            q = q.where(Attempt.state.in_([str(st.value if hasattr(st, "value") else st) for st in states]))
        if unfetched:
            q = q.where(Attempt.fetched_at.is_(None))  # type: ignore[union-attr]
        return list(s.exec(q))

    @staticmethod
    def states(s: Session, states: Collection[str] | None = None) -> dict[str, str]:
        """Each experiment's state by id (those in `states`, if given): two columns, not the rows."""
        q = select(Experiment.id, Experiment.state)
        if states is not None:
            q = q.where(Experiment.state.in_([str(st) for st in states]))
        return {i: st for i, st in s.exec(q)}

    @staticmethod
    def ids(s: Session) -> set[str]:
        """Every experiment's id (one column, not the rows)."""
        return set(s.exec(select(Experiment.id)))

    @staticmethod
    def last_seq(s: Session) -> int:
        """The highest queue position taken (0 for an empty ledger)."""
        return s.exec(select(func.max(Experiment.seq))).one() or 0

    @staticmethod
    def latest_attempt(s: Session, exp_id: str) -> Attempt | None:
        q = select(Attempt).where(Attempt.experiment_id == exp_id).order_by(Attempt.number.desc())
        return s.exec(q).first()

    @staticmethod
    def attempt_by_token(s: Session, token: str) -> Attempt | None:
        return s.exec(select(Attempt).where(Attempt.token == token)).first()

    @staticmethod
    def run_id_taken(s: Session, run_id: str) -> bool:
        """Whether an attempt has this run id, in any case (a new run's name must be none of
        them: irq/jobs/jobscript.run_id_for); one look-up in RUN_ID_INDEX."""
        q = text("SELECT 1 FROM attempt WHERE run_id = :r COLLATE NOCASE LIMIT 1").bindparams(r=run_id)
        return s.connection().execute(q).first() is not None

    @staticmethod
    def events(s: Session, exp_id: str | None = None) -> list[Event]:
        q = select(Event).order_by(Event.id)
        if exp_id is not None:
            q = q.where(Event.experiment_id == exp_id)
        return list(s.exec(q))

    # -- writers ------------------------------------------------------------------------
    @staticmethod
    def add_experiment(s: Session, exp: Experiment) -> Experiment:
        validate_id(exp.id)
        if s.get(Experiment, exp.id) is not None:
            raise errors.DuplicateId(f"experiment {exp.id} already exists")
        Priority(exp.priority)
        if not exp.seq:
            exp.seq = Ledger.last_seq(s) + 1
        s.add(exp)
        s.add(Event(experiment_id=exp.id, to_state=exp.state, reason="created"))
        return exp

    # the state machines' writers (irq.ledger.transitions), where callers look for them
    set_state = staticmethod(transitions.move_experiment)
    set_attempt_state = staticmethod(transitions.move_attempt)
    new_attempt = staticmethod(transitions.open_attempt)

    @staticmethod
    def record_call(s: Session, backend: str, command: str) -> None:
        s.add(SchedulerCall(backend=backend, command=command))

    @staticmethod
    def calls_since(s: Session, since: datetime) -> int:
        return s.exec(select(func.count()).select_from(SchedulerCall).where(SchedulerCall.at >= since)).one()


def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _on_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _on_begin_read(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")
