"""The only writers of the two state machines, and the one definition of "waiting locally".

Every change of an experiment's state goes through ``move_experiment``; every change of an
attempt's state, end time or "unknown since" through ``move_attempt`` / ``mark_unknown``; an
attempt is born only in ``open_attempt``; an experiment waits locally only through
``wait_locally``. Each refuses the moves its table forbids, stamps the times and writes the
event, inside the caller's transaction (BEGIN IMMEDIATE), so a check and the write it guards
can never be split by another process.
"""
from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from irq import errors
from irq.ledger.models import Attempt, Event, Experiment, utcnow
from irq.ledger.states import (
    ATTEMPT_LEGAL,
    CLOSED_STATES,
    LEGAL,
    AttemptState,
    State,
    Waiting,  # noqa: F401 (re-exported: defined with the states so the read path needs no ORM)
    is_active,
    queue_entry,  # noqa: F401
    waiting,
)


def submittable(exp: Experiment, has_active_attempt: bool) -> bool:
    """READY, or waiting locally: what `irq submit` and the daemon may start a job for."""
    if has_active_attempt:
        return False
    return exp.state == State.READY or waiting(exp, False) is not None


def new_token() -> str:
    """Unique per attempt; short enough to sit in a SLURM job name."""
    return "irq-" + secrets.token_hex(5)


def active_attempt(s: Session, exp_id: str) -> Attempt | None:
    rows = s.exec(select(Attempt).where(Attempt.experiment_id == exp_id).order_by(Attempt.number))
    return next((a for a in rows if is_active(a.state)), None)


def _clear_waiting(exp: Experiment) -> None:
    exp.queued_since = None
    exp.waiting_reason = None
    exp.held_fix = None
    exp.queue_extras = []


def move_experiment(s: Session, exp: Experiment, to: State | str, reason: str,
                    attempt: Attempt | None = None, at: datetime | None = None) -> None:
    """The only writer of Experiment.state: refuses moves the state machine forbids."""
    to, frm = State(to), State(exp.state)
    if to not in LEGAL[frm]:
        raise errors.IllegalTransition(f"{exp.id} is {frm.value}; it cannot move to {to.value}",
                                       f"`irq show {exp.id}` shows its state and attempts")
    if frm is State.IN_PROGRESS and to in (State.READY, State.RETIRED) and (live := active_attempt(s, exp.id)):
        raise errors.IllegalTransition(
            f"{exp.id} has attempt {live.number} in state {live.state}; it cannot move to {to.value}",
            f"`irq cancel {exp.id}` first")
    exp.state = to.value
    exp.updated_at = utcnow()
    if to is not State.IN_PROGRESS:
        _clear_waiting(exp)
    s.add(exp)
    s.add(Event(experiment_id=exp.id, attempt_id=attempt.id if attempt else None,
                from_state=frm.value, to_state=to.value, reason=reason, at=at or utcnow()))


def wait_locally(s: Session, exp: Experiment, reason: str, fix: str | None = None) -> bool:
    """Queue (or, with a fix, hold) an experiment that has no job; READY becomes IN_PROGRESS.
    Returns False, writing nothing, when it is not READY or waiting (it has a job, or ended)."""
    if exp.state not in (State.READY, State.IN_PROGRESS) or active_attempt(s, exp.id) is not None:
        return False
    if exp.state == State.READY:
        word = "held" if fix else "queued locally"
        move_experiment(s, exp, State.IN_PROGRESS, f"{word}: {reason}")
    exp.queued_since = exp.queued_since or utcnow()
    exp.waiting_reason = reason
    exp.held_fix = fix
    s.add(exp)
    return True


def next_attempt_number(s: Session, exp_id: str) -> int:
    """The number the experiment's next attempt takes: one past its highest (an imported history
    may skip numbers, so not one past how many it has)."""
    last = s.exec(select(func.max(Attempt.number)).where(Attempt.experiment_id == exp_id)).one()
    return (last or 0) + 1


def open_attempt(s: Session, exp: Experiment, **fields: Any) -> Attempt:
    """A new attempt (SUBMITTING unless told otherwise). Refuses while another is active: the
    check runs in the writing transaction, so two submitters can never both pass it."""
    if (live := active_attempt(s, exp.id)) is not None:
        raise errors.IllegalTransition(
            f"{exp.id} already has attempt {live.number} in state {live.state}",
            f"`irq status` shows it; `irq cancel {exp.id}` stops it")
    state = AttemptState(fields.pop("state", AttemptState.SUBMITTING)).value
    fields.setdefault("token", new_token())
    att = Attempt(experiment_id=exp.id, number=next_attempt_number(s, exp.id), state=state, **fields)
    if exp.pending_resource_change:
        att.resource_change, exp.pending_resource_change = exp.pending_resource_change, None
    s.add(att)
    s.flush()
    s.add(Event(experiment_id=exp.id, attempt_id=att.id, kind="attempt",
                from_state=None, to_state=att.state, reason="attempt created"))
    if exp.state == State.READY:
        move_experiment(s, exp, State.IN_PROGRESS, f"submitting attempt {att.number}", attempt=att)
    _clear_waiting(exp)
    s.add(exp)
    return att


def move_attempt(s: Session, att: Attempt, to: AttemptState | str, reason: str | None = None, *,
                 ended_at: datetime | None = None, **facts: Any) -> bool:
    """The only writer of Attempt.state and Attempt.ended_at. Calling it means the state is
    known now (unknown_since clears); ``facts`` (job_id, exit_code, error, ...) are recorded with
    it. A closed attempt gets its end time. Returns whether the state changed."""
    to = AttemptState(to)
    bad = [k for k in facts if k in ("state", "ended_at", "unknown_since") or not hasattr(att, k)]
    if bad:
        raise TypeError(f"move_attempt cannot set {bad[0]!r}")
    try:
        frm = AttemptState(att.state)
    except ValueError:
        frm = AttemptState.UNKNOWN  # a word an old import kept verbatim
    if att.state != to and to not in ATTEMPT_LEGAL[frm]:
        raise errors.IllegalTransition(
            f"{att.experiment_id} attempt {att.number} is {att.state}; it cannot move to {to.value}",
            f"`irq show {att.experiment_id}` shows its attempts")
    for key, value in facts.items():
        setattr(att, key, value)
    att.unknown_since = None
    att.updated_at = utcnow()
    s.add(att)
    if att.state == to:
        return False
    s.add(Event(experiment_id=att.experiment_id, attempt_id=att.id, kind="attempt",
                from_state=att.state, to_state=to.value, reason=reason))
    att.state = to.value
    att.annotations = {k: v for k, v in att.annotations.items() if k != "state"}
    if to in CLOSED_STATES:
        att.ended_at = ended_at or att.ended_at or utcnow()
    return True


def record_late_job(s: Session, att: Attempt, job_id: str) -> bool:
    """A job the scheduler accepted for an attempt already given up (NOT_SUBMITTED, its experiment
    queued again: a reconcile could not see its sender's claim). The job exists, so it is recorded
    and followed like any other; its experiment stops waiting to be sent again. Returns False when
    the experiment has moved on meanwhile (another attempt runs, or it left IN_PROGRESS): the job
    is then one too many, for the caller to cancel."""
    exp = s.get(Experiment, att.experiment_id)
    wanted = exp is not None and exp.state == State.IN_PROGRESS and active_attempt(s, exp.id) is None
    move_attempt(s, att, AttemptState.PENDING, f"submitted as job {job_id} after it had been given up",
                 job_id=job_id, error=None)
    if wanted:
        _clear_waiting(exp)
        s.add(exp)
    return wanted


def mark_unknown(s: Session, att: Attempt, error: str | None = None) -> None:
    """The scheduler could not be asked (or did not list the job): keep the state, stamp when."""
    if att.unknown_since is None:
        att.unknown_since = utcnow()
    if error is not None:
        att.error = error
    att.updated_at = utcnow()
    s.add(att)


def record_edit(s: Session, exp: Experiment, new: dict[str, Any], reason: str) -> None:
    """Change a never-submitted experiment's definition (the caller checked it has no attempt)
    and write the change as an event, so `irq show` tells what was edited and when."""
    for key, value in new.items():
        setattr(exp, key, value)
    exp.updated_at = utcnow()
    s.add(exp)
    s.add(Event(experiment_id=exp.id, kind="edit", from_state=exp.state, to_state=exp.state, reason=reason))


def delete_experiment(s: Session, exp: Experiment) -> None:
    """Remove a never-submitted experiment and its events (the caller checked: no attempt)."""
    if s.exec(select(Attempt.id).where(Attempt.experiment_id == exp.id)).first() is not None:
        raise errors.IllegalTransition(f"{exp.id} has attempts; it can only be retired",
                                       f"`irq retire {exp.id}` keeps its history")
    for ev in s.exec(select(Event).where(Event.experiment_id == exp.id)):
        s.delete(ev)
    s.delete(exp)
