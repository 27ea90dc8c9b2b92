"""The bundled trainer's own schema (trainer/keys.json), applied at the door.

`irq add`, `irq edit` and preflight check an experiment's trainer parameters here, so a value
the trainer would refuse (`mining = "adversarial; touch x"`, `rank = 0`) is refused when typed,
not when the job starts. The JSON is generated from trainer/config.py by `python -m
trainer.schema`; irq reads it as data and never imports the trainer (no torch).
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from irq import errors
from irq.backends.target import REPO_ROOT

TYPES = {"int": int, "float": (int, float), "bool": bool, "str": str}
HINT = "see docs/trainer.md for the trainer's keys, or `python -m trainer --help`"
BUNDLED_CONFIGS = REPO_ROOT / "trainer" / "configs"  # in a checkout, and where pip installed irq


def config_hint() -> str:
    """Where a trainer config can come from, wherever irq is installed (the docs' paths are the
    checkout's)."""
    return f"pass a trainer config JSON file, e.g. {BUNDLED_CONFIGS / 'tiny.json'} (the bundled trainer's own configs are in that folder)"


@lru_cache(maxsize=4)
def schema(code_dir: Path = REPO_ROOT) -> dict[str, dict[str, Any]]:
    """Key -> {type, default, min, max, gt, lt, choices, pattern, nullable}; empty if absent."""
    try:
        return json.loads((code_dir / "trainer" / "keys.json").read_text(encoding="utf-8")).get("schema", {})
    except (OSError, ValueError):
        return {}


def problem(key: str, value: Any, rule: dict[str, Any]) -> str | None:
    """Why the trainer would refuse `key = value`, in its words; None if it accepts it."""
    if value is None:
        return None if rule.get("nullable") else f"{key} may not be null"
    want = rule.get("type", "str")
    if want == "int" and isinstance(value, float) and value.is_integer():
        value = int(value)  # 1e5 reads as a float; the trainer takes it as 100000
    if isinstance(value, bool) and want != "bool" or not isinstance(value, TYPES.get(want, object)):
        return f"{key} = {value!r} is not {'an' if want == 'int' else 'a'} {want}"
    if "choices" in rule and value not in rule["choices"]:
        return f"{key} = {value!r} is not one of {', '.join(map(str, rule['choices']))}"
    if "pattern" in rule and not re.fullmatch(rule["pattern"], str(value)):
        return f"{key} = {value!r} does not match {rule['pattern']}"
    bounds = [("min", lambda lim: value >= lim, ">="), ("max", lambda lim: value <= lim, "<="),
              ("gt", lambda lim: value > lim, ">"), ("lt", lambda lim: value < lim, "<")]
    for name, ok, word in bounds:
        if name in rule and not ok(rule[name]):
            return f"{key} = {value!r} must be {word} {rule[name]}"
    return None


def check_parameters(params: dict[str, Any], where: str = "") -> None:
    """Refuse the first trainer parameter the trainer would refuse; other keys pass (they are
    notes, not trainer flags: `irq render` lists them as not passed)."""
    rules = schema()
    for key, value in params.items():
        rule = rules.get(key)
        why = problem(key, value, rule) if rule is not None else None
        if why:
            raise errors.UsageError(f"{where}{why}", HINT)
