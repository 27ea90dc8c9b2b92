"""Submission, refresh, fetch and cancel: the core that moves attempts through a backend.

Exactly-once submission: the attempt row (state SUBMITTING, a unique token in the job name)
is committed before the backend submits; the job id is recorded after. If irq dies or the
link drops in between, ``reconcile`` finds the job by its name and adopts it, or, when the
scheduler has never seen it, puts the experiment back in the local queue. An infrastructure
fault never marks an experiment FAILED: its attempts show "unknown since".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from irq import errors, faults
from irq.backends.base import Backend
from irq.backends.registry import Backends, record_calls
from irq.backends.registry import slots as cached_slots
from irq.backends.target import Target
from irq.config import Config
from irq.jobs.git import config_in_repo, target_sha
from irq.jobs.jobscript import build_job, run_id_for
from irq.jobs.sync import reconcile
from irq.ledger.database import Ledger, new_token
from irq.ledger.models import Attempt, utcnow
from irq.ledger.states import (
    SUBMITTING,
    State,
    is_active,
)
from irq.policy.scheduler import Candidate, plan
from irq.ui import UI


@dataclass
class SubmitOutcome:
    id: str
    status: str  # submitted | queued | held | refused | adopted | skipped | unknown
    job_id: str | None = None
    message: str = ""


def render_for(ledger: Ledger, config: Config, exp_id: str, backend_name: str | None = None) -> tuple[str, list[str]]:
    """`irq render`: the script exactly as `irq submit` would send it now."""
    b = Backends(config)
    target = b.target(backend_name)
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        nxt = len(Ledger.attempts(s, exp.id)) + 1
    exp = config_in_repo(exp, config, target)
    req, skipped = build_job(exp, token="irq-0000000000", attempt=nxt, target=target,
                             git_sha=target_sha(config, target), run_id=run_id_for(exp.id, utcnow()))
    return req.script, skipped


def candidates(s: Any, per_task: bool = False) -> tuple[list[Candidate], dict[str, str]]:
    """READY and locally queued experiments; with per_task, an array costs one slot per seed."""
    exps = Ledger.experiments(s)
    active = {a.experiment_id for a in Ledger.attempts(s) if is_active(a.state)}
    out = []
    for e in exps:
        queued = e.state == State.IN_PROGRESS.value and e.id not in active and e.waiting_reason is not None
        if e.state == State.READY.value or queued:
            cost = len(e.seeds) if per_task and len(e.seeds) > 1 else 1
            out.append(Candidate(e.id, e.priority, e.seq, e.state, tuple(e.depends_on), requested=queued, cost=cost))
    return out, {e.id: e.state for e in exps}


def submit(ledger: Ledger, config: Config, backends: Backends, ui: UI, ids: list[str] | None = None,
           all_ready: bool = False, preflight: Callable[..., None] | None = None,
           backend_name: str | None = None, queue_waiting: bool = True) -> list[SubmitOutcome]:
    """Submit the named experiments (or every READY one) while job slots are free; queue the
    rest locally with the reason. Dependencies and priorities decide the order."""
    name = backend_name or backends.default_name()
    backend = backends.get(name)
    target = backends.target(name)
    outcomes: list[SubmitOutcome] = []
    reconcile(ledger, backends, ui)
    per_task = getattr(backend, "counts_array_tasks", False)
    with ledger.transaction() as s:
        cands, states = candidates(s, per_task)
        if ids is not None:
            wanted = []
            for i in ids:
                exp = Ledger.experiment(s, i)
                if exp.state == State.PROPOSED.value:
                    raise errors.IllegalTransition(f"{exp.id} is PROPOSED (a future extension)",
                                                   f"promote it first: `irq ready {exp.id}`")
                if exp.state in (State.DONE.value, State.FAILED.value):
                    raise errors.IllegalTransition(f"{exp.id} is {exp.state}",
                                                   f"`irq retry {exp.id}` first" if exp.state == "FAILED" else
                                                   "add a new experiment to run it again")
                if exp.id not in {c.id for c in cands}:
                    outcomes.append(SubmitOutcome(exp.id, "skipped", message="already submitted; see `irq status`"))
                    continue
                wanted.append(exp.id)
            cands = [c for c in cands if c.id in wanted]
        elif not all_ready:
            return outcomes
    slots = cached_slots(ledger, backends, name)
    p = plan(cands, states, slots.free, slots.limit if per_task else None)
    record_calls(ledger, backends)
    for exp_id in p.submit:
        outcomes.append(_submit_one(ledger, config, backend, target, exp_id, ui, preflight))
    cost = {c.id: c.cost for c in cands}
    used = slots.used + sum(cost.get(o.id, 1) for o in outcomes if o.status == "submitted")
    for exp_id, why in {**p.wait, **p.hold}.items():
        reason = why if why != "no free job slot" else f"no free job slot ({used} of {slots.limit} used)"
        status = "held" if exp_id in p.hold else "queued"
        if queue_waiting:
            _queue_locally(ledger, exp_id, reason)
        outcomes.append(SubmitOutcome(exp_id, status, message=reason))
    record_calls(ledger, backends)
    return outcomes


def _queue_locally(ledger: Ledger, exp_id: str, reason: str) -> None:
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        if exp.state == State.READY.value:
            Ledger.set_state(s, exp, State.IN_PROGRESS, f"queued locally: {reason}")
            exp.queued_since = utcnow()
        exp.waiting_reason = reason
        s.add(exp)


def _submit_one(ledger: Ledger, config: Config, backend: Backend, target: Target, exp_id: str, ui: UI,
                preflight: Callable[..., None] | None) -> SubmitOutcome:
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
    sha = target_sha(config, target)
    job_exp = config_in_repo(exp, config, target)
    now = utcnow()
    token = new_token()
    run_id = run_id_for(exp_id, now)
    with ledger.transaction() as s:
        number = len(Ledger.attempts(s, exp.id)) + 1
    req, skipped = build_job(job_exp, token=token, attempt=number, target=target, git_sha=sha, run_id=run_id)
    if preflight is not None:
        try:
            preflight(job_exp, target, sha, backend, req.script)
        except errors.PreflightFailed as exc:
            _queue_locally(ledger, exp_id, f"preflight failed: {exc.message}")
            return SubmitOutcome(exp_id, "held", message=exc.message + (f" ({exc.hint})" if exc.hint else ""))
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        att = Ledger.new_attempt(
            s, exp, token=token, backend=backend.name, state=SUBMITTING, run_id=run_id, git_sha=sha,
            partition=exp.resources.get("partition") or target.partition, run_dir=req.run_dir,
            modules=list(target.modules), script=req.script, submitted_at=now, array=req.array,
            cluster=target.name.split(":", 1)[1] if ":" in target.name else None,
            work_dir=f"{target.scratch}/irq-job-<job id>" if target.clone else target.code_dir,
        )
        change = exp.annotations.get("pending_resource_change")
        if change:
            att.resource_change = change
            exp.annotations = {k: v for k, v in exp.annotations.items() if k != "pending_resource_change"}
        if exp.state == State.READY.value:
            Ledger.set_state(s, exp, State.IN_PROGRESS, f"submitting attempt {number}", attempt=att)
        exp.waiting_reason = None
        exp.queued_since = None
        s.add(exp)
    faults.point("before_sbatch")
    try:
        job_id = backend.submit(req)
    except errors.SlotLimit as exc:
        _close_attempt(ledger, att.id, "REFUSED", error=exc.message, reason="job limit reached")
        _queue_locally(ledger, exp_id, exc.message)
        return SubmitOutcome(exp_id, "queued", message=exc.message)
    except errors.SubmissionRefused as exc:
        _close_attempt(ledger, att.id, "REFUSED", error=exc.message, reason="scheduler refused the job",
                       root_cause="the scheduler refused the job (see error)", fix=exc.hint, fail_experiment=True)
        return SubmitOutcome(exp_id, "refused", message=exc.message)
    except errors.BackendError as exc:
        with ledger.transaction() as s:
            a = s.get(Attempt, att.id)
            a.unknown_since = utcnow()
            a.error = f"submission unconfirmed: {exc.message}"
            s.add(a)
        return SubmitOutcome(exp_id, "unknown", message=f"{exc.message}; the next run adopts the job if it exists")
    faults.point("after_sbatch")
    with ledger.transaction() as s:
        a = s.get(Attempt, att.id)
        a.job_id = job_id
        Ledger.set_attempt_state(s, a, "PENDING", f"submitted as job {job_id}")
    ui.log(f"{exp_id}: submitted as job {job_id} ({backend.name})" + (
        f"; not passed to the trainer: {', '.join(skipped)}" if skipped else ""))
    return SubmitOutcome(exp_id, "submitted", job_id=job_id)


def _close_attempt(ledger: Ledger, attempt_id: int, state: str, *, error: str, reason: str,
                   root_cause: str | None = None, fix: str | None = None, fail_experiment: bool = False) -> None:
    with ledger.transaction() as s:
        a = s.get(Attempt, attempt_id)
        a.error, a.root_cause, a.suggested_fix, a.ended_at = error, root_cause, fix, utcnow()
        Ledger.set_attempt_state(s, a, state, reason)
        if fail_experiment:
            exp = Ledger.experiment(s, a.experiment_id)
            Ledger.set_state(s, exp, State.FAILED, reason, attempt=a)
