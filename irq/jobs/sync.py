"""Keep attempts in step with the scheduler: adopt unconfirmed submissions, refresh active jobs."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from irq import errors
from irq.backends.base import JobInfo
from irq.backends.registry import Backends, record_calls
from irq.backends.registry import slots as cached_slots
from irq.config import load_config
from irq.jobs.observed import mine, observation
from irq.jobs.record import unreachable_why
from irq.ledger.database import Ledger
from irq.ledger.models import Attempt, utcnow
from irq.ledger.states import (
    ACTIVE_STATES,
    NOT_SUBMITTED,
    SUBMITTING,
    AttemptState,
    is_active,
    is_final,
)
from irq.ledger.transitions import mark_unknown, wait_locally
from irq.ui import UI

# a SUBMITTING row younger than this may still be in flight; an older one is given up only once
# no live process claims it (irq/ledger/claims.py): a slow or suspended sender is waited for
ADOPT_GRACE = timedelta(seconds=30)


def reconcile(ledger: Ledger, backends: Backends, ui: UI) -> list[str]:
    """Adopt jobs whose submission was never confirmed (crash or dropped link after sbatch): by the
    token in their name, else by the log a job wrote in the attempt's run folder; an attempt no
    job shows, that is old enough and that no live process still sends, is queued again."""
    with ledger.transaction() as s:
        pending = Ledger.attempts(s, states=[SUBMITTING])
    notes = []
    by_backend: dict[str, list[Attempt]] = {}
    for a in pending:
        by_backend.setdefault(a.backend, []).append(a)
    for name, atts in by_backend.items():
        backend = backends.get(name)
        since = min(a.submitted_at or utcnow() for a in atts) - timedelta(minutes=5)
        names = {f"{a.experiment_id}.{a.token}": a for a in atts}
        # whom no live process sends, asked before the scheduler is: a sender still at work now may
        # get its job accepted after the scheduler answered below, and let go of its claim then
        idle = {a.id for a in atts if not ledger.claims.in_flight(a.id)}
        found = backend.find(list(names), since)
        unseen = [a.run_dir for n, a in names.items() if n not in found and a.run_dir and _old(a)]
        ran = backend.ran(unseen) if unseen else {}  # one round trip, and only when a decision is due
        for jname, a in names.items():
            job_id = found.get(jname) or ran.get(a.run_dir or "")
            with ledger.transaction() as s:
                att = s.get(Attempt, a.id)
                if (note := _settle(ledger, s, att, job_id, jname in found, a.id in idle)) is not None:
                    notes.append(note)
    for n in notes:
        ui.log(n)
    record_calls(ledger, backends)
    return notes


def _old(a: Attempt) -> bool:
    """Sent long enough ago, and long enough after its sender lost the link (if it did: an sbatch
    the link dropped under may still be accepted), for a job to show if there is one."""
    last = max((t for t in (a.submitted_at, a.unknown_since) if t is not None), default=None)
    return utcnow() - (last or utcnow()) >= ADOPT_GRACE


def _settle(ledger: Ledger, s: Any, att: Attempt, job_id: str | None, by_name: bool, idle: bool) -> str | None:
    """Adopt the job found for an unconfirmed attempt, or give the attempt up: what was done, in
    words (None: nothing yet). `idle`: no live process sent it when the scheduler was asked."""
    if att is None or att.state != SUBMITTING:
        return None
    if job_id:
        how = "its token" if by_name else "the log it wrote in the run folder"
        Ledger.set_attempt_state(s, att, AttemptState.PENDING, f"adopted job {job_id} by {how}", job_id=job_id, error=None)
        return f"{att.experiment_id}: adopted job {job_id} (submitted before irq could record it)"
    if not idle or not _old(att) or ledger.claims.in_flight(att.id):
        return None
    Ledger.set_attempt_state(s, att, NOT_SUBMITTED, "no job carries its token",
                             error="never reached the scheduler (irq stopped or the link dropped before sbatch)")
    wait_locally(s, Ledger.experiment(s, att.experiment_id), "re-queued: the previous submission never reached the scheduler")
    return f"{att.experiment_id}: attempt {att.number} never reached the scheduler; queued again"


@dataclass
class RefreshReport:
    changed: list[str] = field(default_factory=list)  # "Q-001: RUNNING -> COMPLETED"
    finished: list[int] = field(default_factory=list)  # attempt ids that reached a final state
    unreachable: dict[str, str] = field(default_factory=dict)  # backend -> error
    refused: dict[str, errors.HostKeyError] = field(default_factory=dict)  # a host key was refused: a person must act


def refresh(ledger: Ledger, backends: Backends, ui: UI) -> RefreshReport:
    """Ask each backend about every active attempt: one batched query per backend."""
    report = RefreshReport()
    reconcile_safe(ledger, backends, ui, report)
    with ledger.transaction() as s:
        active = [a for a in Ledger.attempts(s, states=ACTIVE_STATES) if a.job_id and a.backend != "imported"]
    by_backend: dict[str, list[Attempt]] = {}
    for a in active:
        by_backend.setdefault(a.backend, []).append(a)
    for name in [n for n, atts in by_backend.items() if unreachable_why(atts[0], backends.config) is not None]:
        del by_backend[name]  # its cluster left irq.toml: nothing to ask; `irq record` or `irq cancel` closes them
        report.unreachable[name] = f"{name} is no longer in irq.toml (`irq record ID` or `irq cancel ID` closes its jobs)"
    for name, atts in by_backend.items():
        since = min(a.submitted_at or utcnow() for a in atts) - timedelta(hours=1)
        try:
            rows = backends.get(name).query([a.job_id for a in atts], since)
        except errors.BackendError as exc:
            report.unreachable[name] = exc.message
            if isinstance(exc, errors.HostKeyError):
                report.refused[name] = exc
            _mark_unknown(ledger, [a.id for a in atts])
            ui.log(f"{name}: {exc.message} (states kept; unknown since now)")
            continue
        with ledger.transaction() as s:
            current = _still_active(s)
            for a in atts:
                now = current.get(a.id)  # None: another irq recorded its end since this refresh read it
                if now is not None and _apply(s, now, rows.get(a.job_id.split("_")[0]), report):
                    report.finished.append(a.id)
    record_calls(ledger, backends)
    return report


def _apply(s: Any, att: Attempt, got: list[JobInfo] | None, report: RefreshReport) -> bool:
    """Record what the scheduler said about one attempt; True when it reached a final state."""
    if not is_active(att.state):
        return False  # another irq recorded its end since this refresh read it
    got = mine(att, got)
    if not got:
        mark_unknown(s, att)
        return False
    state, facts, end, reason = observation(got, att.started_at)
    old = att.state
    if Ledger.set_attempt_state(s, att, state, reason or "scheduler", ended_at=end, **facts):
        report.changed.append(f"{att.experiment_id}: {old} -> {att.state}")
    return is_final(att.state)


def reconcile_safe(ledger: Ledger, backends: Backends, ui: UI, report: RefreshReport) -> None:
    try:
        reconcile(ledger, backends, ui)
    except errors.BackendError as exc:
        report.unreachable["reconcile"] = exc.message
        if isinstance(exc, errors.HostKeyError):
            report.refused["reconcile"] = exc


def _still_active(s: Any) -> dict[int, Attempt]:
    """The active attempts by id, in one query (not one `get` per attempt of a 200-job refresh)."""
    return {a.id: a for a in Ledger.attempts(s, states=ACTIVE_STATES)}


def _mark_unknown(ledger: Ledger, attempt_ids: list[int]) -> None:
    with ledger.transaction() as s:
        current = _still_active(s)
        for i in attempt_ids:
            if i in current:
                mark_unknown(s, current[i])


def refresh_for_status(ledger: Ledger, config_path: Path | None, ui: UI) -> dict[str, Any] | None:
    """Before `irq status`: refresh active attempts (none active: no scheduler call)."""
    with ledger.transaction() as s:
        active = [a for a in Ledger.attempts(s, states=ACTIVE_STATES) if a.backend != "imported"]
        calls = Ledger.calls_since(s, utcnow() - timedelta(hours=1))
    info: dict[str, Any] = {"scheduler_calls_last_hour": calls}
    if not active:
        return info
    config = load_config(config_path)
    with Backends(config) as backends:
        rep = refresh(ledger, backends, ui)
        try:
            if (down := rep.unreachable.get(backends.default_name())) is not None:
                raise errors.BackendError(down)  # asking again would fail again (a second login refused)
            sl = cached_slots(ledger, backends)
            info.update(limit=sl.limit, used=sl.used, free=sl.free if sl.limit is not None else None,
                        summary=sl.summary())
        except errors.BackendError as exc:
            info["summary"] = f"job slots unknown: {exc.message}"
        record_calls(ledger, backends)
    if rep.unreachable:
        info["unreachable"] = rep.unreachable
    if rep.refused:
        info["refused"] = next(iter(rep.refused.values()))  # `irq status` shows the states, then exits with it
    if rep.changed:
        info["changed"] = list(rep.changed)  # the command re-exports queue.md, as any that changed the ledger
    with ledger.transaction() as s:
        info["scheduler_calls_last_hour"] = Ledger.calls_since(s, utcnow() - timedelta(hours=1))
    return info
