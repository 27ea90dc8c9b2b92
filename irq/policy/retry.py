"""Retry policy: after a TIMEOUT or OUT_OF_MEMORY, resubmit with more time or memory, up to a cap.

One type for the three places that spell a policy (the `irq add` options, queue.md's
``Retry`` bullet, the ledger's JSON column), and one pure decision, ``bigger``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from irq.fields import (
    FieldError,
    fmt_memory,
    fmt_minutes,
    parse_memory,
    parse_minutes,
)

RETRYABLE = ("TIMEOUT", "OUT_OF_MEMORY")
DEFAULT_MAX_ATTEMPTS = 3
MAX_ATTEMPTS = 20  # 2^19 times the first time limit is past any cluster's
SYNTAX = "on TIMEOUT, OUT_OF_MEMORY; max time 8 hours; max memory 64GB; max attempts 3"


@dataclass(frozen=True)
class RetryPolicy:
    on: tuple[str, ...] = ()  # empty: both RETRYABLE states
    max_time_minutes: int | None = None
    max_memory_mb: int | None = None
    max_attempts: int | None = None  # None: DEFAULT_MAX_ATTEMPTS

    def __post_init__(self) -> None:
        bad = [s for s in self.on if s not in RETRYABLE]
        if bad:
            raise FieldError(f"a retry policy acts on TIMEOUT or OUT_OF_MEMORY, not {bad[0]!r}")
        if self.max_attempts is not None and self.max_attempts < 1:  # 0 read as the default, -2 broke import
            raise FieldError(f"max attempts {self.max_attempts}: an experiment runs at least once (1 or more)")
        if self.max_attempts is not None and self.max_attempts > MAX_ATTEMPTS:  # each doubles the time or memory
            raise FieldError(f"max attempts {self.max_attempts}: at most {MAX_ATTEMPTS} (each retry doubles what it asks for)")

    @property
    def triggers(self) -> tuple[str, ...]:
        return self.on or RETRYABLE

    @property
    def attempts_allowed(self) -> int:
        return self.max_attempts or DEFAULT_MAX_ATTEMPTS

    # -- the ledger's JSON ------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> RetryPolicy | None:
        """None for the empty dict: no policy (the default)."""
        if not d:
            return None
        return cls(tuple(d.get("on") or ()), d.get("max_time_minutes"), d.get("max_memory_mb"), d.get("max_attempts"))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"on": list(self.on), "max_time_minutes": self.max_time_minutes,
                             "max_memory_mb": self.max_memory_mb, "max_attempts": self.max_attempts}
        return {k: v for k, v in d.items() if v not in (None, [])}

    # -- text (queue.md, the CLI) -------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> RetryPolicy:
        """'on TIMEOUT, OUT_OF_MEMORY; max time 8 hours; max memory 64GB; max attempts 3'."""
        fields: dict[str, Any] = {}
        for part in (p.strip() for p in text.split(";")):
            if m := re.fullmatch(r"on\s+(.+)", part):
                fields["on"] = tuple(s.strip().upper() for s in m.group(1).split(","))
            elif m := re.fullmatch(r"max time\s+(.+)", part):
                fields["max_time_minutes"] = parse_minutes(m.group(1))
            elif m := re.fullmatch(r"max memory\s+(.+)", part):
                fields["max_memory_mb"] = parse_memory(m.group(1))
            elif m := re.fullmatch(r"max attempts\s+(-?\d+)", part):
                fields["max_attempts"] = int(m.group(1))
            else:
                raise FieldError(f"cannot read retry policy part {part!r} (expected {SYNTAX!r})")
        return cls(**fields)

    @classmethod
    def from_options(cls, on: list[str], max_time: str | None = None, max_memory: str | None = None,
                     max_attempts: int | None = None) -> RetryPolicy | None:
        """`irq add --retry-on ... --retry-max-time ...`; None without --retry-on (a cap without it
        would be dropped silently: refused)."""
        if not on:
            if max_time or max_memory:
                raise FieldError(f"--retry-max-{'time' if max_time else 'mem'} caps a retry policy: "
                                 "add --retry-on TIMEOUT or --retry-on OUT_OF_MEMORY")
            return None
        return cls(tuple(o.upper() for o in on), parse_minutes(max_time) if max_time else None,
                   parse_memory(max_memory) if max_memory else None, max_attempts)

    def format(self) -> str:
        parts = []
        if self.on:
            parts.append("on " + ", ".join(self.on))
        if self.max_time_minutes:
            parts.append("max time " + fmt_minutes(self.max_time_minutes))
        if self.max_memory_mb:
            parts.append("max memory " + fmt_memory(self.max_memory_mb))
        if self.max_attempts:
            parts.append(f"max attempts {self.max_attempts}")
        return "; ".join(parts)


@dataclass(frozen=True)
class Bump:
    resources: dict[str, Any]
    change: str  # "time 1 hour -> 2 hours after TIMEOUT": carried onto the next attempt


def bigger(resources: dict[str, Any], state: str, policy: RetryPolicy | None,
           attempts_so_far: int = 0) -> Bump | None:
    """Double the time after a TIMEOUT, the memory after an OUT_OF_MEMORY, up to the policy's cap.
    None when the policy does not apply, the attempts are used up, or the cap is reached (a
    person decides)."""
    if policy is None or state not in policy.triggers or attempts_so_far >= policy.attempts_allowed:
        return None
    key, cap, fmt = (("time_minutes", policy.max_time_minutes, fmt_minutes) if state == "TIMEOUT"
                     else ("memory_mb", policy.max_memory_mb, fmt_memory))
    old = resources.get(key)
    if not old:
        return None
    new = min(old * 2, cap or old * 2)
    if new <= old:
        return None
    word = "time" if key == "time_minutes" else "memory"
    return Bump({**resources, key: new}, f"{word} {fmt(old)} -> {fmt(new)} after {state}")
