"""queue.md from the ledger: the seed's layout, rendered by ``irq/formats/templates/queue.md.j2``.

This module turns rows into blocks of ready-made bullet lines (the canonical text forms in
``fields``); the template only lays them out. Import of the result gives back the same rows.
"""
from __future__ import annotations

import heapq
import itertools
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irq.formats.blocks import (
    BlockView,
    Line,
    attempt_lines,
    definition_lines,
    headline,
    queued_lines,
    queued_mark,
)
from irq.formats.render import render_stream
from irq.ledger import reader
from irq.ledger.reader import records
from irq.ledger.states import ACTIVE_STATES, SUCCESS_STATES, State, queue_entry

DEFAULT_TITLE = "Experiment Queue"
REPORT_META = "report"  # ledger meta: where `irq report` last wrote the summary, its figures, its ids


@dataclass(frozen=True)
class Derived:
    """What a DONE entry shows beyond its rows: the project's headline metric, and links to the
    report that covers it. Links are relative to the folder queue.md is written to."""

    metric: str = "val_mse"
    goal: str = "min"
    dest_dir: Path | None = None  # None: the working directory (queue.md on stdout)


def report_record(summary: Path, figures: list[Path], ids: list[str]) -> str:
    """The REPORT_META value `irq report` stores: absolute paths, so any export can link them."""
    return json.dumps({"summary": str(summary.resolve()), "ids": ids,
                       "figures": [str(f.resolve()) for f in figures if f.suffix == ".png"]})


def _report_line(report: dict[str, Any] | None, exp_id: str, derived: Derived) -> Line | None:
    if not report or exp_id not in report.get("ids", ()):
        return None
    base = derived.dest_dir or Path.cwd()

    def rel(p: str) -> str:
        return Path(os.path.relpath(p, base)).as_posix()

    summary = f"{rel(report['summary'])}#{exp_id.lower()}"
    figures = ", ".join(f"[{Path(f).stem}]({rel(f)})" for f in report.get("figures", ()))
    return Line("Report", f"[{summary}]({summary})" + (f"; figures: {figures}" if figures else ""))


def derived_lines(e: Any, results: dict[str, Any], report: dict[str, Any] | None, derived: Derived) -> list[Line]:
    """A DONE entry's Headline (latest completed attempt) and Report lines; import skips both."""
    out = []
    if h := headline(results, derived.metric):
        out.append(Line("Headline", f"{h} ({'lower' if derived.goal == 'min' else 'higher'} is better)"))
    if line := _report_line(report, e.id, derived):
        out.append(line)
    return out


@dataclass
class QueueView:
    order: list[str]
    title: str
    preamble: str
    sections: dict[str, Iterator[BlockView]]  # generators: read and rendered one block at a time
    future_heading: str
    proposed: list[BlockView]


def build_view(conn: sqlite3.Connection, derived: Derived | None = None) -> QueueView:
    """The view of the whole ledger, its sections as generators: each reads its rows from SQL
    (experiments and attempts merged in queue order) only when the template reaches it."""
    derived = derived or Derived()

    def section(name: str) -> Iterator[BlockView]:
        return (t[-1] for t in heapq.merge(_definitions(conn, name, derived), _attempts(conn, name)))

    sections = {k: section(k) for k in ("READY", "IN_PROGRESS", "DONE")}
    sections["FAILED"] = (t[-1] for t in itertools.chain(_definitions(conn, "FAILED", derived),
                                                          _attempts(conn, "FAILED")))
    if conn.execute("SELECT 1 FROM experiment WHERE state = ? LIMIT 1", (State.RETIRED.value,)).fetchone():
        # only when there is one: files without a RETIRED section read as before
        sections["RETIRED"] = (t[-1] for t in _definitions(conn, State.RETIRED.value, derived))
    proposed = [b for *_, b in _definitions(conn, State.PROPOSED.value, derived)]
    return QueueView(
        order=[r[0] for r in conn.execute("SELECT id FROM experiment ORDER BY seq")],
        title=reader.meta(conn, "title") or DEFAULT_TITLE,
        preamble=reader.meta(conn, "preamble") or "",
        sections=sections,  # type: ignore[arg-type]
        future_heading=reader.meta(conn, "future_heading") or "Future Extensions",
        proposed=proposed,
    )


_LATEST_SUCCESS = ("(SELECT a.results FROM attempt a WHERE a.experiment_id = experiment.id AND a.state IN ({}) "
                   "ORDER BY a.number DESC LIMIT 1) AS done_results")


def _definitions(conn: sqlite3.Connection, section: str, derived: Derived) -> Iterator[tuple[Any, ...]]:
    """(seq, 0, definition block) of the experiments in a state; IN_PROGRESS also gives each
    local-queue entry as (seq, 2, block), after that experiment's attempts; DONE adds the
    derived lines (headline metric, report links)."""
    where = "state = ?" if section != "IN_PROGRESS" else "(state = ? OR waiting_reason IS NOT NULL)"
    done = section == State.DONE.value
    extra = ", " + _LATEST_SUCCESS.format(", ".join(f"'{getattr(s, 'value', s)}'" for s in SUCCESS_STATES)) if done else ""
    report = json.loads(reader.meta(conn, REPORT_META) or "null") if done else None
    for e in records(conn, f"SELECT *{extra} FROM experiment WHERE {where} ORDER BY seq", (section,)):
        if section == State.PROPOSED.value:
            mark = "x" if e.annotations.get("checked") else " "
            yield e.seq, 0, BlockView(f"- [{mark}] **{e.id}**: {e.title}", definition_lines(e))
            continue
        if e.state == section:
            lines = definition_lines(e)
            if done:
                lines += derived_lines(e, json.loads(e.done_results or "{}"), report, derived)
            yield e.seq, 0, BlockView(f"{e.id}: {e.title}", lines)
        if section == "IN_PROGRESS" and queue_entry(e) is not None:
            yield e.seq, 2, BlockView(f"{e.id}: {e.title} ({queued_mark(e)})", queued_lines(e))


def _attempts(conn: sqlite3.Connection, section: str) -> Iterator[tuple[Any, ...]]:
    """(seq, 1, number, block) of the attempts a section shows: completed in DONE, active in
    IN_PROGRESS, every other one in FAILED; never the job script."""
    if section == "READY":
        return
    kinds = {"DONE": SUCCESS_STATES, "IN_PROGRESS": ACTIVE_STATES}
    states = [str(getattr(st, "value", st)) for st in kinds.get(section, SUCCESS_STATES | ACTIVE_STATES)]
    cond = ("NOT " if section == "FAILED" else "") + f"a.state IN ({', '.join('?' for _ in states)})"
    cols = ", ".join(f"a.{c}" for c in _attempt_columns(conn))
    sql = (f"SELECT e.seq AS seq_, e.title AS title_, {cols} FROM attempt a JOIN experiment e "
           f"ON e.id = a.experiment_id WHERE e.state != 'PROPOSED' AND {cond} ORDER BY e.seq, a.number")
    for a in records(conn, sql, tuple(states)):
        heading = f"{a.experiment_id}: {a.title_} - ATTEMPT {a.number}"
        if section == "DONE":
            heading += " ✓ COMPLETED"
        yield a.seq_, 1, a.number, BlockView(heading, attempt_lines(a))


def _attempt_columns(conn: sqlite3.Connection) -> list[str]:
    return [r[1] for r in conn.execute("PRAGMA table_info(attempt)") if r[1] != "script"]


def export_chunks(ledger: Any, template_dir: Path | None = None, derived: Derived | None = None) -> Iterator[str]:
    """queue.md in pieces, rendered block by block inside one read snapshot of the ledger."""
    path = Path(getattr(ledger, "path", ledger))
    with reader.reading(path) as conn:
        yield from render_stream("queue.md.j2", {"q": build_view(conn, derived)}, template_dir)


def export_text(ledger: Any, template_dir: Path | None = None, derived: Derived | None = None) -> str:
    return "".join(export_chunks(ledger, template_dir, derived))
