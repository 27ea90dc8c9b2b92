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
from urllib.parse import quote

from irq.formats.blocks import (
    BlockView,
    Line,
    attempt_lines,
    definition_lines,
    headline,
    queued_lines,
    queued_mark,
)
from irq.fields import fmt_title
from irq.ledger import reader
from irq.ledger.reader import records
from irq.ledger.states import ACTIVE_STATES, SUCCESS_STATES, State

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

    def link(text: str, path: str) -> str:
        """A markdown link whose destination holds no space or parenthesis (a path with them is
        no link in CommonMark): percent-encoded, and its text with brackets escaped."""
        shown = text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
        return f"[{shown}]({quote(path, safe='/#')})"

    summary = f"{rel(report['summary'])}#{exp_id}"  # the report's anchor is the id as it is (report.py)
    figures = ", ".join(link(Path(f).stem, rel(f)) for f in report.get("figures", ()))
    return Line("Report", link(summary, summary) + (f"; figures: {figures}" if figures else ""))


def derived_lines(exp_id: str, results: dict[str, Any], report: dict[str, Any] | None, derived: Derived) -> list[Line]:
    """A DONE entry's Headline (latest completed attempt) and Report lines; import skips both."""
    out = []
    if h := headline(results, derived.metric):
        out.append(Line("Headline", f"{h} ({'lower' if derived.goal == 'min' else 'higher'} is better)"))
    if line := _report_line(report, exp_id, derived):
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
        queued = _queued(conn) if name == "IN_PROGRESS" else iter(())
        return (t[-1] for t in heapq.merge(_definitions(conn, name, derived), _attempts(conn, name), queued))

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


_LATEST_SUCCESS = ("(SELECT a.results FROM attempt a WHERE a.experiment_id = e.id AND a.state IN ({}) "
                   "ORDER BY a.number DESC LIMIT 1) AS done_results").format(
    ", ".join(f"'{getattr(s, 'value', s)}'" for s in SUCCESS_STATES))


def report_of(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """Where `irq report` last wrote its summary (REPORT_META), for the DONE entries' links."""
    return json.loads(reader.meta(conn, REPORT_META) or "null")


def definition_view(e: Any, section: str, report: dict[str, Any] | None, derived: Derived) -> BlockView:
    """An experiment's definition block in its section: a checklist item among the proposed
    ones, with the derived lines (headline metric, report links) in DONE."""
    if section == State.PROPOSED.value:
        mark = "x" if e.annotations.get("checked") else " "
        return BlockView(f"- [{mark}] **{e.id}**: {fmt_title(e.title)}", definition_lines(e))
    lines = definition_lines(e)
    if section == State.DONE.value:
        lines += derived_lines(e.id, json.loads(e.done_results or "{}"), report, derived)
    return BlockView(f"{e.id}: {fmt_title(e.title)}", lines)


def queued_view(e: Any) -> BlockView:
    """An IN_PROGRESS experiment's local-queue entry (waiting for a slot, or held)."""
    return BlockView(f"{e.id}: {fmt_title(e.title)} ({queued_mark(e)})", queued_lines(e))


def attempt_view(a: Any, section: str) -> BlockView:
    """An attempt's block; `a` carries its experiment's title as `title_`."""
    heading = f"{a.experiment_id}: {fmt_title(a.title_)} - ATTEMPT {a.number}"
    return BlockView(heading + (" ✓ COMPLETED" if section == "DONE" else ""), attempt_lines(a))


# the experiments whose ids are in the JSON array of the last parameter (an export cache's misses):
# few, as a rule, so their rows are looked up by id, the state's index left unused (the `+`)
AMONG = "e.id IN (SELECT value FROM json_each(?))"


def definitions_sql(section: str, columns: str = "*", one: bool = False, among: bool = False) -> str:
    """The experiments a section defines, in queue order (DONE: with its latest success's
    results); `one`: only the one whose id is the second parameter; `among`: only those AMONG."""
    extra = f", {_LATEST_SUCCESS}" if section == State.DONE.value else ""
    where = "e.state = ? AND e.id = ?" if one else f"+e.state = ? AND {AMONG}" if among else "e.state = ?"
    return f"SELECT {columns}{extra} FROM experiment e WHERE {where} ORDER BY e.seq"


def queued_sql(among: bool = False) -> str:
    """The local-queue entries IN_PROGRESS shows (blocks.queue_entry): few, so always built in Python."""
    state = "+e.state" if among else "e.state"
    return (f"SELECT * FROM experiment e WHERE {state} = 'IN_PROGRESS' AND e.waiting_reason IS NOT NULL"
            f"{' AND ' + AMONG if among else ''} ORDER BY e.seq")


QUEUED_SQL = queued_sql()


ATTEMPT_SQL = "SELECT e.title AS title_, {} FROM attempt a JOIN experiment e ON e.id = a.experiment_id WHERE a.id = ?"


def attempts_sql(section: str, columns: str, among: bool = False) -> tuple[str, tuple[str, ...]]:
    """The attempts a section shows (completed in DONE, active in IN_PROGRESS, every other one
    in FAILED) with `columns` of `a` (attempt) and `e` (its experiment), in queue order;
    `among`: only those of the experiments AMONG (a parameter after the states)."""
    kinds = {"DONE": SUCCESS_STATES, "IN_PROGRESS": ACTIVE_STATES}
    states = tuple(str(getattr(st, "value", st)) for st in kinds.get(section, SUCCESS_STATES | ACTIVE_STATES))
    cond = ("NOT " if section == "FAILED" else "") + f"{'+' if among else ''}a.state IN ({', '.join('?' for _ in states)})"
    mine = " AND " + AMONG.replace("e.id", "a.experiment_id") if among else ""  # by the attempts' own index
    return (f"SELECT {columns} FROM attempt a JOIN experiment e ON e.id = a.experiment_id "
            f"WHERE e.state != 'PROPOSED' AND {cond}{mine} ORDER BY e.seq, a.number"), states


def _definitions(conn: sqlite3.Connection, section: str, derived: Derived) -> Iterator[tuple[Any, ...]]:
    """(seq, 0, definition block) of the experiments in a state."""
    report = report_of(conn) if section == State.DONE.value else None
    for e in records(conn, definitions_sql(section), (section,)):
        yield e.seq, 0, definition_view(e, section, report, derived)


def _queued(conn: sqlite3.Connection) -> Iterator[tuple[Any, ...]]:
    """(seq, 2, block) of each local-queue entry: after that experiment's attempts."""
    for e in records(conn, QUEUED_SQL):
        yield e.seq, 2, queued_view(e)


def _attempts(conn: sqlite3.Connection, section: str) -> Iterator[tuple[Any, ...]]:
    """(seq, 1, number, block) of the attempts a section shows; never the job script."""
    if section == "READY":
        return
    cols = ", ".join(f"a.{c}" for c in attempt_columns(conn))
    sql, states = attempts_sql(section, f"e.seq AS seq_, e.title AS title_, {cols}")
    for a in records(conn, sql, states):
        yield a.seq_, 1, a.number, attempt_view(a, section)


def attempt_columns(conn: sqlite3.Connection) -> list[str]:
    return [r[1] for r in conn.execute("PRAGMA table_info(attempt)") if r[1] != "script"]


def export_pieces(ledger: Any, template_dir: Path | None = None, derived: Derived | None = None,
                  jinja: bool | None = None) -> Iterator[str | bytes]:
    """queue.md in pieces, rendered block by block inside one read snapshot of the ledger: str,
    or UTF-8 bytes that the export cache kept (irq/formats/export_cache.py), to be written as they are.

    A project's own ``queue.md.j2`` is rendered by Jinja from ``build_view``; the packaged
    layout is written by ``queue_layout`` without Jinja, with the same bytes (`jinja`: force
    one way, for tests)."""
    from irq.formats import render

    path = Path(getattr(ledger, "path", ledger))
    if jinja is None:
        jinja = render.overridden("queue.md.j2", template_dir)
    with reader.reading(path) as conn:
        if jinja:
            yield from render.render_stream("queue.md.j2", {"q": build_view(conn, derived)}, template_dir)
        else:
            from irq.formats import export_cache

            yield from export_cache.layout_chunks(conn, derived or Derived(), export_cache.cache_path(path))


def export_chunks(ledger: Any, template_dir: Path | None = None, derived: Derived | None = None,
                  jinja: bool | None = None) -> Iterator[str]:
    """queue.md in pieces of text (export_pieces, the kept bytes decoded)."""
    for piece in export_pieces(ledger, template_dir, derived, jinja):
        yield piece if isinstance(piece, str) else piece.decode("utf-8")


def export_text(ledger: Any, template_dir: Path | None = None, derived: Derived | None = None,
                jinja: bool | None = None) -> str:
    return "".join(export_chunks(ledger, template_dir, derived, jinja))
