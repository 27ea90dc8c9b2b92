"""Adding experiments and the user's moves between their states (ready, retry)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from irq import errors
from irq.fields import FieldError, parse_memory, parse_minutes, parse_seeds
from irq.formats.command import check_command
from irq.ledger.database import Ledger, validate_id
from irq.ledger.models import Experiment
from irq.ledger.states import Priority, State
from irq.policy.retry import RetryPolicy

# trainer config keys that are experiment parameters (the rest stay in the config file)
TRAINER_PARAM_KEYS = ("rank", "diffusion_steps", "train_steps", "batch_size", "learning_rate", "mining")


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
    command: str | None = None,
    default_command: str = "",
    refuse_same_run: bool = False,
) -> Experiment:
    """Add an experiment. Its command (or the project's default) must have a value for every
    placeholder; with refuse_same_run (`irq add` without --force), one that would run exactly
    what an existing experiment runs (command, config, parameters, seeds) is refused."""
    exp_id = validate_id(exp_id)
    parameters: dict[str, Any] = {}
    if config is not None:
        parameters.update(read_trainer_config(config))
    parameters.update(params or {})
    prio = _title_and_priority(title, priority)
    try:
        resources = _resources(gpus, cpus, memory, time, partition)
        seed_list = parse_seeds(seeds) if seeds else []
    except FieldError as exc:
        raise errors.UsageError(str(exc)) from None
    if command is not None or default_command:
        check_command(command if command is not None else default_command, parameters)
    deps = [validate_id(d) for d in (depends_on or [])]
    if exp_id in deps:
        raise errors.UsageError(f"{exp_id} cannot depend on itself")
    exp = Experiment(
        id=exp_id, seq=0, title=(title or "").strip(), hypothesis=hypothesis, priority=prio,
        config_path=str(config) if config else None, parameters=parameters, resources=resources,
        depends_on=deps, seeds=seed_list, notes=notes, command=command,
        state=(State.PROPOSED if proposed else State.READY).value, retry_policy=_policy(retry),
    )
    with ledger.transaction() as s:
        for d in deps:
            Ledger.experiment(s, d)  # unknown dependency -> NotFound with suggestions
        same = _same_run(s, exp) if refuse_same_run else None
        if same is not None:
            raise errors.DuplicateId(f"{same} already runs the same command with the same parameters and seeds",
                                     f"`irq show {same}`; --force adds {exp.id} anyway")
        Ledger.add_experiment(s, exp)
    return exp


def _run_key(e: Experiment) -> str:
    return json.dumps([e.command, e.config_path, e.parameters, sorted(e.seeds)], sort_keys=True, default=str)


def _same_run(s: Any, exp: Experiment) -> str | None:
    """The id of an experiment that would run exactly what `exp` runs (None if there is none,
    or if `exp` defines nothing to compare: no command, config or parameters)."""
    if not (exp.command or exp.config_path or exp.parameters) or s.get(Experiment, exp.id) is not None:
        return None
    key = _run_key(exp)
    return next((e.id for e in Ledger.experiments(s) if _run_key(e) == key), None)


def _title_and_priority(title: str | None, priority: str) -> str:
    if not title:
        raise errors.UsageError("an experiment needs a title", "pass --title 'What it tests'")
    if "\n" in title:
        raise errors.UsageError("a title is one line")
    try:
        return Priority(priority.upper()).value
    except ValueError:
        raise errors.UsageError(f"unknown priority {priority!r}", "use HIGHEST, HIGH, MEDIUM or LOW") from None


def _policy(retry: dict[str, Any] | None) -> dict[str, Any]:
    try:
        policy = RetryPolicy.from_dict(retry)
    except FieldError as exc:
        raise errors.UsageError(str(exc)) from None
    return policy.to_dict() if policy else {}


def _resources(gpus: int | None, cpus: int | None, memory: str | None, time: str | None,
               partition: str | None) -> dict[str, Any]:
    resources: dict[str, Any] = {}
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
    return resources


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
    """`irq ready`: a proposed experiment becomes READY (submittable); nothing else moves."""
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        if exp.state in (State.IN_PROGRESS, State.FAILED):  # legal moves to READY, but not this verb's
            raise errors.IllegalTransition(
                f"{exp.id} is {exp.state}; only a PROPOSED experiment can be made ready",
                f"`irq retry {exp.id}` puts a FAILED one back" if exp.state == State.FAILED
                else f"`irq cancel {exp.id}` takes it off the local queue, or stops its job",
            )
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
