"""Reading queue.md (the seed's hand-written layout and irq's own export) into ledger rows.

The layout: a title, free preamble, then sections ``## READY``, ``## IN_PROGRESS``,
``## DONE``, ``## FAILED`` holding ``### Q-NNN: Title`` blocks of ``- **Key**: value``
bullets (with nested lists for Parameters and Results), and a ``Future Extensions``
checklist of proposed experiments. A block with a Status bullet is a submission attempt (or,
with ``QUEUED LOCALLY``, a request waiting for a job slot; with ``HELD LOCALLY``, one held
until the ``Fix`` it names is made); any other block defines the
experiment. Everything here is pure: it returns rows, the importer writes them. Reading the lines
(and their ``file:line`` errors) is ``queuelines``; here the blocks become rows.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from irq import errors
from irq.fields import (
    FieldError,
    ids_in,
    param_key,
    parse_code,
    parse_free_text,
    parse_resources,
    parse_scalar,
    parse_seeds,
    parse_text_field,
    parse_time,
    strip_backticks,
)
from irq.formats.blocks import DERIVED_KEYS
from irq.formats.queue_attempts import apply_queued, attempt_row
from irq.formats.queuelines import (
    SECTIONS,
    Block,
    Item,
    QueueDoc,
    read_blocks,
    read_text,
)
from irq.ledger.database import ID_RE
from irq.ledger.drafts import Draft, draft
from irq.ledger.models import Experiment
from irq.ledger.states import Priority, State, is_active
from irq.policy.dependencies import describe, find_cycle
from irq.policy.retry import RetryPolicy


def parse_file(path: Path) -> QueueDoc:
    text, repaired = read_text(path)
    doc = parse_text(text, str(path))
    doc.repaired_lines = repaired
    return doc


# -- meaning -------------------------------------------------------------------------------
def parse_text(text: str, src: str = "<queue.md>") -> QueueDoc:
    doc, blocks = read_blocks(text, src)
    defs: dict[str, tuple[Draft, Block]] = {}
    atts: dict[str, list[tuple[Draft, Block]]] = {}
    queued: dict[str, Block] = {}

    for b in blocks:
        if not ID_RE.match(b.exp_id):
            raise errors.ParseError(src, b.line, f"invalid experiment id {b.exp_id!r}",
                                    errors.InvalidId.default_hint)
        keys = {i.key for i in b.items}
        if b.checklist or "Status" not in keys or b.own_state():
            if b.exp_id in defs:
                raise errors.ParseError(src, b.line, f"duplicate id {b.exp_id} (first defined at line {defs[b.exp_id][1].line})")
            defs[b.exp_id] = (_definition(b, src), b)
        elif b.queued_mark or b.status.upper().startswith(("QUEUED", "HELD")):
            if b.exp_id in queued:
                raise errors.ParseError(src, b.line, f"{b.exp_id} is queued twice (also at line {queued[b.exp_id].line})")
            queued[b.exp_id] = b
        else:
            atts.setdefault(b.exp_id, []).append((attempt_row(b, src), b))

    order = list(dict.fromkeys(b.exp_id for b in blocks))  # first appearance (a list's `in` was quadratic)
    if doc.order:  # irq's export: keep the ledger's queue order, not the order of sections
        rank = {i: n for n, i in enumerate(doc.order)}
        order.sort(key=lambda i: rank.get(i, len(rank)))
    for seq, exp_id in enumerate(order, start=1):
        if exp_id in defs:
            exp, dblock = defs[exp_id]
        else:  # attempts without a definition: the heading gives the title
            first = (atts.get(exp_id) or [(None, queued.get(exp_id))])[0][1]
            exp, dblock = draft(Experiment, id=exp_id, seq=0, title=first.title), None
        exp.seq = seq
        exp_atts = _number_attempts(exp_id, atts.get(exp_id, []), src)
        if exp_id in queued:
            apply_queued(exp, queued[exp_id], src)
        if dblock is not None and dblock.checklist and (exp_atts or exp_id in queued):
            # a proposed experiment never ran (nothing moves back to PROPOSED), and queue.md shows
            # no attempt of one: imported as such, its attempts would vanish from the next export
            other = (atts.get(exp_id) or [(None, queued.get(exp_id))])[0][1]
            raise errors.ParseError(src, dblock.line, f"{exp_id} is in the proposed list but has "
                                    f"{'an attempt' if exp_atts else 'a local-queue entry'} (line {other.line}): "
                                    "a proposed experiment has never run",
                                    "move its definition into the section of its state (READY, FAILED, DONE), "
                                    "or remove that block")
        exp.state = _state(exp, dblock, exp_atts, exp_id in queued, doc.irq_format).value
        doc.experiments.append(exp)
        doc.attempts.extend(exp_atts)
    line = {i: d[1].line for i, d in defs.items()}
    for exp in doc.experiments:
        if unknown := [d for d in exp.depends_on if d not in defs and d not in atts]:
            raise errors.ParseError(src, line.get(exp.id), f"{exp.id} depends on unknown experiment {unknown[0]}")
    if cycle := find_cycle({e.id: e.depends_on for e in doc.experiments}):
        raise errors.ParseError(src, line.get(cycle[0]), f"dependency cycle: {describe(cycle)} (each would wait for itself)")
    return doc


def _state(exp: Draft, dblock: Block | None, atts: list[Draft], is_queued: bool,
           irq_format: bool) -> State:
    if dblock is not None and dblock.checklist:
        return State.PROPOSED
    if dblock is not None and (irq_format or dblock.section != "READY"):
        return SECTIONS[dblock.section]
    # the hand-written layout keeps every definition under READY: derive from the attempts
    if is_queued or any(is_active(a.state) for a in atts):
        return State.IN_PROGRESS
    if atts:
        return State.DONE if atts[-1].state == "COMPLETED" else State.FAILED
    return State.READY


def _number_attempts(exp_id: str, pairs: list[tuple[Draft, Block]], src: str) -> list[Draft]:
    numbered = [(a, b) for a, b in pairs if b.attempt_no is not None]
    seen: dict[int, int] = {}
    for a, b in numbered:
        if b.attempt_no in seen:
            raise errors.ParseError(src, b.line, f"{exp_id} attempt {b.attempt_no} appears twice (also at line {seen[b.attempt_no]})")
        seen[b.attempt_no] = b.line
        a.number = b.attempt_no
    rest = [a for a, b in pairs if b.attempt_no is None]
    far = parse_time("9999-12-31T00:00:00Z")
    rest.sort(key=lambda a: a.submitted_at or far)
    nxt = max(seen, default=0)
    for a in rest:
        nxt += 1
        a.number = nxt
    return sorted((a for a, _ in pairs), key=lambda a: a.number)


@dataclass
class _Gathered:
    """What a block's bullets add up to besides the row's own fields."""

    params: dict = field(default_factory=dict)
    ann: dict[str, str] = field(default_factory=dict)


def _d_parameters(exp: Draft, it: Item, g: _Gathered) -> None:
    if it.value:
        raise FieldError("Parameters takes a nested list ('  - Rank: 20'), not a value")
    for c in it.children:
        key = c.key if c.key_exact else param_key(c.key)
        value, note = parse_scalar(strip_backticks(c.value) if c.value.startswith("`") else c.value)
        g.params[key] = value
        if note:
            g.ann[f"parameters.{key}"] = note


def _d_priority(exp: Draft, it: Item, g: _Gathered) -> None:
    word, _, note = it.value.partition(" ")
    try:
        exp.priority = Priority(word.upper()).value
    except ValueError:
        raise FieldError(f"unknown priority {word!r} (HIGHEST, HIGH, MEDIUM or LOW)") from None
    if note.strip():
        g.ann["priority"] = note.strip()


def _dependency_ids(text: str) -> list[str]:
    """'Run after lr-01, lr-02 and Q-003' (what the export writes) as ids; else the Q-NNN ids in free text."""
    body = re.sub(r"^run after\s+", "", text.strip(), flags=re.I)
    parts = [p for p in re.split(r"\s+and\s+|\s*,\s*", body) if p]
    if parts and all(ID_RE.match(p) for p in parts):
        return parts
    return ids_in(text)


def _d_dependencies(exp: Draft, it: Item, g: _Gathered) -> None:
    exp.depends_on = _dependency_ids(it.value)
    if it.value != " and ".join(exp.depends_on):
        g.ann["dependencies"] = it.value
    if exp.id in exp.depends_on:
        raise FieldError(f"{exp.id} cannot depend on itself")


def _d_set(attr: str, parse: Callable[[str], Any] = str) -> Callable[[Draft, Item, _Gathered], None]:
    def setter(exp: Draft, it: Item, g: _Gathered) -> None:
        setattr(exp, attr, parse(it.value))

    return setter


def _d_mining(exp: Draft, it: Item, g: _Gathered) -> None:
    text, exact = parse_free_text(it.value)
    if exact:  # a JSON string: the text itself
        g.params["mining"] = text
        return
    if text.startswith("`"):
        g.params["mining"] = strip_backticks(text)
        return
    value, rest = parse_scalar(text)  # a number (or null, true, false) as blocks.parameter_lines writes it
    g.params["mining"] = value if rest is None else text  # hand-written words stay words ("2 steps")


# definition bullet (the seed's labels) -> what it sets; only Parameters takes a nested list
_DEF_SETTERS: dict[str, Callable[[Draft, Item, _Gathered], None]] = {
    "Hypothesis": _d_set("hypothesis", parse_text_field), "Notes": _d_set("notes", parse_text_field),
    "Config": _d_set("config_path", parse_code), "Command": _d_set("command", parse_code), "Mining Strategy": _d_mining,
    "Parameters": _d_parameters, "Resources": _d_set("resources", parse_resources),
    "Priority": _d_priority, "Dependencies": _d_dependencies, "Seeds": _d_set("seeds", parse_seeds),
    "Status": lambda exp, it, g: None,  # READY, DONE, …: what the section says (Block.own_state)
    "Retry": _d_set("retry_policy", lambda v: RetryPolicy.parse(v).to_dict()),
    # computed from the ledger at export (formats/blocks.py DERIVED_KEYS): nothing to read back
    **{k: (lambda exp, it, g: None) for k in DERIVED_KEYS},
}


def _definition(b: Block, src: str) -> Draft:
    exp = draft(Experiment, id=b.exp_id, seq=0, title=b.title, state=State.READY.value)
    g = _Gathered(ann={"checked": "x"} if b.checked else {})
    if wrong := b.misplaced():
        raise errors.ParseError(src, wrong[1], f"{b.exp_id} is under {'the proposed list' if b.checklist else b.section} "
                                f"but its Status says {wrong[0]}", "move it to the section of its state, or correct its Status")
    for it in b.items:
        setter = _DEF_SETTERS.get(it.key)
        if setter is None:
            raise errors.ParseError(src, it.line, f"unknown key {it.key!r} in the definition of {b.exp_id}",
                                    "known keys: " + ", ".join(_DEF_SETTERS))
        try:
            setter(exp, it, g)
        except FieldError as exc:
            raise errors.ParseError(src, it.line, str(exc)) from None
        if it.children and it.key != "Parameters":
            raise errors.ParseError(src, it.children[0].line, f"{it.key!r} takes no nested list")
    exp.parameters = g.params
    exp.annotations = g.ann
    return exp
