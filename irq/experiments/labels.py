"""The words irq writes for a sweep's points: `Base [lr=0.5]` titles and `Sweep of Q-003: lr=0.5`
notes, and how they follow an edit of the point's parameters."""
from __future__ import annotations

from typing import Any

SWEEP_NOTE = "Sweep of "  # a point's notes: "Sweep of Q-003: lr=0.1" (irq edit keeps its title in step)


def fmt_value(v: Any) -> str:
    return "null" if v is None else ("true" if v is True else "false" if v is False else str(v))


def label_of(keys: list[str], params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt_value(params[k])}" for k in keys)


def swept_keys(label: str, params: dict[str, Any]) -> list[str] | None:
    """The keys whose `key=value` pairs, joined by ', ', make `label` exactly from `params` (a
    value may itself hold ', k='): None when no such split exists."""
    if not label:
        return []
    for k in params:
        head = f"{k}={fmt_value(params[k])}"
        if label == head:
            return [k]
        if label.startswith(head + ", ") and (rest := swept_keys(label[len(head) + 2:],
                                                                {j: v for j, v in params.items() if j != k})) is not None:
            return [k, *rest]
    return None


def relabel(title: str, notes: str | None, old: dict[str, Any], new: dict[str, Any]) -> dict[str, str]:
    """A sweep point's title `Base [lr=0.5]` and notes `Sweep of Q-003: lr=0.5` after an edit of its
    parameters: the label follows the new values (a key the edit unsets leaves it), so results and
    queue.md never name a value the point does not run. {} when they are not a sweep's own words."""
    first, nl, rest = (notes or "").partition("\n")
    if not first.startswith(SWEEP_NOTE) or ": " not in first:
        return {}
    head, _, label = first.partition(": ")
    keys = swept_keys(label, old)
    if not keys:
        return {}
    fresh = label_of([k for k in keys if k in new], new)
    if fresh == label:
        return {}
    out = {"notes": head + (f": {fresh}" if fresh else "") + nl + rest}
    if title.endswith(f"[{label}]"):
        stem = title[: -len(label) - 2]
        out["title"] = f"{stem}[{fresh}]" if fresh else stem.rstrip() or title
    return out
