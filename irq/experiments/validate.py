"""What `irq add` and `irq edit` accept, checked before anything is written.

Resources go on `#SBATCH` lines, so they may hold no quote or newline; counts are positive;
a trainer config file is a JSON object of keys the trainer knows, with values it accepts
(irq/experiments/trainer_schema.py). Every refusal is a UsageError or ParseError with a hint.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from irq import errors
from irq.experiments.trainer_schema import check_parameters, config_hint, schema
from irq.fields import (
    PARAM_NAME,
    SBATCH_UNSAFE,
    FieldError,
    parse_memory,
    parse_minutes,
)
from irq.inputs import MB, read_at_most
from irq.policy.limits import MAX_CPUS, MAX_GPUS, MAX_MEMORY_MB, MAX_MINUTES

# trainer config keys that are experiment parameters (the rest stay in the config file)
TRAINER_PARAM_KEYS = ("rank", "diffusion_steps", "train_steps", "batch_size", "learning_rate", "mining")


def sbatch_value(name: str, value: str) -> str:
    """A value that lands on an #SBATCH line: one word, no quotes, no newline."""
    if not value.strip() or any(c in SBATCH_UNSAFE for c in value):
        raise errors.UsageError(f"{name} {value!r} cannot go on an #SBATCH line",
                                "use one word without quotes, spaces, ';', '$' or newlines (e.g. gpu_test)")
    return value


def resources(gpus: int | None, cpus: int | None, memory: str | None, time: str | None,
              partition: str | None) -> dict[str, Any]:
    """The resources dict of an experiment, every value checked."""
    out: dict[str, Any] = {}
    if gpus is not None:
        if not 0 <= gpus <= MAX_GPUS:
            raise errors.UsageError(f"--gpus {gpus}: a GPU count is 0 to {MAX_GPUS}", "e.g. --gpus 1")
        out["gpus"] = gpus
    if cpus is not None:
        if not 1 <= cpus <= MAX_CPUS:
            raise errors.UsageError(f"--cpus {cpus}: a CPU count is 1 to {MAX_CPUS:,}", "e.g. --cpus 4")
        out["cpus"] = cpus
    try:
        if memory is not None:
            out["memory_mb"] = parse_memory(memory)
        if time is not None:
            out["time_minutes"] = parse_minutes(time)
    except FieldError as exc:
        raise errors.UsageError(str(exc), "e.g. --mem 16GB --time '2 hours'") from None
    if out.get("memory_mb", 1) <= 0 or out.get("time_minutes", 1) <= 0:
        raise errors.UsageError("memory and time must be more than zero", "e.g. --mem 16GB --time '2 hours'")
    if out.get("memory_mb", 0) > MAX_MEMORY_MB:
        raise errors.UsageError(f"--mem {memory}: at most {MAX_MEMORY_MB // 1024 ** 2:,} TB a job", "e.g. --mem 16GB")
    if out.get("time_minutes", 0) > MAX_MINUTES:
        raise errors.UsageError(f"--time {time}: at most {MAX_MINUTES // 1440} days a job", "e.g. --time '2 hours'")
    if partition is not None:
        out["partition"] = sbatch_value("partition", partition)
    return out


class _Refused(ValueError):
    """JSON that Python's reader takes and JSON itself does not, or that would lose a value."""


def _no_constant(name: str) -> Any:
    # NaN and Infinity: Python reads them, and they reached the job's params.json, which then was not JSON
    raise _Refused(f"{name} is not a JSON number (give a finite number)")


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for k, v in pairs:
        if k in seen:
            raise _Refused(f"key {k!r} is given twice: only one value can be kept")
        seen[k] = v
    return seen


def read_trainer_config(path: Path) -> dict[str, Any]:
    """The experiment parameters a trainer config JSON sets (rank, steps, mining, ...), after
    checking the whole file against the trainer's schema: a file the trainer would refuse is
    refused here."""
    hint = config_hint()
    raw = read_at_most(path, MB, "a trainer config", hint)
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant, object_pairs_hook=_no_repeats)
    except _Refused as exc:
        raise errors.ParseError(str(path), None, str(exc), "a trainer config is one JSON object, e.g. {\"rank\": 20}") from None
    except UnicodeDecodeError:
        raise errors.ParseError(str(path), None, "not a text file (a trainer config is JSON)", hint) from None
    except json.JSONDecodeError as exc:
        raise errors.ParseError(str(path), exc.lineno, f"not valid JSON: {exc.msg}",
                                "a trainer config is one JSON object, e.g. {\"rank\": 20}") from None
    except RecursionError:
        raise errors.ParseError(str(path), None, "nested too deeply to be a trainer config",
                                "a trainer config is one flat JSON object, e.g. {\"rank\": 20}") from None
    if not isinstance(data, dict):
        raise errors.ParseError(str(path), 1, "a trainer config is a JSON object",
                                "write it as {\"key\": value, ...}")
    data.pop("_comment", None)
    known = schema()
    unknown = [k for k in data if known and k not in known]
    if unknown:
        raise errors.ParseError(str(path), None, f"unknown trainer key {unknown[0]!r}",
                                "valid keys: " + ", ".join(known))
    check_parameters(data, f"{path}: ")
    return {k: data[k] for k in TRAINER_PARAM_KEYS if k in data}


def param_names(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters are named as a command's {placeholders} are: the name reaches the command, the
    job's IRQ_PARAM_<NAME> and queue.md's parameter list, where a space, a colon or a line break would not survive."""
    for k in params:
        if not PARAM_NAME.fullmatch(k):
            raise errors.UsageError(f"parameter name {k!r} is not a name",
                                    "letters, digits, _ . and -, starting with a letter or _ (e.g. -p lr=0.01, -p model.depth=4)")
        if k == "seed":  # each task's seed is irq's, from --seeds: a parameter would take its place unsaid
            raise errors.UsageError("parameter 'seed' is irq's own: seeds come from --seeds",
                                    f"e.g. --seeds {params[k]}" if isinstance(params[k], int) else "e.g. --seeds 0-4")
    return params


def one_line(name: str, value: str | None) -> str | None:
    if value is not None and ("\n" in value or "\r" in value or "\x00" in value):
        raise errors.UsageError(f"a {name} is one line", f"remove the line breaks from the {name}")
    return value
