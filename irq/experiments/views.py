"""Read-only views of the ledger for status and show."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from irq.ledger.database import Ledger
from irq.ledger.models import Attempt, Event, Experiment, utcnow
from irq.ledger.states import State, is_active
from irq.ledger.transitions import Waiting, waiting


@dataclass
class ExperimentView:
    experiment: Experiment
    attempts: list[Attempt]
    events: list[Event]
    waiting: str | None = None  # queued locally / held until fixed, in words
    headline: str = ""  # the project's metric from the latest attempt: "val_mse 0.0171"
    commit: str | None = None  # the commit the latest attempt ran


def show(ledger: Ledger, exp_id: str, metric: str = "val_mse") -> ExperimentView:
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        atts = Ledger.attempts(s, exp.id)
        line = waiting_line(exp, any(is_active(a.state) for a in atts))
        last = atts[-1] if atts else None
        return ExperimentView(exp, atts, Ledger.events(s, exp.id), line,
                              headline(last.results, metric) if last else "", last.git_sha if last else None)


def now_iso() -> str:
    return utcnow().isoformat()


@dataclass
class StatusRow:
    """One line of `irq status`: the experiment, its latest attempt, why it waits."""

    id: str
    title: str
    state: str
    priority: str
    attempts: int
    job_id: str | None
    scheduler_state: str | None
    detail: str
    updated_at: Any


def status_rows(ledger: Ledger, metric: str = "val_mse") -> list[StatusRow]:
    rows: list[StatusRow] = []
    with ledger.transaction() as s:
        atts: dict[str, list[Attempt]] = {}
        for a in Ledger.attempts(s):
            atts.setdefault(a.experiment_id, []).append(a)
        exps = Ledger.experiments(s)
        states = {e.id: e.state for e in exps}
        for e in exps:
            mine = atts.get(e.id, [])
            last = mine[-1] if mine else None
            rows.append(StatusRow(
                id=e.id, title=e.title, state=e.state, priority=e.priority, attempts=len(mine),
                job_id=last.job_id if last else None,
                scheduler_state=last.state if last else None,
                detail=_detail(e, last, states, any(is_active(a.state) for a in mine), metric),
                updated_at=e.updated_at,
            ))
    return rows


def waiting_line(e: Experiment, has_active_attempt: bool) -> str | None:
    """Why an IN_PROGRESS experiment has no job, in words; None when it is not waiting."""
    w = waiting(e, has_active_attempt)
    if w is Waiting.HELD:
        return f"held until fixed: {e.waiting_reason}; fix: {e.held_fix}"
    if w is Waiting.QUEUED:
        reason = e.waiting_reason or ""
        return "queued locally, " + (reason if reason.startswith("waiting for ") else f"waiting for a slot: {reason}")
    return None


def _detail(e: Experiment, last: Attempt | None, states: dict[str, str], has_active_attempt: bool,
            metric: str = "val_mse") -> str:
    from irq.fields import fmt_time

    if (line := waiting_line(e, has_active_attempt)) is not None:
        return line
    if e.state == State.READY.value and e.depends_on:
        failed = [d for d in e.depends_on if states.get(d) == "FAILED"]
        if failed:
            return f"held: dependency {', '.join(failed)} FAILED"
        pending = [d for d in e.depends_on if states.get(d) != "DONE"]
        if pending:
            return "waiting for " + ", ".join(f"{d} ({states.get(d)})" for d in pending)
    if last is None:
        return ""
    if last.unknown_since:
        return f"state unknown since {fmt_time(last.unknown_since)} (scheduler unreachable)"
    if e.state == State.FAILED.value:
        return (last.root_cause or last.error or last.state)[:120]
    if e.state == State.DONE.value:
        return headline(last.results, metric)
    return last.state


def headline(results: dict[str, Any], metric: str) -> str:
    """'val_mse 0.0171' (or its mean over seeds) from an attempt's results; '' without it."""
    for key in (metric, f"{metric}_mean", "Validation MSE" if metric == "val_mse" else None):
        if key and results.get(key) is not None:
            return f"{metric if key == 'Validation MSE' else key} {results[key]}"  # the seed's label
    return ""
