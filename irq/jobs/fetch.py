"""Fetch finished attempts: results, metrics and logs into the ledger; DONE or FAILED with the cause."""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irq import errors, faults
from irq.backends.base import Backend
from irq.backends.registry import Backends, record_calls
from irq.config import Config, ProjectConfig
from irq.formats.blocks import headline
from irq.jobs.contract import CONTRACT, read_run
from irq.jobs.record import no_log, unreachable_why
from irq.ledger.database import Ledger
from irq.ledger.models import Attempt, utcnow
from irq.ledger.states import (
    ACTIVE_STATES,
    FINAL_STATES,
    SUCCESS_STATES,
    AttemptState,
    State,
)
from irq.policy.diagnose import MODULE_MISSING, Diagnosis, diagnose, on_this_machine
from irq.ui import UI


@dataclass
class FetchOutcome:
    id: str
    attempt: int
    state: str  # DONE | FAILED
    detail: str


@dataclass
class Deferred:
    """A finished attempt that could not be fetched yet, and why."""

    id: str
    attempt: int
    backend: str
    why: str

    def __str__(self) -> str:
        return f"{self.id} attempt {self.attempt}: cannot fetch yet: {self.why}"


def fetch(ledger: Ledger, config: Config, backends: Backends, ui: UI, ids: list[str] | None = None,
          deferred: list[Deferred] | None = None) -> list[FetchOutcome]:
    """Download finished attempts' run directories, read metrics into the ledger, and mark
    each experiment DONE, or FAILED with the diagnosed cause. What cannot be fetched yet (the
    cluster not answering) is logged, or added to `deferred` for the caller to say."""
    with ledger.transaction() as s:
        wanted = {Ledger.experiment(s, i).id for i in ids} if ids else None
        todo = [a for a in Ledger.attempts(s, states=FINAL_STATES, unfetched=True)
                if a.backend != "imported" and (wanted is None or a.experiment_id in wanted)]
    gone = [a for a in todo if unreachable_why(a, config) is not None]  # its cluster left irq.toml
    for a in gone:
        why = Deferred(a.experiment_id, a.number, a.backend, f"{a.backend} is no longer in irq.toml: add it back to fetch")
        ui.log(str(why)) if deferred is None else deferred.append(why)
    todo = [a for a in todo if a not in gone]
    out: list[FetchOutcome] = []
    if not todo:
        return out
    with ui.progress("fetching results", total=len(todo)) as step:
        for a in todo:
            try:
                got = _fetch_one(ledger, config, backends.get(a.backend), a)
            except errors.HostKeyError:
                raise  # not "not yet": nothing can be fetched until a person checks the key
            except errors.BackendError as exc:
                why = Deferred(a.experiment_id, a.number, a.backend, exc.message)
                if deferred is None:
                    ui.log(str(why))
                else:
                    deferred.append(why)
                continue
            if got is not None:  # None: another irq fetch recorded it meanwhile, and said so
                out.append(got)
                step.advance(f"{a.experiment_id}: {got.state}")
    record_calls(ledger, backends)
    return out


def still_finishing(ledger: Ledger, ids: list[str] | None = None) -> list[Attempt]:
    """Attempts a fetch cannot take yet: COMPLETING ones (the job ended, the scheduler is still
    closing it), with `ids` any of theirs still active, and those imported as active (irq cannot
    ask about them: a person records their end)."""
    with ledger.transaction() as s:
        wanted = {Ledger.experiment(s, i).id for i in ids} if ids else None
        return [a for a in Ledger.attempts(s, states=ACTIVE_STATES)
                if (wanted is None or a.experiment_id in wanted) and (
                    a.backend == "imported" or a.job_id and (wanted is not None or a.state == AttemptState.COMPLETING.value))]


def _seed_key(p: Path) -> int:
    tail = p.name.split("_", 1)[1]
    return int(tail) if tail.lstrip("-").isdigit() else 0


def read_results(dest: Path, a: Attempt, project: ProjectConfig) -> tuple[dict[str, Any], str | None, str | None]:
    """The attempt's results from its fetched run directory (one per seed for an array), the
    first way it broke the results contract (None when it kept it), and the job's own error."""
    if not a.array:
        r = read_run(dest, project.require_metrics, project.metric)
        return r.metrics, r.problem or (f"the job reported failure: {r.job_error}" if r.job_error else None), r.job_error
    results: dict[str, Any] = {}
    problems: list[str] = []
    job_errors: list[str] = []
    dirs = sorted(dest.glob("seed_*"), key=_seed_key)
    for d in dirs:
        r = read_run(d, project.require_metrics, project.metric)
        results.update({f"{d.name}.{k}": v for k, v in r.metrics.items()})
        problems += [f"{d.name}: {p}" for p in (r.problem, r.job_error and f"the job reported failure: {r.job_error}") if p]
        job_errors += [f"{d.name}: {r.job_error}"] if r.job_error else []
    expected = len(a.tasks) or 1
    if len(dirs) < expected and project.require_metrics:
        problems.append(f"{expected - len(dirs)} of {expected} seeds left no run directory")
    per_seed = list(results.items())
    for k in sorted({key.split(".", 1)[1] for key, _ in per_seed}):
        vals = [v for key, v in per_seed if key.split(".", 1)[1] == k
                and isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(vals) >= 2:
            results[f"{k}_mean"] = statistics.fmean(vals)
            results[f"{k}_std"] = statistics.stdev(vals)
    return results, problems[0] if problems else None, "; ".join(job_errors) or None


def results_folder(a: Attempt) -> str:
    """The attempt's folder in results/: its run's name, when that is a plain name (an imported
    one that is a path, '../x' or '/x', would put the copy outside results/)."""
    from irq.formats.queue_attempts import PLAIN_NAME

    return a.run_id if a.run_id and PLAIN_NAME.fullmatch(a.run_id) else f"{a.experiment_id}-{a.number}"


def _fetch_one(ledger: Ledger, config: Config, backend: Backend, a: Attempt) -> FetchOutcome | None:
    dest = config.resolve("results") / results_folder(a)
    copied = backend.fetch(a.run_dir, dest)
    faults.point("mid_fetch")
    if not copied and not dest.exists():
        results, job_error = {}, None
        problem = f"the run directory {a.run_dir} is gone: the job deleted it (write inside $IRQ_RUN_DIR, never remove it)"
    else:
        results, problem, job_error = read_results(dest, a, config.project)
    ok = a.state in SUCCESS_STATES and problem is None
    log = "" if ok else _log_tail(backend, a, failed_only=True)  # an array: the tasks that failed
    with ledger.transaction() as s:
        att = s.get(Attempt, a.id)
        if att.fetched_at is not None:  # two fetches at once (a user beside the daemon): the first one records it
            return None
        exp = Ledger.experiment(s, att.experiment_id)
        att.fetched_at = utcnow()
        att.output = str(dest.relative_to(config.root)) if dest.is_relative_to(config.root) else str(dest)
        if results:
            att.results = results
        if ok:
            s.add(att)
            if exp.state == State.IN_PROGRESS.value and _is_latest(s, att):
                Ledger.set_state(s, exp, State.DONE, f"attempt {att.number} completed", attempt=att)
            return FetchOutcome(exp.id, att.number, "DONE", headline(results, config.project.metric) or "completed")
        d = _why(att, log, problem, job_error)
        if d.pattern == "python_package_missing" and (left := _left_out(config, att, d)) is not None:
            d = left
        if att.backend == "local":
            d = on_this_machine(d)
        error = f"{d.error}: {att.error}" if d.pattern == "node_fail" and att.error else d.error  # the scheduler's why
        att.error, att.root_cause, att.suggested_fix = error, d.root_cause, d.fix.replace("ID", exp.id)
        s.add(att)
        if exp.state == State.IN_PROGRESS.value and _is_latest(s, att):
            Ledger.set_state(s, exp, State.FAILED, f"attempt {att.number}: {error}"[:200], attempt=att)
        return FetchOutcome(exp.id, att.number, "FAILED", error)


def _why(att: Attempt, log: str, problem: str | None, job_error: str | None) -> Diagnosis:
    """A job that ended well but broke the contract fails with that one line; any other
    failure is diagnosed from the scheduler's state and the log."""
    if problem is not None and (att.state in SUCCESS_STATES or "is gone" in problem):
        found = diagnose(att.state, att.exit_code, log)
        if found.pattern not in ("no_results", "unknown"):  # the log knows better (a traceback at exit 0)
            return found
        if job_error:  # the job said why in status.json (and still exited 0): its words are the cause
            return Diagnosis(f"{problem}; the job reported: {job_error}", f"the job reported: {job_error}",
                             "`irq log ID` shows the job's output", "job_reported")
        return Diagnosis(problem, problem, f"see {CONTRACT}; `irq log ID` shows the job's output", "contract")
    return diagnose(att.state, att.exit_code, log, trainer_error=job_error)


def _left_out(config: Config, att: Attempt, d: Diagnosis) -> Diagnosis | None:
    """A module the job could not import that is a file of the project missing from the commit
    that ran (a helper.py never committed): the code, not the environment, and what to do."""
    from irq.jobs.git import missing_from_commit

    m = MODULE_MISSING.search(d.error)
    rel = missing_from_commit(config.root, att.git_sha, m.group(1)) if m else None
    if rel is None:
        return None
    return Diagnosis(d.error, f"`{rel}` is in the project folder but not in commit {att.git_sha[:10]}, which the "
                     "job ran (untracked or never committed): jobs run the commit, never the working tree",
                     f"`git add {rel} && git commit`, then `irq retry ID`", "module_not_committed")


def _is_latest(s: Any, att: Attempt) -> bool:
    last = Ledger.latest_attempt(s, att.experiment_id)
    return last is not None and last.id == att.id


def log_paths(a: Attempt, failed_only: bool = False) -> list[str]:
    """The job's log files: one, or one per array task (`failed_only`: of the tasks that did not
    complete, when some did: a diagnosis reads what failed, not the seeds that ran well)."""
    if not a.job_id or not a.run_dir:
        return []
    base = a.job_id.split("_")[0]
    if a.array:
        tasks = sorted(a.tasks, key=int) if a.tasks else ["0"]
        failed = [t for t in tasks if isinstance(a.tasks.get(t), dict) and a.tasks[t].get("state") != "COMPLETED"]
        return [f"{a.run_dir}/slurm-{base}_{t}.out" for t in (failed if failed_only and failed else tasks)]
    return [f"{a.run_dir}/slurm-{base}.out"]


def _log_tail(backend: Backend, a: Attempt, max_bytes: int = 16384, failed_only: bool = False) -> str:
    parts = []
    for p in log_paths(a, failed_only):
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
        raise no_log(exp_id)
    text = _log_tail(backends.get(a.backend), a, 1 << 20)
    record_calls(ledger, backends)
    return a, "\n".join(text.splitlines()[-lines:] if lines > 0 else [])  # [-0:] is every line
