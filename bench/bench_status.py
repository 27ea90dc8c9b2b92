"""What one status refresh costs on the loopback SLURM cluster: round trips and wall time.

One refresh is `SlurmBackend.query(ids, since)`: one SSH exec running squeue and sacct. Measured
with 1, 10 and 100 active jobs, the median of a few refreshes each, over one reused SSH session
(as in one `irq status` or one daemon cycle), and the cost of a fresh connection on top.

100 active jobs exceed the test user's default QOS (twojobs: MaxSubmitJobsPerUser=2), so the jobs
are submitted held (`sbatch --hold`, they never run) under the user's other QOS, `normal`,
which has no limit; they are cancelled afterwards.

    bash tests/cluster/cluster.sh up
    .venv/bin/python bench/bench_status.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from irq.backends.slurm import SlurmBackend
from irq.config import ClusterConfig
from tests.cluster.fixture import Cluster, cluster_is_up, read_env  # noqa: E402


def submit_held(cluster: Cluster, n: int) -> list[str]:
    """n held jobs in one sbatch loop (as the test user, locally: not part of what is measured)."""
    out = cluster.run_as_user(
        f"cd /tmp && for i in $(seq {n}); do sbatch --parsable --hold --qos=normal -J irq-bench "
        f"-o /dev/null --wrap true || exit 1; done", check=True, timeout=300).stdout
    return [line.split(";")[0] for line in out.split()]


def measure(backend: SlurmBackend, ids: list[str], since: datetime, repeats: int) -> tuple[int, int, float, int]:
    """(round trips per refresh, scheduler commands per refresh, median seconds, rows)."""
    backend.query(ids, since)  # warm: the connection is open, as in a daemon cycle
    times = []
    for _ in range(repeats):
        rt0, calls0 = backend.counter.round_trips, len(backend.counter)
        t0 = time.perf_counter()
        rows = backend.query(ids, since)
        times.append(time.perf_counter() - t0)
        rt, calls = backend.counter.round_trips - rt0, len(backend.counter) - calls0
    assert len(rows) == len(ids), (len(rows), len(ids))
    return rt, calls, statistics.median(times), sum(len(v) for v in rows.values())


def measure_per_job(backend: SlurmBackend, ids: list[str], since: datetime) -> tuple[int, float]:
    """For comparison: what a hand-written loop costs, one `squeue`+`sacct` exec per job."""
    rt0 = backend.remote.counter.round_trips
    t0 = time.perf_counter()
    for job_id in ids:
        backend.query([job_id], since)
    return backend.remote.counter.round_trips - rt0, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", default="1,10,100")
    args = ap.parse_args()
    if not cluster_is_up():
        print("the loopback cluster is not up: run `bash tests/cluster/cluster.sh up` first", file=sys.stderr)
        return 2
    cluster = Cluster.from_env(read_env())
    cfg = ClusterConfig(name=cluster.name, host=cluster.host, port=cluster.port, user=cluster.user,
                        identity_file=str(cluster.key), known_hosts=str(cluster.known_hosts),
                        ssh_config="/dev/null", repo_url="unused", workdir=str(cluster.workdir))
    sizes = [int(s) for s in args.sizes.split(",")]
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    ids: list[str] = []
    results = []
    try:
        with SlurmBackend(cfg) as backend:
            for n in sizes:
                ids += submit_held(cluster, n - len(ids))
                results.append((n, *measure(backend, ids[:n], since, args.repeats),
                                *measure_per_job(backend, ids[:n], since)))
        # a fresh session: what a single `irq status` pays once for the connection and login
        t0 = time.perf_counter()
        with SlurmBackend(cfg) as cold:
            cold.query(ids[:1], since)
        cold_s = time.perf_counter() - t0
    finally:
        if ids:
            subprocess.run(["scancel", "--name", "irq-bench", "--user", cluster.user], check=False)
    print(f"status refresh (SlurmBackend.query) on the loopback cluster, median of {args.repeats}, warm session")
    print(f"{'active jobs':>11}  {'round trips':>11}  {'commands':>8}  {'wall ms':>8}  {'rows':>5}"
          f"  | {'one exec per job: round trips':>29}  {'wall ms':>8}")
    for n, rt, calls, med, rows, naive_rt, naive_s in results:
        print(f"{n:>11}  {rt:>11}  {calls:>8}  {med * 1000:>8.0f}  {rows:>5}  | {naive_rt:>29}  {naive_s * 1000:>8.0f}")
    print(f"first refresh of a new session (connect, host key check, key login, query): {cold_s * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
