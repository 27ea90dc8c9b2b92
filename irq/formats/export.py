"""queue.md from the ledger: the seed's layout, rendered by ``irq/formats/templates/queue.md.j2``.

This module turns rows into blocks of ready-made bullet lines (the canonical text forms in
``fields``); the template only lays them out. Import of the result gives back the same rows.
"""
from __future__ import annotations

import heapq
import itertools
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irq.fields import (
    backticked,
    fmt_dependencies,
    fmt_resources,
    fmt_scalar,
    fmt_seeds,
    fmt_time,
    join_annotation,
    param_label,
)
from irq.formats.render import render_stream
from irq.ledger import reader
from irq.ledger.reader import records
from irq.ledger.states import (
    ACTIVE_STATES,
    SUCCESS_STATES,
    State,
    Waiting,
    is_active,
    queue_entry,
)
from irq.policy.retry import RetryPolicy

DEFAULT_TITLE = "Experiment Queue"


@dataclass
class Line:
    key: str
    value: str
    children: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class BlockView:
    heading: str
    lines: list[Line]


@dataclass
class QueueView:
    order: list[str]
    title: str
    preamble: str
    sections: dict[str, Iterator[BlockView]]  # generators: read and rendered one block at a time
    future_heading: str
    proposed: list[BlockView]


def definition_lines(e: Any) -> list[Line]:
    ann = e.annotations
    out: list[Line] = []
    if e.hypothesis:
        out.append(Line("Hypothesis", e.hypothesis))
    if e.config_path:
        out.append(Line("Config", f"`{e.config_path}`"))
    if e.command:
        out.append(Line("Command", f"`{e.command}`"))
    if "mining" in e.parameters:
        out.append(Line("Mining Strategy", backticked(fmt_scalar(e.parameters["mining"]))))
    params = [(param_label(k), join_annotation(fmt_scalar(v), ann.get(f"parameters.{k}")))
              for k, v in e.parameters.items() if k != "mining"]
    if params:
        out.append(Line("Parameters", "", params))
    if e.seeds:
        out.append(Line("Seeds", fmt_seeds(e.seeds)))
    if e.resources:
        out.append(Line("Resources", fmt_resources(e.resources)))
    if not (e.state == State.PROPOSED.value and e.priority == "MEDIUM" and "priority" not in ann):
        out.append(Line("Priority", join_annotation(e.priority, ann.get("priority"))))
    if e.depends_on:
        out.append(Line("Dependencies", fmt_dependencies(e.depends_on, ann.get("dependencies"))))
    if policy := RetryPolicy.from_dict(e.retry_policy):
        out.append(Line("Retry", policy.format()))
    if e.notes:
        out.append(Line("Notes", e.notes))
    return out


ENDED_LABELS = {"COMPLETED": "Completed", "CANCELLED": "Cancelled"}


def attempt_lines(a: Any) -> list[Line]:
    ann = a.annotations
    out: list[Line] = [Line("Status", join_annotation(a.state, ann.get("state")))]
    extras = list(a.extras)

    def add(key: str, value: object | None) -> None:
        if value not in (None, "", [], {}):
            out.append(Line(key, str(value)))

    if a.backend != "imported":
        add("Backend", a.backend)
    add("Cluster", a.cluster)
    add("Job ID", a.job_id)
    add("Array", a.array)
    if a.tasks:
        out.append(Line("Tasks", "", [
            (k, v["state"] + (f" (exit {v['exit_code']})" if v.get("exit_code") is not None else ""))
            for k, v in sorted(a.tasks.items(), key=lambda kv: int(kv[0]))
        ]))
    add("Run ID", a.run_id)
    add("Submitted", fmt_time(a.submitted_at))
    add("Started", fmt_time(a.started_at))
    if a.ended_at:
        label = ann.get("ended_label") or ENDED_LABELS.get(a.state, "Failed" if not is_active(a.state) else "Ended")
        add(label, fmt_time(a.ended_at))
    # the seed puts the free-text runtime right after the times
    while extras and extras[0][0] == "Runtime":
        out.append(Line(*extras.pop(0)))
    add("Unknown since", fmt_time(a.unknown_since))
    if a.git_sha:
        add("Git SHA", join_annotation(a.git_sha, ann.get("git_sha")))
    add("Partition", a.partition)
    add("Work dir", f"`{a.work_dir}`" if a.work_dir else None)
    add("Run dir", f"`{a.run_dir}`" if a.run_dir else None)
    for k, v in extras:
        if k == "Workflow":
            out.append(Line(k, v))
    extras = [kv for kv in extras if kv[0] != "Workflow"]
    add("Modules", ", ".join(a.modules))
    if a.exit_code is not None:
        add("Exit code", a.exit_code)
    add("Error", a.error)
    add("Root cause", a.root_cause)
    add("Fix applied", a.fix_applied)
    add("Suggested fix", a.suggested_fix)
    add("Resources changed", a.resource_change)
    if a.results:
        out.append(Line("Results", "", [
            (k, join_annotation(fmt_scalar(v), ann.get(f"results.{k}"))) for k, v in a.results.items()
        ]))
    add("Output", f"`{a.output}`" if a.output else None)
    add("Fetched", fmt_time(a.fetched_at))
    out.extend(Line(k, v) for k, v in extras)
    return out


QUEUED_STATUS = "QUEUED LOCALLY (waiting for job slot)"
HELD_STATUS = "HELD LOCALLY (until fixed)"


def queued_lines(e: Any) -> list[Line]:
    if queue_entry(e) is Waiting.HELD:
        out = [Line("Status", HELD_STATUS), Line("Reason", e.waiting_reason or ""), Line("Fix", e.held_fix or "")]
    else:
        out = [Line("Status", e.annotations.get("queued_status", QUEUED_STATUS)),
               Line("Reason", e.waiting_reason or "waiting for a job slot")]
    if e.queued_since:
        out.append(Line("Since", fmt_time(e.queued_since)))
    out.extend(Line(k, v) for k, v in e.queue_extras)
    return out


def queued_mark(e: Any) -> str:
    if queue_entry(e) is Waiting.HELD:
        return "HELD - until fixed"
    return e.annotations.get("queued_mark", "QUEUED - waiting for a slot")


def build_view(conn: sqlite3.Connection) -> QueueView:
    """The view of the whole ledger, its sections as generators: each reads its rows from SQL
    (experiments and attempts merged in queue order) only when the template reaches it."""
    def section(name: str) -> Iterator[BlockView]:
        return (t[-1] for t in heapq.merge(_definitions(conn, name), _attempts(conn, name)))

    sections = {k: section(k) for k in ("READY", "IN_PROGRESS", "DONE")}
    sections["FAILED"] = (t[-1] for t in itertools.chain(_definitions(conn, "FAILED"), _attempts(conn, "FAILED")))
    if conn.execute("SELECT 1 FROM experiment WHERE state = ? LIMIT 1", (State.RETIRED.value,)).fetchone():
        # only when there is one: files without a RETIRED section read as before
        sections["RETIRED"] = (t[-1] for t in _definitions(conn, State.RETIRED.value))
    proposed = [b for *_, b in _definitions(conn, State.PROPOSED.value)]
    return QueueView(
        order=[r[0] for r in conn.execute("SELECT id FROM experiment ORDER BY seq")],
        title=reader.meta(conn, "title") or DEFAULT_TITLE,
        preamble=reader.meta(conn, "preamble") or "",
        sections=sections,  # type: ignore[arg-type]
        future_heading=reader.meta(conn, "future_heading") or "Future Extensions",
        proposed=proposed,
    )


def _definitions(conn: sqlite3.Connection, section: str) -> Iterator[tuple[Any, ...]]:
    """(seq, 0, definition block) of the experiments in a state; IN_PROGRESS also gives each
    local-queue entry as (seq, 2, block), after that experiment's attempts."""
    where = "state = ?" if section != "IN_PROGRESS" else "(state = ? OR waiting_reason IS NOT NULL)"
    for e in records(conn, f"SELECT * FROM experiment WHERE {where} ORDER BY seq", (section,)):
        if section == State.PROPOSED.value:
            mark = "x" if e.annotations.get("checked") else " "
            yield e.seq, 0, BlockView(f"- [{mark}] **{e.id}**: {e.title}", definition_lines(e))
            continue
        if e.state == section:
            yield e.seq, 0, BlockView(f"{e.id}: {e.title}", definition_lines(e))
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


def export_chunks(ledger: Any, template_dir: Path | None = None) -> Iterator[str]:
    """queue.md in pieces, rendered block by block inside one read snapshot of the ledger."""
    path = Path(getattr(ledger, "path", ledger))
    with reader.reading(path) as conn:
        yield from render_stream("queue.md.j2", {"q": build_view(conn)}, template_dir)


def export_text(ledger: Any, template_dir: Path | None = None) -> str:
    return "".join(export_chunks(ledger, template_dir))
