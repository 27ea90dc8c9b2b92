"""An experiment's command: `python train.py --lr {lr} --seed {seed}` with `{name}` placeholders.

A placeholder takes one of the experiment's parameters or one of irq's own values (IRQ_VALUES).
Parameters are shell-quoted when the job script is rendered; irq's values become the job's
environment variables, so one script serves every task of a seed array. An unknown name is
refused when the experiment is added, with the list of known names.
"""
from __future__ import annotations

import json
import re
import shlex
import string
from typing import Any

from irq import errors
from irq.fields import PARAM_NAME

# irq's own values and the shell text each becomes in the job (set by the job script)
IRQ_VALUES = {"seed": '"$IRQ_SEED"', "run_dir": '"$IRQ_RUN_DIR"', "experiment": '"$IRQ_EXPERIMENT"',
              "attempt": '"$IRQ_ATTEMPT"'}
IRQ_MEANING = {"seed": "each task's seed, from --seeds", "run_dir": "the run's own folder",
               "experiment": "the experiment's id", "attempt": "the attempt's number"}


def placeholders(command: str) -> list[str]:
    """The `{name}` fields of a command, in order; `{{` and `}}` are literal braces."""
    try:
        fields = list(string.Formatter().parse(command))
    except ValueError as exc:
        raise errors.UsageError(f"command {command!r}: {exc}", "write a literal brace as {{ or }}") from None
    names = []
    for _, name, spec, conv in fields:
        if name is None:
            continue
        if not name or spec or conv or not PARAM_NAME.fullmatch(name):
            raise errors.UsageError(f"command {command!r}: placeholder {{{name}{'!' + conv if conv else ''}"
                                    f"{':' + spec if spec else ''}}} is not a plain {{name}}",
                                    "use {lr}, {seed}, ...; a literal brace is {{ or }}")
        names.append(name)
    return names


def check_command(command: Any, params: dict[str, Any]) -> str:
    """The command, if it is a string whose placeholders all have a value; else a UsageError."""
    if not isinstance(command, str):
        raise errors.UsageError(f"a command is a string, got {type(command).__name__} {command!r}",
                                "e.g. --command 'python train.py --lr {lr} --seed {seed}'")
    if not command.strip():
        raise errors.UsageError("the command is empty", "e.g. --command 'python train.py --lr {lr}'")
    if own := [k for k in IRQ_VALUES if k in params]:  # a parameter would take the place of irq's value
        raise errors.UsageError(f"parameter {own[0]!r} is irq's own {{{own[0]}}} ({IRQ_MEANING[own[0]]}); "
                                "a parameter cannot replace it",
                                "use --seeds for seeds" if own[0] == "seed" else f"give the parameter another name, e.g. my_{own[0]}")
    env: dict[str, str] = {}
    for k in params:  # two names, one variable: the job would see only the last value
        var = env_name(k)
        if var in env:
            raise errors.UsageError(f"parameters {env[var]!r} and {k!r} are both {var} in the job's environment",
                                    "rename one of them")
        env[var] = k
    known = sorted(params) + list(IRQ_VALUES)
    unknown = [n for n in placeholders(command) if n not in params and n not in IRQ_VALUES]
    if unknown:
        raise errors.UsageError(f"unknown placeholder {{{unknown[0]}}} in the command",
                                "known names: " + ", ".join(known) + " (add a parameter with -p NAME=VALUE)")
    return command


def value_text(v: Any) -> str:
    """A parameter as the job sees it: 0.01, 3, true, adam; lists and null as JSON."""
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    return json.dumps(v)


def render_command(command: str, params: dict[str, Any]) -> str:
    """Shell text: parameters quoted, irq's values as the job's environment variables."""
    values = {k: shlex.quote(value_text(v)) for k, v in params.items()}
    for k, shell in IRQ_VALUES.items():
        values.setdefault(k, shell)
    check_command(command, params)
    return command.format_map(values)


def env_name(param: str) -> str:
    """IRQ_PARAM_<NAME>: the parameter's name upper-cased, other characters as '_'."""
    return "IRQ_PARAM_" + re.sub(r"[^A-Za-z0-9]", "_", param).upper()


def param_env(params: dict[str, Any]) -> list[tuple[str, str]]:
    """(variable, value) of each parameter in the job's environment."""
    return [(env_name(k), value_text(v)) for k, v in params.items()]
