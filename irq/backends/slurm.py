"""SLURM over SSH: sbatch, squeue, sacct, sacctmgr and scancel on a cluster's login node.

One ``SlurmBackend`` is one SSH session (see ssh.py), reused for every call of one irq command
or one daemon cycle. A status refresh costs ONE round trip whatever the number of jobs: one
exec runs ``squeue`` (the user's live jobs, array tasks expanded) and ``sacct`` (the requested
ids, finished ones included) with a marker line between their outputs.

Times: sacct and squeue print times in the time zone of their own process, without an offset
(on a cluster whose login node runs in America/New_York they print New York wall-clock times).
irq runs them with ``TZ=UTC0`` (a POSIX zone string: no zoneinfo files needed), so what they
print, and how they read ``--starttime``, is UTC.

Slots: SLURM counts every array task as one job against MaxSubmitJobsPerUser, pending or not,
throttle (``%2``) or not: on the test cluster (limit 2) ``--array=0-3%2`` is refused outright
and a pending ``--array=0-1`` fills both slots. So ``slots().used`` is the number of rows of
``squeue -r`` (one per task) for the user, irq's jobs or not.

The parse_* functions are pure, for tests on recorded output.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

from irq import errors
from irq.backends.base import CallCounter, JobInfo, JobRequest, Slots
from irq.backends.ssh.auth import Prompt
from irq.backends.ssh.session import SSHSession
from irq.backends.ssh.transport import open_session
from irq.config import ClusterConfig
from irq.ledger.states import is_final, normalize_scheduler_state

MARK = "@@irq-section@@"
SQUEUE_FORMAT = "%i|%T|%r|%S|%j"  # name last: it may contain "|"
SACCT_FIELDS = ("JobID", "State", "ExitCode", "Start", "End", "JobName")  # name last, as above
SINCE_MARGIN = timedelta(hours=1)  # clock skew between here and the cluster
LIMIT_PATTERNS = re.compile(r"MaxSubmitJob|job submit limit", re.I)
INFRA_PATTERNS = re.compile(
    r"Unable to contact slurm controller|Socket timed out|Connection refused|Zero Bytes were transmitted"
    r"|temporarily unable to accept|slurm_persist_conn|Slurm accounting storage is disabled"
    r"|Communication connection failure|Transport endpoint",
    re.I,
)
# slurmdbd (22.05) may record a fast job first from its batch step, before the job's own start
# message: for a few seconds sacct then shows JobName "allocation", State PENDING while it runs,
# or the batch step's state (CANCELLED where the job is TIMEOUT) once it ended. Never final.
PLACEHOLDER_NAME = "allocation"
NO_TIMES = {"", "unknown", "none", "n/a", "invalid"}
LIVE_FROM_SQUEUE = {"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "CONFIGURING", "RESIZING", "SIGNALING",
                    "STAGE_OUT"}


# ---------------------------------------------------------------------- pure parsing
def parse_time(value: str) -> datetime | None:
    """A SLURM time ('2026-11-23T17:00:12', printed under TZ=UTC0) as an aware UTC datetime;
    'Unknown', 'None', 'N/A' -> None. A value with an explicit offset is honoured."""
    v = value.strip()
    if v.lower() in NO_TIMES:
        return None
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def slurm_time(when: datetime) -> str:
    """A datetime as SLURM reads it under TZ=UTC0 (naive datetimes count as local time)."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def expand_job_id(raw: str) -> list[str]:
    """'123' -> ['123']; '123_4' -> ['123_4']; '123_[2-3,7%2]' -> ['123_2', '123_3', '123_7'].
    Step suffixes ('123.batch') are kept as they are."""
    raw = raw.strip()
    m = re.fullmatch(r"(\d+)_\[([^\]]*)\]", raw)
    if not m:
        return [raw] if raw else []
    base, body = m.groups()
    body = body.split("%", 1)[0]
    tasks: list[int] = []
    for part in body.split(","):
        part = part.strip()
        if not part:
            continue
        rng, _, step = part.partition(":")
        a, sep, b = rng.partition("-")
        if sep:
            tasks.extend(range(int(a), int(b) + 1, int(step or 1)))
        else:
            tasks.append(int(a))
    return [f"{base}_{t}" for t in tasks]


def parse_exit_code(value: str) -> tuple[int | None, int | None]:
    """sacct's ExitCode 'code:signal' -> (code, signal); '' -> (None, None)."""
    code, sep, sig = value.strip().partition(":")
    try:
        return int(code), (int(sig) if sep else None)
    except ValueError:
        return None, None


def _state_and_reason(raw: str) -> tuple[str, str | None]:
    state = normalize_scheduler_state(raw)
    rest = raw.strip().split(None, 1)
    return state, (rest[1].strip() if len(rest) > 1 else None)


def parse_squeue(text: str) -> list[JobInfo]:
    """`squeue -h -r -o '%i|%T|%r|%S|%j'` output -> one JobInfo per job or array task.
    Pending array ranges (without -r, '123_[2-3%2]') are expanded."""
    rows: list[JobInfo] = []
    for line in text.splitlines():
        parts = line.split("|", 4)
        if len(parts) < 5 or not parts[0].strip():
            continue
        raw_id, raw_state, reason, start, name = parts
        state = normalize_scheduler_state(raw_state)
        reason = reason.strip()
        started = parse_time(start) if state in LIVE_FROM_SQUEUE else None
        for jid in expand_job_id(raw_id):
            rows.append(JobInfo(job_id=jid, state=state, name=name,
                                reason=None if reason in ("", "None", "(null)") else reason, start=started))
    return rows


def parse_sacct(text: str) -> list[JobInfo]:
    """`sacct -X -P -n -o JobID,State,ExitCode,Start,End,JobName` output -> one JobInfo per
    job or array task ('CANCELLED by 1001' -> CANCELLED, reason 'by 1001'; pending array
    ranges expanded). Job steps (ids with a dot) are skipped."""
    rows: list[JobInfo] = []
    n = len(SACCT_FIELDS)
    for line in text.splitlines():
        parts = line.split("|", n - 1)
        if len(parts) < n or not parts[0].strip() or "." in parts[0]:
            continue
        raw_id, raw_state, exit_code, start, end, name = parts
        state, reason = _state_and_reason(raw_state)
        code, sig = parse_exit_code(exit_code) if is_final(state) else (None, None)
        for jid in expand_job_id(raw_id):
            rows.append(JobInfo(job_id=jid, state=state, name=name, exit_code=code, signal=sig,
                                reason=reason, start=parse_time(start), end=parse_time(end)))
    return rows


def merge(squeue_rows: Iterable[JobInfo], sacct_rows: Iterable[JobInfo],
          job_ids: Iterable[str] | None = None) -> dict[str, list[JobInfo]]:
    """Base id -> rows. squeue knows live jobs best (state, reason); sacct knows finished ones
    (exit code, end); sacct ran after squeue, so a final state there wins a race.

    Rows of an array: one per task, by task id; a row with the bare base id before them stands
    for tasks that never started (SLURM's record of the unsplit remainder, e.g. an array
    cancelled while tasks were pending). A sacct placeholder (see PLACEHOLDER_NAME) that
    squeue no longer shows is reported COMPLETING: finished, its accounting not yet recorded."""
    wanted = {j.split("_", 1)[0] for j in job_ids} if job_ids is not None else None
    acct: dict[str, JobInfo] = {}
    for r in sacct_rows:
        acct[r.job_id] = r  # a later row (requeue) replaces an earlier one
    rows: dict[str, JobInfo] = {}
    for jid, a in acct.items():
        if a.name == PLACEHOLDER_NAME:
            a = JobInfo(job_id=jid, state="COMPLETING", name="", start=a.start,
                        reason="finished; waiting for the accounting record")
        rows[jid] = a
    for q in squeue_rows:
        a = acct.get(q.job_id)
        if a is not None and is_final(a.state) and a.name != PLACEHOLDER_NAME:
            continue  # finished between the two commands
        rows[q.job_id] = JobInfo(job_id=q.job_id, state=q.state,
                                 name=q.name or (a.name if a and a.name != PLACEHOLDER_NAME else ""),
                                 reason=q.reason, start=q.start or (a.start if a else None))
    out: dict[str, list[JobInfo]] = {}
    for r in rows.values():
        if wanted is None or r.base_id in wanted:
            out.setdefault(r.base_id, []).append(r)
    for lst in out.values():
        lst.sort(key=lambda r: -1 if r.task_id is None else r.task_id)
    return out


def split_sections(stdout: str, count: int) -> list[tuple[str, int]]:
    """Output of `echo M; cmd1; echo "M rc=$?"; cmd2; echo "M rc=$?"` (M = MARK) ->
    [(output of cmd1, its exit code), ...]. Whatever the login shell printed before the first
    marker is dropped. Raises ValueError if the output ends early (the exec was cut short)."""
    parts = stdout.split(MARK)
    if len(parts) < count + 2:
        raise ValueError("output ends early")
    results = []
    for i in range(count):
        text = parts[i + 1]
        text = text[1:] if i == 0 and text.startswith("\n") else (text.split("\n", 1)[1] if "\n" in text else "")
        m = re.match(r"\s*rc=(-?\d+)", parts[i + 2])
        results.append((text, int(m.group(1)) if m else -1))
    return results


def classify_sbatch_error(stderr: str, stdout: str = "") -> errors.IrqError:
    lines = [ln.strip() for ln in (stderr + "\n" + stdout).splitlines() if ln.strip()]
    text = "; ".join(lines) or "sbatch failed without a message"
    if LIMIT_PATTERNS.search(text):
        return errors.SlotLimit(f"the cluster refused another job: {text}")
    if INFRA_PATTERNS.search(text):
        return errors.BackendError(f"sbatch could not submit: {text}",
                                   "the scheduler is not answering; irq tries again later")
    return errors.SubmissionRefused(f"sbatch refused the job: {text}")


def parse_sacctmgr_limit(assoc: str, qos: str, user_info: str, cluster: str) -> tuple[int | None, str]:
    """The smallest submit limit that applies to the user's default association:
    its MaxSubmitJobs and its default QOS's MaxSubmitJobsPerUser / MaxJobsPerUser.

    assoc: `sacctmgr -n -P show assoc where user=U format=Cluster,Account,Partition,QOS,DefaultQOS,MaxSubmit`
    qos: `sacctmgr -n -P show qos format=Name,MaxSubmitPU,MaxJobsPU`
    user_info: `sacctmgr -n -P show user U format=DefaultAccount`; cluster: ClusterName."""
    default_account = user_info.strip().splitlines()[0].strip() if user_info.strip() else ""
    rows = [ln.split("|") for ln in assoc.splitlines() if ln.count("|") >= 5]
    if cluster:
        rows = [r for r in rows if r[0] == cluster] or rows
    if default_account:
        rows = [r for r in rows if r[1] == default_account] or rows
    general = [r for r in rows if not r[2]] or rows  # partition-specific rows last
    qos_limits: dict[str, tuple[str, str]] = {}
    for ln in qos.splitlines():
        p = ln.split("|")
        if len(p) >= 3:
            qos_limits[p[0]] = (p[1], p[2])
    candidates: list[tuple[int, str]] = []
    for r in general[:1]:
        _, account, _, qos_list, default_qos, max_submit = r[:6]
        if max_submit.strip().isdigit():
            candidates.append((int(max_submit), f"sacctmgr association {account} MaxSubmitJobs"))
        names = [q for q in qos_list.split(",") if q]
        q = default_qos or (names[0] if len(names) == 1 else "normal")
        sub, run = qos_limits.get(q, ("", ""))
        if sub.strip().isdigit():
            candidates.append((int(sub), f"sacctmgr QOS {q} MaxSubmitJobsPerUser"))
        if run.strip().isdigit():
            candidates.append((int(run), f"sacctmgr QOS {q} MaxJobsPerUser"))
    if not candidates:
        return None, "sacctmgr: no limit"
    return min(candidates)


# ---------------------------------------------------------------------- the backend
class SlurmBackend:
    """Backend protocol over SSH to one cluster (see irq/backends/base.py)."""

    def __init__(self, cfg: ClusterConfig, session: SSHSession | None = None, prompt: Prompt | None = None) -> None:
        self.cfg = cfg
        self.name = f"slurm:{cfg.name}"
        self.counts_array_tasks = True  # each array task counts against MaxSubmitJobsPerUser
        self.session = session if session is not None else open_session(cfg, prompt=prompt)
        self.counter: CallCounter = self.session.counter
        self._limit: tuple[int | None, str] | None = None
        self.discovered_limit: tuple[int | None, str] | None = None  # read from sacctmgr by this session
        self.limit_refused = False  # sbatch refused for the job limit: the known limit is stale
        self._used: int | None = None  # the user's queued jobs (tasks), from this session's last squeue

    def __enter__(self) -> "SlurmBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def user(self) -> str:
        return self.session.user

    def new_cycle(self) -> None:
        """Keep the connection (a daemon's lifetime), forget this cycle's view of the queue and
        the limit (the ledger's cache supplies it again)."""
        self._used = None
        self._limit = None
        self.discovered_limit = None

    def known_limit(self, limit: int | None, source: str) -> None:
        """A job limit discovered earlier (the ledger caches it): slots() then skips sacctmgr."""
        self._limit = (limit, source)

    def _sh(self, script: str, *args: str, calls: Sequence[str], timeout: float | None = None,
            stdin: str | None = None) -> tuple[int, str, str]:
        """Run a fixed POSIX sh script with the values as positional parameters ($1...):
        values are never spliced into shell text, and the login shell's flavour does not matter."""
        return self.session.run(["sh", "-c", script, "irq", *args], calls=calls, timeout=timeout, stdin=stdin)

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
            if rc == 97:
                raise errors.SubmissionRefused(f"cannot write the job script in {req.run_dir}: {err.strip()}",
                                               "check workdir in irq.toml: it must be writable on the cluster")
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
        """squeue (the user's jobs, tasks expanded) and sacct in one exec, both under TZ=UTC0."""
        script = ('export TZ=UTC0; m=$1; echo "$m"; squeue -h -r -u "$2" -o "$3"; echo "$m rc=$?"; '
                  'shift 3; sacct -X -P -n "$@"; echo "$m rc=$?"')
        args = [MARK, self.user, SQUEUE_FORMAT, *sacct_args, "-o", ",".join(sacct_fields)]
        rc, out, err = self._sh(script, *args, calls=("squeue", "sacct"))
        try:
            (sq, sq_rc), (sa, sa_rc) = split_sections(out, 2)
        except ValueError:
            raise errors.BackendError(f"squeue/sacct on {self.session.endpoint.where} answered oddly: "
                                      f"{(err or out).strip()[:300]}") from None
        if sq_rc != 0 or sa_rc != 0:
            which = "squeue" if sq_rc != 0 else "sacct"
            raise errors.BackendError(
                f"{which} failed on {self.cfg.name}: {err.strip()[:400] or 'exit ' + str(sq_rc or sa_rc)}",
                "the scheduler or its accounting database is not answering; irq keeps every experiment "
                "as it was and asks again later",
            )
        self._used = sum(1 for ln in sq.splitlines() if ln.strip())  # every task of every job of the user
        return sq, sa

    def query(self, job_ids: list[str], since: datetime) -> dict[str, list[JobInfo]]:
        ids = sorted({j.split("_", 1)[0] for j in job_ids if j})
        if not ids:
            return {}
        start = slurm_time(since - SINCE_MARGIN)
        sq, sa = self._squeue_sacct(["--starttime", start, "-j", ",".join(ids)], SACCT_FIELDS)
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
        script = ('export TZ=UTC0; echo "$1"; if [ "$4" = yes ]; then squeue -h -r -u "$2" -o "%i|%T"; fi; '
                  'echo "$1 rc=$?"; if [ "$3" = yes ]; then '
                  'sacctmgr -n -P show assoc where user="$2" format=Cluster,Account,Partition,QOS,DefaultQOS,MaxSubmit; '
                  'echo "$1 rc=$?"; sacctmgr -n -P show qos format=Name,MaxSubmitPU,MaxJobsPU; echo "$1 rc=$?"; '
                  'sacctmgr -n -P show user "$2" format=DefaultAccount; echo "$1 rc=$?"; '
                  'scontrol show config 2>/dev/null | sed -n "s/^ClusterName *= *//p"; echo "$1 rc=$?"; fi')
        calls = (("squeue",) if count else ()) + (("sacctmgr",) * 3 + ("scontrol",) if discover else ())
        rc, out, err = self._sh(script, MARK, self.user, "yes" if discover else "no", "yes" if count else "no",
                                calls=calls)
        try:
            sections = split_sections(out, 5 if discover else 1)
        except ValueError:
            raise errors.BackendError(f"squeue on {self.cfg.name} answered oddly: {(err or out).strip()[:300]}") from None
        sq, sq_rc = sections[0]
        if sq_rc != 0:
            raise errors.BackendError(f"squeue failed on {self.cfg.name}: {err.strip()[:400]}",
                                      "the scheduler is not answering; try again later")
        if count:
            self._used = sum(1 for ln in sq.splitlines() if ln.strip())
        used = self._used
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

    # ------------------------------------------------------------------ the rest
    def cancel(self, job_id: str) -> None:
        rc, out, err = self.session.run(["scancel", str(job_id)], calls=("scancel",))
        if rc != 0:
            text = err.strip() or out.strip()
            if re.search(r"already completing or completed", text, re.I):
                return
            if re.search(r"Invalid job id", text, re.I):
                raise errors.BackendError(f"{self.cfg.name} knows no job {job_id}",
                                          "it may have finished long ago; see `irq status`")
            raise errors.BackendError(f"scancel {job_id} failed on {self.cfg.name}: {text[:300]}",
                                      "try again later")

    def fetch(self, run_dir: str, dest: Path, exclude: tuple[str, ...] = ("checkpoints",)) -> list[Path]:
        return self.session.get_tree(run_dir, Path(dest), exclude)

    def read_file(self, path: str, max_bytes: int = 65536) -> str | None:
        return self.session.read_tail(path, max_bytes)

    def close(self) -> None:
        self.session.close()

