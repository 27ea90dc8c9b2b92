"""Read-only views of the ledger for status and show, on the stdlib read path (no ORM).

Status selects the columns it shows and the latest attempt of each experiment in SQL (the
attempt table's unique (experiment_id, number) index answers MAX(number)), with state filters
and per-state limits in SQL too: at 10,000 experiments and 50,000 attempts it reads 10,000
short rows, never a job script.
"""
from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irq.formats.blocks import headline
from irq.ledger import reader
from irq.ledger.reader import Record, records
from irq.ledger.states import ACTIVE_STATES, State, Waiting, waiting
from irq.policy.dependencies import hold, pending

Source = Any  # a Ledger (anything with .path) or the ledger file's path


def ledger_path(src: Source) -> Path:
    return Path(src.path if hasattr(src, "path") else os.fspath(src))


@dataclass
class ExperimentView:
    experiment: Any  # a Record with the experiment table's columns
    attempts: list[Any]
    events: list[Any]
    waiting: str | None = None  # queued locally / held until fixed, in words
    headline: str = ""  # the project's metric from the latest attempt: "val_mse 0.0171"
    commit: str | None = None  # the commit the latest attempt ran


def show(src: Source, exp_id: str, metric: str = "val_mse") -> ExperimentView:
    """One experiment, every attempt (job script included), its events, and the latest attempt's
    headline metric and commit."""
    path = ledger_path(src)
    with reader.reading(path) as conn:
        exp = next(records(conn, "SELECT * FROM experiment WHERE id = ?", (exp_id.strip(),)), None)
        if exp is None:
            raise reader.unknown_id(exp_id, [r[0] for r in conn.execute("SELECT id FROM experiment")])
        atts = list(records(conn, "SELECT * FROM attempt WHERE experiment_id = ? ORDER BY number", (exp.id,)))
        events = list(records(conn, "SELECT * FROM event WHERE experiment_id = ? ORDER BY id", (exp.id,)))
    line = waiting_line(exp, any(a.state in ACTIVE_STATES for a in atts))
    last = atts[-1] if atts else None
    # the commit of the latest attempt that reached the scheduler: one refused or never sent ran nothing
    ran = next((a for a in reversed(atts) if a.state not in NEVER_RAN), None)
    return ExperimentView(exp, atts, events, line, headline(last.results, metric) if last else "",
                          ran.git_sha if ran else None)


NEVER_RAN = ("SUBMITTING", "NOT_SUBMITTED", "REFUSED")


@dataclass
class StatusRow:
    """One line of `irq status`: the experiment, its latest attempt, why it waits."""

    id: str
    title: str
    state: str
    priority: str
    attempts: int
    job_id: str | None
    scheduler_state: str | None
    detail: str
    updated_at: Any


@dataclass
class StatusQuery:
    """Which rows `irq status` shows. `limits` caps a state at its most recently changed
    experiments (the rest are counted, not read): by default the latest DONE only."""

    states: tuple[str, ...] | None = None  # None: every state
    limits: dict[str, int] = field(default_factory=dict)
    metric: str = "val_mse"  # the project's headline metric, shown for DONE rows

    @classmethod
    def from_options(cls, states: list[str] | None, limit: int | None, fold: bool = True) -> StatusQuery:
        """--state (repeatable, checked against the states) and --limit; without either, the
        states that only grow (DONE, FAILED, PROPOSED, RETIRED) show their latest FOLD_AT unless
        `fold` is off (--all). Active work and the queue (IN_PROGRESS, READY) are always whole."""
        chosen = tuple(_state(s) for s in states) if states else None
        names = chosen or tuple(s.value for s in State)
        if limit is not None:
            return cls(chosen, {s: limit for s in names})
        return cls(chosen, {} if chosen or not fold else {s: FOLD_AT for s in FOLDED})


FOLD_AT = 20
FOLDED = (State.DONE.value, State.FAILED.value, State.PROPOSED.value, State.RETIRED.value)


def _state(text: str) -> str:
    from irq import errors

    name = text.strip().upper().replace("-", "_")
    if name not in State.__members__:
        raise errors.UsageError(f"unknown state {text!r}", "use one of " + ", ".join(s.value for s in State))
    return name


@dataclass
class StatusRows:
    rows: list[StatusRow]
    folded: dict[str, int]  # state -> experiments not shown because of a limit
    counts: dict[str, int]  # state -> experiments in the ledger


_READY, _FAILED, _DONE, _IN_PROGRESS = (s.value for s in (State.READY, State.FAILED, State.DONE, State.IN_PROGRESS))
_ACTIVE_NAMES = frozenset(s.value for s in ACTIVE_STATES)
_ACTIVE = ", ".join(f"'{s.value}'" for s in ACTIVE_STATES)
# {experiments}: the experiments table or a filtered, limited sub-select of it. Per experiment the
# unique (experiment_id, number) index answers MAX(number) and the count without a table scan.
_LATEST = f"""
SELECT e.seq, e.id, e.title, e.state, e.priority, e.depends_on, e.waiting_reason, e.held_fix,
       strftime('%Y-%m-%dT%H:%M:%SZ', e.updated_at) AS updated_at,
       (SELECT COUNT(*) FROM attempt c WHERE c.experiment_id = e.id) AS n_attempts,
       CASE WHEN e.state = 'IN_PROGRESS' AND e.waiting_reason IS NOT NULL THEN
            EXISTS (SELECT 1 FROM attempt c WHERE c.experiment_id = e.id AND c.state IN ({_ACTIVE})) ELSE 0 END AS n_active,
       a.job_id, a.state AS attempt_state, a.backend AS attempt_backend, a.unknown_since, a.root_cause, a.error,
       CASE WHEN e.state = 'DONE'{{valid}} THEN COALESCE(json_extract(a.results, :metric), json_extract(a.results, :mean),
                                                 json_extract(a.results, :seed_label)) END AS val,
       CASE WHEN e.state != 'DONE'{{invalid}} THEN NULL
            WHEN json_extract(a.results, :metric) IS NOT NULL OR json_extract(a.results, :mean) IS NULL
            THEN :name ELSE :name || '_mean' END AS val_key
FROM {{experiments}} e
LEFT JOIN attempt a ON a.experiment_id = e.id
     AND a.number = (SELECT MAX(m.number) FROM attempt m WHERE m.experiment_id = e.id)
"""


def status_rows(src: Source, query: StatusQuery | None = None) -> list[StatusRow]:
    """Every row the query asks for (all experiments by default), in queue order."""
    return read_status(src, query or StatusQuery()).rows


def read_status(src: Source, query: StatusQuery) -> StatusRows:
    path = ledger_path(src)
    with reader.reading(path) as conn:
        counts = dict(conn.execute("SELECT state, COUNT(*) FROM experiment GROUP BY state").fetchall())
        wanted = [s for s in (query.states or counts) if counts.get(s)]
        free = [s for s in wanted if s not in query.limits]
        found = _select(conn, free, None, query.metric) if free else []
        for st in (s for s in wanted if s in query.limits):
            found += _select(conn, [st], query.limits[st], query.metric)
        found.sort(key=lambda r: r.seq)
        states = _dependency_states(conn, found)
    rows = [_row(r, states) for r in found]
    shown: dict[str, int] = {}
    for r in rows:
        shown[r.state] = shown.get(r.state, 0) + 1
    folded = {s: counts[s] - shown.get(s, 0) for s in wanted if counts[s] > shown.get(s, 0)}
    return StatusRows(rows, folded, counts)


def _select(conn: sqlite3.Connection, states: list[str], limit: int | None, metric: str) -> list[Record]:
    params: dict[str, Any] = {f"s{i}": s for i, s in enumerate(states)}
    params.update(name=metric, metric=_json_path(metric), mean=_json_path(f"{metric}_mean"),
                  seed_label=_json_path("Validation MSE" if metric == "val_mse" else metric), limit=limit)
    where = f"state IN ({', '.join(':s' + str(i) for i in range(len(states)))})"
    chosen = f"(SELECT * FROM experiment WHERE {where})"
    if limit is not None:  # only these get their attempts read; the sort carries ids, not whole rows
        chosen = (f"(SELECT * FROM experiment WHERE id IN (SELECT id FROM experiment WHERE {where} "
                  "ORDER BY updated_at DESC, seq DESC LIMIT :limit))")
    try:
        return list(records(conn, _LATEST.format(experiments=chosen, valid="", invalid=""), params))
    except sqlite3.OperationalError as exc:
        if "malformed JSON" not in str(exc):
            raise
    # results an older irq wrote with NaN in them, which SQLite's JSON (before 3.42) cannot read:
    # read again, those rows without their headline value (a check per row only then)
    return list(records(conn, _LATEST.format(experiments=chosen, valid=" AND json_valid(a.results)",
                                             invalid=" OR NOT json_valid(a.results)"), params))


def _json_path(key: str) -> str:
    """A JSON path naming one top-level key, quoted (keys hold dots and spaces)."""
    return '$."' + key.replace('"', '""') + '"'


def _dependency_states(conn: sqlite3.Connection, rows: list[Record]) -> dict[str, str]:
    deps = sorted({d for r in rows if r.state == _READY or r.state == _IN_PROGRESS and r.waiting_reason is not None
                   for d in r.depends_on})
    out: dict[str, str] = {}
    for i in range(0, len(deps), 500):  # SQLite's limit on bound parameters
        part = deps[i:i + 500]
        sql = f"SELECT id, state FROM experiment WHERE id IN ({', '.join('?' for _ in part)})"
        out.update(conn.execute(sql, part).fetchall())
    return out


def _row(r: Record, states: dict[str, str]) -> StatusRow:
    return StatusRow(id=r.id, title=r.title, state=r.state, priority=r.priority, attempts=r.n_attempts,
                     job_id=r.job_id, scheduler_state=r.attempt_state, detail=_detail(r, states),
                     updated_at=r.updated_at)


def waiting_line(e: Any, has_active_attempt: bool) -> str | None:
    """Why an IN_PROGRESS experiment has no job, in words; None when it is not waiting."""
    w = waiting(e, has_active_attempt)
    if w is Waiting.HELD:
        return f"held until fixed: {e.waiting_reason}; fix: {e.held_fix}"
    if w is Waiting.QUEUED:
        reason = e.waiting_reason or ""
        return "queued locally, " + (reason if reason.startswith("waiting for ") else f"waiting for a slot: {reason}")
    return None


def _detail(r: Record, states: dict[str, str]) -> str:
    """The last column of a status row, from the experiment and its latest attempt (plain strings,
    not enum members: this runs for every row of a 10,000-experiment ledger)."""
    from irq.fields import fmt_time
    from irq.ui import num

    if r.waiting_reason is not None and r.state == _IN_PROGRESS and (line := waiting_line(r, r.n_active > 0)):
        if r.depends_on and line.startswith("queued"):  # what its dependencies are now, not what the last submit saw
            if held := hold(r.depends_on, states):
                return f"queued locally, held: {held[0]}"
            if waits := pending(r.depends_on, states):
                return "queued locally, waiting for " + ", ".join(f"{d} ({states.get(d, 'unknown')})" for d in waits)
            if (r.waiting_reason or "").startswith("waiting for "):  # what it waited for has happened
                return "queued locally: its dependencies are done; the next submit or daemon cycle sends it"
        return line
    if r.state == _READY and r.depends_on:
        if held := hold(r.depends_on, states):
            return f"held: {held[0]}"
        if waits := pending(r.depends_on, states):
            return "waiting for " + ", ".join(f"{d} ({states.get(d, 'unknown')})" for d in waits)
    if r.attempt_state is None:
        return ""
    if r.attempt_backend == "imported" and r.attempt_state in _ACTIVE_NAMES:
        return f"{r.attempt_state} when imported; irq cannot ask about it (`irq record {r.id} HOW` once it ends)"
    if r.unknown_since:
        return f"state unknown since {fmt_time(r.unknown_since)} (scheduler unreachable)"
    if r.state == _FAILED:
        why = r.root_cause or r.error or r.attempt_state
        return why if len(why) <= 120 else why[:119] + "…"  # the whole of it: `irq show ID`
    if r.state == _DONE:
        return f"{r.val_key} {num(r.val)}" if r.val is not None else ""
    return r.attempt_state
