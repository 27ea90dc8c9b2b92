"""Submission, refresh, fetch and cancel: the core that moves attempts through a backend.

Exactly-once submission: the attempt row (state SUBMITTING, a unique token in the job name)
is committed before the backend submits; the job id is recorded after. The transaction that
writes the row re-checks that the experiment is still submittable, that no attempt of it is
active and that none was opened since the plan was made (BEGIN IMMEDIATE: a second `irq
submit` or the daemon waits for it, then sees the row and skips), and claims it for this
process until the job id is recorded (irq/ledger/claims.py). If irq dies or the link drops
after the row, ``reconcile`` finds the job by its name and adopts it, or, when the scheduler has
never seen it and no live process claims it (a slow sbatch, a suspended irq: wait), puts the
experiment back in the local queue. An infrastructure fault never marks an experiment FAILED:
its attempts show "unknown since".
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from irq import errors, faults
from irq.backends.base import Backend, JobRequest
from irq.backends.registry import Backends, record_calls
from irq.backends.registry import slots as cached_slots
from irq.backends.target import Target
from irq.config import Config
from irq.formats.render import project_templates
from irq.jobs.git import check_code, config_in_repo, target_sha
from irq.jobs.jobscript import build_job, run_id_for, with_command
from irq.jobs.sync import reconcile
from irq.ledger.database import Ledger, new_token
from irq.ledger.models import Attempt, Experiment, utcnow
from irq.ledger.states import ACTIVE_STATES, NOT_SUBMITTED, REFUSED, SUBMITTING, AttemptState, State
from irq.ledger.transitions import (
    active_attempt,
    mark_unknown,
    next_attempt_number,
    record_late_job,
    submittable,
    wait_locally,
)
from irq.policy.scheduler import Candidate, Plan, plan
from irq.ui import UI


@dataclass
class SubmitOutcome:
    id: str
    status: str  # submitted | queued | held | refused | adopted | skipped | unknown
    job_id: str | None = None
    message: str = ""


def candidates(s: Any, per_task: bool = False) -> tuple[list[Candidate], dict[str, str]]:
    """READY and locally waiting experiments, and every experiment's state (for dependencies);
    with per_task, an array costs one slot per seed. Only the experiments that can be candidates
    and the active attempts are loaded whole: a ledger of 10,000 experiments and 50,000 attempts
    is read in a few hundred rows."""
    states = Ledger.states(s)
    exps = Ledger.experiments(s, {State.READY.value, State.IN_PROGRESS.value})
    active = {a.experiment_id for a in Ledger.attempts(s, states=ACTIVE_STATES)}
    out = []
    for e in exps:
        if submittable(e, e.id in active):
            cost = len(e.seeds) if per_task and len(e.seeds) > 1 else 1
            out.append(Candidate(e.id, e.priority, e.seq, e.state, tuple(e.depends_on),
                                 requested=e.state == State.IN_PROGRESS, cost=cost, held=e.held_fix is not None))
    return out, states


def _named(s: Any, ids: list[str], cands: list[Candidate], outcomes: list[SubmitOutcome]) -> list[Candidate]:
    """The candidates the user named; a named experiment that cannot be submitted says why."""
    wanted = []
    for i in dict.fromkeys(ids):  # each once
        exp = Ledger.experiment(s, i)
        if exp.id in wanted:
            continue
        if exp.state == State.RETIRED:
            raise errors.IllegalTransition(f"{exp.id} is RETIRED: it will not run", "add a new experiment to run it")
        if exp.state == State.PROPOSED:
            raise errors.IllegalTransition(f"{exp.id} is PROPOSED (a future extension)",
                                           f"promote it first: `irq ready {exp.id}`")
        if exp.state in (State.DONE, State.FAILED):
            raise errors.IllegalTransition(f"{exp.id} is {exp.state}",
                                           f"`irq retry {exp.id}` first" if exp.state == State.FAILED else
                                           "add a new experiment to run it again")
        if exp.id not in {c.id for c in cands}:
            outcomes.append(SubmitOutcome(exp.id, "skipped", message="already submitted; see `irq status`"))
            continue
        wanted.append(exp.id)
    return [c for c in cands if c.id in wanted]


def submit(ledger: Ledger, config: Config, backends: Backends, ui: UI, ids: list[str] | None = None,
           all_ready: bool = False, preflight: Callable[..., None] | None = None,
           backend_name: str | None = None, queue_waiting: bool = True) -> list[SubmitOutcome]:
    """Submit the named experiments (or every READY one) while job slots are free; queue the
    rest locally with the reason, hold those a person must fix. Dependencies and priorities
    decide the order."""
    name = backends.resolve_name(backend_name)
    backend = backends.get(name)
    target = backends.target(name)
    outcomes: list[SubmitOutcome] = []
    reconcile(ledger, backends, ui)
    per_task = backend.counts_array_tasks
    with ledger.transaction() as s:
        cands, states = candidates(s, per_task)
        if ids is not None:
            cands = _named(s, ids, cands, outcomes)
        elif not all_ready:
            return outcomes
    if not cands:  # nothing READY (an idle daemon's every cycle): no question for the scheduler
        record_calls(ledger, backends)
        return outcomes
    slots = cached_slots(ledger, backends, name)
    p = _fill(ledger, config, backend, target, ui, preflight, cands, states, slots, per_task, outcomes)
    record_calls(ledger, backends)
    cost = {c.id: c.cost for c in cands}
    used = slots.used + sum(cost.get(o.id, 1) for o in outcomes if o.status == "submitted")
    if slots.limit is not None and any(o.status == "queued" for o in outcomes):  # the scheduler said: full
        used = max(used, slots.limit)
    for exp_id, why in p.wait.items():
        reason = why if why != "no free job slot" else f"no free job slot ({used} of {slots.limit} used)"
        if queue_waiting:
            _wait(ledger, exp_id, reason)
        outcomes.append(SubmitOutcome(exp_id, "queued", message=reason))
    for exp_id, why in p.hold.items():
        if queue_waiting:
            _wait(ledger, exp_id, *_reason_and_fix(why))
        outcomes.append(SubmitOutcome(exp_id, "held", message=why))
    record_calls(ledger, backends)
    return outcomes


FREES_ITS_SLOT = ("held", "skipped")  # nothing reached the scheduler: the slot goes to the next in order


def _fill(ledger: Ledger, config: Config, backend: Backend, target: Target, ui: UI,
          preflight: Callable[..., None] | None, cands: list[Candidate], states: dict[str, str], slots: Any,
          per_task: bool, outcomes: list[SubmitOutcome]) -> Plan:
    """Submit what the plan says; a slot left by an experiment held or skipped on the way goes to
    the next candidate in order (re-planned), so one held experiment never starves the READY ones.
    At most as many extra tries as there were free slots: a failure that holds every experiment (a
    commit not pushed, the cluster's python gone) costs twice the preflights, not one per READY
    experiment. Returns the last plan: its wait and hold are the experiments nothing was sent for."""
    free, tried, extra = slots.free, set(), slots.free
    cost = {c.id: c.cost for c in cands}
    while True:
        p = plan([c for c in cands if c.id not in tried], states, free, slots.limit if per_task else None)
        if not p.submit:
            return p
        try:
            for exp_id in p.submit:
                tried.add(exp_id)
                outcomes.append(out := _submit_one(ledger, config, backend, target, exp_id, ui, preflight))
                if out.status == "queued":  # the scheduler says the limit is reached: nothing more goes
                    free = 0
                elif out.status not in FREES_ITS_SLOT:
                    free -= cost[exp_id]
                elif extra > 0:  # its slot goes to the next in order
                    extra -= 1
                else:
                    free -= cost[exp_id]
                if out.status in ("submitted", "unknown"):  # what waits for it now waits for a job
                    states[exp_id] = State.IN_PROGRESS.value
        except KeyboardInterrupt:  # what was sent is in the ledger; say it, never just "interrupted"
            sent = [f"{o.id} (job {o.job_id})" for o in outcomes if o.status == "submitted"]
            raise errors.Interrupted(
                f"interrupted after submitting {len(sent)} of {len(tried | set(p.submit))}"
                + (f": {', '.join(sent[:20])}" if sent else "")
                + (f" and {len(sent) - 20} more" if len(sent) > 20 else ""),
                "`irq status` shows every experiment; the rest stay READY for the next submit") from None
        if free <= 0:
            return plan([c for c in cands if c.id not in tried], states, 0, slots.limit if per_task else None)


def _reason_and_fix(why: str) -> tuple[str, str]:
    """The planner's 'dependency Q-005 FAILED (retry it, ...)' or '...limit of 2 (...): split the
    seeds, ...' as (reason, fix)."""
    if why.endswith(")") and " (" in why:
        reason, _, fix = why[:-1].rpartition(" (")
        return reason, fix
    reason, _, fix = why.rpartition(": ")
    return (reason, fix) if reason else (why, "see the reason")


PREFLIGHT_FAILED = "preflight failed: "
REMOVED = "removed meanwhile (irq rm); nothing submitted"


def definition(exp: Experiment) -> tuple:
    """What an experiment's job script and its place in the queue are made from: an edit of any of
    it after the script was made means the script is not this experiment's any more."""
    return (exp.parameters, exp.seeds, exp.resources, exp.command, exp.config_path, exp.depends_on,
            exp.title, exp.hypothesis)


def _wait(ledger: Ledger, exp_id: str, reason: str, fix: str | None = None) -> None:
    """Queue or hold locally (in a transaction of its own)."""
    with ledger.transaction() as s:
        _wait_in(s, exp_id, reason, fix)


def _wait_in(s: Any, exp_id: str, reason: str, fix: str | None = None) -> None:
    """Queue or hold locally. Waiting for a slot does not hide a failed preflight: that hold
    stays until a preflight passes (the attempt opens) or the user takes it off the queue."""
    exp = s.get(Experiment, exp_id)
    if exp is None:  # removed since it was planned
        return
    if fix is None and (exp.waiting_reason or "").startswith(PREFLIGHT_FAILED) and exp.held_fix is not None:
        return
    wait_locally(s, exp, reason, fix)


def _held(ledger: Ledger, exp_id: str, exc: errors.PreflightFailed) -> SubmitOutcome:
    """Hold the experiment for a failed check (its commit, its config's place, its preflight)."""
    _wait(ledger, exp_id, PREFLIGHT_FAILED + exc.message, exc.hint or "see `irq check ID`")
    return SubmitOutcome(exp_id, "held", message=exc.message + (f" ({exc.hint})" if exc.hint else ""))


def _submit_one(ledger: Ledger, config: Config, backend: Backend, target: Target, exp_id: str, ui: UI,
                preflight: Callable[..., None] | None) -> SubmitOutcome:
    with ledger.transaction() as s:
        exp = s.get(Experiment, exp_id)
        if exp is None:  # removed (irq rm) since it was planned
            return SubmitOutcome(exp_id, "skipped", message=REMOVED)
        number = next_attempt_number(s, exp.id)
        run_id = run_id_for(exp_id, utcnow(), lambda name: Ledger.run_id_taken(s, name))
        planned = definition(exp)
    try:  # the commit and where the config lies in it: a failure holds this experiment, the others go on
        sha = target_sha(config, target)
        job_exp = with_command(config_in_repo(exp, config, target), config.project.command)
    except errors.PreflightFailed as exc:
        return _held(ledger, exp_id, exc)
    try:
        req, skipped = build_job(job_exp, token=new_token(), attempt=number, target=target, git_sha=sha,
                                 run_id=run_id, template_dir=project_templates(config),
                                 default_command=config.project.command)
    except (errors.UsageError, errors.TemplateError) as exc:  # this experiment's script: held, the others go on
        why = f"its job script cannot be made: {exc.message}"
        fix = exc.hint or f"`irq render {exp_id}` shows what fails"
        _wait(ledger, exp_id, PREFLIGHT_FAILED + why, fix)
        return SubmitOutcome(exp_id, "held", message=f"{why} ({fix})")
    try:
        if warning := check_code(config, target, sha):
            ui.log(f"{exp_id}: warning: {warning}")
        if preflight is not None:
            preflight(job_exp, target, sha, backend, req.script)
    except errors.PreflightFailed as exc:
        return _held(ledger, exp_id, exc)
    att = _open_attempt(ledger, exp_id, number, backend, target, req, sha, run_id, planned)
    if isinstance(att, SubmitOutcome):
        return att
    try:
        faults.point("before_sbatch")
        outcome = _send(ledger, backend, att, req)
    finally:  # sent and recorded, or failed: whatever escapes, this process no longer sends it
        ledger.claims.release(att.id)
    if outcome.status == "submitted":
        ui.step(f"{exp_id}: submitted as job {outcome.job_id} ({backend.name})" + (
            f"; not passed to the trainer: {', '.join(skipped)}" if skipped else ""))
    return outcome


def _open_attempt(ledger: Ledger, exp_id: str, number: int, backend: Backend, target: Target,
                  req: JobRequest, sha: str | None, run_id: str, planned: tuple) -> Attempt | SubmitOutcome:
    """Write the SUBMITTING attempt, re-checking in this same write transaction that the
    experiment is still there and submittable, unchanged since its script was made (an `irq edit`
    in between: the script would run the old definition, or before a new dependency), that nobody
    opened an attempt since it was planned, and that no run took its run's name meanwhile; else
    the outcome to report, nothing written."""
    with ledger.transaction() as s:
        exp = s.get(Experiment, exp_id)
        if exp is None:
            return SubmitOutcome(exp_id, "skipped", message=REMOVED)
        if definition(exp) != planned:  # it stays as it is: the next submit or cycle sends the new definition
            return SubmitOutcome(exp_id, "skipped", message="edited meanwhile; the next submit sends it as it is now")
        live = active_attempt(s, exp.id) is not None
        if live or next_attempt_number(s, exp.id) != number:
            return SubmitOutcome(exp_id, "skipped", message="submitted meanwhile by another irq; see `irq status`")
        if not submittable(exp, live):  # retired, or taken off the queue (irq cancel), while its script was made
            return SubmitOutcome(exp_id, "skipped", message=f"{exp.state} meanwhile (not waiting to run); nothing submitted")
        if Ledger.run_id_taken(s, run_id):  # it stays READY
            # "skipped", not "queued": that word means the scheduler's limit is reached, and nothing more goes
            return SubmitOutcome(exp_id, "skipped", message=f"run name {run_id} was just taken; the next submit picks another")
        att = Ledger.new_attempt(
            s, exp, token=req.token, backend=backend.name, state=SUBMITTING, run_id=run_id, git_sha=sha,
            partition=exp.resources.get("partition") or target.partition, run_dir=req.run_dir,
            modules=list(target.modules), script=req.script, submitted_at=utcnow(), array=req.array,
            cluster=target.name.split(":", 1)[1] if ":" in target.name else None,
            work_dir=target.work_dir(run_id, bool(req.array)),
        )
        ledger.claims.hold(att.id)  # before the row is visible: no reconcile gives up on it while this process lives
        return att


def _send(ledger: Ledger, backend: Backend, att: Attempt, req: JobRequest) -> SubmitOutcome:
    """sbatch, then record what it said. An unconfirmed submission stays SUBMITTING: the next
    reconcile adopts the job by its token, or re-queues the experiment."""
    exp_id = att.experiment_id
    try:
        job_id = backend.submit(req)
    except errors.SlotLimit as exc:  # nothing ran: the attempt was never submitted, the experiment waits for a slot
        _close_attempt(ledger, att.id, NOT_SUBMITTED, error=exc.message,
                       reason="the scheduler's job limit was reached: nothing ran", wait=exc.message)
        return SubmitOutcome(exp_id, "queued", message=exc.message)
    except errors.SubmissionRefused as exc:
        _close_attempt(ledger, att.id, REFUSED, error=exc.message, reason="scheduler refused the job",
                       root_cause="the scheduler refused the job (see error)", fix=exc.hint, fail_experiment=True)
        return SubmitOutcome(exp_id, "refused", message=exc.message)
    except errors.BackendError as exc:
        with ledger.transaction() as s:
            mark_unknown(s, s.get(Attempt, att.id), f"submission unconfirmed: {exc.message}")
        return SubmitOutcome(exp_id, "unknown", message=f"{exc.message}; the next run adopts the job if it exists")
    faults.point("after_sbatch")
    wanted = True
    with ledger.transaction() as s:
        a = s.get(Attempt, att.id)
        if a.state == SUBMITTING:
            Ledger.set_attempt_state(s, a, AttemptState.PENDING, f"submitted as job {job_id}", job_id=job_id)
        elif a.state == NOT_SUBMITTED:  # given up meanwhile: the job exists all the same, and is kept
            wanted = record_late_job(s, a, job_id)
        # else another irq adopted the job by its token meanwhile (this one was stopped): it is recorded
    if not wanted:
        return _cancel_extra(backend, exp_id, job_id)
    return SubmitOutcome(exp_id, "submitted", job_id=job_id)


def _cancel_extra(backend: Backend, exp_id: str, job_id: str) -> SubmitOutcome:
    """A job accepted after its attempt was given up and its experiment sent again (or stopped):
    one too many. It is recorded; cancelled here, the next refresh records its end."""
    try:
        backend.cancel(job_id)
    except errors.BackendError as exc:
        return SubmitOutcome(exp_id, "unknown", job_id=job_id,
                             message=f"job {job_id} was accepted after this submission had been given up and "
                                     f"{exp_id} moved on; cancelling it failed ({exc.message}): `irq cancel {exp_id}`")
    return SubmitOutcome(exp_id, "skipped", job_id=job_id,
                         message=f"job {job_id} was accepted after this submission had been given up and "
                                 f"{exp_id} moved on: recorded and cancelled")


def _close_attempt(ledger: Ledger, attempt_id: int, state: AttemptState, *, error: str, reason: str,
                   root_cause: str | None = None, fix: str | None = None, fail_experiment: bool = False,
                   wait: str | None = None) -> None:
    """Close an attempt that never ran and, in the same transaction, fail its experiment or
    (`wait`: why) queue it again: a process killed in between must not leave an experiment with
    neither a job nor a place in the queue."""
    with ledger.transaction() as s:
        a = s.get(Attempt, attempt_id)
        if a.state != SUBMITTING:  # given up meanwhile (a reconcile that could not see the claim): closed already
            return
        Ledger.set_attempt_state(s, a, state, reason, error=error, root_cause=root_cause, suggested_fix=fix)
        if fail_experiment:
            Ledger.set_state(s, Ledger.experiment(s, a.experiment_id), State.FAILED, reason, attempt=a)
        if wait is not None:
            _wait_in(s, a.experiment_id, wait)
