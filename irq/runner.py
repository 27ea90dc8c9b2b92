"""Submission, refresh, fetch and cancel: the core that moves attempts through a backend.

Exactly-once submission: the attempt row (state SUBMITTING, a unique token in the job name)
is committed before the backend submits; the job id is recorded after. If irq dies or the
link drops in between, ``reconcile`` finds the job by its name and adopts it, or, when the
scheduler has never seen it, puts the experiment back in the local queue. An infrastructure
fault never marks an experiment FAILED: its attempts show "unknown since".
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from . import errors, faults
from .backends.base import Backend, JobInfo
from .config import Config, load_config
from .diagnose import diagnose
from .jobscript import REPO_ROOT, Target, build_job, run_id_for
from .ledger import Ledger, new_token
from .models import Attempt, Experiment, utcnow
from .scheduler import Candidate, Plan, plan
from .states import FAILURE_STATES, SUBMITTING, SUCCESS_STATES, UNKNOWN, State, is_active, is_final
from .ui import UI

ADOPT_GRACE = timedelta(seconds=30)  # a SUBMITTING row younger than this may still be in flight


# -- backends ------------------------------------------------------------------------------
class Backends:
    """Opens each backend once per command or daemon cycle (one SSH connection each)."""

    def __init__(self, config: Config, prompt: Callable[..., Any] | None = None) -> None:
        self.config = config
        self.prompt = prompt
        self._open: dict[str, Backend] = {}
        self._stack = ExitStack()

    def target(self, name: str | None = None) -> Target:
        name = name or ("local" if self.config.backend == "local" else f"slurm:{self.config.backend}")
        if name == "local":
            return Target.local(self.config, sys.executable)
        return Target.cluster(self.config.cluster(name.split(":", 1)[1]))

    def get(self, name: str) -> Backend:
        if name not in self._open:
            if name == "local":
                from .backends.local import LocalBackend

                t = self.target("local")
                self._open[name] = LocalBackend(Path(t.workdir), self.config.local.slots)
            elif name.startswith("slurm:"):
                from .backends.slurm import SlurmBackend

                self._open[name] = SlurmBackend(self.config.cluster(name.split(":", 1)[1]), prompt=self.prompt)
            else:
                raise errors.ConfigError(f"attempts were made with backend {name!r}, which irq does not know")
            self._stack.callback(self._open[name].close)
        return self._open[name]

    def default_name(self) -> str:
        return "local" if self.config.backend == "local" else f"slurm:{self.config.backend}"

    def opened(self) -> dict[str, Backend]:
        return dict(self._open)

    def close(self) -> None:
        self._stack.close()
        self._open.clear()

    def __enter__(self) -> "Backends":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def record_calls(ledger: Ledger, backends: Backends) -> None:
    """Append this session's scheduler calls to the ledger (the polling budget)."""
    with ledger.transaction() as s:
        for name, b in backends.opened().items():
            for cmd in b.counter.calls:
                Ledger.record_call(s, name, cmd)
            b.counter.calls.clear()


# -- git --------------------------------------------------------------------------------
def git_sha(path: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_dirty(path: Path) -> bool:
    out = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                         capture_output=True, text=True, timeout=10)
    return out.returncode == 0 and bool(out.stdout.strip())


def target_sha(config: Config, target: Target) -> str:
    root = Path(target.code_dir) if target.kind == "local" else config.root
    sha = git_sha(root)
    if sha is None:
        if target.kind == "local":
            return "unknown"
        raise errors.PreflightFailed(f"{root} is not a git repository: jobs clone a pinned commit",
                                     "run irq from your project's git checkout")
    return sha


def config_in_repo(exp: Experiment, config: Config, target: Target) -> Experiment:
    """A config path as the job sees it: relative to the repository root it runs from."""
    if not exp.config_path:
        return exp
    p = Path(exp.config_path)
    base = Path(target.code_dir) if target.kind == "local" else config.root
    if p.is_absolute():
        try:
            rel = p.resolve().relative_to(base.resolve())
        except ValueError:
            if target.kind == "local":
                return exp
            raise errors.PreflightFailed(f"{exp.id}'s config {p} is outside the repository the job clones",
                                         "keep trainer configs inside the repository") from None
        exp = exp.model_copy(update={"config_path": str(rel)})
    return exp


# -- submit -------------------------------------------------------------------------------
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
    slots = backend.slots()
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


# -- reconcile and refresh ---------------------------------------------------------------
def reconcile(ledger: Ledger, backends: Backends, ui: UI) -> list[str]:
    """Adopt jobs whose submission was never confirmed (crash or dropped link after sbatch)."""
    with ledger.transaction() as s:
        pending = [a for a in Ledger.attempts(s) if a.state == SUBMITTING]
    notes = []
    by_backend: dict[str, list[Attempt]] = {}
    for a in pending:
        by_backend.setdefault(a.backend, []).append(a)
    for name, atts in by_backend.items():
        backend = backends.get(name)
        since = min(a.submitted_at or utcnow() for a in atts) - timedelta(minutes=5)
        names = {f"{a.experiment_id}.{a.token}": a for a in atts}
        found = backend.find(list(names), since)
        for jname, a in names.items():
            with ledger.transaction() as s:
                att = s.get(Attempt, a.id)
                if att.state != SUBMITTING:
                    continue
                if jname in found:
                    att.job_id = found[jname]
                    att.unknown_since = None
                    att.error = None
                    Ledger.set_attempt_state(s, att, "PENDING", f"adopted job {att.job_id} by its token")
                    notes.append(f"{att.experiment_id}: adopted job {att.job_id} (submitted before irq could record it)")
                elif utcnow() - (att.submitted_at or utcnow()) >= ADOPT_GRACE:
                    att.ended_at = utcnow()
                    att.unknown_since = None  # known now: the scheduler never had it
                    att.error = "never reached the scheduler (irq stopped or the link dropped before sbatch)"
                    Ledger.set_attempt_state(s, att, "NOT_SUBMITTED", "no job carries its token")
                    exp = Ledger.experiment(s, att.experiment_id)
                    exp.waiting_reason = "re-queued: the previous submission never reached the scheduler"
                    exp.queued_since = utcnow()
                    s.add(exp)
                    notes.append(f"{att.experiment_id}: attempt {att.number} never reached the scheduler; queued again")
    for n in notes:
        ui.log(n)
    record_calls(ledger, backends)
    return notes


@dataclass
class RefreshReport:
    changed: list[str] = field(default_factory=list)  # "Q-001: RUNNING -> COMPLETED"
    finished: list[int] = field(default_factory=list)  # attempt ids that reached a final state
    unreachable: dict[str, str] = field(default_factory=dict)  # backend -> error


def aggregate(rows: list[JobInfo]) -> tuple[str, int | None, datetime | None, datetime | None, str | None]:
    """One state for a job or an array: active while any task is, else the worst outcome."""
    states = [r.state for r in rows]
    if any(is_active(st) for st in states):
        st = "RUNNING" if "RUNNING" in states else next(x for x in states if is_active(x))
    elif all(x == "COMPLETED" for x in states):
        st = "COMPLETED"
    else:
        order = ["OUT_OF_MEMORY", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "FAILED", "CANCELLED"]
        st = next((x for x in order if x in states), next(x for x in states if x != "COMPLETED"))
    codes = [r.exit_code for r in rows if r.exit_code is not None]
    exit_code = max(codes) if codes else None
    starts = [r.start for r in rows if r.start]
    ends = [r.end for r in rows if r.end]
    end = max(ends) if ends and not any(is_active(x) for x in states) else None
    reason = next((r.reason for r in rows if r.reason), None)
    return st, exit_code, (min(starts) if starts else None), end, reason


def refresh(ledger: Ledger, backends: Backends, ui: UI) -> RefreshReport:
    """Ask each backend about every active attempt: one batched query per backend."""
    report = RefreshReport()
    reconcile_safe(ledger, backends, ui, report)
    with ledger.transaction() as s:
        active = [a for a in Ledger.attempts(s) if is_active(a.state) and a.job_id and a.backend != "imported"]
    by_backend: dict[str, list[Attempt]] = {}
    for a in active:
        by_backend.setdefault(a.backend, []).append(a)
    for name, atts in by_backend.items():
        since = min(a.submitted_at or utcnow() for a in atts) - timedelta(hours=1)
        try:
            rows = backends.get(name).query([a.job_id for a in atts], since)
        except errors.BackendError as exc:
            report.unreachable[name] = exc.message
            _mark_unknown(ledger, [a.id for a in atts])
            ui.log(f"{name}: {exc.message} (states kept; unknown since now)")
            continue
        with ledger.transaction() as s:
            for a in atts:
                att = s.get(Attempt, a.id)
                got = rows.get(att.job_id.split("_")[0])
                if not got:
                    if att.unknown_since is None:
                        att.unknown_since = utcnow()
                        s.add(att)
                    continue
                st, code, start, end, reason = aggregate(got)
                att.unknown_since = None
                if len(got) > 1 or got[0].task_id is not None:
                    att.tasks = {str(r.task_id): {"state": r.state, "exit_code": r.exit_code} for r in got
                                 if r.task_id is not None}
                att.started_at = att.started_at or start
                if end:
                    att.ended_at = end
                if code is not None:
                    att.exit_code = code
                old = att.state
                if Ledger.set_attempt_state(s, att, st, reason or "scheduler"):
                    report.changed.append(f"{att.experiment_id}: {old} -> {st}")
                s.add(att)
                if is_final(st):
                    report.finished.append(att.id)
    record_calls(ledger, backends)
    return report


def reconcile_safe(ledger: Ledger, backends: Backends, ui: UI, report: RefreshReport) -> None:
    try:
        reconcile(ledger, backends, ui)
    except errors.BackendError as exc:
        report.unreachable["reconcile"] = exc.message


def _mark_unknown(ledger: Ledger, attempt_ids: list[int]) -> None:
    with ledger.transaction() as s:
        for i in attempt_ids:
            a = s.get(Attempt, i)
            if a.unknown_since is None:
                a.unknown_since = utcnow()
                s.add(a)


# -- fetch -------------------------------------------------------------------------------
SUMMARY_KEYS = ("val_mse", "best_val_mse", "train_mse", "ood_mse", "accuracy", "baseline_mean_mse", "baseline_zero_mse")


@dataclass
class FetchOutcome:
    id: str
    attempt: int
    state: str  # DONE | FAILED
    detail: str


def fetch(ledger: Ledger, config: Config, backends: Backends, ui: UI, ids: list[str] | None = None) -> list[FetchOutcome]:
    """Download finished attempts' run directories, read metrics into the ledger, and mark
    each experiment DONE, or FAILED with the diagnosed cause."""
    with ledger.transaction() as s:
        wanted = {Ledger.experiment(s, i).id for i in ids} if ids else None
        todo = [a for a in Ledger.attempts(s)
                if is_final(a.state) and a.fetched_at is None and a.backend != "imported"
                and (wanted is None or a.experiment_id in wanted)]
    out: list[FetchOutcome] = []
    if not todo:
        return out
    with ui.progress("fetching results", total=len(todo)) as step:
        for a in todo:
            try:
                out.append(_fetch_one(ledger, config, backends.get(a.backend), a))
            except errors.BackendError as exc:
                ui.log(f"{a.experiment_id}: cannot fetch yet: {exc.message}")
                continue
            step.advance(f"{a.experiment_id}: {out[-1].state}")
    record_calls(ledger, backends)
    return out


def _read_json(p: Path) -> dict | None:
    try:
        data = json.loads(p.read_text())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _flat(metrics: dict, prefix: str = "") -> dict[str, Any]:
    return {f"{prefix}{k}": v for k, v in metrics.items()
            if isinstance(v, (int, float, str, bool)) or v is None}


def _fetch_one(ledger: Ledger, config: Config, backend: Backend, a: Attempt) -> FetchOutcome:
    dest = config.resolve("results") / (a.run_id or f"{a.experiment_id}-{a.number}")
    backend.fetch(a.run_dir, dest)
    faults.point("mid_fetch")
    seeds_dirs = sorted(dest.glob("seed_*"), key=lambda p: int(p.name.split("_")[1]) if p.name.split("_")[1].isdigit() else 0)
    results: dict[str, Any] = {}
    errors_seen: list[str] = []
    if a.array:
        for d in seeds_dirs:
            m = _read_json(d / "metrics.json")
            if m:
                results.update({f"{d.name}.{k}": m[k] for k in SUMMARY_KEYS if k in m})
        for k in SUMMARY_KEYS:
            vals = [v for key, v in results.items() if key.endswith("." + k) and isinstance(v, (int, float))]
            if len(vals) >= 2:
                results[f"{k}_mean"] = statistics.fmean(vals)
                results[f"{k}_std"] = statistics.stdev(vals)
        expected = len(a.tasks) or 1
        complete = sum(1 for d in seeds_dirs if (d / "metrics.json").exists()) >= expected
    else:
        m = _read_json(dest / "metrics.json")
        if m:
            results = _flat(m)
        complete = m is not None
        st = _read_json(dest / "status.json")
        if st and st.get("status") == "failed":
            complete = False
            errors_seen.append(st.get("error") or "trainer reported failure")
    ok = a.state in SUCCESS_STATES and complete
    log = _log_tail(backend, a)
    with ledger.transaction() as s:
        att = s.get(Attempt, a.id)
        exp = Ledger.experiment(s, att.experiment_id)
        att.fetched_at = utcnow()
        att.output = str(dest.relative_to(config.root)) if dest.is_relative_to(config.root) else str(dest)
        if results:
            att.results = results
        if ok:
            s.add(att)
            if exp.state == State.IN_PROGRESS.value and _is_latest(s, att):
                Ledger.set_state(s, exp, State.DONE, f"attempt {att.number} completed", attempt=att)
            detail = ", ".join(f"{k} {results[k]:.4g}" for k in ("val_mse", "val_mse_mean") if isinstance(results.get(k), float))
            return FetchOutcome(exp.id, att.number, "DONE", detail or "completed")
        d = diagnose(att.state, att.exit_code, log, trainer_error="; ".join(errors_seen) or None)
        att.error, att.root_cause, att.suggested_fix = d.error, d.root_cause, d.fix.replace("ID", exp.id)
        s.add(att)
        if exp.state == State.IN_PROGRESS.value and _is_latest(s, att):
            Ledger.set_state(s, exp, State.FAILED, f"attempt {att.number}: {d.error}"[:200], attempt=att)
        return FetchOutcome(exp.id, att.number, "FAILED", d.error)


def _is_latest(s: Any, att: Attempt) -> bool:
    last = Ledger.latest_attempt(s, att.experiment_id)
    return last is not None and last.id == att.id


def log_paths(a: Attempt) -> list[str]:
    if not a.job_id or not a.run_dir:
        return []
    base = a.job_id.split("_")[0]
    if a.array:
        tasks = sorted(a.tasks, key=int) if a.tasks else ["0"]
        return [f"{a.run_dir}/slurm-{base}_{t}.out" for t in tasks]
    return [f"{a.run_dir}/slurm-{base}.out"]


def _log_tail(backend: Backend, a: Attempt, max_bytes: int = 16384) -> str:
    parts = []
    for p in log_paths(a):
        text = backend.read_file(p, max_bytes)
        if text:
            parts.append(text)
    return "\n".join(parts)


def log_tail(ledger: Ledger, backends: Backends, exp_id: str, lines: int = 40) -> tuple[Attempt, str]:
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        a = Ledger.latest_attempt(s, exp.id)
    if a is None or not a.job_id:
        raise errors.IrqError(f"{exp_id} has no submitted attempt yet", f"`irq submit {exp_id}`")
    if a.backend == "imported":
        raise errors.IrqError(f"{exp_id}'s attempts were imported from queue.md; irq has no log for them")
    text = _log_tail(backends.get(a.backend), a, 1 << 20)
    record_calls(ledger, backends)
    return a, "\n".join(text.splitlines()[-lines:])


# -- cancel ------------------------------------------------------------------------------
def cancel(ledger: Ledger, backends: Backends, ui: UI, exp_id: str) -> str:
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        a = Ledger.latest_attempt(s, exp.id)
        if exp.state == State.IN_PROGRESS.value and (a is None or not is_active(a.state)):
            Ledger.set_state(s, exp, State.READY, "taken off the local queue by the user")
            return f"{exp.id} was queued locally; it is READY again (nothing was running)"
        if exp.state != State.IN_PROGRESS.value or a is None:
            raise errors.IllegalTransition(f"{exp.id} is {exp.state}: nothing to cancel")
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


# -- status ------------------------------------------------------------------------------
def refresh_for_status(ledger: Ledger, config_path: Path | None, ui: UI) -> dict[str, Any] | None:
    """Before `irq status`: refresh active attempts (none active: no scheduler call)."""
    with ledger.transaction() as s:
        active = [a for a in Ledger.attempts(s) if is_active(a.state) and a.backend != "imported"]
        calls = Ledger.calls_since(s, utcnow() - timedelta(hours=1))
    info: dict[str, Any] = {"scheduler_calls_last_hour": calls}
    if not active:
        return info
    config = load_config(config_path)
    with Backends(config) as backends:
        rep = refresh(ledger, backends, ui)
        try:
            sl = backends.get(backends.default_name()).slots()
            info.update(limit=sl.limit, used=sl.used, free=sl.free if sl.limit is not None else None,
                        summary=sl.summary())
        except errors.BackendError as exc:
            info["summary"] = f"job slots unknown: {exc.message}"
        record_calls(ledger, backends)
    if rep.unreachable:
        info["unreachable"] = rep.unreachable
    with ledger.transaction() as s:
        info["scheduler_calls_last_hour"] = Ledger.calls_since(s, utcnow() - timedelta(hours=1))
    return info
