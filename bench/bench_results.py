"""What `irq results` costs on a large ledger: CPU time as a multiple of the CLI's start-up.

Builds (by script, in a temporary folder) a ledger of 10,000 experiments with 5 attempts each
(50,000 attempts, one seed per attempt, metrics as irq fetch stores them), then measures the CPU
time (user + system, of the child process) of `irq --help` and of `irq results` in the same run,
and prints each as a ratio to the start-up. Also times the vectorised bootstrap alone (10,000
resamples of every experiment's mean) in this process.

    .venv/bin/python bench/bench_results.py [--experiments 10000] [--attempts 5] [--runs 3]

Nothing is asserted; figures go to docs/results.md when they change.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def build_ledger(path: Path, n_exp: int, n_att: int) -> None:
    from irq.ledger.database import Ledger

    Ledger(path, create=True).close()
    import numpy as np

    rng = np.random.default_rng(0)
    now = "2026-01-21 17:48:48.000000"
    con = sqlite3.connect(path)
    exps, atts = [], []
    for i in range(1, n_exp + 1):
        eid = f"Q-{i:05d}"
        exps.append((eid, i, f"experiment {i}", "DONE", "{}", "{}", "MEDIUM", "[]", "[]", "{}", "[]", "[]", "{}", now, now))
        mu = 0.03 + 0.01 * rng.random()
        for k in range(n_att):
            res = {"val_mse": float(mu + 0.002 * rng.standard_normal()), "seed": k, "baseline_mean_mse": 0.0341,
                   "baseline_zero_mse": 0.0582, "git_sha": "0123456789ab"}
            atts.append((eid, k + 1, f"irq-{i:06d}{k}", "local", "COMPLETED", "{}", "[]", json.dumps(res),
                         f"results/{eid}-{k + 1}", "{}", "[]", now, now))
    con.executemany("INSERT INTO experiment (id, seq, title, state, parameters, resources, priority, depends_on, seeds, "
                    "annotations, extras, queue_extras, retry_policy, created_at, updated_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", exps)
    con.executemany("INSERT INTO attempt (experiment_id, number, token, backend, state, tasks, modules, results, output, "
                    "annotations, extras, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", atts)
    con.commit()
    con.close()


def cpu_of(cmd: list[str], cwd: Path, runs: int) -> tuple[float, float]:
    """Median CPU seconds (user + system of the child) and median wall seconds of `runs` runs."""
    cpus, walls = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
                           env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"})
        walls.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.decode()[-500:]}")
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(cpus), statistics.median(walls)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--experiments", type=int, default=10_000)
    ap.add_argument("--attempts", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    try:
        t = time.perf_counter()
        build_ledger(tmp / "queue.db", args.experiments, args.attempts)
        print(f"ledger: {args.experiments:,} experiments, {args.experiments * args.attempts:,} attempts "
              f"(built in {time.perf_counter() - t:.1f} s)")
        irq = [sys.executable, "-m", "irq"]
        cases = {
            "irq --help": irq + ["--help"],
            "irq results --format csv": irq + ["results", "--format", "csv"],
            "irq results": irq + ["results"],
            "irq results --format csv --resamples 1000": irq + ["results", "--format", "csv", "--resamples", "1000"],
        }
        base = None
        print(f"{'command':44} {'CPU s':>7} {'wall s':>7} {'CPU / start-up':>15}   (median of {args.runs})")
        for name, cmd in cases.items():
            cpu, wall = cpu_of(cmd, tmp, args.runs)
            base = base or cpu
            print(f"{name:44} {cpu:7.2f} {wall:7.2f} {cpu / base:14.1f}x")
        import numpy as np

        from irq.results.stats import summarise

        x = np.random.default_rng(1).normal(0.035, 0.002, (args.experiments, args.attempts))
        summarise([[0.0, 1.0]])  # import scipy.stats outside the timing
        t = time.process_time()
        summarise(list(x))
        print(f"summaries alone: {args.experiments:,} experiments x 10,000 resamples of {args.attempts} seeds "
              f"with every other summary statistic: {time.process_time() - t:.2f} s CPU")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
