"""Adding, editing, retiring and removing experiments, and the user's moves between their
states (ready, retry). Editing and removal are for experiments never submitted (no attempt):
what ran stays as it ran; an experiment that will never run is retired, its history kept."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import select

from irq import errors
from irq.experiments.labels import label_of, relabel
from irq.experiments.trainer_schema import check_parameters
from irq.experiments.validate import (
    one_line,
    param_names,
    read_trainer_config,
    resources,
)
from irq.fields import FieldError, parse_seeds
from irq.formats.command import check_command
from irq.ledger.database import Ledger, validate_id
from irq.ledger.models import Attempt, Experiment
from irq.ledger.states import Priority, State, is_active
from irq.ledger.transitions import delete_experiment, record_edit
from irq.policy.dependencies import describe, find_cycle
from irq.policy.retry import RetryPolicy


def new_experiment(
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
) -> Experiment:
    """A new experiment, every field checked, nothing written (add_experiments writes it). Its
    command (or the project's default) must have a value for every placeholder."""
    exp_id = validate_id(exp_id)
    parameters: dict[str, Any] = {}
    if config is not None:
        parameters.update(read_trainer_config(config))
    parameters.update(param_names(params or {}))
    if command is not None or default_command:
        check_command(command if command is not None else default_command, parameters)
    else:
        check_parameters(parameters)  # the bundled trainer runs: its keys, types and ranges
    if title is None:
        title = default_title(exp_id, params or {}, config)
    if not title.strip():
        raise errors.UsageError("an experiment needs a title", "pass --title 'What it tests'")
    one_line("title", title)
    deps = [validate_id(d) for d in (depends_on or [])]
    if exp_id in deps:
        raise errors.UsageError(f"{exp_id} cannot depend on itself", "name another experiment with --after")
    exp = Experiment(
        id=exp_id, seq=0, title=title.strip(), hypothesis=hypothesis, priority=_priority(priority),
        config_path=str(config) if config else None, parameters=parameters,
        resources=resources(gpus, cpus, memory, time, partition), depends_on=deps, seeds=_seeds(seeds),
        notes=notes, state=(State.PROPOSED if proposed else State.READY).value, retry_policy=_policy(retry),
        command=command,
    )
    _policy_can_act(exp)
    return exp


def add_experiments(ledger: Ledger, exps: list[Experiment], refuse_same_run: bool = False,
                    dry_run: bool = False) -> list[Experiment]:
    """Write new experiments (from new_experiment) in one transaction: all of them or none. Their
    dependencies must exist; with refuse_same_run (`irq add` and `irq sweep` without --force), one
    that would run exactly what an existing (or an earlier new) experiment runs is refused. A
    dry run makes the same checks and writes nothing."""
    with ledger.transaction() as s:
        seen: dict[str, str] = {}
        for exp in exps:
            for d in exp.depends_on:
                Ledger.experiment(s, d)  # unknown dependency -> NotFound with suggestions
            key = _run_key(exp.command, exp.config_path, exp.parameters, exp.seeds)
            same = (seen.get(key) or _same_run(s, exp)) if refuse_same_run else None
            if same is not None:
                raise errors.DuplicateId(f"{same} already runs the same command with the same parameters and seeds",
                                         f"`irq show {same}`; --force adds {exp.id} anyway")
            seen.setdefault(key, exp.id)
            if not dry_run:
                Ledger.add_experiment(s, exp)
    return exps


def add_experiment(ledger: Ledger, exp_id: str, title: str | None = None, *, refuse_same_run: bool = False,
                   **fields: Any) -> Experiment:
    """One new experiment (new_experiment's fields), checked, then written."""
    return add_experiments(ledger, [new_experiment(exp_id, title, **fields)], refuse_same_run)[0]


TITLE_MAX = 80  # characters of a title made from the parameters (a queue.md heading stays one readable line)


def default_title(exp_id: str, params: dict[str, Any], config: Path | None) -> str:
    """The title of an experiment added without --title: what it sets (`lr=0.01, steps=40`), else
    its trainer config's name, else its id; a quick `irq add` still reads well in irq status and queue.md."""
    said = label_of(list(params), params) or (config.stem if config is not None else "")  # mode=null, never None
    if not said.strip() or not said.isprintable():
        return exp_id
    return said if len(said) <= TITLE_MAX else said[:TITLE_MAX - 1].rstrip() + "…"


def _run_key(command: str | None, config_path: str | None, parameters: dict[str, Any], seeds: list[int]) -> str:
    return json.dumps([command, config_path, parameters, sorted(seeds)], sort_keys=True, default=str)


def _same_run(s: Any, exp: Experiment) -> str | None:
    """The id of an experiment that would run exactly what `exp` runs (None if there is none,
    or if `exp` defines nothing to compare: no command, config or parameters). Only the columns
    compared are read: a ledger of 10,000 experiments is not loaded whole for one `irq add`."""
    if not (exp.command or exp.config_path or exp.parameters) or s.get(Experiment, exp.id) is not None:
        return None
    key = _run_key(exp.command, exp.config_path, exp.parameters, exp.seeds)
    rows = s.exec(select(Experiment.id, Experiment.command, Experiment.config_path, Experiment.parameters,
                         Experiment.seeds).order_by(Experiment.seq))
    return next((r[0] for r in rows if _run_key(*r[1:]) == key), None)


def _priority(priority: str) -> str:
    try:
        return Priority(priority.upper()).value
    except ValueError:
        raise errors.UsageError(f"unknown priority {priority!r}", "use HIGHEST, HIGH, MEDIUM or LOW") from None


def _seeds(seeds: str | None) -> list[int]:
    if seeds is not None and not seeds.strip():  # taken as "no seeds", while an imported `Seeds:` with none is refused
        raise errors.UsageError("--seeds '' names no seed", "e.g. --seeds 0-9 or --seeds 0,1,2")
    try:
        return parse_seeds(seeds) if seeds else []
    except FieldError as exc:
        raise errors.UsageError(str(exc), "e.g. --seeds 0-9 or --seeds 0,1,2") from None


def _policy_can_act(exp: Experiment) -> None:
    """A retry policy doubles the time or memory the experiment asks for: it must ask for some,
    and its cap must leave room to grow."""
    for state, key, flag in (("TIMEOUT", "time_minutes", "--time '2 hours'"), ("OUT_OF_MEMORY", "memory_mb", "--mem 16GB")):
        what = "time" if key == "time_minutes" else "memory"
        if state in exp.retry_policy.get("on", ()) and not exp.resources.get(key):
            raise errors.UsageError(f"--retry-on {state} doubles the {what} "
                                    "the experiment asks for, and it asks for none", f"give it one, e.g. {flag}")
        cap = exp.retry_policy.get("max_time_minutes" if what == "time" else "max_memory_mb")
        if state in exp.retry_policy.get("on", ()) and cap and exp.resources.get(key) and cap <= exp.resources[key]:
            raise errors.UsageError(f"--retry-max-{'time' if what == 'time' else 'mem'} is no more than the {what} the "
                                    "experiment asks for already: the policy could never act",
                                    f"cap it above, e.g. twice the {what}")


def _policy(retry: dict[str, Any] | None) -> dict[str, Any]:
    try:
        policy = RetryPolicy.from_dict(retry)
    except FieldError as exc:
        raise errors.UsageError(str(exc)) from None
    return policy.to_dict() if policy else {}


def promote(ledger: Ledger, exp_id: str) -> Experiment:
    """`irq ready`: a proposed experiment becomes READY (submittable); nothing else moves."""
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        if exp.state == State.READY:
            raise errors.IllegalTransition(f"{exp.id} is already READY",
                                           f"`irq submit {exp.id}` submits it; the daemon picks it up by itself")
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


@dataclass
class Changes:
    """What `irq edit` may change; None leaves a field as it is."""

    title: str | None = None
    hypothesis: str | None = None
    notes: str | None = None
    priority: str | None = None
    config: Path | None = None
    params: dict[str, Any] = field(default_factory=dict)
    unset: list[str] = field(default_factory=list)
    seeds: str | None = None
    gpus: int | None = None
    cpus: int | None = None
    memory: str | None = None
    time: str | None = None
    partition: str | None = None
    after: list[str] | None = None
    command: str | None = None  # a new command (placeholders checked against the parameters)
    default_command: str = ""  # the project's [project] command, for experiments without their own


def _changed_fields(exp: Experiment, ch: Changes) -> dict[str, Any]:
    """The new values, checked, of the fields `ch` changes."""
    new: dict[str, Any] = {}
    if ch.title is not None:
        if not ch.title.strip():
            raise errors.UsageError("an experiment needs a title", "pass --title 'What it tests'")
        new["title"] = one_line("title", ch.title).strip()
    for name in ("hypothesis", "notes"):
        if getattr(ch, name) is not None:
            new[name] = getattr(ch, name)
    if ch.priority is not None:
        new["priority"] = _priority(ch.priority)
    params = dict(exp.parameters)
    if ch.config is not None:
        params.update(read_trainer_config(ch.config))
        new["config_path"] = str(ch.config)
    params.update(param_names(ch.params))
    for key in ch.unset:
        if key not in params:
            raise errors.UsageError(f"{exp.id} has no parameter {key!r}", f"`irq show {exp.id}` lists its parameters")
        del params[key]
    if ch.command is not None and not ch.command.strip():  # as `irq add --command ''`: it said "nothing to change"
        raise errors.UsageError("--command '' runs nothing", "give the command to run, e.g. --command 'python train.py --lr {lr}'")
    runs = ch.command if ch.command is not None else (exp.command or ch.default_command)
    if runs:
        check_command(runs, params)  # every placeholder still has a value
        if ch.command is not None:
            new["command"] = ch.command
    else:
        check_parameters(params)  # the bundled trainer runs: its keys, types and ranges
    if params != exp.parameters:
        new["parameters"] = params
    res = {**exp.resources, **resources(ch.gpus, ch.cpus, ch.memory, ch.time, ch.partition)}
    if res != exp.resources:
        new["resources"] = res
    if ch.seeds is not None:
        new["seeds"] = _seeds(ch.seeds)
    if ch.after is not None:
        deps = [validate_id(d) for d in ch.after]
        if exp.id in deps:
            raise errors.UsageError(f"{exp.id} cannot depend on itself", "name another experiment with --after")
        new["depends_on"] = deps
    return {k: v for k, v in new.items() if getattr(exp, k) != v}


def _never_submitted(s: Any, exp: Experiment, verb: str, retired_too: bool = False) -> None:
    """Refuses an experiment that was submitted, or ended (DONE, and RETIRED unless `retired_too`:
    one retired before it ever ran may still be removed)."""
    if attempts := Ledger.attempts(s, exp.id):
        raise errors.IllegalTransition(f"{exp.id} was submitted; only an experiment never submitted can be {verb}",
                                       "add a new experiment (`irq add`) for the change" + _set_aside(exp, attempts))
    if exp.state == State.DONE or (exp.state == State.RETIRED and not retired_too):
        raise errors.IllegalTransition(f"{exp.id} is {exp.state}; it can no longer be {verb}",
                                       "add a new experiment with `irq add`")


def _set_aside(exp: Experiment, attempts: list[Attempt]) -> str:
    """How a submitted experiment is set aside, as retire() allows: not at all once DONE or
    RETIRED, after a cancel while its job runs."""
    if exp.state in (State.DONE, State.RETIRED):
        return ""
    cancel = f"`irq cancel {exp.id}`, then " if is_active(attempts[-1].state) else ""
    return f", or {cancel}`irq retire {exp.id}` to set it aside"


def edit(ledger: Ledger, exp_id: str, changes: Changes) -> tuple[Experiment, list[str]]:
    """`irq edit`: change a never-submitted experiment's fields; the change is an event."""
    exp_id = validate_id(exp_id)
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        _never_submitted(s, exp, "edited")
        new = _changed_fields(exp, changes)
        if "parameters" in new and "title" not in new and exp.title == default_title(exp.id, exp.parameters, None):
            new["title"] = default_title(exp.id, new["parameters"], None)  # a title that says the values follows them
        if "parameters" in new:
            for k, v in relabel(new.get("title", exp.title), new.get("notes", exp.notes), exp.parameters,
                                new["parameters"]).items():
                new.setdefault(k, v)  # a sweep point's label follows its values, unless this edit sets it
        if "depends_on" in new:
            _no_cycle(s, exp.id, new["depends_on"])
        said = [line for k, v in new.items() for line in _changes(k, getattr(exp, k), v)]
        if new:
            record_edit(s, exp, new, "edited: " + "; ".join(said))
        return exp, said


def _no_cycle(s: Any, exp_id: str, deps: list[str]) -> None:
    """Every new dependency exists, and none runs after `exp_id` (directly or further down): an
    experiment in a cycle would wait for itself for ever."""
    for d in deps:
        Ledger.experiment(s, d)  # unknown dependency -> NotFound with suggestions
    graph = {i: list(after) for i, after in s.exec(select(Experiment.id, Experiment.depends_on))}
    graph[exp_id] = deps
    if cycle := find_cycle(graph, exp_id):
        raise errors.UsageError(f"--after would make a dependency cycle: {describe(cycle)}",
                                f"drop --after {cycle[1]}: {exp_id} would wait for itself")


def _changes(field: str, old: Any, new: Any) -> list[str]:
    """What an edit changes in one field, said: a dict (parameters, resources) key by key, so the
    change is never cut off behind the keys that stayed."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k, _UNSET) != new.get(k, _UNSET)]
        return [f"{field}.{k}: {_short(old.get(k, _UNSET))} -> {_short(new.get(k, _UNSET))}" for k in keys]
    return [f"{field}: {_short(_UNSET if old is None else old)} -> {_short(_UNSET if new is None else new)}"]


class _Unset:
    def __repr__(self) -> str:
        return "(unset)"


_UNSET = _Unset()


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _dependents(s: Any, exp_id: str, waiting: bool = False) -> list[str]:
    """The experiments that run after `exp_id` (`waiting`: only those that have yet to run)."""
    q = select(Experiment.id, Experiment.depends_on, Experiment.state).order_by(Experiment.seq)
    return [i for i, deps, state in s.exec(q)
            if exp_id in deps and not (waiting and state in (State.DONE, State.RETIRED))]


def retire(ledger: Ledger, exp_id: str, reason: str | None = None) -> tuple[Experiment, list[str]]:
    """`irq retire`: an experiment that will never run (again) is set aside with its history.
    Also returns the experiments still to run after it: they are held until their dependency
    is dropped (irq/policy/dependencies.py)."""
    exp_id = validate_id(exp_id)
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        if exp.state == State.DONE:
            raise errors.IllegalTransition(f"{exp.id} is DONE; its results stay as they are",
                                           "add a new experiment with `irq add` to run it differently")
        if exp.state == State.RETIRED:
            raise errors.IllegalTransition(f"{exp.id} is already RETIRED", f"`irq show {exp.id}` shows its history")
        Ledger.set_state(s, exp, State.RETIRED, "retired by the user" + (f": {reason}" if reason else ""))
        return exp, _dependents(s, exp.id, waiting=True)


def remove(ledger: Ledger, exp_id: str) -> Experiment:
    """`irq rm`: delete a never-submitted experiment and its events; one with attempts is
    retired instead, and one that others depend on stays."""
    exp_id = validate_id(exp_id)
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        _never_submitted(s, exp, "removed", retired_too=True)
        if users := _dependents(s, exp.id):
            raise errors.IllegalTransition(f"{', '.join(users)} {'depends' if len(users) == 1 else 'depend'} on {exp.id}",
                                           f"`irq edit {users[0]} --no-after` (or --after its others) first, "
                                           f"or `irq retire {exp.id}`")
        delete_experiment(s, exp)
        return exp
