"""What sbatch, squeue, sacct and sacctmgr print, read: pure functions on recorded output.

Times: sacct and squeue print times in the time zone of their own process, without an offset
(on a cluster whose login node runs in America/New_York they print New York wall-clock times).
irq runs them with ``TZ=UTC0`` (a POSIX zone string: no zoneinfo files needed), so what they
print, and how they read ``--starttime``, is UTC.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timezone

from irq import errors
from irq.backends.base import JobInfo
from irq.backends.slurm_command import (  # noqa: F401 - the refresh's command, where callers look for it
    MARK,
    SACCT_FIELDS,
    SACCT_NOT_RUN,
    SINCE_MARGIN,
    SQUEUE_FORMAT,
    SQUEUE_SACCT,
    query_args,
    slurm_time,
    squeue_sacct_command,
)
from irq.ledger.states import is_final, normalize_scheduler_state

LIMIT_PATTERNS = re.compile(r"MaxSubmitJob|job submit limit", re.IGNORECASE)
INFRA_PATTERNS = re.compile(
    r"Unable to contact slurm controller|Socket timed out|Connection refused|Zero Bytes were transmitted"
    r"|temporarily unable to accept|slurm_persist_conn|Slurm accounting storage is disabled"
    r"|Communication connection failure|Transport endpoint",
    re.IGNORECASE,
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


def squeue_sacct_sections(out: str, err: str, where: str, cluster: str) -> tuple[str, str | None]:
    """squeue's and sacct's output from one refresh exec (sacct's None when squeue answered for
    every job and sacct was not run); BackendError if either failed."""
    try:
        (sq, sq_rc), (sa, sa_rc) = split_sections(out, 2)
    except ValueError:
        raise errors.BackendError(f"squeue/sacct on {where} answered oddly: {(err or out).strip()[:300]}") from None
    if sq_rc != 0 or sa_rc != 0:
        which = "squeue" if sq_rc != 0 else "sacct"
        raise errors.BackendError(
            f"{which} failed on {cluster}: {err.strip()[:400] or 'exit ' + str(sq_rc or sa_rc)}",
            "the scheduler or its accounting database is not answering; irq keeps every experiment "
            "as it was and asks again later",
        )
    return sq, (None if out.rstrip().endswith(f"{MARK} rc=0 {SACCT_NOT_RUN}") else sa)


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
    (exit code, end); the two run at once (SQUEUE_SACCT), so a job may end between them either
    way: a final state in sacct wins, and a job squeue no longer shows keeps sacct's live state
    until the next refresh reads its end.

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


def parse_run_logs(out: str) -> dict[str, str]:
    """RUN_LOGS' lines as run folder -> the job id its log names (folders without a log left out)."""
    found = {}
    for line in out.splitlines():
        folder, _, log = line.rpartition("\t")
        if m := re.fullmatch(r"slurm-([0-9]+)(?:_[0-9]+)?\.out", log):
            found[folder] = m.group(1)
    return found
