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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, TypeVar

from irq.fields import fmt_dependencies, fmt_list_key, fmt_list_value, fmt_resources, fmt_seeds
from irq.formats import export as x
from irq.formats.blocks import Line, lines_text, parameter_lines
from irq.formats.sql_blocks import attempt_pieces, definition_pieces
from irq.ledger import reader
from irq.ledger.reader import records
from irq.ledger.states import State

FORMAT_MARKER = "<!-- irq:queue v1"  # the line after the title: what import and export know irq's layout by
CHUNK = 500  # experiments' texts per written piece: large writes, never the whole file in memory
_DONE, _PROPOSED, _RETIRED = State.DONE.value, State.PROPOSED.value, State.RETIRED.value

# The parts of queue.md an experiment has text in, in the order they are written: its definition in
# its state's section, its attempts (and local-queue entry) in IN_PROGRESS and DONE, FAILED's
# definitions then every failed attempt, RETIRED, the proposed checklist. Within a part an
# experiment's blocks are consecutive, so its text there is one string (what export_cache keeps).
PARTS = ("READY", "IN_PROGRESS", "DONE", "FAILED", "FAILED attempts", _RETIRED, _PROPOSED)
Piece = TypeVar("Piece", str, bytes)


@dataclass
class Made:
    """The texts an export made, by experiment seq, one per part ("" where it has none): what
    an export cache keeps for next time."""

    texts: dict[int, list[str]] = field(default_factory=dict)

    def add(self, seq: int, part: int, text: str) -> None:
        self.texts.setdefault(seq, [""] * len(PARTS))[part] = text


def is_irq_export(text: str) -> bool:
    """Whether the text starts as `irq export` writes queue.md: a title line, then the marker."""
    first, _, rest = text.partition("\n")
    return first.startswith("# ") and rest.startswith(FORMAT_MARKER)


def head(conn: sqlite3.Connection, ids: Iterable[str]) -> str:
    """The title line, the order comment (every id in ledger order) and the preamble."""
    text = (f"# {reader.meta(conn, 'title') or x.DEFAULT_TITLE}\n{FORMAT_MARKER} (rendered from the ledger by "
            f"`irq export`; import with `irq import`) order: {' '.join(ids)} -->\n")
    if preamble := reader.meta(conn, "preamble"):
        text += f"\n{preamble}\n"
    return text


def layout_chunks(conn: sqlite3.Connection, derived: x.Derived, made: Made | None = None) -> Iterator[str]:
    """The packaged ``queue.md.j2`` layout, in pieces: header, then each section's blocks, written
    as SQL makes them (each experiment's texts also kept in `made`, when given)."""
    rows = conn.execute("SELECT id, state FROM experiment ORDER BY seq").fetchall()
    yield head(conn, (r[0] for r in rows))

    def part(k: int) -> Iterator[str]:
        fresh = _fresh(conn, PARTS[k], derived, None)
        return _chunked(t for _, t in (fresh if made is None else _recorded(fresh, k, made)))

    yield from sections(conn, any(r[1] == _RETIRED for r in rows), part)


def sections(conn: sqlite3.Connection, retired: bool, part: Callable[[int], Iterator[Piece]]) -> Iterator[str | Piece]:
    """The sections after the header: their headings, and each of PARTS in turn as `part(k)`
    writes it (str, or UTF-8 bytes an export cache kept). `retired`: whether any experiment is."""
    names = ["READY", "IN_PROGRESS", "DONE", "FAILED"]
    if retired:
        names.append(_RETIRED)  # only when there is one, as the template's view
    for name in names:
        yield f"\n---\n\n## {name}\n"
        for name_ in ("FAILED", "FAILED attempts") if name == "FAILED" else (name,):
            yield from part(PARTS.index(name_))
    proposed = part(PARTS.index(_PROPOSED))
    first = next(proposed, None)
    if first is not None:
        yield f"\n---\n\n## {reader.meta(conn, 'future_heading') or 'Future Extensions'}\n"
        yield first
        yield from proposed


def made_for(conn: sqlite3.Connection, derived: x.Derived, ids: list[str]) -> Made:
    """The texts of these experiments only, in every part (SQL looks up their rows by id)."""
    made, among = Made(), json.dumps(ids)
    for k, name in enumerate(PARTS):
        for _ in _recorded(_fresh(conn, name, derived, among), k, made):
            pass
    return made


def _recorded(fresh: Iterator[tuple[int, str]], k: int, made: Made) -> Iterator[tuple[int, str]]:
    for seq, text in fresh:
        made.add(seq, k, text)
        yield seq, text


def _fresh(conn: sqlite3.Connection, part: str, derived: x.Derived, among: str | None) -> Iterator[tuple[int, str]]:
    """(seq, text) of each experiment with blocks in a part, made from SQL (`among`: a JSON array
    of the only ids to make, else all), its blocks ordered as ``export.build_view`` orders them:
    definition, then attempts by number, then its local-queue entry."""
    blocks: Iterator[tuple[Any, ...]]
    if part == "FAILED attempts":
        blocks = _attempts(conn, "FAILED", among)
    else:
        blocks = _keyed(_definitions(conn, part, derived, among))
        if part in ("IN_PROGRESS", _DONE):
            params = () if among is None else (among,)
            queued = ((e.seq, 2, 0, x.queued_view(e).text) for e in records(conn, x.queued_sql(among is not None), params)) \
                if part == "IN_PROGRESS" else iter(())
            blocks = heapq.merge(blocks, _attempts(conn, part, among), queued)
    prefix = "" if part == _PROPOSED else "\n"
    for seq, group in itertools.groupby(blocks, key=itemgetter(0)):
        yield seq, "".join([prefix + t for *_, t in group])


def _chunked(texts: Iterable[str]) -> Iterator[str]:
    """CHUNK texts (none of them empty) at a time, joined: fewer, larger writes."""
    it = iter(texts)
    while piece := "".join(itertools.islice(it, CHUNK)):
        yield piece


def _keyed(texts: Iterator[tuple[int, str]]) -> Iterator[tuple[int, int, int, str]]:
    """Definitions keyed as build_view keys them: before their experiment's attempts (kind 1)
    and local-queue entry (kind 2)."""
    return ((seq, 0, 0, text) for seq, text in texts)


def _definitions(conn: sqlite3.Connection, section: str, derived: x.Derived, among: str | None) -> Iterator[tuple[int, str]]:
    """(seq, text) of each experiment in a state, as ``export.definition_view`` renders it (the
    proposed ones as the template's checklist); `among`: a JSON array of the only ids wanted."""
    done, proposed = section == _DONE, section == _PROPOSED
    indent = "  " if proposed else ""
    report = x.report_of(conn) if done else None
    setups: dict[tuple[str, str, str], str] = {}  # a sweep's experiments repeat their resources and parameters
    sql = x.definitions_sql(section, f"e.seq, e.id, e.parameters, e.seeds, e.resources, e.depends_on, "
                                     f"{definition_pieces(proposed)}", among=among is not None)
    params = (section,) if among is None else (section, among)
    for seq, exp_id, params_, seeds, resources, depends, first, priority, notes, *done_results in conn.execute(sql, params):
        if first is None:
            text = _definition_in_python(conn, section, exp_id, report, derived)
        else:
            key = params_, seeds, resources
            if (setup := setups.get(key)) is None:
                setup = setups[key] = lines_text(_setup_lines(*key), indent)
            text = first + setup + priority + (_dependencies(depends, indent) if depends != "[]" else "") + notes
            if done:
                results = json.loads(done_results[0] or "{}")
                text += lines_text(x.derived_lines(exp_id, results, report, derived))
        yield seq, text


def _results(raw: str) -> str:
    """blocks.results_line as BlockView.text writes it, for an attempt without annotations: the
    one JSON column most attempts that ran have, so written here without the Line objects."""
    results = json.loads(raw)
    if not results:
        return ""
    return "- **Results**:\n" + "".join([f"  - {fmt_list_key(k)}: {fmt_list_value(v)}\n" for k, v in results.items()])


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


def _attempts(conn: sqlite3.Connection, section: str, among: str | None) -> Iterator[tuple[int, int, int, str]]:
    """(seq, 1, number, text) of the attempts a section shows (`among`: of those experiments only)."""
    sql, states = x.attempts_sql(section, f"e.seq, a.number, a.id, a.modules, a.results, {attempt_pieces(section == _DONE)}",
                                 among is not None)
    one = ""
    for seq, number, attempt_id, modules, results, first, second, third in conn.execute(sql, states + ((among,) if among is not None else ())):
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
