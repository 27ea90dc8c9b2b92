"""Reading queue.md (the seed's hand-written layout and irq's own export) into ledger rows.

The layout: a title, free preamble, then sections ``## READY``, ``## IN_PROGRESS``,
``## DONE``, ``## FAILED`` holding ``### Q-NNN: Title`` blocks of ``- **Key**: value``
bullets (with nested lists for Parameters and Results), and a ``Future Extensions``
checklist of proposed experiments. A block with a Status bullet is a submission attempt (or,
with ``QUEUED LOCALLY``, a request waiting for a job slot; with ``HELD LOCALLY``, one held
until the ``Fix`` it names is made); any other block defines the
experiment. Everything here is pure: it returns rows, the importer writes them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from irq import errors
from irq.formats.fields import (
    FieldError,
    ids_in,
    param_key,
    parse_resources,
    parse_scalar,
    parse_seeds,
    parse_time,
    strip_backticks,
)
from irq.ledger.database import ID_RE
from irq.ledger.models import Attempt, Experiment
from irq.ledger.states import Priority, State, is_active, normalize_scheduler_state
from irq.policy.retry import RetryPolicy

FORMAT_MARKER = "<!-- irq:queue v1"
SECTIONS = {"READY": State.READY, "IN_PROGRESS": State.IN_PROGRESS, "DONE": State.DONE, "FAILED": State.FAILED}

# bullet label -> Experiment attribute (definition blocks)
DEF_KEYS = {
    "Hypothesis": "hypothesis", "Config": "config_path", "Mining Strategy": "mining",
    "Parameters": "parameters", "Resources": "resources", "Priority": "priority",
    "Dependencies": "depends_on", "Seeds": "seeds", "Notes": "notes", "Retry": "retry_policy",
}
# bullet label -> Attempt attribute
ATT_KEYS = {
    "Status": "state", "Backend": "backend", "Cluster": "cluster", "Job ID": "job_id",
    "Array": "array", "Tasks": "tasks", "Run ID": "run_id", "Submitted": "submitted_at",
    "Started": "started_at", "Completed": "ended_at", "Failed": "ended_at", "Cancelled": "ended_at",
    "Ended": "ended_at", "Unknown since": "unknown_since", "Git SHA": "git_sha",
    "Partition": "partition", "Work dir": "work_dir", "Run dir": "run_dir", "Modules": "modules",
    "Exit code": "exit_code", "Error": "error", "Root cause": "root_cause",
    "Fix applied": "fix_applied", "Suggested fix": "suggested_fix",
    "Resources changed": "resource_change", "Results": "results", "Output": "output",
    "Fetched": "fetched_at",
}
# free-text bullets the seed uses, kept verbatim and in order
ATT_FREE = (
    "Workflow", "Configuration", "Expected runtime", "Purpose", "Note", "Runtime", "Milestone",
    "Validation", "Reason", "Required fix", "Auto-submit",
)
QUEUED_KEYS = {"Status", "Reason", "Fix", "Since"}
QUEUED_FREE = ("Configuration", "Expected runtime", "Auto-submit", "Purpose", "Note")

_HEADING = re.compile(r"^###\s+(?P<id>\S+?):\s*(?P<rest>.*)$")
_BULLET = re.compile(r"^(?P<indent>\s*)[-*]\s+\*\*(?P<key>[^*]+?)\*\*:\s?(?P<value>.*)$")
_SUBITEM = re.compile(r"^(?P<indent>\s+)[-*]\s+(?P<text>.+)$")
_CHECK = re.compile(r"^[-*]\s+\[(?P<mark>[ xX])\]\s+\*\*(?P<id>[^*]+)\*\*:?\s*(?P<title>.*)$")
_ATTEMPT_SUFFIX = re.compile(r"\s+-\s+ATTEMPT\s+(\d+)\s*$")
_COMPLETED_SUFFIX = re.compile(r"\s*✓\s*COMPLETED\s*$")
_QUEUED_SUFFIX = re.compile(r"\s*\(((?:QUEUED|HELD)[^)]*)\)\s*$")


@dataclass
class Item:
    key: str
    value: str
    line: int
    children: list["Item"] = field(default_factory=list)


@dataclass
class Block:
    section: str
    line: int
    exp_id: str
    title: str
    attempt_no: int | None = None
    completed_mark: bool = False
    queued_mark: str | None = None
    items: list[Item] = field(default_factory=list)
    checklist: bool = False
    checked: bool = False


@dataclass
class QueueDoc:
    """What one queue.md says, as ledger rows not yet written."""

    title: str = ""
    preamble: str = ""
    future_heading: str = ""
    experiments: list[Experiment] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    repaired_lines: int = 0
    irq_format: bool = False
    order: list[str] = field(default_factory=list)  # queue order, as irq's export records it


# -- reading text ------------------------------------------------------------------------
def read_text(path: Path) -> tuple[str, int]:
    """The file's text with double-encoded UTF-8 repaired; and how many lines needed it."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise errors.ParseError(str(path), None, f"cannot read: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise errors.ParseError(str(path), line, "not UTF-8 text", "save the file as UTF-8") from exc
    import ftfy  # only reading a queue file needs it: keep other commands quick

    fixed_lines, repaired = [], 0
    for line in text.split("\n"):
        fixed = ftfy.fix_encoding(line)
        repaired += fixed != line
        fixed_lines.append(fixed)
    return "\n".join(fixed_lines), repaired


def parse_file(path: Path) -> QueueDoc:
    text, repaired = read_text(path)
    doc = parse_text(text, str(path))
    doc.repaired_lines = repaired
    return doc


# -- structure ----------------------------------------------------------------------------
def _blocks(text: str, src: str) -> tuple[QueueDoc, list[Block]]:
    doc = QueueDoc()
    lines = text.split("\n")
    preamble: list[str] = []
    section: str | None = None
    blocks: list[Block] = []
    cur: Block | None = None
    last_item: Item | None = None
    in_comment = False

    def err(n: int, msg: str, hint: str | None = None) -> errors.ParseError:
        return errors.ParseError(src, n, msg, hint)

    for n, line in enumerate(lines, start=1):
        stripped = line.strip()
        if in_comment:
            in_comment = "-->" not in stripped
            continue
        if stripped.startswith("<!--"):
            if stripped.startswith(FORMAT_MARKER):
                doc.irq_format = True
                if m := re.search(r"order:\s*([^>]*?)\s*-->", stripped):
                    doc.order = m.group(1).split()
            in_comment = "-->" not in stripped
            continue
        if section is None and not doc.title and stripped.startswith("# "):
            doc.title = stripped[2:].strip()
            continue
        if stripped.startswith("## "):
            name = stripped[3:].strip()
            if name in SECTIONS:
                section, cur, last_item = name, None, None
                continue
            if name.lower().startswith(("future extensions", "proposed")):
                section, cur, last_item = "FUTURE", None, None
                doc.future_heading = name
                continue
            if section is None:
                preamble.append(line)
                continue
            raise err(n, f"unknown section {name!r}",
                      "sections are READY, IN_PROGRESS, DONE, FAILED and Future Extensions")
        if section is None:
            preamble.append(line)
            continue
        if not stripped or stripped == "---":
            continue
        if section == "FUTURE":
            m = _CHECK.match(stripped) if not line[:1].isspace() else None
            if m:
                cur = Block("FUTURE", n, m.group("id").strip(), m.group("title").strip(),
                            checklist=True, checked=m.group("mark") != " ")
                blocks.append(cur)
                last_item = None
                continue
            if cur is None or not line[:1].isspace():
                raise err(n, f"expected a checklist item '- [ ] **Q-NNN**: title', got {stripped[:60]!r}")
        if stripped.startswith("### "):
            m = _HEADING.match(stripped)
            if not m or not m.group("rest").strip():
                raise err(n, f"expected a heading '### Q-NNN: Title', got {stripped[:60]!r}")
            cur = _heading_block(section, n, m.group("id"), m.group("rest"))
            blocks.append(cur)
            last_item = None
            continue
        if stripped.startswith("#"):
            raise err(n, f"unexpected heading {stripped[:60]!r} inside section {section}")
        if cur is None:
            raise err(n, f"text outside an experiment block: {stripped[:60]!r}",
                      "each entry starts with '### Q-NNN: Title'")
        indent = len(line) - len(line.lstrip())
        bm = _BULLET.match(line)
        nested_under_check = cur.checklist
        if bm and (indent == 0 or (nested_under_check and last_item is None) or
                   (nested_under_check and indent <= 2)):
            last_item = Item(bm.group("key").strip(), bm.group("value").strip(), n)
            cur.items.append(last_item)
            continue
        sm = _SUBITEM.match(line)
        if sm and last_item is not None and indent > 0:
            text_ = sm.group("text").strip()
            if bm:  # a nested "- **Key**: value"
                key, value = bm.group("key").strip(), bm.group("value").strip()
            elif ": " in text_ or text_.endswith(":"):
                key, _, value = text_.partition(":")
                key, value = key.strip(), value.strip()
            else:
                raise err(n, f"expected 'Name: value' in the list under {last_item.key!r}, got {text_[:60]!r}")
            last_item.children.append(Item(key, value, n))
            continue
        raise err(n, f"expected a bullet '- **Key**: value', got {stripped[:60]!r}")

    while preamble and preamble[-1].strip() in ("", "---"):
        preamble.pop()  # the separator before the first section belongs to the layout
    while preamble and not preamble[0].strip():
        preamble.pop(0)
    doc.preamble = "\n".join(preamble)
    return doc, blocks


def _heading_block(section: str, n: int, exp_id: str, rest: str) -> Block:
    title, attempt_no, completed, queued = rest.strip(), None, False, None
    if m := _COMPLETED_SUFFIX.search(title):
        completed, title = True, title[: m.start()]
    if m := _QUEUED_SUFFIX.search(title):
        queued, title = m.group(1), title[: m.start()]
    if m := _ATTEMPT_SUFFIX.search(title):
        attempt_no, title = int(m.group(1)), title[: m.start()]
    return Block(section, n, exp_id, title.strip(), attempt_no, completed, queued)


# -- meaning -------------------------------------------------------------------------------
def parse_text(text: str, src: str = "<queue.md>") -> QueueDoc:
    doc, blocks = _blocks(text, src)
    defs: dict[str, tuple[Experiment, Block]] = {}
    atts: dict[str, list[tuple[Attempt, Block]]] = {}
    queued: dict[str, Block] = {}

    for b in blocks:
        if not ID_RE.match(b.exp_id):
            raise errors.ParseError(src, b.line, f"invalid experiment id {b.exp_id!r}",
                                    "ids look like Q-003")
        keys = {i.key for i in b.items}
        if b.checklist or "Status" not in keys:
            if b.exp_id in defs:
                raise errors.ParseError(src, b.line, f"duplicate id {b.exp_id} (first defined at line {defs[b.exp_id][1].line})")
            defs[b.exp_id] = (_definition(b, src), b)
        elif b.queued_mark or _status_of(b).upper().startswith(("QUEUED", "HELD")):
            if b.exp_id in queued:
                raise errors.ParseError(src, b.line, f"{b.exp_id} is queued twice (also at line {queued[b.exp_id].line})")
            queued[b.exp_id] = b
        else:
            atts.setdefault(b.exp_id, []).append((_attempt(b, src), b))

    order: list[str] = []
    for b in blocks:
        if b.exp_id not in order:
            order.append(b.exp_id)
    if doc.order:  # irq's export: keep the ledger's queue order, not the order of sections
        rank = {i: n for n, i in enumerate(doc.order)}
        order.sort(key=lambda i: rank.get(i, len(rank)))
    for seq, exp_id in enumerate(order, start=1):
        if exp_id in defs:
            exp, dblock = defs[exp_id]
        else:  # attempts without a definition: the heading gives the title
            first = (atts.get(exp_id) or [(None, queued.get(exp_id))])[0][1]
            exp, dblock = Experiment(id=exp_id, seq=0, title=first.title), None
        exp.seq = seq
        exp_atts = _number_attempts(exp_id, atts.get(exp_id, []), src)
        if exp_id in queued:
            _apply_queued(exp, queued[exp_id], src)
        exp.state = _state(exp, dblock, exp_atts, exp_id in queued, doc.irq_format).value
        doc.experiments.append(exp)
        doc.attempts.extend(exp_atts)
    for exp in doc.experiments:
        for dep in exp.depends_on:
            if dep not in defs and dep not in atts:
                raise errors.ParseError(src, defs[exp.id][1].line if exp.id in defs else None,
                                        f"{exp.id} depends on unknown experiment {dep}")
    return doc


def _status_of(b: Block) -> str:
    return next((i.value for i in b.items if i.key == "Status"), "")


def _state(exp: Experiment, dblock: Block | None, atts: list[Attempt], is_queued: bool,
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


def _number_attempts(exp_id: str, pairs: list[tuple[Attempt, Block]], src: str) -> list[Attempt]:
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


def _definition(b: Block, src: str) -> Experiment:
    exp = Experiment(id=b.exp_id, seq=0, title=b.title, state=State.READY.value)
    params: dict = {}
    ann: dict[str, str] = {}
    if b.checked:
        ann["checked"] = "x"
    for it in b.items:
        attr = DEF_KEYS.get(it.key)
        if attr is None:
            raise errors.ParseError(src, it.line, f"unknown key {it.key!r} in the definition of {b.exp_id}",
                                    "known keys: " + ", ".join(DEF_KEYS))
        try:
            if attr in ("hypothesis", "notes"):
                setattr(exp, attr, it.value)
            elif attr == "config_path":
                exp.config_path = strip_backticks(it.value)
            elif attr == "mining":
                params["mining"] = strip_backticks(it.value)
            elif attr == "parameters":
                if it.value:
                    raise FieldError("Parameters takes a nested list ('  - Rank: 20'), not a value")
                for c in it.children:
                    key = param_key(c.key)
                    value, note = parse_scalar(strip_backticks(c.value) if c.value.startswith("`") else c.value)
                    params[key] = value
                    if note:
                        ann[f"parameters.{key}"] = note
            elif attr == "resources":
                exp.resources = parse_resources(it.value)
            elif attr == "priority":
                word, _, note = it.value.partition(" ")
                try:
                    exp.priority = Priority(word.upper()).value
                except ValueError:
                    raise FieldError(f"unknown priority {word!r} (HIGHEST, HIGH, MEDIUM or LOW)") from None
                if note.strip():
                    ann["priority"] = note.strip()
            elif attr == "depends_on":
                exp.depends_on = ids_in(it.value)
                if it.value != " and ".join(exp.depends_on):
                    ann["dependencies"] = it.value
                if b.exp_id in exp.depends_on:
                    raise FieldError(f"{b.exp_id} cannot depend on itself")
            elif attr == "seeds":
                exp.seeds = parse_seeds(it.value)
            elif attr == "retry_policy":
                exp.retry_policy = RetryPolicy.parse(it.value).to_dict()
        except FieldError as exc:
            raise errors.ParseError(src, it.line, str(exc)) from None
        if it.children and attr != "parameters":
            raise errors.ParseError(src, it.children[0].line, f"{it.key!r} takes no nested list")
    exp.parameters = params
    exp.annotations = ann
    return exp


def _attempt(b: Block, src: str) -> Attempt:
    att = Attempt(experiment_id=b.exp_id, number=0, token="", backend="imported")
    ann: dict[str, str] = {}
    extras: list[list[str]] = []
    for it in b.items:
        attr = ATT_KEYS.get(it.key)
        try:
            if attr is None:
                if it.key not in ATT_FREE:
                    raise errors.ParseError(src, it.line, f"unknown key {it.key!r} in an attempt of {b.exp_id}",
                                            "known keys: " + ", ".join([*ATT_KEYS, *ATT_FREE]))
                extras.append([it.key, it.value])
            elif attr == "state":
                state = normalize_scheduler_state(it.value)
                att.state = state
                rest = it.value.strip()[len(it.value.split()[0]):].strip() if it.value.split() else ""
                if rest:
                    ann["state"] = rest
            elif attr.endswith("_at") or attr == "unknown_since":
                setattr(att, attr, parse_time(it.value))
                if attr == "ended_at":
                    ann["ended_label"] = it.key
            elif attr == "modules":
                att.modules = [m.strip() for m in it.value.split(",") if m.strip()]
            elif attr == "exit_code":
                att.exit_code = int(it.value)
            elif attr == "git_sha":
                sha, _, note = it.value.partition(" ")
                att.git_sha = sha
                if note.strip():
                    ann["git_sha"] = note.strip()
            elif attr == "results":
                res: dict = {}
                for c in it.children:
                    value, note = parse_scalar(c.value)
                    res[c.key] = value
                    if note:
                        ann[f"results.{c.key}"] = note
                att.results = res
            elif attr == "tasks":
                tasks: dict = {}
                for c in it.children:
                    m = re.fullmatch(r"(\w+)(?: \(exit (-?\d+)\))?", c.value)
                    if not m or not c.key.isdigit():
                        raise FieldError(f"cannot read array task {c.key}: {c.value!r} (expected '3: COMPLETED (exit 0)')")
                    tasks[c.key] = {"state": m.group(1), "exit_code": int(m.group(2)) if m.group(2) else None}
                att.tasks = tasks
            else:
                setattr(att, attr, strip_backticks(it.value) if attr in ("work_dir", "run_dir", "output") else it.value)
        except FieldError as exc:
            raise errors.ParseError(src, it.line, str(exc)) from None
        except ValueError as exc:
            raise errors.ParseError(src, it.line, f"bad value for {it.key!r}: {exc}") from None
        if it.children and attr not in ("results", "tasks"):
            raise errors.ParseError(src, it.children[0].line, f"{it.key!r} takes no nested list")
    att.annotations = ann
    att.extras = extras
    return att


def _apply_queued(exp: Experiment, b: Block, src: str) -> None:
    extras: list[list[str]] = []
    for it in b.items:
        if it.key == "Status":
            if not it.value.upper().startswith("HELD"):
                exp.annotations = {**exp.annotations, "queued_status": it.value}
        elif it.key == "Reason":
            exp.waiting_reason = it.value
        elif it.key == "Fix":
            exp.held_fix = it.value
        elif it.key == "Since":
            try:
                exp.queued_since = parse_time(it.value)
            except FieldError as exc:
                raise errors.ParseError(src, it.line, str(exc)) from None
        elif it.key in QUEUED_FREE:
            extras.append([it.key, it.value])
        else:
            raise errors.ParseError(src, it.line, f"unknown key {it.key!r} in the queued entry of {b.exp_id}",
                                    "known keys: " + ", ".join([*QUEUED_KEYS, *QUEUED_FREE]))
    if b.queued_mark and not b.queued_mark.startswith("HELD"):
        exp.annotations = {**exp.annotations, "queued_mark": b.queued_mark}
    exp.queue_extras = extras
    exp.waiting_reason = exp.waiting_reason or "waiting for a job slot"
    if exp.held_fix is None and (b.queued_mark or _status_of(b)).upper().startswith("HELD"):
        exp.held_fix = "see the reason"
