"""The loopback SLURM cluster for irq's cluster tests, as a session-scoped pytest fixture.

Register it in a conftest.py with::

    from tests.cluster.fixture import slurm_cluster  # noqa: F401

``slurm_cluster`` runs ``tests/cluster/cluster.sh up`` once per test session and returns a
:class:`Cluster`. At the end of the session it runs ``down`` again if a test session started the
cluster, unless ``IRQ_CLUSTER_KEEP=1`` is set or another test session on this machine still uses
it (STATE_DIR/sessions/PID). A cluster brought up by hand (``cluster.sh up``) stays up.

Test sessions on one machine share the test user, its 2-job QOS and ``cancel_all``, so the fixture
makes them take turns (STATE_DIR.session.lock; ``IRQ_CLUSTER_SHARED=1`` opts out). If the machine cannot host the
cluster (not root, no apt, apt fails) the fixture skips, or fails when ``CI`` is set.

See docs/testing.md.
"""
from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "cluster.sh"
DEFAULT_STATE_DIR = "/var/tmp/irq-test-cluster"
CANNOT_HOST = 3  # exit code of cluster.sh when the machine cannot host the cluster

SACCT_FIELDS = ("JobID", "JobName", "State", "ExitCode", "Start", "End", "Elapsed", "Partition")
SQUEUE_FIELDS = (("JobID", "%i"), ("State", "%T"), ("Reason", "%r"), ("Name", "%j"),
                 ("Partition", "%P"))
# A login environment for the test user (what sshd/`su -` would give), for run_as_user.
USER_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/games"


class ClusterError(RuntimeError):
    """cluster.sh failed."""


def state_dir() -> Path:
    return Path(os.environ.get("IRQ_CLUSTER_DIR", DEFAULT_STATE_DIR))


def _script(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "IRQ_CLUSTER_FROM_FIXTURE": "1"},
    )


def _check(proc: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    if proc.returncode != 0:
        raise ClusterError(f"cluster.sh {what} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-4000:]}{proc.stdout[-2000:]}")
    return proc


def read_env(path: Path | None = None) -> dict[str, str]:
    """The KEY=VALUE lines that `cluster.sh up` wrote to STATE_DIR/env."""
    path = path or state_dir() / "env"
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def _slurm_time(since: datetime | str) -> str:
    if isinstance(since, datetime):
        return since.strftime("%Y-%m-%dT%H:%M:%S")
    return since


@dataclass
class Cluster:
    """A running loopback cluster. Paths are absolute; `env` holds every IRQ_CLUSTER_* value."""

    host: str
    port: int
    user: str
    key: Path                 # private key of the client (root-owned, mode 600)
    known_hosts: Path         # holds the sshd host key for [127.0.0.1]:PORT
    ssh_config_path: Path     # OpenSSH client config with `Host irq-test-cluster`
    modulepath: Path
    repos: Path               # bare git repositories (see new_bare_repo)
    workdir: Path             # owned by the test user, e.g. /home/irqtest/irq-work
    scratch: Path             # owned by the test user
    python_module: str        # python/3.10.13-fasrc01
    cuda_module: str          # cuda/11.8.0-fasrc01
    name: str                 # SLURM ClusterName
    state_dir: Path
    qos: str                  # the user's default QOS (MaxSubmitJobsPerUser=2)
    account: str
    oom_state: str            # sacct State of a job killed for exceeding --mem
    memory_enforcement: str   # "cgroup" or "jobacct"
    env: dict[str, str] = field(default_factory=dict, repr=False)

    ssh_alias = "irq-test-cluster"

    @classmethod
    def from_env(cls, env: dict[str, str]) -> "Cluster":
        return cls(
            host=env["IRQ_CLUSTER_HOST"],
            port=int(env["IRQ_CLUSTER_PORT"]),
            user=env["IRQ_CLUSTER_USER"],
            key=Path(env["IRQ_CLUSTER_KEY"]),
            known_hosts=Path(env["IRQ_CLUSTER_KNOWN_HOSTS"]),
            ssh_config_path=Path(env["IRQ_CLUSTER_SSH_CONFIG"]),
            modulepath=Path(env["IRQ_CLUSTER_MODULEPATH"]),
            repos=Path(env["IRQ_CLUSTER_REPOS"]),
            workdir=Path(env["IRQ_CLUSTER_WORKDIR"]),
            scratch=Path(env["IRQ_CLUSTER_SCRATCH"]),
            python_module=env["IRQ_CLUSTER_PYTHON_MODULE"],
            cuda_module=env["IRQ_CLUSTER_CUDA_MODULE"],
            name=env["IRQ_CLUSTER_NAME"],
            state_dir=Path(env["IRQ_CLUSTER_DIR"]),
            qos=env.get("IRQ_CLUSTER_QOS", "twojobs"),
            account=env.get("IRQ_CLUSTER_ACCOUNT", "irq"),
            oom_state=env.get("IRQ_CLUSTER_OOM_STATE", "OUT_OF_MEMORY"),
            memory_enforcement=env.get("IRQ_CLUSTER_MEMORY_ENFORCEMENT", "cgroup"),
            env=dict(env),
        )

    # ------------------------------------------------------------------ commands as the user
    @property
    def home(self) -> Path:
        return self.workdir.parent

    def run_as_user(self, cmd: str, *, check: bool = False, timeout: float = 120,
                    input: str | None = None) -> subprocess.CompletedProcess:
        """Run `cmd` locally as the test user in a login shell (`bash -lc`), with the clean
        environment a login has (HOME, USER, PATH; /etc/profile and ~/.bashrc give `module`).
        Independent of irq and of sshd: for checking squeue/sacct/files from a test."""
        argv = ["runuser", "-u", self.user, "--", "env", "-i",
                f"HOME={self.home}", f"USER={self.user}", f"LOGNAME={self.user}",
                "SHELL=/bin/bash", f"PATH={USER_PATH}", "LANG=C.UTF-8",
                "bash", "-lc", cmd]
        proc = subprocess.run(argv, cwd=self.home, input=input, capture_output=True, text=True,
                              timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise ClusterError(f"as {self.user}: {cmd!r} exited {proc.returncode}:\n"
                               f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return proc

    def sacct_jobs(self, since: datetime | str | None = None, *, steps: bool = False,
                   fields: tuple[str, ...] = SACCT_FIELDS) -> list[dict[str, str]]:
        """The test user's jobs from `sacct -P -n` (allocations only unless steps=True), started
        since `since` (datetime or SLURM time string; default: the last hour). One dict per row,
        keyed by field name; array tasks appear as JOBID_TASK."""
        since = since if since is not None else datetime.now() - timedelta(hours=1)
        cmd = (f"sacct {'' if steps else '-X '}-P -n -o {','.join(fields)} "
               f"--starttime {shlex.quote(_slurm_time(since))}")
        out = self.run_as_user(cmd, check=True).stdout
        return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.strip()]

    def squeue_jobs(self, *, array_tasks: bool = False) -> list[dict[str, str]]:
        """The test user's pending/running jobs: JobID, State, Reason, Name, Partition.
        array_tasks=True expands pending array tasks one per row (squeue -r)."""
        fmt = "|".join(spec for _, spec in SQUEUE_FIELDS)
        out = self.run_as_user(f"squeue -h {'-r ' if array_tasks else ''}-u {self.user} "
                               f"-o {shlex.quote(fmt)}", check=True).stdout
        keys = [k for k, _ in SQUEUE_FIELDS]
        return [dict(zip(keys, line.split("|"))) for line in out.splitlines() if line.strip()]

    def cancel_all(self, timeout: float = 60) -> None:
        """scancel every job of the test user and wait until squeue shows none (start clean)."""
        subprocess.run(["scancel", "--user", self.user], capture_output=True, timeout=30)
        deadline = time.monotonic() + timeout
        while True:
            out = subprocess.run(["squeue", "-h", "-u", self.user, "-o", "%i"],
                                 capture_output=True, text=True, timeout=30).stdout
            if not out.strip():
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"jobs of {self.user} still queued after {timeout}s: {out.split()}")
            time.sleep(0.5)

    def wait_for_job(self, job_id: str | int, since: datetime | str, *, timeout: float = 60,
                     states: tuple[str, ...] | None = None) -> dict[str, str]:
        """Poll sacct until the job (or array task "ID_N") reaches a final state (or one of
        `states`); return its sacct row."""
        final = states or ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY",
                           "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE")
        job_id = str(job_id)
        deadline = time.monotonic() + timeout
        row: dict[str, str] | None = None
        while time.monotonic() < deadline:
            for r in self.sacct_jobs(since):
                if r["JobID"] == job_id:
                    row = r
            if row and row["State"].split()[0] in final:
                return row
            time.sleep(0.5)
        raise ClusterError(f"job {job_id} not in {final} after {timeout}s (last: {row})")

    # ------------------------------------------------------------------ daemons
    def stop_sshd(self) -> None:
        _check(_script("stop-sshd", timeout=60), "stop-sshd")

    def start_sshd(self) -> None:
        _check(_script("start-sshd", timeout=60), "start-sshd")

    def restart_slurmctld(self) -> None:
        _check(_script("restart-slurmctld", timeout=180), "restart-slurmctld")

    def stop_slurmctld(self) -> None:
        """Stop the controller (squeue/sbatch then fail as when a cluster's controller is down);
        start_slurmctld() or restart_slurmctld() brings it back with its saved job state."""
        _check(_script("stop-slurmctld", timeout=60), "stop-slurmctld")

    def start_slurmctld(self) -> None:
        _check(_script("start-slurmctld", timeout=180), "start-slurmctld")

    def restart_slurmdbd(self) -> None:
        _check(_script("restart-slurmdbd", timeout=180), "restart-slurmdbd")

    # ------------------------------------------------------------------ git
    def new_bare_repo(self, name: str) -> Path:
        """An empty bare git repository REPOS/NAME (".git" appended unless given), replacing
        any earlier one of that name. Owned by the test user (so `git push` over ssh as the
        user works) and readable by everyone; root may also push to it by path."""
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"bad repository name {name!r}")
        path = self.repos / (name if name.endswith(".git") else f"{name}.git")
        if path.exists():
            shutil.rmtree(path)
        subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=main", str(path)],
                       check=True, capture_output=True)
        subprocess.run(["chown", "-R", f"{self.user}:", str(path)], check=True)
        subprocess.run(["chmod", "-R", "a+rX", str(path)], check=True)
        return path

    def ssh_command(self) -> list[str]:
        """argv prefix for the OpenSSH client: `[*cluster.ssh_command(), "squeue"]`."""
        return ["ssh", "-F", str(self.ssh_config_path), self.ssh_alias]


def cluster_is_up() -> bool:
    """True if `cluster.sh status` finds every daemon running and the node idle."""
    try:
        return _script("status", timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def cluster_up() -> Cluster:
    """Run `cluster.sh up` (idempotent) and return the Cluster. Raises ClusterError with
    `.returncode` (CANNOT_HOST when the machine cannot host the cluster). Progress lines go to
    STATE_DIR/log/up.log."""
    proc = _script("up")
    try:  # keep the progress lines (with timings) for later reading
        (state_dir() / "log").mkdir(parents=True, exist_ok=True)
        (state_dir() / "log" / "up.log").write_text(proc.stderr + proc.stdout)
    except OSError:
        pass
    if proc.returncode != 0:
        err = ClusterError(f"cluster.sh up failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}")
        err.returncode = proc.returncode  # type: ignore[attr-defined]
        raise err
    return Cluster.from_env(read_env())


def cluster_down() -> None:
    _check(_script("down", timeout=300), "down")


def _sessions_dir() -> Path:
    return state_dir() / "sessions"


def _register_session() -> Path:
    """Mark this test session as a user of the cluster (STATE_DIR/sessions/PID)."""
    mark = _sessions_dir() / str(os.getpid())
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.write_text(f"{time.time()}\n")
    return mark


def _other_live_sessions() -> list[int]:
    live = []
    for mark in _sessions_dir().glob("[0-9]*"):  # not the .fixture-started mark
        try:
            pid = int(mark.name)
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            mark.unlink(missing_ok=True)  # a session that ended without its teardown
            continue
        except PermissionError:
            pid = int(mark.name)
        if pid != os.getpid():
            live.append(pid)
    return live


def _session_lock():
    """Hold STATE_DIR.session.lock for the whole test session: the sessions on one machine share
    one test user and its QOS (and `cancel_all` cancels every job of it), so cluster test sessions
    take turns. Waits up to IRQ_CLUSTER_SESSION_WAIT seconds (default 1800); IRQ_CLUSTER_SHARED=1
    skips the lock. Returns the open file (the lock lives as long as it) or None."""
    if os.environ.get("IRQ_CLUSTER_SHARED") == "1":
        return None
    path = Path(f"{str(state_dir()).rstrip('/')}.session.lock")
    fh = open(path, "a+")  # not inherited by child processes (PEP 446)
    deadline = time.monotonic() + float(os.environ.get("IRQ_CLUSTER_SESSION_WAIT", "1800"))
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fh.seek(0); fh.truncate(); fh.write(f"{os.getpid()}\n"); fh.flush()
            return fh
        except BlockingIOError:
            if time.monotonic() > deadline:
                fh.seek(0)
                holder = fh.read().strip()
                fh.close()
                pytest.fail(f"another test session (pid {holder}) has used the loopback cluster "
                            f"for too long ({path}); set IRQ_CLUSTER_SHARED=1 to share it",
                            pytrace=False)
            time.sleep(2)


def _cannot_host(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the loopback SLURM test cluster cannot run here: {reason}", pytrace=False)
    pytest.skip(f"loopback SLURM test cluster unavailable: {reason}")


@pytest.fixture(scope="session")
def slurm_cluster():
    """The loopback SLURM cluster (tests/cluster/cluster.sh), up for the whole session."""
    if os.name != "posix" or not shutil.which("bash"):
        _cannot_host("needs Linux with bash")
    if os.geteuid() != 0:
        _cannot_host("needs root (installs packages, starts slurmctld/slurmd/sshd, adds a user)")
    session_lock = _session_lock()
    try:
        was_running = cluster_is_up()
        cluster = cluster_up()
    except (ClusterError, subprocess.TimeoutExpired) as exc:
        if session_lock is not None:
            session_lock.close()
        if isinstance(exc, subprocess.TimeoutExpired):
            pytest.fail("cluster.sh up did not finish within 30 minutes", pytrace=False)
        if getattr(exc, "returncode", None) == CANNOT_HOST:
            _cannot_host(str(exc))
        pytest.fail(str(exc), pytrace=False)
    mark = _register_session()
    started_by_fixture = _sessions_dir() / ".fixture-started"
    if not was_running:
        started_by_fixture.touch()
    try:
        yield cluster
    finally:
        mark.unlink(missing_ok=True)
    # The last test session stops a cluster that a test session started (not one brought up by
    # hand: `cluster.sh up` outside the fixture removes the .fixture-started mark).
    try:
        if os.environ.get("IRQ_CLUSTER_KEEP") == "1" or _other_live_sessions():
            return
        if started_by_fixture.exists():
            cluster_down()
    finally:
        if session_lock is not None:
            session_lock.close()
