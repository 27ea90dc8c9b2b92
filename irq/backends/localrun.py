"""The local backend's supervisor: runs one job's tasks (``python -m irq.backends.localrun DIR``).

Started detached by ``LocalBackend.submit``; it plays slurmd: a SLURM-like environment for
each task, at most ``throttle`` tasks at once, the time limit, and a state file per task that
``LocalBackend.query`` reads. SIGTERM (``irq cancel``) stops the running tasks.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from irq.backends.local import _now, _read_json, write_json


def main(job_dir: str) -> int:
    d = Path(job_dir)
    try:  # one runner per job: its submitter's, or one a later query started for a submitter that stopped
        os.close(os.open(d / "started", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return 0
    job = _read_json(d / "job.json")
    write_json(d / "supervisor.json", {"pid": os.getpid(), "start": _now()})
    tasks = job.get("tasks") or [None]
    pending = list(tasks)
    running: dict[object, tuple[subprocess.Popen, float]] = {}
    cancelled = False

    def on_term(signum: int, _frame: object) -> None:
        nonlocal cancelled
        cancelled = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    def state_file(key: object) -> Path:
        return d / f"task-{key if key is not None else 'x'}.json"

    for key in tasks:
        write_json(state_file(key), {"state": "PENDING", "reason": "JobArrayTaskLimit" if key is not None else None})

    limit = job.get("time_limit")
    while pending or running:
        if cancelled or (d / "cancel").exists():
            for key, (proc, _) in running.items():
                _kill(proc)
                write_json(state_file(key), {**_read_json(state_file(key)), "state": "CANCELLED",
                                             "end": _now(), "reason": "by user", "exit_code": None})
            for key in pending:
                write_json(state_file(key), {"state": "CANCELLED", "end": _now(), "reason": "by user"})
            return 0
        while pending and len(running) < job.get("throttle", 1):
            key = pending.pop(0)
            running[key] = (_start(d, job, key), time.monotonic())
            write_json(state_file(key), {"state": "RUNNING", "pid": running[key][0].pid, "start": _now()})
        for key, (proc, started) in list(running.items()):
            rc = proc.poll()
            if rc is None and limit and time.monotonic() - started > limit:
                _kill(proc)
                proc.wait()
                write_json(state_file(key), {**_read_json(state_file(key)), "state": "TIMEOUT", "end": _now(),
                                             "exit_code": 0, "reason": "time limit"})
                del running[key]
            elif rc is not None:
                st = _read_json(state_file(key))
                if rc < 0:
                    st.update(state="FAILED", exit_code=0, signal=-rc)
                else:
                    st.update(state="COMPLETED" if rc == 0 else "FAILED", exit_code=rc, signal=0)
                st["end"] = _now()
                write_json(state_file(key), st)
                del running[key]
        time.sleep(0.2)
    return 0


def with_own_bin(path: str) -> str:
    """PATH with the folder of the Python running irq added last: `irq` run as `.venv/bin/irq`
    (its venv not activated) gave a job's `python train.py` "command not found" on a machine with
    no other `python`; a python found earlier on PATH still wins, as in the person's own shell."""
    here = os.path.dirname(sys.executable)
    path = path or os.defpath  # no PATH at all: what the shell would search, never irq's folder alone
    parts = path.split(os.pathsep)
    return path if not here or here in parts else os.pathsep.join([*parts, here])


def _start(d: Path, job: dict, key: object) -> subprocess.Popen:
    base = job["id"]
    task_job_id = f"{base}{key:03d}" if key is not None else base
    log_name = job.get("log_name", "slurm-%j.out").replace("%A", base).replace(
        "%a", str(key) if key is not None else "").replace("%j", base)
    run_dir = Path(job["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    cpus = str(job.get("cpus_per_task", 1))
    env = {"OMP_NUM_THREADS": cpus, "MKL_NUM_THREADS": cpus, **os.environ,
           "SLURM_JOB_ID": task_job_id, "SLURM_JOB_NAME": job["name"],
           "SLURM_SUBMIT_DIR": str(run_dir), "SLURM_CPUS_PER_TASK": cpus, "SLURM_NTASKS": "1",
           "SLURM_JOB_PARTITION": "local"}
    if key is not None:
        env.update(SLURM_ARRAY_JOB_ID=base, SLURM_ARRAY_TASK_ID=str(key))
    env["PATH"] = with_own_bin(env.get("PATH", ""))
    out = open(run_dir / log_name, "ab")
    proc = subprocess.Popen(["bash", str(d / "job.sbatch")], cwd=run_dir, env=env, stdin=subprocess.DEVNULL,
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    return proc


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        for _ in range(50):
            if proc.poll() is not None:
                return
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
