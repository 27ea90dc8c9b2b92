"""Cancel a job, or take an experiment off the local queue."""
from __future__ import annotations

from typing import Any

from irq import errors
from irq.backends.registry import Backends, record_calls
from irq.jobs.record import unreachable_why
from irq.jobs.sync import reconcile
from irq.ledger.database import Ledger
from irq.ledger.models import Attempt, Experiment, utcnow
from irq.ledger.states import SUBMITTING, AttemptState, State
from irq.ledger.transitions import active_attempt, waiting
from irq.ui import UI


def _close_unreachable(s: Any, exp: Experiment, a: Attempt, why: str) -> str:
    """An attempt whose job irq cannot ask or stop (imported from queue.md, or run on a cluster
    irq.toml no longer names): cancelling it records that the user ended it (CANCELLED, the
    experiment FAILED: `irq retry` runs it again), and says to stop the job itself where it runs."""
    to = AttemptState.NOT_SUBMITTED if a.state == SUBMITTING else AttemptState.CANCELLED
    Ledger.set_attempt_state(s, a, to, f"cancelled by the user (it {why}: irq cannot reach its job)",
                             error=f"cancelled with `irq cancel`; the attempt {why}, so irq cannot reach its job",
                             fetched_at=utcnow())  # nothing irq could fetch: fetch must not try
    if exp.state == State.IN_PROGRESS.value:
        Ledger.set_state(s, exp, State.FAILED, f"attempt {a.number} cancelled by the user", attempt=a)
    job = f"job {a.job_id}" if a.job_id else "its job"
    stop = f" (e.g. scancel {a.job_id})" if a.job_id else ""
    return (f"{exp.id}: attempt {a.number} {why}, so irq cannot reach {job}; recorded as "
            f"{to.value} and {exp.id} as FAILED (`irq retry {exp.id}` runs it again). If it still runs, stop it "
            f"where it runs{stop}")


def cancel(ledger: Ledger, backends: Backends, ui: UI, exp_id: str) -> str:
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        a = active_attempt(s, exp.id)
        if (w := waiting(exp, a is not None)) is not None:
            Ledger.set_state(s, exp, State.READY, "taken off the local queue by the user")
            return f"{exp.id} was {w.value}; it is READY again (nothing was running)"
        if a is None:
            raise errors.IllegalTransition(f"{exp.id} is {exp.state}: nothing to cancel",
                                           "`irq fetch` records a job that has ended" if exp.state == State.IN_PROGRESS
                                           else None)
        if (why := unreachable_why(a, backends.config)) is not None:  # imported, or its cluster left irq.toml
            return _close_unreachable(s, exp, a, why)
    if a.state == SUBMITTING or not a.job_id:
        reconcile(ledger, backends, ui)
        with ledger.transaction() as s:
            a = s.get(Attempt, a.id)
        if not a.job_id:
            raise errors.BackendError(f"{exp_id}'s submission is not confirmed yet", "try again in a minute")
    backends.get(a.backend).cancel(a.job_id)
    with ledger.transaction() as s:
        att = s.get(Attempt, a.id)
        att.annotations = {**att.annotations, "cancelled_by": "irq cancel"}
        s.add(att)
    record_calls(ledger, backends)
    return f"cancel sent for job {a.job_id} of {exp_id}; `irq fetch` records it once the scheduler confirms"
