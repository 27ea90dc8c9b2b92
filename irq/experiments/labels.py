"""The words irq writes for a sweep's points: `Base [lr=0.5]` titles and `Sweep of Q-003: lr=0.5`
notes, and how they follow an edit of the point's parameters."""
from __future__ import annotations

import re
from typing import Any

SWEEP_NOTE = "Sweep of "  # a point's notes: "Sweep of Q-003: lr=0.1" (irq edit keeps its title in step)


def fmt_value(v: Any) -> str:
    return "null" if v is None else ("true" if v is True else "false" if v is False else str(v))


def label_of(keys: list[str], params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt_value(params[k])}" for k in keys)


def relabel(title: str, notes: str | None, old: dict[str, Any], new: dict[str, Any]) -> dict[str, str]:
    """A sweep point's title `Base [lr=0.5]` and notes `Sweep of Q-003: lr=0.5` after an edit of its
    parameters: the label follows the new values (what `irq edit` changes), so results and
    queue.md never name a value the point does not run. {} when they are not a sweep's own words."""
    first, nl, rest = (notes or "").partition("\n")
    if not first.startswith(SWEEP_NOTE) or ": " not in first:
        return {}
    head, _, label = first.partition(": ")
    keys = re.findall(r"(?:^|, )([A-Za-z_][\w.]*)=", label)
    if not keys or any(k not in old or k not in new for k in keys) or label_of(keys, old) != label:
        return {}
    fresh = label_of(keys, new)
    if fresh == label:
        return {}
    out = {"notes": f"{head}: {fresh}{nl}{rest}"}
    if title.endswith(f"[{label}]"):
        out["title"] = title[: -len(label) - 2] + f"[{fresh}]"
    return out
