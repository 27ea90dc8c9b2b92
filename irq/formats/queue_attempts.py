"""queue.md's attempt blocks and local-queue entries as ledger rows: each bullet of an attempt
(``- **Job ID**: 4242``) set on its Attempt row, the seed's free-text bullets kept in order, and a
``QUEUED LOCALLY``/``HELD LOCALLY`` block applied to its experiment. Pure, as ``queuefile``."""
from __future__ import annotations

import re
from typing import Any, Callable

from irq import errors
from irq.fields import (
    FieldError,
    parse_code,
    parse_scalar,
    parse_text_field,
    parse_time,
)
from irq.formats.queuelines import JOB_STATES, Block, Item
from irq.ledger.drafts import Draft, draft
from irq.ledger.models import Attempt
from irq.ledger.states import normalize_scheduler_state

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
# an attempt's free text (a job's error, a diagnosis): one line as it is, else a JSON string (fields.fmt_text)
FREE_TEXT = ("error", "root_cause", "fix_applied", "suggested_fix", "resource_change")
# free-text bullets the seed uses, kept verbatim and in order
ATT_FREE = (
    "Workflow", "Configuration", "Expected runtime", "Purpose", "Note", "Runtime", "Milestone",
    "Validation", "Reason", "Required fix", "Auto-submit",
)
QUEUED_KEYS = {"Status", "Reason", "Fix", "Since"}
QUEUED_FREE = ("Configuration", "Expected runtime", "Auto-submit", "Purpose", "Note")


AttemptSetter = Callable[[Draft, Item, dict], None]


def _a_state(att: Draft, it: Item, ann: dict) -> None:
    att.state = normalize_scheduler_state(it.value)
    if att.state not in JOB_STATES:
        raise FieldError(f"Status {att.state!r} is not a job state: an attempt's Status is one of "
                         "PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, …")
    rest = it.value.strip()[len(it.value.split()[0]):].strip() if it.value.split() else ""
    if rest:
        ann["state"] = rest


def _a_git_sha(att: Draft, it: Item, ann: dict) -> None:
    sha, _, note = it.value.partition(" ")
    att.git_sha = sha
    if note.strip():
        ann["git_sha"] = note.strip()


def _a_results(att: Draft, it: Item, ann: dict) -> None:
    res: dict = {}
    for c in it.children:
        if c.key in res:
            raise FieldError(f"result {c.key!r} is given twice (line {c.line}): only one value can be kept")
        value, note = parse_scalar(c.value)
        res[c.key] = value
        if note:
            ann[f"results.{c.key}"] = note
    att.results = res


def _a_tasks(att: Draft, it: Item, ann: dict) -> None:
    tasks: dict = {}
    for c in it.children:
        m = re.fullmatch(r"(\w+)(?: \(exit (-?\d+)\))?", c.value)
        if not m or not c.key.isdigit() or not c.key.isascii():
            raise FieldError(f"cannot read array task {c.key}: {c.value!r} (expected '3: COMPLETED (exit 0)')")
        if c.key in tasks:
            raise FieldError(f"array task {c.key} is given twice (line {c.line})")
        tasks[c.key] = {"state": m.group(1), "exit_code": int(m.group(2)) if m.group(2) else None}
    att.tasks = tasks


def _a_time(attr: str) -> AttemptSetter:
    def setter(att: Draft, it: Item, ann: dict) -> None:
        setattr(att, attr, parse_time(it.value))
        if attr == "ended_at":
            ann["ended_label"] = it.key  # Completed, Failed, Cancelled or Ended

    return setter


def _a_set(attr: str, parse: Callable[[str], Any] = str) -> AttemptSetter:
    def setter(att: Draft, it: Item, ann: dict) -> None:
        setattr(att, attr, parse(it.value))

    return setter


# a job's id and its run's name become paths (the local backend's job folder, fetch's results/RUN_ID):
# one with a '/' or starting with '.' would reach outside them
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}", re.ASCII)


def plain_name(label: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip()
        if not PLAIN_NAME.fullmatch(value):
            raise FieldError(f"{label} {value[:80]!r} is not a plain name (letters, digits, '.', '_', '+', '-'; "
                             "no '/', not starting with '.')")
        return value

    return parse


def exit_code(text: str) -> int:
    """An exit code as a shell or the scheduler reports one: a 32-bit integer (a longer one could
    not be stored)."""
    code = int(text)
    if not -2**31 <= code < 2**31:
        raise FieldError(f"exit code {text} is out of range (a job's exit code is 0-255, or a signal)")
    return code


def _attempt_setter(attr: str) -> AttemptSetter:
    """How an attempt bullet's value becomes the attribute ATT_KEYS maps it to."""
    special: dict[str, AttemptSetter] = {
        "state": _a_state, "git_sha": _a_git_sha, "results": _a_results, "tasks": _a_tasks,
        "exit_code": _a_set("exit_code", exit_code),
        "job_id": _a_set("job_id", plain_name("Job ID")), "run_id": _a_set("run_id", plain_name("Run ID")),
        "modules": _a_set("modules", lambda v: [m.strip() for m in v.split(",") if m.strip()]),
    }
    if attr in special:
        return special[attr]
    if attr.endswith("_at") or attr == "unknown_since":
        return _a_time(attr)
    return _a_set(attr, parse_code if attr in ("work_dir", "run_dir", "output") else parse_text_field if attr in FREE_TEXT else str)


def attempt_row(b: Block, src: str) -> Draft:
    att = draft(Attempt, experiment_id=b.exp_id, number=0, token="", backend="imported")
    ann: dict[str, str] = {}
    extras: list[list[str]] = []
    b.refuse_repeats(src, ATT_FREE)
    for it in b.items:
        attr = ATT_KEYS.get(it.key)
        if attr is None and it.key not in ATT_FREE:
            raise errors.ParseError(src, it.line, f"unknown key {it.key!r} in an attempt of {b.exp_id}",
                                    "known keys: " + ", ".join([*ATT_KEYS, *ATT_FREE]))
        if attr is None:
            extras.append([it.key, parse_text_field(it.value)])  # free text the seed uses, kept verbatim
        else:
            try:
                _attempt_setter(attr)(att, it, ann)
            except FieldError as exc:
                raise errors.ParseError(src, it.line, str(exc)) from None
            except ValueError as exc:
                raise errors.ParseError(src, it.line, f"bad value for {it.key!r}: {exc}") from None
        if it.children and attr not in ("results", "tasks"):
            raise b.nested_error(src, it)
    att.annotations = ann
    att.extras = extras
    return att


def apply_queued(exp: Draft, b: Block, src: str) -> None:
    extras: list[list[str]] = []
    b.refuse_repeats(src, QUEUED_FREE)
    for it in b.items:
        if it.key == "Status":
            if not it.value.upper().startswith("HELD"):
                exp.annotations = {**exp.annotations, "queued_status": it.value}
        elif it.key == "Reason":
            exp.waiting_reason = parse_text_field(it.value)
        elif it.key == "Fix":
            exp.held_fix = parse_text_field(it.value)
        elif it.key == "Since":
            try:
                exp.queued_since = parse_time(it.value)
            except FieldError as exc:
                raise errors.ParseError(src, it.line, str(exc)) from None
        elif it.key in QUEUED_FREE:
            extras.append([it.key, parse_text_field(it.value)])
        else:
            raise errors.ParseError(src, it.line, f"unknown key {it.key!r} in the queued entry of {b.exp_id}",
                                    "known keys: " + ", ".join([*QUEUED_KEYS, *QUEUED_FREE]))
    if b.queued_mark and not b.queued_mark.startswith("HELD"):
        exp.annotations = {**exp.annotations, "queued_mark": b.queued_mark}
    exp.queue_extras = extras
    exp.waiting_reason = exp.waiting_reason or "waiting for a job slot"
    if exp.held_fix is None and (b.queued_mark or b.status).upper().startswith("HELD"):
        exp.held_fix = "see the reason"
