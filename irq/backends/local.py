"""The embedded default backend: jobs run as detached processes on this machine.

Each job is a folder under ``WORKDIR/jobs/<id>`` holding the request and one state file per
task, written by a small supervisor (``python -m irq.backends.localrun``) that runs the
script with bash and a SLURM-like environment, at most ``throttle`` tasks at a time, and
enforces ``#SBATCH --time``. The files outlive irq: a later ``irq status`` reads what
finished or crashed meanwhile, and a supervisor that died is noticed by its pid.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from irq import errors
from irq.backends.base import CallCounter, JobInfo, JobRequest, Slots
from irq.cache_files import write_atomically

CHECK_TIMEOUT = 120.0  # seconds a preflight script may take (it may clone a repository)
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"}
START_GRACE = 5.0  # seconds a submitter has to launch its job's runner before a query launches one
NEVER_STARTED = 600.0  # seconds without a runner's state (launched again by every query) before a job counts as lost


def parse_array(spec: str | None) -> tuple[list[int], int]:
    """'0-9%2' -> ([0..9], 2); None -> ([None-task], 1)."""
    if not spec:
        return [], 1
    body, _, throttle = spec.partition("%")
    tasks: list[int] = []
    for part in body.split(","):
        a, sep, b = part.partition("-")
        tasks.extend(range(int(a), int(b) + 1) if sep else [int(a)])
    return tasks, int(throttle) if throttle else len(tasks)


def time_limit_seconds(script: str) -> int | None:
    m = re.search(r"^#SBATCH\s+--time=(?:(\d+)-)?(\d+):(\d+):(\d+)\s*$", script, re.M)
    if not m:
        return None
    d, h, mi, s = (int(x or 0) for x in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours is dead for our purpose
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


_LOCAL_ID = re.compile(r"\d+(_\d+)?", re.ASCII)  # the ids submit() gives: a number, and a task's


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _read_json(p: Path | str) -> dict:
    try:
        with open(p, encoding="utf-8") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return {}


def write_json(p: Path, data: dict) -> None:
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, p)


class LocalBackend:
    """Backend protocol on this machine; ``slots`` is how many tasks may run at once."""

    name = "local"
    counts_array_tasks = False  # a local array holds one slot; its throttle shares the cores

    def __init__(self, workdir: Path, slots: int = 2) -> None:
        self.root = Path(workdir)
        self.jobs = self.root / "jobs"
        try:
            self.jobs.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file in the way, a folder that cannot be made
            raise errors.ConfigError(f"[local] workdir {self.root}: cannot make its jobs folder there "
                                     f"({exc.strerror or exc})",
                                     "set [local] workdir to a folder you may write (default .irq/local); "
                                     "see docs/configuration.md") from None
        self.limit = slots
        self.counter = CallCounter()
        # the job folders this session's query read, by job id: slots() takes them as read (a
        # status tells the slots from the same reading, as SLURM's from the same squeue) until a
        # submit, a cancel or a new cycle; folders the query did not read are read by slots()
        self._seen: dict[str, list[JobInfo]] = {}

    # -- bookkeeping ----------------------------------------------------------------------
    @contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.root / "lock", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _next_id(self) -> str:
        """The next job id (under the backend's lock). The counter is replaced whole; one left empty
        or garbled (an older irq killed mid-write) is read past, and an id whose folder exists is never
        handed out again, so a broken counter costs a scan, never a stuck queue."""
        p = self.root / "next_id"
        try:
            n = int(p.read_text(encoding="ascii"))
        except FileNotFoundError:
            n = 1000
        except (OSError, ValueError):  # empty or garbled: after the highest job there is
            n = max([1000, *(int(name) + 1 for name in self._job_names())])
        while (self.jobs / str(n)).exists():
            n += 1
        write_atomically(p, str(n + 1))
        return str(n)

    def _job_dirs(self) -> list[Path]:
        return [self.jobs / name for name in self._job_names()]

    def _job_names(self) -> list[str]:
        """The job folders' names (job ids), in submission order."""
        with os.scandir(self.jobs) as it:
            names = [e.name for e in it if os.path.exists(os.path.join(e.path, "job.json"))]
        return sorted(names, key=int)

    def _infos(self, d: Path, start: bool = False) -> list[JobInfo]:
        """The job's tasks as the scheduler would list them. With `start` (a query for an attempt
        that is still active), a job whose submitter never started its runner is started now."""
        base, name = os.fspath(d), d.name  # string paths: a status reads hundreds of these folders
        job = _read_json(f"{base}/job.json")
        if start and not os.path.exists(f"{base}/started") and not os.path.exists(f"{base}/supervisor.json") \
                and _age(d) > START_GRACE and job.get("run_dir"):
            self._start(d, job["run_dir"])  # its submitter stopped or died between job.json and the runner
        sup = _read_json(f"{base}/supervisor.json")
        sup_alive = pid_alive(sup.get("pid"))
        out = []
        for key in job.get("tasks") or [None]:
            tid = f"{name}_{key}" if key is not None else name
            st = _read_json(f"{base}/task-{key if key is not None else 'x'}.json") or {"state": "PENDING"}
            state = st["state"]
            reason = st.get("reason")
            if state not in FINAL and not sup_alive and not pid_alive(st.get("pid")):
                if os.path.exists(f"{base}/supervisor.json"):
                    state, reason = "NODE_FAIL", "the local runner died (machine restart or killed)"
                elif (_age(d / "started") > 30 if os.path.exists(f"{base}/started") else _age(d) > NEVER_STARTED):
                    state, reason = "NODE_FAIL", "the job never started: its local runner did not come up (nothing ran)"
            out.append(JobInfo(job_id=tid, state=state, name=job.get("name", ""),
                               exit_code=st.get("exit_code"), signal=st.get("signal"), reason=reason,
                               start=_dt(st.get("start")), end=_dt(st.get("end"))))
        return out

    # -- protocol -------------------------------------------------------------------------
    def slots(self) -> Slots:
        seen = self._seen
        used = sum(1 for name in self._job_names()
                   if any(i.state not in FINAL for i in seen.get(name) or self._infos(self.jobs / name)))
        self.counter.add("squeue", round_trips=0)
        return Slots(limit=self.limit, used=used, source="local slots")

    def submit(self, req: JobRequest) -> str:
        tasks, throttle = parse_array(req.array)
        self._seen = {}  # the slot check below reads every folder afresh
        with self._lock():
            if self.slots().free < 1:
                raise errors.SlotLimit(f"all {self.limit} local slots are busy")
            job_id = self._next_id()
            d = self.jobs / job_id
            d.mkdir()
            (d / "job.sbatch").write_text(req.script)
            write_json(d / "job.json", {
                "id": job_id, "name": req.name, "token": req.token, "run_dir": req.run_dir,
                "array": req.array, "tasks": tasks or None, "throttle": min(throttle, self.limit) if tasks else 1,
                "log_name": req.log_name, "time_limit": time_limit_seconds(req.script), "submitted": _now(),
                # share the cores between the slots: two torch jobs each using every core thrash
                "cpus_per_task": max(1, (os.cpu_count() or 1) // max(1, self.limit)),
            })
        self._start(d, req.run_dir)
        self.counter.add("sbatch", round_trips=0)
        return job_id

    def _start(self, d: Path, run_dir: str) -> None:
        """Launch a runner for the job. A job is accepted once its job.json is written, as sbatch
        accepts one: if its submitter stops or dies before launching the runner, the next query
        launches one (see _infos). Each runner first claims the job (`started`, made with O_EXCL,
        irq/backends/localrun.py): a second one, from a submitter that resumes, exits at once."""
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        log = open(d / "supervisor.log", "ab")
        # cwd = the job folder: `-m` puts the cwd first on sys.path, and the user's folder may hold
        # another copy of irq (a checkout); the supervisor must run this one
        subprocess.Popen([sys.executable, "-m", "irq.backends.localrun", str(d)], stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log, start_new_session=True, close_fds=True, cwd=d,
                         env={**os.environ, "PYTHONPATH": _irq_path()})
        log.close()

    def find(self, names: list[str], since: datetime) -> dict[str, str]:
        wanted = set(names)
        found = {}
        for d in self._job_dirs():
            job = _read_json(d / "job.json")
            if job.get("name") in wanted:
                found[job["name"]] = d.name
        return found

    def ran(self, run_dirs: list[str]) -> dict[str, str]:
        return {}  # find() reads every job's own folder: it knows all there are

    def query(self, job_ids: list[str], since: datetime) -> dict[str, list[JobInfo]]:
        self.counter.add("squeue", "sacct", round_trips=0)
        seen, lost = {}, {}
        for jid in job_ids:
            if not _LOCAL_ID.fullmatch(jid):  # never a path: an imported 'Job ID: ../../x' must not name a folder
                lost[jid.split("_")[0]] = [JobInfo(job_id=jid, state="NODE_FAIL", reason=f"{jid!r} is no job id of this machine's")]
                continue
            d = self.jobs / jid.split("_")[0]
            if (d / "job.json").exists():
                seen[d.name] = self._infos(d, start=True)
            else:  # this machine knows every job it ran: one without its folder is lost, not "unknown"
                lost[d.name] = [JobInfo(job_id=d.name, state="NODE_FAIL",
                                        reason=f"its job folder {d} is gone (deleted, or [local] workdir moved)")]
        self._seen = dict(seen)  # the folders read: slots() counts from them
        return {**seen, **lost}

    def cancel(self, job_id: str) -> None:
        self._seen = {}
        if not _LOCAL_ID.fullmatch(job_id):
            raise errors.BackendError(f"{job_id!r} is no job id of this machine's", "see `irq show ID`")
        d = self.jobs / job_id.split("_")[0]
        if not (d / "job.json").exists():
            return  # its folder is gone: no runner of it can be found, and query() reports it lost
        (d / "cancel").write_text(_now())
        sup = _read_json(d / "supervisor.json")
        if pid_alive(sup.get("pid")):
            os.kill(sup["pid"], signal.SIGTERM)
        else:  # nobody runs it: mark what is left as cancelled ourselves
            job = _read_json(d / "job.json")
            for key in job.get("tasks") or [None]:
                p = d / f"task-{key if key is not None else 'x'}.json"
                st = _read_json(p)
                if st.get("state") not in FINAL:
                    write_json(p, {**st, "state": "CANCELLED", "end": _now(), "reason": "by user"})
        self.counter.add("scancel", round_trips=0)

    def _here(self, path: str) -> Path:
        """A run folder (or a file in one) as an attempt recorded it, or where it is now when the
        project, and with it the workdir, moved since: the jobs' folders moved too, and query()
        found them there."""
        p = Path(path)
        if p.exists():
            return p
        parts = p.parts
        for i, part in enumerate(parts[:-1]):
            if part == "runs" and (moved := self.root.joinpath("runs", *parts[i + 1:])).exists():
                return moved
        return p

    def fetch(self, run_dir: str, dest: Path, exclude: tuple[str, ...] = ("checkpoints",)) -> list[Path]:
        src = self._here(run_dir)
        if not src.is_dir():
            return []
        copied = []
        for p in sorted(src.rglob("*")):
            rel = p.relative_to(src)
            # files only, as from a cluster (its tar stream is extracted so): a link (which may dangle
            # into a pruned checkout, or point anywhere), a named pipe (reading one waits) or a socket
            # the job left is not copied
            if any(part in exclude for part in rel.parts) or p.is_symlink() or not p.is_file():
                continue
            target = dest / rel
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(p, target)
            except OSError as exc:
                raise errors.BackendError(f"cannot copy {rel} of {src.name} into {dest}: {exc.strerror or exc}",
                                          "check the free space and permissions there; `irq fetch` tries again") from None
            copied.append(target)
        return copied

    def read_file(self, path: str, max_bytes: int = 65536) -> str | None:
        p = self._here(path)
        if not p.is_file():
            return None
        with open(p, "rb") as f:
            f.seek(max(0, p.stat().st_size - max_bytes))
            return f.read().decode("utf-8", "replace")

    def run_check(self, script: str, args: Sequence[str], calls: Sequence[str] = ()) -> tuple[int, str, str]:
        self.counter.add(*calls, round_trips=0)
        try:
            p = subprocess.run(["bash", "-c", script, "irq", *args], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=CHECK_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise errors.BackendError(f"a check script ran over {CHECK_TIMEOUT:g}s on this machine") from None
        return p.returncode, p.stdout, p.stderr

    def new_cycle(self) -> None:
        """Forget the job folders read in the last cycle."""
        self._seen = {}

    def logged_in(self) -> bool:
        return True  # this machine: no login

    def known_limit(self, limit: int | None, source: str) -> None:
        """The limit is the configured slots: nothing to cache."""

    def take_limit_news(self) -> tuple[str, tuple[int | None, str] | None]:
        return "", None

    def close(self) -> None:
        pass

    def __enter__(self) -> "LocalBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _dt(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def _age(d: Path) -> float:
    import time

    return time.time() - d.stat().st_mtime


def _irq_path() -> str:
    here = str(Path(__file__).resolve().parents[2])
    old = os.environ.get("PYTHONPATH")
    return f"{here}:{old}" if old else here
