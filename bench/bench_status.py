"""What one status refresh costs on the loopback SLURM cluster: logins, round trips, scheduler
commands and wall time, for 1, 10 and 100 active jobs, over both SSH transports.

A refresh is what `irq status` and every daemon cycle do: ask the scheduler about every active
attempt and count the job slots (`refresh` + `slots` in irq/jobs/sync.py). Each size runs three
refreshes in a row, each in a session of its own (as three `irq status` commands): the first
may read the job limit from sacctmgr (cached in the ledger for an hour), the later ones must
not. Logins are counted where they happen, in sshd's log ("Accepted publickey"). Then the wall
time of a second `irq status` in a row against `irq status --offline` (no cluster), as processes
run alternately (one of each first, untimed).

100 active jobs exceed the test user's default QOS (twojobs), so the jobs are submitted held
(`sbatch --hold`, never run) under the user's other QOS, `normal`; they are cancelled afterwards.

    bash tests/cluster/cluster.sh up
    .venv/bin/python bench/bench_status.py [--sizes 1,10,100] [--transports openssh,paramiko]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlmodel import func, select  # noqa: E402

from irq.backends.registry import Backends, record_calls, slots  # noqa: E402
from irq.config import load_config  # noqa: E402
from irq.jobs.sync import refresh  # noqa: E402
from irq.ledger.database import Ledger  # noqa: E402
from irq.ledger.models import Experiment, SchedulerCall  # noqa: E402
from irq.ui import UI  # noqa: E402
from tests.cluster.fixture import Cluster, cluster_is_up, read_env  # noqa: E402


def submit_held(cluster: Cluster, n: int) -> list[str]:
    """n held jobs (as the test user, locally: not part of what is measured)."""
    if n <= 0:
        return []
    out = cluster.run_as_user(
        f"cd /tmp && for i in $(seq {n}); do sbatch --parsable --hold --qos=normal -J irq-bench "
        f"-o /dev/null --wrap true || exit 1; done", check=True, timeout=300).stdout
    return [line.split(";")[0] for line in out.split()]


def make_project(root: Path, cluster: Cluster, transport: str, job_ids: list[str]) -> Path:
    """A project whose ledger holds one PENDING attempt per job id."""
    root.mkdir(parents=True)
    (root / "irq.toml").write_text(f"""backend = "loopback"
[clusters.loopback]
host = "{cluster.host}"
port = {cluster.port}
user = "{cluster.user}"
identity_file = "{cluster.key}"
known_hosts = "{cluster.known_hosts}"
ssh_config = "/dev/null"
repo_url = "unused"
workdir = "{cluster.workdir}"
transport = "{transport}"
""")
    ledger = Ledger(root / "queue.db", create=True)
    with ledger.transaction() as s:
        for i, job in enumerate(job_ids, 1):
            exp = Ledger.add_experiment(s, Experiment(id=f"Q-{i:03d}", seq=i, title=f"bench {i}", state="IN_PROGRESS"))
            Ledger.new_attempt(s, exp, backend="slurm:loopback", state="PENDING", job_id=job,
                               submitted_at=datetime.now(timezone.utc))
    ledger.close()
    return root


def logins(cluster: Cluster) -> int:
    log = cluster.state_dir / "log" / "sshd.log"
    return log.read_text(errors="replace").count(f"Accepted publickey for {cluster.user}") if log.exists() else 0


def one_refresh(project: Path, cluster: Cluster) -> tuple[int, int, list[str], float]:
    """(logins, round trips, scheduler commands, seconds) of one refresh in a session of its own."""
    config = load_config(project / "irq.toml")
    ledger = Ledger(project / "queue.db")
    before = logins(cluster)
    with ledger.transaction() as s:
        last = s.exec(select(func.max(SchedulerCall.id))).one() or 0
    t0 = time.perf_counter()
    with Backends(config) as backends:
        refresh(ledger, backends, UI())
        slots(ledger, backends)
        record_calls(ledger, backends)
        trips = backends.get("slurm:loopback").counter.round_trips
    seconds = time.perf_counter() - t0
    with ledger.transaction() as s:
        calls = [c.command for c in s.exec(select(SchedulerCall).where(SchedulerCall.id > last)
                                           .order_by(SchedulerCall.id))]
    ledger.close()
    return logins(cluster) - before, trips, calls, seconds


def run_irq(project: Path, *args: str) -> float:
    env = {**os.environ, "IRQ_USER_CONFIG": str(project / "none.toml")}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "irq", *args], cwd=project, env=env, stdin=subprocess.DEVNULL,
                   capture_output=True, check=True, timeout=120)
    return time.perf_counter() - t0


def compile_irq(project: Path) -> Path:
    """Bytecode for the irq the timed processes load, as an installed irq has it (with
    PYTHONDONTWRITEBYTECODE set, or a checkout's .pyc files older than its sources, every process
    would otherwise compile those modules anew, and both commands would be timed doing that)."""
    import compileall

    env = {**os.environ, "IRQ_USER_CONFIG": str(project / "none.toml")}
    where = subprocess.run([sys.executable, "-c", "import irq, os; print(os.path.dirname(irq.__file__))"], cwd=project,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    compileall.compile_dir(where, quiet=1)
    return Path(where)


def timed_pair(project: Path, repeats: int) -> tuple[float, float, float]:
    """A second `irq status` in a row against `irq status --offline`: one of each first (not
    timed), then `repeats` pairs run alternately, so a load on the machine weighs on both alike.
    (median online s, median offline s, median of the pairs' ratios)."""
    compile_irq(project)
    run_irq(project, "status")
    run_irq(project, "status", "--offline")
    online, offline = [], []
    for _ in range(repeats):
        online.append(run_irq(project, "status"))
        offline.append(run_irq(project, "status", "--offline"))
    return (statistics.median(online), statistics.median(offline),
            statistics.median(a / b for a, b in zip(online, offline)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1,10,100")
    ap.add_argument("--transports", default="openssh,paramiko")
    ap.add_argument("--repeats", type=int, default=5, help="runs of each timed command (median)")
    args = ap.parse_args()
    if not cluster_is_up():
        print("the loopback cluster is not up: run `bash tests/cluster/cluster.sh up` first", file=sys.stderr)
        return 2
    cluster = Cluster.from_env(read_env())
    sizes = [int(s) for s in args.sizes.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="irqbench", dir="/tmp"))
    os.environ["IRQ_CONTROL_DIR"] = str(tmp / "cm")
    ids: list[str] = []
    rows = []
    try:
        for n in sizes:
            ids += submit_held(cluster, n - len(ids))
            for transport in args.transports.split(","):
                project = make_project(tmp / f"{transport}-{n}", cluster, transport, ids[:n])
                runs = [one_refresh(project, cluster) for _ in range(3)]
                rows.append((n, transport, runs, *timed_pair(project, args.repeats)))
    finally:
        subprocess.run(["scancel", "--name", "irq-bench", "--user", cluster.user], check=False)
        for sock in (tmp / "cm").glob("*"):
            subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print("one refresh (irq status / a daemon cycle) on the loopback cluster; three in a row, each its own session")
    print(f"{'jobs':>4}  {'transport':>9}  {'refresh':>7}  {'logins':>6}  {'round trips':>11}  {'commands':>8}  "
          f"{'ms':>5}  which")
    for n, transport, runs, *_ in rows:
        for i, (lg, rt, calls, sec) in enumerate(runs, 1):
            which = ", ".join(f"{c} x{calls.count(c)}" for c in dict.fromkeys(calls))
            print(f"{n:>4}  {transport:>9}  {i:>7}  {lg:>6}  {rt:>11}  {len(calls):>8}  {sec * 1000:>5.0f}  {which}")
    print(f"\n`irq status` (a second one in a row) against `irq status --offline`, run alternately, "
          f"median of {args.repeats}")
    for n, transport, _, t_status, t_offline, pairs in rows:
        print(f"{n:>4}  {transport:>9}  status {t_status * 1000:>5.0f} ms  offline {t_offline * 1000:>5.0f} ms  "
              f"ratio {t_status / t_offline:.2f}  (median of pair ratios {pairs:.2f})")
    print(json.dumps([{"jobs": n, "transport": t, "refreshes": [{"logins": lg, "round_trips": rt, "commands": c}
                                                                for lg, rt, c, _ in runs],
                       "status_s": round(ts, 3), "offline_s": round(to, 3), "pair_ratio": round(pr, 3)}
                      for n, t, runs, ts, to, pr in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
