"""`irq sweep`: the override grammar researchers know from Hydra and DVC, and its points.

    key=v                 one value
    key=v1,v2,v3          a list (Hydra's comma sweep)
    key=choice(v1,v2)     the same, Hydra's spelling
    key=range(a,b[,s])    a <= v < b in steps of s (default 1), Hydra's range: stop excluded

Values read like JSON scalars: 3 -> int, 0.5 -> float, true/false, null, anything else a string
(quotes optional). Several keys give every combination, in the order written.
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irq import errors
from irq.experiments.labels import SWEEP_NOTE, label_of
from irq.fields import fmt_memory, fmt_seeds, parse_scalar
from irq.ledger.database import Ledger

OVERRIDE = re.compile(r"^\s*(?P<key>[A-Za-z_][\w.]*)\s*=\s*(?P<value>.*?)\s*$", re.DOTALL)
FUNC = re.compile(r"^(?P<name>range|choice)\((?P<args>.*)\)$", re.DOTALL)
NUMBERED = re.compile(r"Q-([0-9]+)")  # the ids a sweep's points continue (ASCII digits only)


def parse_value(text: str) -> Any:
    """One value as `irq add -p` reads it (fields.parse_scalar: numbers, lower-case `true`,
    `false`, `null`, else text; `3 apples` is text, not 3), and a value in quotes as its text."""
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    value, rest = parse_scalar(t)
    return t if rest is not None else value


OPEN, CLOSE = "([{", ")]}"
ESCAPABLE = ",\\'\""  # what a backslash makes part of a value (else it is kept: C:\data)


def split_values(raw: str, text: str) -> list[str]:
    """The comma-separated values of an override, as written: a comma inside quotes or after a
    backslash is part of its value; an unclosed quote or bracket is refused, never guessed."""
    items, cur, quote, depth, i = [], "", "", 0, 0
    while i < len(raw):
        ch = raw[i]
        if quote:
            cur += ch
            quote = "" if ch == quote else quote
        elif ch == "\\" and i + 1 < len(raw) and raw[i + 1] in ESCAPABLE:  # a\,b: the comma is the value's
            cur, i = cur + raw[i + 1], i + 1
        elif ch in "'\"":
            cur, quote = cur + ch, ch
        elif ch in OPEN or ch in CLOSE:
            depth += 1 if ch in OPEN else -1
            if depth < 0:
                break
            cur += ch
        elif ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    if quote or depth:
        raise errors.UsageError(f"the override {text!r} has a {'quote' if quote else 'bracket'} that is not closed",
                                "close it, or quote a value that holds it: key='a(b'")
    return [*items, cur] if items or cur else []


def _plain(item: str, text: str) -> str:
    """A value outside a function: lists and functions are Hydra syntax irq does not sweep."""
    t = item.strip()
    quoted = len(t) >= 2 and t[0] == t[-1] and t[0] in "'\""
    if not quoted and any(ch in t for ch in OPEN + CLOSE):
        raise errors.UsageError(f"cannot read {t!r} in {text!r}: irq sweeps lists (a,b), choice(a,b) and range(a,b,s)",
                                "a value that holds brackets is quoted: key='resnet(50)'")
    return item


MAX_POINTS = 1000  # experiments one sweep may create: more is a typo (range(1, 3e9)), not a study


def _too_many(n: int, text: str) -> errors.UsageError:
    return errors.UsageError(f"{text!r} gives {n:,} points; a sweep makes at most {MAX_POINTS:,} experiments",
                             "take fewer values, or a larger step: range(1,100,10)")


def _range(args: list[Any], text: str) -> list[Any]:
    if not 1 <= len(args) <= 3 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise errors.UsageError(f"cannot read {text!r}", "range takes one to three numbers: range(1,10,2)")
    start, stop, step = (0, args[0], 1) if len(args) == 1 else (args[0], args[1], args[2] if len(args) == 3 else 1)
    if step == 0:
        raise errors.UsageError(f"{text!r}: the step of a range cannot be 0")
    if all(isinstance(a, int) for a in (start, stop, step)):
        values = range(start, stop, step)
        if len(values) > MAX_POINTS:  # counted, not made: range(1, 3_000_000_000) is one number
            raise _too_many(len(values), text)
        return list(values)
    count = max(0, math.ceil((stop - start) / step - 1e-9))
    if count > MAX_POINTS:
        raise _too_many(count, text)
    return [round(start + i * step, 12) for i in range(count)]


def parse_override(text: str) -> tuple[str, list[Any]]:
    m = OVERRIDE.match(text)
    if not m:
        raise errors.UsageError(f"cannot read the override {text!r}", "write key=v1,v2 or key=range(1,5)")
    key, raw = m.group("key"), m.group("value")
    f = FUNC.match(raw)
    items = [_plain(i, text) for i in split_values(f.group("args") if f else raw, text)]
    if any(not a.strip() for a in items) and items != [""]:  # `1,` or `1,,2`: no empty value, in any form
        raise errors.UsageError(f"the override {text!r} has an empty value (a comma too many?)",
                                f"e.g. {key}=1,2; an empty text is {key}='\"\"'")
    if f:
        args = [parse_value(a) for a in items if a.strip()]
        values = _range(args, text) if f.group("name") == "range" else args
    else:
        values = [parse_value(v) for v in items]
    if not values:
        raise errors.UsageError(f"the override {text!r} gives no values", f"e.g. {key}=1,2,3 or {key}=range(1,4)")
    if len(set(map(repr, values))) != len(values):
        raise errors.UsageError(f"the override {text!r} repeats a value", "give each value once")
    return key, values


def expand(overrides: list[str]) -> list[dict[str, Any]]:
    """Every combination of the overrides' values, the first key varying slowest."""
    parsed = [parse_override(o) for o in overrides]
    keys = [k for k, _ in parsed]
    if len(set(keys)) != len(keys):
        raise errors.UsageError("a key appears twice in the sweep", "give each key once: key=v1,v2")
    n = math.prod(len(v) for _, v in parsed)
    if n > MAX_POINTS:
        raise _too_many(n, " ".join(overrides))
    return [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in parsed))]


@dataclass
class Point:
    id: str
    title: str
    overrides: dict[str, Any]
    parameters: dict[str, Any]
    seeds: list[int]


def plan(ledger: Ledger, base_id: str, overrides: list[str], seeds: list[int] | None = None,
         known_keys: frozenset[str] = frozenset(), default_command: str = "") -> tuple[Any, list[Point]]:
    """The base experiment and one Point per combination, with fresh ids after the last one.
    A key must change what runs: a placeholder of the command the base runs (its own, else the
    project's `default_command`), or, for the bundled trainer, one of its config keys (`known_keys`)."""
    if not overrides:
        raise errors.UsageError("a sweep needs at least one key=values override", "e.g. mining_opt_steps=1,3,5")
    points = expand(overrides)
    with ledger.transaction() as s:
        base = Ledger.experiment(s, base_id)
        taken = Ledger.ids(s)
    swept = {k for p in points for k in p}
    command = base.command or default_command
    from irq.formats.command import IRQ_VALUES, placeholders

    if own := sorted(swept & set(IRQ_VALUES)):  # the bundled trainer's --seed too comes from the job's seed
        raise errors.UsageError(f"{{{own[0]}}} is irq's own value, not a parameter a sweep sets",
                                "seeds come from --seeds: irq sweep BASE key=v1,v2 --seeds 0-9"
                                if own[0] == "seed" else "sweep the command's parameters")
    if command:
        known = [k for k in dict.fromkeys(placeholders(command)) if k not in IRQ_VALUES]
        if unknown := sorted(swept - set(known)):
            raise errors.UsageError(f"the command {base.id} runs has no placeholder {', '.join(f'{{{k}}}' for k in unknown)}",
                                    "sweep keys are its placeholders: " + (", ".join(known) or "it has none"))
    elif known_keys and (unknown := sorted(swept - set(known_keys))):
        raise errors.UsageError(f"the trainer has no config key {', '.join(unknown)}",
                                "sweep keys are trainer config keys: see docs/trainer.md")
    # the points are numbered after the highest Q-NNN; ids of other forms (lr-01, lr-sweep) take no number
    numbers = [int(m.group(1)) for i in taken if (m := NUMBERED.fullmatch(i))]
    nxt = max(numbers, default=0) + 1
    from irq.experiments.edit import default_title

    # a base titled by its parameters (irq add without --title) gives points titled by theirs
    by_parameters = base.title == default_title(base.id, base.parameters, None) != base.id
    out = []
    for k, ov in enumerate(points):
        pid, parameters = f"Q-{nxt + k:03d}", {**base.parameters, **ov}
        label = label_of(list(ov), ov)
        title = default_title(pid, parameters, None) if by_parameters else f"{base.title} [{label}]"
        out.append(Point(id=pid, title=title, overrides=ov, parameters=parameters,
                         seeds=list(seeds if seeds is not None else base.seeds)))
    return base, out


def base_config(base: Any, root: Path) -> Path | None:
    """The base's trainer config file, if it can be read from here (points run with it too)."""
    if not base.config_path:
        return None
    p = Path(base.config_path)
    p = p if p.is_absolute() else root / p
    return p if p.is_file() else None


def drafts(base: Any, points: list[Point], root: Path, proposed: bool = False, default_command: str = "") -> list[Any]:
    """Every point as the experiment it adds, each checked as `irq add` checks one (a dry run
    says what the real sweep refuses) and nothing written: each names its base and runs what it
    runs (its command, else the project's)."""
    from irq.experiments.edit import new_experiment

    r = base.resources or {}
    config = base_config(base, root)
    out = []
    for p in points:
        label = label_of(list(p.overrides), p.overrides)
        out.append(new_experiment(
            p.id, p.title, config=config, params=p.parameters, hypothesis=base.hypothesis, priority=base.priority,
            depends_on=list(base.depends_on), seeds=fmt_seeds(p.seeds) or None, gpus=r.get("gpus"), cpus=r.get("cpus"),
            memory=fmt_memory(r["memory_mb"]) if r.get("memory_mb") else None,
            time=f"{r['time_minutes']} minutes" if r.get("time_minutes") else None, partition=r.get("partition"),
            notes=f"{SWEEP_NOTE}{base.id}: {label}", proposed=proposed, retry=dict(base.retry_policy or {}),
            command=base.command, default_command=default_command,
        ))
    return out
