"""The blocks of queue.md and `irq show` as bullet lines: an experiment's definition, an attempt,
a local-queue entry. Canonical text forms from ``irq.fields``; templates and views only lay them out.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from irq.fields import (
    backticked,
    fmt_code,
    fmt_dependencies,
    fmt_list_key,
    fmt_list_value,
    fmt_resources,
    fmt_scalar,
    fmt_seeds,
    fmt_text,
    fmt_time,
    join_annotation,
    param_label,
)
from irq.ledger.states import State, Waiting, is_active, queue_entry
from irq.policy.retry import RetryPolicy


@dataclass
class Line:
    key: str
    value: str
    children: list[tuple[str, str]] = field(default_factory=list)
    text: str | None = None  # free text as stored, for `irq show` to lay out line by line (value: as queue.md writes it)


@dataclass
class BlockView:
    heading: str
    lines: list[Line]

    @property
    def text(self) -> str:
        """The block as markdown: its heading, a bullet per line, children indented under it.
        Built here rather than in a Jinja macro: queue.md has tens of thousands of blocks, and a
        macro call per block was most of the export's time."""
        return f"### {self.heading}\n" + lines_text(self.lines)


def lines_text(lines: list[Line], indent: str = "") -> str:
    """Bullet lines as markdown, children indented under theirs (`indent`: a checklist item's)."""
    out = []
    for ln in lines:
        out.append(f"{indent}- **{ln.key}**: {ln.value}\n" if ln.value else f"{indent}- **{ln.key}**:\n")
        out.extend(f"{indent}  - {k}: {v}\n" for k, v in ln.children)
    return "".join(out)


def definition_lines(e: Any) -> list[Line]:
    ann = e.annotations
    out: list[Line] = []
    if e.hypothesis:
        out.append(Line("Hypothesis", fmt_text(e.hypothesis), text=e.hypothesis))
    if e.config_path:
        out.append(Line("Config", fmt_code(e.config_path)))
    if e.command:
        out.append(Line("Command", fmt_code(e.command)))
    out += parameter_lines(e.parameters, ann)
    if e.seeds:
        out.append(Line("Seeds", fmt_seeds(e.seeds)))
    if e.resources:
        out.append(Line("Resources", fmt_resources(e.resources)))
    if not (e.state == State.PROPOSED.value and e.priority == "MEDIUM" and "priority" not in ann):
        out.append(Line("Priority", join_annotation(e.priority, ann.get("priority"))))
    if deps := fmt_dependencies(e.depends_on, ann.get("dependencies")):  # ids, or 'None' as written by hand
        out.append(Line("Dependencies", deps))
    if policy := RetryPolicy.from_dict(e.retry_policy):
        out.append(Line("Retry", policy.format()))
    if e.notes:
        out.append(Line("Notes", fmt_text(e.notes), text=e.notes))
    return out


def parameter_lines(parameters: dict[str, Any], ann: dict[str, str]) -> list[Line]:
    """The mining strategy (a line of its own, as the seed has it), then the other parameters."""
    out = []
    if "mining" in parameters:
        v = parameters["mining"]
        text = fmt_list_value(v)  # a name in backticks as the seed writes it; a number or a JSON string as it is
        out.append(Line("Mining Strategy", backticked(text) if type(v) is str and text == fmt_scalar(v) else text))
    params = [(param_label(k), join_annotation(fmt_list_value(v), ann.get(f"parameters.{k}")))
              for k, v in parameters.items() if k != "mining"]
    if params:
        out.append(Line("Parameters", "", params))
    return out


def results_line(results: dict[str, Any], ann: dict[str, str]) -> list[Line]:
    if not results:
        return []
    return [Line("Results", "", [(fmt_list_key(k), join_annotation(fmt_list_value(v), ann.get(f"results.{k}")))
                                 for k, v in results.items()])]


ENDED_LABELS = {"COMPLETED": "Completed", "CANCELLED": "Cancelled"}


def attempt_lines(a: Any) -> list[Line]:
    ann = a.annotations
    out: list[Line] = [Line("Status", join_annotation(a.state, ann.get("state")))]
    extras = list(a.extras)

    def add(key: str, value: object | None, form: Callable[[str], str] = str) -> None:
        if value not in (None, "", [], {}):
            out.append(Line(key, form(str(value)), text=str(value) if form is fmt_text else None))

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
        k, v = extras.pop(0)
        out.append(Line(k, fmt_text(v), text=v))
    add("Unknown since", fmt_time(a.unknown_since))
    if a.git_sha:
        add("Git SHA", join_annotation(a.git_sha, ann.get("git_sha")))
    add("Partition", a.partition)
    add("Work dir", a.work_dir, fmt_code)
    add("Run dir", a.run_dir, fmt_code)
    for k, v in extras:
        if k == "Workflow":
            out.append(Line(k, fmt_text(v), text=v))
    extras = [kv for kv in extras if kv[0] != "Workflow"]
    add("Modules", ", ".join(a.modules))
    if a.exit_code is not None:
        add("Exit code", a.exit_code)
    add("Error", a.error, fmt_text)  # what a job or a diagnosis wrote: any text
    add("Root cause", a.root_cause, fmt_text)
    add("Fix applied", a.fix_applied, fmt_text)
    add("Suggested fix", a.suggested_fix, fmt_text)
    add("Resources changed", a.resource_change, fmt_text)
    out += results_line(a.results, ann)
    add("Output", a.output, fmt_code)
    add("Fetched", fmt_time(a.fetched_at))
    out.extend(Line(k, fmt_text(v), text=v) for k, v in extras)
    return out


QUEUED_STATUS = "QUEUED LOCALLY (waiting for job slot)"
HELD_STATUS = "HELD LOCALLY (until fixed)"


def queued_lines(e: Any) -> list[Line]:
    if queue_entry(e) is Waiting.HELD:
        out = [Line("Status", HELD_STATUS), Line("Reason", _text_or_empty(e.waiting_reason)),
               Line("Fix", _text_or_empty(e.held_fix))]
    else:
        out = [Line("Status", e.annotations.get("queued_status", QUEUED_STATUS)),
               Line("Reason", fmt_text(e.waiting_reason or "waiting for a job slot"))]
    if e.queued_since:
        out.append(Line("Since", fmt_time(e.queued_since)))
    out.extend(Line(k, fmt_text(v), text=v) for k, v in e.queue_extras)
    return out


def _text_or_empty(text: str | None) -> str:
    return fmt_text(text) if text else ""


def queued_mark(e: Any) -> str:
    if queue_entry(e) is Waiting.HELD:
        return "HELD - until fixed"
    return e.annotations.get("queued_mark", "QUEUED - waiting for a slot")


DERIVED_KEYS = ("Headline", "Report")  # a DONE entry's lines computed from the ledger; import skips them


def headline(results: dict[str, Any], metric: str) -> str:
    """'val_mse 0.0171' (or its mean over seeds) from an attempt's results; '' without it. The one
    form of the project's headline metric in status, show, fetch and queue.md."""
    from irq.ui import num

    for key in (metric, f"{metric}_mean", "Validation MSE" if metric == "val_mse" else None):
        value = results.get(key) if key else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"{metric if key == 'Validation MSE' else key} {num(value)}"  # the seed's label
    return ""
