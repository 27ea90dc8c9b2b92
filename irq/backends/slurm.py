"""SLURM over SSH: sbatch, squeue, sacct, sacctmgr and scancel on a cluster's login node.

One ``SlurmBackend`` is one session with the login node (a ``Remote``: by default an
``SSHSession``, see ssh/session.py; tests hand in a fake shell), reused for every call of one
irq command or one daemon cycle. A status refresh costs ONE round trip whatever the number of
jobs: one exec runs ``squeue`` (the user's live jobs, array tasks expanded) and ``sacct`` (the
requested ids, finished ones included) with a marker line between their outputs. Both run
under ``TZ=UTC0`` (see slurm_output.py, which reads what they print).

Slots: SLURM counts every array task as one job against MaxSubmitJobsPerUser, pending or not,
throttle (``%2``) or not: on the test cluster (limit 2) ``--array=0-3%2`` is refused outright
and a pending ``--array=0-1`` fills both slots. So ``slots().used`` is the number of rows of
``squeue -r`` (one per task) for the user, irq's jobs or not.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from irq import errors
from irq.backends.base import CallCounter, JobInfo, JobRequest, Remote, Slots
from irq.backends.slurm_command import run_logs_command
from irq.backends.slurm_output import (
    MARK,
    SACCT_FIELDS,
    SINCE_MARGIN,
    classify_sbatch_error,
    merge,
    parse_run_logs,
    parse_sacct,
    parse_sacctmgr_limit,
    parse_squeue,
    query_args,
    slurm_time,
    split_sections,
    squeue_sacct_command,
    squeue_sacct_sections,
)
from irq.config import ClusterConfig

if TYPE_CHECKING:
    from irq.backends.ssh.auth import Prompt


class SlurmBackend:
    """Backend protocol over SSH to one cluster (see irq/backends/base.py).

    ``remote`` is the login node (default: an SSHSession opened on first use)."""

    counts_array_tasks = True  # each array task counts against MaxSubmitJobsPerUser

    def __init__(self, cfg: ClusterConfig, remote: Remote | None = None, prompt: Prompt | None = None) -> None:
        self.cfg = cfg
        self.name = f"slurm:{cfg.name}"
        if remote is None:  # the transport (OpenSSH or paramiko) is imported only when a cluster is used
            from irq.backends.ssh.transport import open_session

            remote = open_session(cfg, prompt=prompt)
        self.remote: Remote = remote
        self.counter: CallCounter = remote.counter
        self._limit: tuple[int | None, str] | None = None
        self.discovered_limit: tuple[int | None, str] | None = None  # read from sacctmgr by this session
        self.limit_refused = False  # sbatch refused for the job limit: the known limit is stale
        self._used: int | None = None  # the user's queued jobs (tasks), from this session's last squeue

    def __enter__(self) -> SlurmBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def user(self) -> str:
        return self.remote.user

    def new_cycle(self) -> None:
        """Keep the connection (a daemon's lifetime), forget this cycle's view of the queue and
        the limit (the ledger's cache supplies it again)."""
        self._used = None
        self._limit = None
        self.discovered_limit = None

    def logged_in(self) -> bool:
        """The session's own answer (OpenSSH: its master is up; paramiko: its connection is open)."""
        check = getattr(self.remote, "logged_in", None)  # a fake shell has none
        return bool(check()) if check is not None else False

    def known_limit(self, limit: int | None, source: str) -> None:
        """A job limit discovered earlier (the ledger caches it): slots() then skips sacctmgr."""
        self._limit = (limit, source)

    def take_limit_news(self) -> tuple[str, tuple[int | None, str] | None]:
        """("stale", None) after sbatch refused for the limit, ("found", limit) after sacctmgr; once."""
        if self.limit_refused:
            self.limit_refused = False
            return "stale", None
        found, self.discovered_limit = self.discovered_limit, None
        return ("found", found) if found is not None else ("", None)

    def _sh(self, script: str, *args: str, calls: Sequence[str], timeout: float | None = None,
            stdin: str | None = None) -> tuple[int, str, str]:
        """Run a fixed POSIX sh script with the values as positional parameters ($1...):
        values are never spliced into shell text, and the login shell's flavour does not matter."""
        return self.remote.run(["sh", "-c", script, "irq", *args], calls=calls, timeout=timeout, stdin=stdin)

    # ------------------------------------------------------------------ submit
    def submit(self, req: JobRequest) -> str:
        """mkdir -p RUN_DIR, write RUN_DIR/job.sbatch (from stdin), sbatch --parsable it from
        RUN_DIR: one round trip. The job name is passed explicitly (adoption finds it by name)."""
        for v in (req.run_dir, req.name):
            if "\n" in v or "\0" in v:
                raise errors.SubmissionRefused(f"{v!r} contains a newline", "use a name and run directory without one")
        script = ('mkdir -p -- "$1" && cd -- "$1" && cat > job.sbatch.tmp && mv -f job.sbatch.tmp job.sbatch '
                  '|| exit 97; shift; exec sbatch --parsable "$@" job.sbatch')
        opts = [f"--job-name={req.name}"]
        if req.array:
            opts.append(f"--array={req.array}")
        self._used = None  # the queue changes (or may have): count it again
        rc, out, err = self._sh(script, req.run_dir, *opts, calls=("sbatch",), stdin=req.script)
        if rc != 0:
            if rc == 97:  # before sbatch: no job exists; a full quota or a stale mount passes, so not a refusal
                raise errors.BackendError(f"cannot write the job script in {req.run_dir}: {err.strip()[:300]}",
                                          "check the cluster's free space and that workdir in irq.toml is writable "
                                          "there; irq sends the experiment again next time")
            if rc == 127:
                raise errors.BackendError(f"sbatch is not on the PATH of {self.user} on {self.cfg.name}: "
                                          f"{err.strip()[:200]}",
                                          "make sbatch reachable in non-interactive shells (e.g. ~/.bashrc)")
            exc = classify_sbatch_error(err, out)
            if isinstance(exc, errors.SlotLimit):
                self.limit_refused = True
            raise exc
        for line in reversed(out.strip().splitlines()):
            m = re.fullmatch(r"(\d+)(?:;\S+)?", line.strip())
            if m:
                return m.group(1)
        raise errors.BackendError(f"sbatch succeeded but printed no job id: {out.strip()[:200]!r}",
                                  "irq will find the job by its name on the next refresh")

    # ------------------------------------------------------------------ status
    def _squeue_sacct(self, sacct_args: list[str], sacct_fields: Sequence[str]) -> tuple[str, str]:
        """squeue (the user's jobs, tasks expanded) and, unless squeue answered for every job of
        sacct's `-j`, sacct, in one exec under TZ=UTC0 (SQUEUE_SACCT); sacct's section is empty
        when it did not run, and only the commands that ran are counted."""
        _, out, err = self.remote.run(squeue_sacct_command(self.user, sacct_args, sacct_fields), calls=("squeue",))
        sq, sa = squeue_sacct_sections(out, err, self.remote.where, self.cfg.name)
        if sa is not None:
            self.remote.counter.add("sacct", round_trips=0)  # in the same exec
        self._used = sum(1 for ln in sq.splitlines() if ln.strip())  # every task of every job of the user
        return sq, sa or ""

    def query(self, job_ids: list[str], since: datetime) -> dict[str, list[JobInfo]]:
        ids, sacct_args = query_args(job_ids, since)
        if not ids:
            return {}
        sq, sa = self._squeue_sacct(sacct_args, SACCT_FIELDS)
        return merge(parse_squeue(sq), parse_sacct(sa), ids)

    def find(self, names: list[str], since: datetime) -> dict[str, str]:
        wanted = set(names)
        if not wanted:
            return {}
        start = slurm_time(since - SINCE_MARGIN)
        sq, sa = self._squeue_sacct(["--starttime", start], SACCT_FIELDS)
        found: dict[str, str] = {}
        for r in [*parse_sacct(sa), *parse_squeue(sq)]:
            if r.name in wanted and r.base_id.isdigit():
                prev = found.get(r.name)
                if prev is None or int(r.base_id) > int(prev):  # the newest of duplicates
                    found[r.name] = r.base_id
        return found

    def ran(self, run_dirs: list[str]) -> dict[str, str]:
        if not run_dirs:
            return {}
        rc, out, err = self.remote.run(run_logs_command(run_dirs), calls=("ls",))
        if rc != 0:
            raise errors.BackendError(f"cannot look into the run folders on {self.cfg.name}: {err.strip()[:300]}",
                                      "irq keeps the submissions unconfirmed and looks again later")
        return parse_run_logs(out)

    # ------------------------------------------------------------------ slots
    def slots(self) -> Slots:
        """limit: cfg.job_limit, else sacctmgr (read once, then known_limit() from the ledger's
        cache); used: every task of every job of the user in squeue. No round trip when this
        session's refresh already ran squeue (and nothing was submitted since), else one."""
        discover = self.cfg.job_limit is None and self._limit is None
        if self._used is not None and not discover:
            limit, source = (self.cfg.job_limit, "config") if self.cfg.job_limit is not None else self._limit
            return Slots(limit=limit, used=self._used, source=source)
        count = self._used is None  # else this session's refresh counted the queue already
        sections, err = self._slots_round_trip(discover, count)
        sq, sq_rc = sections[0]
        if sq_rc != 0:
            raise errors.BackendError(f"squeue failed on {self.cfg.name}: {err.strip()[:400]}",
                                      "the scheduler is not answering; try again later")
        if count:
            self._used = sum(1 for ln in sq.splitlines() if ln.strip())
        used = self._used or 0
        if self.cfg.job_limit is not None:
            return Slots(limit=self.cfg.job_limit, used=used, source="config")
        if discover:
            (assoc, a_rc), (qos, _), (user_info, _), (cluster, _) = sections[1:]
            self._limit = parse_sacctmgr_limit(assoc, qos, user_info, cluster.strip()) if a_rc == 0 \
                else (None, "sacctmgr unavailable")
            if a_rc == 0:
                self.discovered_limit = self._limit
        limit, source = self._limit or (None, "")
        return Slots(limit=limit, used=used, source=source)

    def _slots_round_trip(self, discover: bool, count: bool) -> tuple[list[tuple[str, int]], str]:
        """squeue (unless counted already) and, to discover the limit, sacctmgr: one round trip."""
        script = ('export TZ=UTC0; echo "$1"; if [ "$4" = yes ]; then squeue -h -r -u "$2" -o "%i|%T"; fi; '
                  'echo "$1 rc=$?"; if [ "$3" = yes ]; then '
                  'sacctmgr -n -P show assoc where user="$2" format=Cluster,Account,Partition,QOS,DefaultQOS,MaxSubmit; '
                  'echo "$1 rc=$?"; sacctmgr -n -P show qos format=Name,MaxSubmitPU,MaxJobsPU; echo "$1 rc=$?"; '
                  'sacctmgr -n -P show user "$2" format=DefaultAccount; echo "$1 rc=$?"; '
                  'scontrol show config 2>/dev/null | sed -n "s/^ClusterName *= *//p"; echo "$1 rc=$?"; fi')
        calls = (("squeue",) if count else ()) + (("sacctmgr",) * 3 + ("scontrol",) if discover else ())
        _, out, err = self._sh(script, MARK, self.user, "yes" if discover else "no", "yes" if count else "no",
                               calls=calls)
        try:
            return split_sections(out, 5 if discover else 1), err
        except ValueError:
            raise errors.BackendError(f"squeue on {self.cfg.name} answered oddly: {(err or out).strip()[:300]}") from None

    # ------------------------------------------------------------------ the rest
    def cancel(self, job_id: str) -> None:
        rc, out, err = self.remote.run(["scancel", str(job_id)], calls=("scancel",))
        if rc != 0:
            text = err.strip() or out.strip()
            if re.search(r"already completing or completed", text, re.IGNORECASE):
                return
            if re.search(r"Invalid job id", text, re.IGNORECASE):
                raise errors.BackendError(f"{self.cfg.name} knows no job {job_id}",
                                          "it may have finished long ago; see `irq status`")
            raise errors.BackendError(f"scancel {job_id} failed on {self.cfg.name}: {text[:300]}",
                                      "try again later")

    def fetch(self, run_dir: str, dest: Path, exclude: tuple[str, ...] = ("checkpoints",)) -> list[Path]:
        return self.remote.get_tree(run_dir, Path(dest), exclude)

    def read_file(self, path: str, max_bytes: int = 65536) -> str | None:
        return self.remote.read_tail(path, max_bytes)

    def run_check(self, script: str, args: Sequence[str], calls: Sequence[str] = ()) -> tuple[int, str, str]:
        return self.remote.run(["bash", "-c", script, "irq", *args], calls=tuple(calls))

    def close(self) -> None:
        self.remote.close()

