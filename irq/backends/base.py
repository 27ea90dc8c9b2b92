"""The small interface every backend implements, and the data that crosses it.

A backend knows nothing of the ledger: the runner hands it a ``JobRequest`` (a rendered
script plus where it writes) and gets back job ids and ``JobInfo`` rows. One backend object
is one session (one SSH connection for the slurm backend), reused for every call of one
command or one daemon cycle, and closed with ``close()`` (or a ``with`` block). Callers use
only what ``Backend`` declares (a test holds them to it).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class JobRequest:
    token: str  # the attempt's unique token: find the job again after a crash
    name: str  # SLURM job name; contains the token (e.g. "Q-003.irq-0a1b2c3d4e")
    script: str  # the whole rendered sbatch script
    run_dir: str  # where the job writes (created before submission; logs go here too)
    array: str | None = None  # e.g. "0-9%2"
    log_name: str = "slurm-%j.out"  # file name pattern in run_dir (%A_%a for arrays)


@dataclass(frozen=True)
class JobInfo:
    """One job, or one array task, as the scheduler reports it."""

    job_id: str  # "1234", or "1234_3" for array task 3
    state: str  # normalized SLURM state: PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, ...
    name: str = ""
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None  # squeue's reason (JobArrayTaskLimit, Resources, ...) or who cancelled
    start: datetime | None = None
    end: datetime | None = None

    @property
    def base_id(self) -> str:
        return self.job_id.split("_", 1)[0]

    @property
    def task_id(self) -> int | None:
        _, sep, task = self.job_id.partition("_")
        return int(task) if sep and task.isdigit() else None


@dataclass(frozen=True)
class Slots:
    """Job slots: limit - jobs the user has in the queue (all of them, irq's or not)."""

    limit: int | None  # None: no limit known
    used: int
    source: str  # where the limit came from: "config", "sacctmgr QOS normal", "local"

    @property
    def free(self) -> int:
        return 1_000_000 if self.limit is None else max(0, self.limit - self.used)

    def summary(self) -> str:
        if self.limit is None:
            return f"{self.used} jobs in the queue (no job limit known)"
        return f"job slots: {self.used} of {self.limit} used, {self.free} free (limit from {self.source})"


LIMIT_MAX_AGE = timedelta(hours=1)  # sacctmgr (slurmdbd, which admins guard most) at most hourly


def fresh_limit(cached: dict | None) -> bool:
    """A job limit the ledger cached (Meta `job_limit:NAME`: limit, source, at) younger than an hour."""
    return bool(cached) and datetime.now(timezone.utc) - datetime.fromisoformat(cached["at"]) < LIMIT_MAX_AGE


@dataclass
class CallCounter:
    """What one backend session cost: scheduler commands run (squeue, sacct, sbatch, ...:
    the polling budget admins read) and network round trips (one SSH exec or SFTP call)."""

    calls: list[str] = field(default_factory=list)
    round_trips: int = 0

    def add(self, *commands: str, round_trips: int = 1) -> None:
        self.calls.extend(commands)
        self.round_trips += round_trips

    def __len__(self) -> int:
        return len(self.calls)


def remote_command(cmd: Sequence[str] | str, calls: Sequence[str] | None) -> tuple[str, tuple[str, ...], str]:
    """What a Remote.run needs of its arguments: the command as one shell line (a list quoted per
    argument), the scheduler commands it runs (default: the program) and how messages name it."""
    import os
    import shlex

    command = cmd if isinstance(cmd, str) else shlex.join(list(cmd))
    if calls is None:
        calls = () if isinstance(cmd, str) else (os.path.basename(cmd[0]),)
    what = ", ".join(calls) or (command if len(command) < 40 else command[:37] + "...")
    return command, tuple(calls), what


class Remote(Protocol):
    """A login node as the SLURM backend sees it: run a command, move files. SSHSession is one
    (paramiko); tests plug in a fake shell that replays recorded scheduler output."""

    counter: CallCounter  # every exec and file operation counts one round trip

    @property
    def user(self) -> str: ...  # the remote user name (squeue -u)

    @property
    def where(self) -> str: ...  # "user@host:port", for messages

    def run(self, cmd: Sequence[str] | str, *, stdin: str | bytes | None = None,
            timeout: float | None = None, calls: Sequence[str] | None = None) -> tuple[int, str, str]:
        """(exit code, stdout, stderr). A list is quoted per argument; `calls` names the
        scheduler commands it runs, for the counter. A lost link raises BackendError."""

    def put_text(self, path: str, text: str, mode: int = 0o644) -> None: ...

    def read_tail(self, path: str, max_bytes: int = 65536) -> str | None: ...

    def get_tree(self, remote_dir: str, local_dir: Path, exclude: Sequence[str] = ()) -> list[Path]: ...

    def close(self) -> None: ...


class Backend(Protocol):
    name: str  # "local" or "slurm:NAME": what the ledger records on the attempt
    counter: CallCounter
    # True where every array task counts as one job against the user's limit (SLURM's
    # MaxSubmitJobsPerUser); then an array of n seeds needs n free slots.
    counts_array_tasks: bool

    def slots(self) -> Slots:
        """The user's job limit and how much of it is used right now."""

    def submit(self, req: JobRequest) -> str:
        """Submit; return the job id. Raises SlotLimit (queue it locally), SubmissionRefused,
        or BackendError (an infrastructure fault: the job may or may not exist; adopt by token)."""

    def find(self, names: list[str], since: datetime) -> dict[str, str]:
        """Job name -> job id for jobs with these names submitted since then (adoption)."""

    def ran(self, run_dirs: list[str]) -> dict[str, str]:
        """Run folder -> the job id of the log a job wrote there, for the folders holding one, in
        one round trip: proof that a submission reached the scheduler when its records cannot show
        it (a finished job whose accounting is late, or was recorded without its name). {} from a
        backend whose find() already knows every job it ran. BackendError: could not look."""

    def query(self, job_ids: list[str], since: datetime) -> dict[str, list[JobInfo]]:
        """Base job id -> its rows (one, or one per array task), for all ids in a constant
        number of round trips. Ids the scheduler no longer knows are absent (a backend that knows
        every job it ran, the local one, reports one it lost as NODE_FAIL with the reason)."""

    def cancel(self, job_id: str) -> None: ...

    def fetch(self, run_dir: str, dest: Path, exclude: tuple[str, ...] = ("checkpoints",)) -> list[Path]:
        """Copy the run directory's files (recursively, minus `exclude` folders) into dest;
        return what was copied. A missing run_dir copies nothing."""

    def read_file(self, path: str, max_bytes: int = 65536) -> str | None:
        """The end of a file (a job log), or None if it does not exist."""

    def run_check(self, script: str, args: Sequence[str], calls: Sequence[str] = ()) -> tuple[int, str, str]:
        """Run a bash check script where jobs run (`bash -c SCRIPT irq ARGS...`: the values
        are $1..., never spliced into the text): (exit code, stdout, stderr). Preflight uses it."""

    def new_cycle(self) -> None:
        """A daemon cycle starts: forget what was learned about the queue, keep the connection."""

    def logged_in(self) -> bool:
        """Whether the scheduler can be reached without a person right now (over OpenSSH: a
        master connection is up). Local and cheap, never the network nor a prompt: a daemon
        waiting for `irq login` asks every half second and resumes when it turns True."""

    def known_limit(self, limit: int | None, source: str) -> None:
        """The job limit as read earlier (the ledger caches it): slots() need not ask for it again."""

    def take_limit_news(self) -> tuple[str, tuple[int | None, str] | None]:
        """What this session learned about the job limit, once: ("found", (limit, source)) when it
        read the limit from the scheduler, ("stale", None) when a submission was refused for the
        limit (the cached one is wrong), ("", None) otherwise."""

    def close(self) -> None: ...
