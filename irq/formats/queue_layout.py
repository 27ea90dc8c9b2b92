"""queue.md in the packaged template's layout, written without Jinja.

`irq export` of a 10,000-experiment ledger writes some 45,000 blocks. When no project template
overrides ``queue.md.j2`` the layout is the packaged one, and this module writes it directly:
each block's text comes from SQLite (``sql_blocks``), and only the rows SQL cannot format
(annotations, array tasks, free-text extras, retry policies, local-queue entries) are decoded
and rendered in Python (``export.definition_view`` and friends). The output is byte for byte
what the packaged template renders; ``tests/test_export_fast.py`` compares the two.
"""
from __future__ import annotations

import heapq
import itertools
import json
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from irq.fields import fmt_dependencies, fmt_resources, fmt_scalar, fmt_seeds
from irq.formats import export as x
from irq.formats.blocks import Line, lines_text, parameter_lines
from irq.formats.sql_blocks import attempt_pieces, definition_pieces
from irq.ledger import reader
from irq.ledger.reader import records
from irq.ledger.states import State

CHUNK = 500  # blocks per written piece: large writes, never the whole file in memory
_DONE, _PROPOSED = State.DONE.value, State.PROPOSED.value


def layout_chunks(conn: sqlite3.Connection, derived: x.Derived) -> Iterator[str]:
    """The packaged ``queue.md.j2`` layout, in pieces: header, then each section's blocks."""
    order = " ".join(r[0] for r in conn.execute("SELECT id FROM experiment ORDER BY seq"))
    head = (f"# {reader.meta(conn, 'title') or x.DEFAULT_TITLE}\n<!-- irq:queue v1 (rendered from the ledger by "
            f"`irq export`; import with `irq import`) order: {order} -->\n")
    if preamble := reader.meta(conn, "preamble"):
        head += f"\n{preamble}\n"
    yield head
    sections = ["READY", "IN_PROGRESS", "DONE", "FAILED"]
    if conn.execute("SELECT 1 FROM experiment WHERE state = ? LIMIT 1", (State.RETIRED.value,)).fetchone():
        sections.append(State.RETIRED.value)  # only when there is one, as the template's view
    for name in sections:
        yield f"\n---\n\n## {name}\n"
        yield from _chunked("\n" + t for t in _section(conn, name, derived))
    proposed = _chunked(_definitions(conn, _PROPOSED, derived))
    first = next(proposed, None)
    if first is not None:
        yield f"\n---\n\n## {reader.meta(conn, 'future_heading') or 'Future Extensions'}\n" + first
        yield from proposed


def _chunked(texts: Iterable[str]) -> Iterator[str]:
    """CHUNK texts at a time, joined: fewer, larger writes."""
    it = iter(texts)
    while piece := "".join(itertools.islice(it, CHUNK)):
        yield piece


def _section(conn: sqlite3.Connection, name: str, derived: x.Derived) -> Iterator[str]:
    """A section's block texts in queue order, as ``export.build_view`` has them: experiments'
    definitions merged with the attempts it shows (and IN_PROGRESS's local-queue entries);
    FAILED lists its attempts last; READY and RETIRED show definitions only."""
    defs = _keyed(_definitions(conn, name, derived))
    if name in ("READY", State.RETIRED.value):  # definitions only
        return (t for *_, t in defs)
    attempts = _attempts(conn, name)
    if name == "FAILED":
        return (t for *_, t in itertools.chain(defs, attempts))
    queued = ((e.seq, 2, 0, x.queued_view(e).text) for e in records(conn, x.QUEUED_SQL)) \
        if name == "IN_PROGRESS" else iter(())
    return (t for *_, t in heapq.merge(defs, attempts, queued))


def _keyed(texts: Iterator[tuple[int, str]]) -> Iterator[tuple[int, int, int, str]]:
    """Definitions keyed as build_view keys them: before their experiment's attempts (kind 1)
    and local-queue entry (kind 2)."""
    return ((seq, 0, 0, text) for seq, text in texts)


def _definitions(conn: sqlite3.Connection, section: str, derived: x.Derived) -> Iterator[Any]:
    """(seq, text) of each experiment in a state, as ``export.definition_view`` renders it;
    the proposed ones as bare texts (their section is not merged with anything)."""
    done, proposed = section == _DONE, section == _PROPOSED
    indent = "  " if proposed else ""
    report = x.report_of(conn) if done else None
    setups: dict[tuple[str, str, str], str] = {}  # a sweep's experiments repeat their resources and parameters
    sql = x.definitions_sql(section, f"e.seq, e.id, e.parameters, e.seeds, e.resources, e.depends_on, "
                                     f"{definition_pieces(proposed)}")
    for seq, exp_id, params, seeds, resources, depends, first, priority, notes, *done_results in conn.execute(sql, (section,)):
        if first is None:
            text = _definition_in_python(conn, section, exp_id, report, derived)
        else:
            key = params, seeds, resources
            if (setup := setups.get(key)) is None:
                setup = setups[key] = lines_text(_setup_lines(*key), indent)
            text = first + setup + priority + (_dependencies(depends, indent) if depends != "[]" else "") + notes
            if done:
                results = json.loads(done_results[0] or "{}")
                text += lines_text(x.derived_lines(exp_id, results, report, derived))
        yield text if proposed else (seq, text)


def _results(raw: str) -> str:
    """blocks.results_line as BlockView.text writes it, for an attempt without annotations: the
    one JSON column most attempts that ran have, so written here without the Line objects."""
    results = json.loads(raw)
    if not results:
        return ""
    return "- **Results**:\n" + "".join([f"  - {k}: {fmt_scalar(v)}\n" for k, v in results.items()])


def _dependencies(raw: str, indent: str) -> str:
    deps = json.loads(raw)
    return lines_text([Line("Dependencies", fmt_dependencies(deps, None))], indent) if deps else ""


def _setup_lines(params: str, seeds: str, resources: str) -> list[Line]:
    """An experiment's parameters, seeds and resources (from their JSON), as definition_lines has them."""
    lines = parameter_lines(json.loads(params), {})
    if s := json.loads(seeds):
        lines.append(Line("Seeds", fmt_seeds(s)))
    if r := json.loads(resources):
        lines.append(Line("Resources", fmt_resources(r)))
    return lines


def _definition_in_python(conn: sqlite3.Connection, section: str, exp_id: str,
                          report: dict[str, Any] | None, derived: x.Derived) -> str:
    e = next(records(conn, x.definitions_sql(section, one=True), (section, exp_id)))
    view = x.definition_view(e, section, report, derived)
    if section == _PROPOSED:  # the template's checklist layout: indented bullets under the item
        return f"{view.heading}\n{lines_text(view.lines, '  ')}"
    return view.text


def _attempts(conn: sqlite3.Connection, section: str) -> Iterator[tuple[int, int, int, str]]:
    """(seq, 1, number, text) of the attempts a section shows."""
    sql, states = x.attempts_sql(section, f"e.seq, a.number, a.id, a.modules, a.results, {attempt_pieces(section == _DONE)}")
    one = ""
    for seq, number, attempt_id, modules, results, first, second, third in conn.execute(sql, states):
        if first is None:  # a row SQL does not format: decoded and rendered as the template's view does
            one = one or x.ATTEMPT_SQL.format(", ".join(f"a.{c}" for c in x.attempt_columns(conn)))
            text = x.attempt_view(next(records(conn, one, (attempt_id,))), section).text
        else:
            text = first
            if modules != "[]" and (mods := ", ".join(json.loads(modules))):
                text += f"- **Modules**: {mods}\n"
            text += second
            if results != "{}":
                text += _results(results)
            text += third
        yield seq, 1, number, text
