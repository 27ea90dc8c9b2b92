"""The user's verbs on the ledger that need no cluster: add, import, export, ready, retry.

The CLI calls these and prints what they return; they raise ``irq.errors`` on bad input and
leave the ledger unchanged when they do (one transaction each).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import errors
from .export import export_text
from .fields import FieldError, parse_memory, parse_minutes, parse_seeds
from .ledger import Ledger, new_token, validate_id
from .models import Attempt, Event, Experiment, utcnow
from .queuefile import parse_file
from .states import Priority, State

# trainer config keys that are experiment parameters (the rest stay in the config file)
TRAINER_PARAM_KEYS = ("rank", "diffusion_steps", "train_steps", "batch_size", "learning_rate", "mining")


@dataclass
class ImportReport:
    path: str
    experiments: int
    attempts: int
    repaired_lines: int
    states: dict[str, int] = field(default_factory=dict)


def import_queue(ledger: Ledger, path: Path) -> ImportReport:
    """Read a queue.md and write all of it, or nothing, into the ledger."""
    doc = parse_file(path)
    with ledger.transaction() as s:
        existing = [e.id for e in doc.experiments if s.get(Experiment, e.id) is not None]
        if existing:
            raise errors.DuplicateId(
                f"{path}: experiments already in the ledger: {', '.join(existing)}",
                "import into a new ledger (irq --db NEW.db init), or remove these entries from the file",
            )
        offset = len(Ledger.experiments(s))
        reason = f"imported from {path.name}"
        for exp in doc.experiments:
            exp.seq += offset
            s.add(exp)
            s.add(Event(experiment_id=exp.id, to_state=exp.state, reason=reason))
        s.flush()
        for att in doc.attempts:
            att.token = new_token()
            s.add(att)
            s.flush()
            s.add(Event(experiment_id=att.experiment_id, attempt_id=att.id, kind="attempt",
                        to_state=att.state, reason=reason))
        for key, value in (("title", doc.title), ("preamble", doc.preamble),
                           ("future_heading", doc.future_heading)):
            if value and not Ledger._get_meta(s, key):
                Ledger._set_meta(s, key, value)
    states: dict[str, int] = {}
    for e in doc.experiments:
        states[e.state] = states.get(e.state, 0) + 1
    return ImportReport(str(path), len(doc.experiments), len(doc.attempts), doc.repaired_lines, states)


def export_queue(ledger: Ledger, path: Path | None) -> str:
    text = export_text(ledger)
    if path is not None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)  # readers never see half a file
    return text


def add_experiment(
    ledger: Ledger,
    exp_id: str,
    title: str | None = None,
    *,
    config: Path | None = None,
    hypothesis: str | None = None,
    params: dict[str, Any] | None = None,
    priority: str = "MEDIUM",
    depends_on: list[str] | None = None,
    seeds: str | None = None,
    gpus: int | None = None,
    cpus: int | None = None,
    memory: str | None = None,
    time: str | None = None,
    partition: str | None = None,
    notes: str | None = None,
    proposed: bool = False,
    retry: dict[str, Any] | None = None,
) -> Experiment:
    exp_id = validate_id(exp_id)
    parameters: dict[str, Any] = {}
    if config is not None:
        parameters.update(read_trainer_config(config))
    parameters.update(params or {})
    if not title:
        raise errors.UsageError("an experiment needs a title", "pass --title 'What it tests'")
    if "\n" in title:
        raise errors.UsageError("a title is one line")
    try:
        prio = Priority(priority.upper()).value
    except ValueError:
        raise errors.UsageError(f"unknown priority {priority!r}", "use HIGHEST, HIGH, MEDIUM or LOW") from None
    resources: dict[str, Any] = {}
    try:
        if gpus is not None:
            resources["gpus"] = gpus
        if cpus is not None:
            resources["cpus"] = cpus
        if memory:
            resources["memory_mb"] = parse_memory(memory)
        if time:
            resources["time_minutes"] = parse_minutes(time)
        if partition:
            resources["partition"] = partition
        seed_list = parse_seeds(seeds) if seeds else []
    except FieldError as exc:
        raise errors.UsageError(str(exc)) from None
    deps = [validate_id(d) for d in (depends_on or [])]
    if exp_id in deps:
        raise errors.UsageError(f"{exp_id} cannot depend on itself")
    exp = Experiment(
        id=exp_id, seq=0, title=title.strip(), hypothesis=hypothesis, priority=prio,
        config_path=str(config) if config else None, parameters=parameters, resources=resources,
        depends_on=deps, seeds=seed_list, notes=notes,
        state=(State.PROPOSED if proposed else State.READY).value, retry_policy=retry or {},
    )
    with ledger.transaction() as s:
        for d in deps:
            Ledger.experiment(s, d)  # unknown dependency -> NotFound with suggestions
        Ledger.add_experiment(s, exp)
    return exp


def read_trainer_config(path: Path) -> dict[str, Any]:
    """The experiment parameters a trainer config JSON sets (rank, steps, mining, ...)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise errors.ParseError(str(path), None, f"cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise errors.ParseError(str(path), exc.lineno, f"not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise errors.ParseError(str(path), 1, "a trainer config is a JSON object")
    return {k: data[k] for k in TRAINER_PARAM_KEYS if k in data}


def promote(ledger: Ledger, exp_id: str) -> Experiment:
    """`irq ready`: a proposed experiment becomes READY (submittable)."""
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        Ledger.set_state(s, exp, State.READY, "promoted by the user")
        return exp


def retry(ledger: Ledger, exp_id: str) -> Experiment:
    """A FAILED experiment goes back to READY; every earlier attempt stays."""
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        if exp.state != State.FAILED.value:
            raise errors.IllegalTransition(
                f"{exp.id} is {exp.state}; only a FAILED experiment can be retried",
                "`irq show " + exp.id + "` shows its attempts",
            )
        Ledger.set_state(s, exp, State.READY, "retry requested by the user")
        return exp


@dataclass
class ExperimentView:
    experiment: Experiment
    attempts: list[Attempt]
    events: list[Event]


def show(ledger: Ledger, exp_id: str) -> ExperimentView:
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        return ExperimentView(exp, Ledger.attempts(s, exp.id), Ledger.events(s, exp.id))


def now_iso() -> str:
    return utcnow().isoformat()


@dataclass
class StatusRow:
    """One line of `irq status`: the experiment, its latest attempt, why it waits."""

    id: str
    title: str
    state: str
    priority: str
    attempts: int
    job_id: str | None
    scheduler_state: str | None
    detail: str
    updated_at: Any


def status_rows(ledger: Ledger) -> list[StatusRow]:
    rows: list[StatusRow] = []
    with ledger.transaction() as s:
        atts: dict[str, list[Attempt]] = {}
        for a in Ledger.attempts(s):
            atts.setdefault(a.experiment_id, []).append(a)
        exps = Ledger.experiments(s)
        states = {e.id: e.state for e in exps}
        for e in exps:
            mine = atts.get(e.id, [])
            last = mine[-1] if mine else None
            rows.append(StatusRow(
                id=e.id, title=e.title, state=e.state, priority=e.priority, attempts=len(mine),
                job_id=last.job_id if last else None,
                scheduler_state=last.state if last else None,
                detail=_detail(e, last, states), updated_at=e.updated_at,
            ))
    return rows


def _detail(e: Experiment, last: Attempt | None, states: dict[str, str]) -> str:
    from .fields import fmt_time
    from .states import is_active

    if e.state == State.IN_PROGRESS.value and e.waiting_reason is not None and not (last and is_active(last.state)):
        return f"queued locally, waiting for a slot: {e.waiting_reason}"
    if e.state == State.READY.value and e.depends_on:
        failed = [d for d in e.depends_on if states.get(d) == "FAILED"]
        if failed:
            return f"held: dependency {', '.join(failed)} FAILED"
        pending = [d for d in e.depends_on if states.get(d) != "DONE"]
        if pending:
            return "waiting for " + ", ".join(f"{d} ({states.get(d)})" for d in pending)
    if last is None:
        return ""
    if last.unknown_since:
        return f"state unknown since {fmt_time(last.unknown_since)} (scheduler unreachable)"
    if e.state == State.FAILED.value:
        return (last.root_cause or last.error or last.state)[:120]
    if e.state == State.DONE.value:
        val = last.results.get("val_mse", last.results.get("Validation MSE"))
        return f"val_mse {val}" if val is not None else ""
    return last.state
