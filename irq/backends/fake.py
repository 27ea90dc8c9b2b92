"""An in-memory backend for tests: jobs are rows a test sets, faults are switches it flips.

It keeps the Backend contracts (base.py) the way the SLURM backend does: a job name finds
its job again (adoption), a full queue refuses with SlotLimit, every array task holds a slot
when ``counts_array_tasks``, and a scheduler that is down raises BackendError from every call.
Never selectable from irq.toml: a test hands it to ``Backends.provide`` with ``fake_target``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from irq import errors
from irq.backends.base import CallCounter, JobInfo, JobRequest, Slots
from irq.backends.slurm_output import expand_job_id
from irq.backends.target import REPO_ROOT, Target
from irq.ledger.states import is_active, is_final

QOS_REFUSAL = ("sbatch: error: QOSMaxSubmitJobPerUserLimit; sbatch: error: Batch job submission failed: "
               "Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def fake_target(workdir: Path, name: str = "fake") -> Target:
    """Where a FakeBackend's jobs 'run': run dirs under workdir, this repository's code."""
    return Target(kind="local", name=name, workdir=str(workdir), code_dir=str(REPO_ROOT), python="python")


@dataclass
class FakeJob:
    job_id: str
    request: JobRequest
    submitted: datetime
    rows: dict[str, JobInfo] = field(default_factory=dict)  # "7" or "7_0", "7_1", ... -> row


class FakeBackend:
    """Backend protocol in memory. Switches: ``refuse_next``, ``drop_after_accept``,
    ``go_down``/``come_back``, ``log_out``/``log_in`` (a login that needs a person); jobs move
    with ``set_state``; ``occupy`` fills slots with jobs submitted outside irq. ``check_reply``
    is what ``run_check`` answers (preflight)."""

    def __init__(self, name: str = "fake", limit: int | None = 2, counts_array_tasks: bool = True,
                 first_id: int = 100) -> None:
        self.name = name
        self.limit = limit
        self.counts_array_tasks = counts_array_tasks
        self.counter = CallCounter()
        self.jobs: dict[str, FakeJob] = {}
        self.files: dict[str, str] = {}  # path -> text: what fetch and read_file see
        self.check_reply: tuple[int, str, str] = (0, "", "")
        self.checks: list[tuple[str, tuple[str, ...]]] = []  # run_check calls: (script, args)
        self.closed = False
        self._next_id = first_id
        self._refusals: list[errors.IrqError] = []
        self._drops = 0
        self._down: str | None = None
        self._needs_login = False
        self.names_lost = False  # accounting that lost the jobs' names: find() sees none, ran() their logs

    # ------------------------------------------------------------------ switches
    def refuse_next(self, exc: errors.IrqError | None = None) -> None:
        """The next submission is refused with exc (default: the QOS job-limit refusal)."""
        self._refusals.append(exc if exc is not None else errors.SlotLimit(f"the cluster refused another job: "
                                                                           f"{QOS_REFUSAL}"))

    def drop_after_accept(self) -> None:
        """The next submission creates the job, then the link drops before its id comes back."""
        self._drops += 1

    def go_down(self, message: str = "slurm_load_jobs error: Unable to contact slurm controller") -> None:
        """Every call raises BackendError until come_back()."""
        self._down = message

    def come_back(self) -> None:
        self._down = None

    def log_out(self) -> None:
        """The master connection is gone and logging in needs a person: every call raises
        NeedsLogin until log_in() (what `irq login` does)."""
        self._needs_login = True

    def log_in(self) -> None:
        self._needs_login = False

    def occupy(self, n: int) -> list[str]:
        """n jobs submitted outside irq (they hold slots; irq never adopts them)."""
        return [self._create(JobRequest(token="", name="outside", script="", run_dir="/dev/null"))
                for _ in range(n)]

    def set_state(self, job_id: str, state: str, *, exit_code: int | None = None, reason: str | None = None) -> None:
        """Move a job ("7": all of its rows) or one array task ("7_2") to a state."""
        now = _now()
        job, keys = self._rows(job_id)
        for k in keys:
            r = job.rows[k]
            job.rows[k] = replace(r, state=state, reason=reason, start=r.start or (now if state != "PENDING" else None),
                                  end=now if is_final(state) else None,
                                  exit_code=exit_code if is_final(state) else None)

    def _rows(self, job_id: str) -> tuple[FakeJob, list[str]]:
        job = self.jobs[job_id.split("_", 1)[0]]
        if job_id == job.job_id:
            return job, list(job.rows)
        if job_id not in job.rows:
            raise KeyError(job_id)
        return job, [job_id]

    # ------------------------------------------------------------------ protocol
    def _guard(self, what: str) -> None:
        if self._needs_login:
            raise errors.NeedsLogin(f"needs login: run irq login {self.name} ({what} needs a one-time code)")
        if self._down is not None:
            raise errors.BackendError(f"{what} failed on {self.name}: {self._down}",
                                      "the scheduler is not answering; irq keeps every experiment as it was")

    def _used(self) -> int:
        live = [r for j in self.jobs.values() for r in j.rows.values() if is_active(r.state)]
        return len(live) if self.counts_array_tasks else len({r.base_id for r in live})

    def slots(self) -> Slots:
        self.counter.add("squeue")
        self._guard("squeue")
        return Slots(limit=self.limit, used=self._used(), source="fake")

    def _create(self, req: JobRequest) -> str:
        job_id = str(self._next_id)
        self._next_id += 1
        ids = expand_job_id(f"{job_id}_[{req.array}]") if req.array else [job_id]
        job = FakeJob(job_id, req, _now())
        job.rows = {i: JobInfo(job_id=i, state="PENDING", name=req.name, reason="Priority") for i in ids}
        self.jobs[job_id] = job
        return job_id

    def submit(self, req: JobRequest) -> str:
        self.counter.add("sbatch")
        self._guard("sbatch")
        if self._refusals:
            raise self._refusals.pop(0)
        cost = len(expand_job_id(f"0_[{req.array}]")) if req.array and self.counts_array_tasks else 1
        if self.limit is not None and self._used() + cost > self.limit:
            raise errors.SlotLimit(f"the cluster refused another job: {QOS_REFUSAL}")
        job_id = self._create(req)
        if self._drops:
            self._drops -= 1
            raise errors.BackendError(f"the connection to {self.name} dropped during sbatch",
                                      "irq keeps every experiment as it was; the next command reconnects")
        return job_id

    def ran(self, run_dirs: list[str]) -> dict[str, str]:
        self.counter.add("ls")
        self._guard("ls")
        wanted = set(run_dirs)
        return {job.request.run_dir: job.job_id for job in self.jobs.values() if job.request.run_dir in wanted}

    def find(self, names: list[str], since: datetime) -> dict[str, str]:
        self.counter.add("squeue", "sacct")
        self._guard("squeue")
        if self.names_lost:
            return {}
        wanted = set(names)
        found: dict[str, str] = {}
        for job in self.jobs.values():  # ascending ids: the newest of duplicates wins
            if job.request.name in wanted and job.submitted >= since:
                found[job.request.name] = job.job_id
        return found

    def query(self, job_ids: list[str], since: datetime) -> dict[str, list[JobInfo]]:
        self.counter.add("squeue", "sacct")
        self._guard("squeue")
        out: dict[str, list[JobInfo]] = {}
        for base in sorted({j.split("_", 1)[0] for j in job_ids if j}):
            job = self.jobs.get(base)
            if job is not None:
                out[base] = sorted(job.rows.values(), key=lambda r: -1 if r.task_id is None else r.task_id)
        return out

    def cancel(self, job_id: str) -> None:
        self.counter.add("scancel")
        self._guard("scancel")
        try:
            job, keys = self._rows(job_id)
        except KeyError:
            raise errors.BackendError(f"{self.name} knows no job {job_id}", "see `irq status`") from None
        for k in keys:
            if not is_final(job.rows[k].state):
                self.set_state(k, "CANCELLED", reason="by user")

    def fetch(self, run_dir: str, dest: Path, exclude: tuple[str, ...] = ("checkpoints",)) -> list[Path]:
        prefix = run_dir.rstrip("/") + "/"
        copied = []
        for path, text in sorted(self.files.items()):
            rel = Path(path[len(prefix):]) if path.startswith(prefix) else None
            if rel is None or any(part in exclude for part in rel.parts[:-1]):
                continue
            (Path(dest) / rel).parent.mkdir(parents=True, exist_ok=True)
            (Path(dest) / rel).write_text(text)
            copied.append(Path(dest) / rel)
        return copied

    def read_file(self, path: str, max_bytes: int = 65536) -> str | None:
        text = self.files.get(path)
        return None if text is None else text.encode()[-max_bytes:].decode("utf-8", "replace")

    def run_check(self, script: str, args: Sequence[str], calls: Sequence[str] = ()) -> tuple[int, str, str]:
        self.counter.add(*calls)
        self._guard(", ".join(calls) or "a check")
        self.checks.append((script, tuple(args)))
        return self.check_reply

    def new_cycle(self) -> None:
        """Nothing is remembered between cycles here."""

    def logged_in(self) -> bool:
        return not self._needs_login

    def known_limit(self, limit: int | None, source: str) -> None:
        """The limit is set by the test: nothing to cache."""

    def take_limit_news(self) -> tuple[str, tuple[int | None, str] | None]:
        return "", None

    def close(self) -> None:
        self.closed = True
