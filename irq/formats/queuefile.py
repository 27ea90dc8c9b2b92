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
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from irq import errors
from irq.fields import (
    ID_SHAPED,
    SBATCH_UNSAFE,
    FieldError,
    param_key,
    parse_code,
    parse_free_text,
    parse_resources,
    parse_scalar,
    parse_seeds,
    parse_text_field,
    parse_time,
    strip_backticks,
    words_in,
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
from irq.policy.limits import beyond
from irq.policy.retry import RetryPolicy


def parse_file(path: Path, known: Collection[str] = ()) -> QueueDoc:
    """`known`: the ids already in the ledger, which dependencies may name besides the file's."""
    text, repaired = read_text(path)
    doc = parse_text(text, str(path), known)
    doc.repaired_lines = repaired
    return doc


# -- meaning -------------------------------------------------------------------------------
def parse_text(text: str, src: str = "<queue.md>", known: Collection[str] = ()) -> QueueDoc:
    if (at := text.find("\x00")) >= 0:  # it would reach a job's shell, which drops it silently
        raise errors.ParseError(src, text.count("\n", 0, at) + 1, "a NUL character: a queue.md is text",
                                "remove it (binary data pasted in?)")
    doc, blocks = read_blocks(text, src)
    named = {b.exp_id for b in blocks}.union(known)  # what free-text dependencies may name
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
            defs[b.exp_id] = (_definition(b, src, named), b)
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
        exp, exp_atts = _experiment(exp_id, defs.get(exp_id), atts.get(exp_id, []), queued.get(exp_id), doc, src)
        exp.seq = seq
        doc.experiments.append(exp)
        doc.attempts.extend(exp_atts)
    _check_dependencies(doc, {i: d[1].line for i, d in defs.items()}, set(defs) | set(atts) | set(known), src)
    return doc


def _experiment(exp_id: str, defined: tuple[Draft, Block] | None, atts: list[tuple[Draft, Block]],
                queued: Block | None, doc: QueueDoc, src: str) -> tuple[Draft, list[Draft]]:
    """An experiment's row and its attempts' rows, its state from its section (irq's layout) or
    from its attempts (the hand-written one), checked against each other."""
    if defined is not None:
        exp, dblock = defined
    else:  # attempts without a definition: the heading gives the title
        first = (atts or [(None, queued)])[0][1]
        exp, dblock = draft(Experiment, id=exp_id, seq=0, title=first.title), None
    exp_atts = _number_attempts(exp_id, atts, src)
    if queued is not None:
        apply_queued(exp, queued, src)
    if dblock is not None and dblock.checklist and (exp_atts or queued is not None):
        # a proposed experiment never ran (nothing moves back to PROPOSED), and queue.md shows
        # no attempt of one: imported as such, its attempts would vanish from the next export
        other = (atts or [(None, queued)])[0][1]
        raise errors.ParseError(src, dblock.line, f"{exp_id} is in the proposed list but has "
                                f"{'an attempt' if exp_atts else 'a local-queue entry'} (line {other.line}): "
                                "a proposed experiment has never run",
                                "move its definition into the section of its state (READY, FAILED, DONE), "
                                "or remove that block")
    exp.state = _state(exp, dblock, exp_atts, queued is not None, doc.irq_format).value
    _check_state(exp, dblock, atts, queued is not None, src)
    return exp, exp_atts


def _check_state(exp: Draft, dblock: Block | None, atts: list[tuple[Draft, Block]], is_queued: bool,
                 src: str) -> None:
    """A section that says other than the attempts (a block moved by hand, a Status edited) would
    leave an experiment no command can move on: a job that runs is IN_PROGRESS, and IN_PROGRESS
    has a job (running, or ended and not yet fetched by its backend) or a local-queue entry."""
    where = dblock.line if dblock is not None else None
    running = [(a, b) for a, b in atts if is_active(a.state)]
    if running and exp.state != State.IN_PROGRESS.value:
        a, b = running[-1]
        raise errors.ParseError(src, where, f"{exp.id} is under {exp.state} but its attempt {a.number} is {a.state} "
                                f"(line {b.line})", "a job that runs is IN_PROGRESS: move the definition there, "
                                "or correct the attempt's Status")
    last = max((a for a, _b in atts), key=lambda a: a.number, default=None)
    unfetched = last is not None and last.backend != "imported" and last.fetched_at is None
    if exp.state == State.IN_PROGRESS.value and not (running or is_queued or unfetched):
        raise errors.ParseError(src, where, f"{exp.id} is under IN_PROGRESS but has no running job, no job left "
                                "to fetch and no local-queue entry",
                                "move it to the section of its state (READY, DONE or FAILED)")


def _check_dependencies(doc: QueueDoc, line: dict[str, int], known: set[str], src: str) -> None:
    """Every dependency names an experiment of the file or the ledger, and none waits for itself."""
    for exp in doc.experiments:
        if unknown := [d for d in exp.depends_on if d not in known]:
            raise errors.ParseError(src, line.get(exp.id), f"{exp.id} depends on unknown experiment {unknown[0]}",
                                    "name an experiment of this file or of the ledger (`irq status --all`)")
    if cycle := find_cycle({e.id: e.depends_on for e in doc.experiments}):
        raise errors.ParseError(src, line.get(cycle[0]), f"dependency cycle: {describe(cycle)} (each would wait for itself)")


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


MAX_ATTEMPT = 1_000_000  # an attempt's number (SQLite's integers end at 2**63; no study gets near this)


def _number_attempts(exp_id: str, pairs: list[tuple[Draft, Block]], src: str) -> list[Draft]:
    numbered = [(a, b) for a, b in pairs if b.attempt_no is not None]
    seen: dict[int, int] = {}
    for a, b in numbered:
        if b.attempt_no < 1:
            raise errors.ParseError(src, b.line, f"{exp_id} attempt {b.attempt_no}: attempts are numbered from 1",
                                    "number the attempts 1, 2, 3, …")
        if b.attempt_no > MAX_ATTEMPT:
            raise errors.ParseError(src, b.line, f"{exp_id} attempt {b.attempt_no} is past the last number irq keeps "
                                    f"({MAX_ATTEMPT:,})", "number the attempts 1, 2, 3, …")
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
    """What a block's bullets add up to besides the row's own fields; `named`: the ids a free-text
    dependency may name (the file's and the ledger's)."""

    params: dict = field(default_factory=dict)
    ann: dict[str, str] = field(default_factory=dict)
    named: Collection[str] = ()


def _d_parameters(exp: Draft, it: Item, g: _Gathered) -> None:
    if it.value:
        raise FieldError("Parameters takes a nested list ('  - Rank: 20'), not a value")
    for c in it.children:
        key = c.key if c.key_exact else param_key(c.key)
        if key in g.params:
            raise FieldError(f"parameter {key!r} is given twice (line {c.line}): only one value can be kept")
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


NO_DEPENDENCY = frozenset({"none", "no", "nothing", "independent", "standalone", "tbd", "n/a", "na", "-", "—"})


def _dependency_ids(text: str, named: Collection[str]) -> list[str]:
    """'Run after lr-01, lr-02 and Q-003' (what the export writes) as ids; in free text ('Run after
    lr-01 for comparison'), the words that name an experiment of the file or the ledger."""
    body = re.sub(r"^run after\s+", "", text.strip(), flags=re.I)
    if body.strip(" .()").lower() in NO_DEPENDENCY:  # 'None', 'TBD': the words stay as written, nothing to wait for
        return []
    parts = [p for p in re.split(r"\s+and\s+|\s*,\s*", body) if p]
    if parts and all(ID_RE.match(p) for p in parts):
        if parts[-1] not in named and parts[-1].rstrip(".") in named:
            parts[-1] = parts[-1].rstrip(".")  # the sentence's full stop
        return parts
    words = words_in(text)
    if unknown := [w for w in words if w not in named and ID_SHAPED.fullmatch(w)]:  # refused, never dropped
        raise FieldError(f"the dependencies name {unknown[0]!r}, which is no experiment of this file or the ledger "
                         "(correct the id, or move words that name no experiment to the Notes line)")
    return [w for w in words if w in named]


def _d_dependencies(exp: Draft, it: Item, g: _Gathered) -> None:
    exp.depends_on = _dependency_ids(it.value, g.named)
    if it.value != " and ".join(exp.depends_on):
        g.ann["dependencies"] = it.value
    if exp.id in exp.depends_on:
        raise FieldError(f"{exp.id} cannot depend on itself")


def _d_set(attr: str, parse: Callable[[str], Any] = str) -> Callable[[Draft, Item, _Gathered], None]:
    def setter(exp: Draft, it: Item, g: _Gathered) -> None:
        setattr(exp, attr, parse(it.value))

    return setter


def _resources(text: str) -> dict[str, Any]:
    """Resources as `irq add` takes them: a CPU count of 1 or more, memory and time above zero, a
    partition that is one word an #SBATCH line can hold."""
    res = parse_resources(text)
    if too_much := beyond(res):
        raise FieldError(too_much)
    if res.get("cpus", 1) < 1:
        raise FieldError(f"{res['cpus']} CPUs: a CPU count is 1 or more")
    if res.get("memory_mb", 1) <= 0 or res.get("time_minutes", 1) <= 0:
        raise FieldError("memory and time must be more than zero (e.g. '16GB RAM, 2 hours')")
    part = res.get("partition")
    if part is not None and (not part.strip() or any(c in SBATCH_UNSAFE for c in part)):
        raise FieldError(f"partition {part!r} cannot go on an #SBATCH line: use one word without quotes, "
                         "spaces, ';', '$' or newlines (e.g. gpu_test)")
    return res


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
    "Parameters": _d_parameters, "Resources": _d_set("resources", _resources),
    "Priority": _d_priority, "Dependencies": _d_dependencies, "Seeds": _d_set("seeds", parse_seeds),
    "Status": lambda exp, it, g: None,  # READY, DONE, …: what the section says (Block.own_state)
    "Retry": _d_set("retry_policy", lambda v: RetryPolicy.parse(v).to_dict()),
    # computed from the ledger at export (formats/blocks.py DERIVED_KEYS): nothing to read back
    **{k: (lambda exp, it, g: None) for k in DERIVED_KEYS},
}


def _definition(b: Block, src: str, named: Collection[str]) -> Draft:
    exp = draft(Experiment, id=b.exp_id, seq=0, title=b.title, state=State.READY.value)
    g = _Gathered(ann={"checked": "x"} if b.checked else {}, named=named)
    b.refuse_repeats(src)
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
            raise b.nested_error(src, it)
    exp.parameters = g.params
    exp.annotations = g.ann
    return exp
