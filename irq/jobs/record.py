"""Recording by hand how a job irq cannot reach ended: one imported from a hand-kept queue.md
(irq never submitted it, so it cannot ask the scheduler about it), or one on a cluster irq.toml no
longer names. Until then such an attempt stays RUNNING or PENDING, and every experiment that
depends on its experiment waits: the person who knows its fate says it, with its results."""
from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Any

from irq import errors
from irq.config import Config
from irq.fields import fmt_time
from irq.ledger.database import Ledger
from irq.ledger.models import Attempt, utcnow
from irq.ledger.states import SUBMITTING, AttemptState, State
from irq.ledger.transitions import active_attempt


class Ending(str, Enum):
    """How a job ended, as a person records it."""

    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


def parse_results(items: list[str]) -> dict[str, Any]:
    """`val_mse=0.0097` (as `irq add -p` reads a value: a number where it is one) into a dict."""
    from irq.fields import parse_scalar

    out: dict[str, Any] = {}
    for item in items:
        key, eq, text = item.partition("=")
        if not eq or not key.strip() or not text.strip():
            raise errors.UsageError(f"--result {item!r} is not KEY=VALUE", "e.g. --result val_mse=0.0097")
        value, rest = parse_scalar(text)
        if key.strip() in out:
            raise errors.UsageError(f"--result {key.strip()} is given twice", "give each result once")
        out[key.strip()] = text.strip() if rest else value
    return out


def _aware(t: datetime) -> datetime:
    """UTC with its zone (the ledger may hand back a naive UTC time)."""
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


_STATES = {Ending.completed: AttemptState.COMPLETED, Ending.failed: AttemptState.FAILED,
           Ending.cancelled: AttemptState.CANCELLED}


RECORD = "irq record {id} completed|failed|cancelled"  # what a person runs once such a job ended


def no_log(exp_id: str) -> errors.IrqError:
    return errors.IrqError(f"{exp_id}'s attempts were imported from queue.md; irq never ran them, so it has no log",
                           f"look where the job ran; once it ended, `{RECORD.format(id=exp_id)}` records how")


def unreachable_why(a: Attempt, config: Config) -> str | None:
    """Why irq cannot follow this attempt's job itself (None: it can)."""
    if a.backend == "imported":
        return "was imported from queue.md"
    if a.backend.startswith("slurm:") and a.backend[6:] not in config.clusters:
        return f"ran on {a.backend}, which irq.toml no longer names"
    return None


def record_end(ledger: Ledger, config: Config, exp_id: str, ending: Ending, results: dict[str, Any],
               ended: datetime | None, note: str | None) -> str:
    """Close the experiment's active attempt as `ending` (with `results`, at `ended` or now) and
    move the experiment to DONE (completed) or FAILED, in one transaction. Refused for a job irq
    follows itself, and for results on a job that did not complete."""
    if results and ending is not Ending.completed:
        raise errors.UsageError(f"--result goes with `completed`, not `{ending.value}`",
                                "record the results of a run that completed")
    ended = _aware(ended) if ended is not None else None
    if ended is not None and ended > utcnow():
        raise errors.UsageError(f"--ended {fmt_time(ended)} is in the future", "give when the job ended, e.g. 2026-01-14T06:30:00Z")
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        a = active_attempt(s, exp.id)
        if a is None:
            raise errors.IllegalTransition(f"{exp.id} is {exp.state} with no running or pending attempt: nothing to record",
                                           f"`irq show {exp.id}` shows its attempts")
        why = unreachable_why(a, config)
        if why is None:
            raise errors.IllegalTransition(
                f"{exp.id}'s attempt {a.number} runs as job {a.job_id or '(being submitted)'} on {a.backend}, which irq follows itself",
                f"`irq status` and `irq fetch` record its end; `irq cancel {exp.id}` stops it")
        if ended is not None and a.submitted_at is not None and ended < _aware(a.submitted_at):
            raise errors.UsageError(f"--ended {fmt_time(ended)} is before the job was submitted "
                                    f"({fmt_time(a.submitted_at)})", "give when the job ended")
        if a.state == SUBMITTING:  # no job was confirmed: nothing ran whose end could be recorded
            raise errors.IllegalTransition(f"{exp.id}'s attempt {a.number} was never confirmed by the scheduler",
                                           f"`irq cancel {exp.id}` gives it up")
        to = _STATES[ending]
        reason = f"recorded by hand with `irq record` (the attempt {why})" + (f": {note}" if note else "")
        Ledger.set_attempt_state(s, a, to, reason, ended_at=ended, fetched_at=utcnow(),  # nothing left to fetch
                                 results={**(a.results or {}), **results} if results else a.results)
        done = to is AttemptState.COMPLETED
        Ledger.set_state(s, exp, State.DONE if done else State.FAILED, f"attempt {a.number} {to.value} (recorded by hand)",
                         attempt=a)
        shown = ", ".join(f"{k} = {v}" for k, v in results.items())
        return (f"{exp.id}: attempt {a.number} recorded as {to.value}"
                + (f" ({shown})" if shown else "") + f"; {exp.id} is {exp.state}"
                + ("" if done else f" (`irq retry {exp.id}` runs it again)"))
