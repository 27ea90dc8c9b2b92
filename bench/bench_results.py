"""What `irq results` costs on a large ledger: CPU time as a multiple of the CLI's start-up.

Builds (by script, in a temporary folder) a ledger of 10,000 experiments with 5 attempts each
(50,000 attempts, one seed per attempt, metrics as irq fetch stores them), then measures the CPU
time (user + system, of the child process) of `irq --help` and of `irq results` (also against a
baseline: 9,999 comparisons) in the same run, and prints each as a ratio to the start-up. Every
`irq results` is measured cold (its results cache emptied before each run: every statistic
computed) and warm (the cache filled by an earlier run: no statistic computed, the ledger still
read); the cache is a temporary folder (IRQ_CACHE_DIR), never the user's. Beside them, a
reference that is not irq: the CPU of importing scipy.stats in a bare interpreter, which every cold
run pays before its first interval (the statistics are scipy's). Also times the summaries alone
(10,000 resamples of every experiment's mean, with every other summary statistic) in this process.

    .venv/bin/python bench/bench_results.py [--experiments 10000] [--attempts 5] [--runs 3] [--before DIR]

--before DIR measures the same commands with another checkout of irq (e.g. `git archive main | tar
-x -C DIR`) in the same run, each command alternating between the two, so that a change is
compared with what it replaces on the same machine at the same moment.

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


def one_run(cmd: list[str], cwd: Path, repo: Path, cache: Path, cold: bool) -> tuple[float, float]:
    """CPU seconds (user + system of the child) and wall seconds of one run, with `repo`'s irq and
    the results cache in `cache` (emptied first when cold)."""
    if cold:
        shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(repo), "COLUMNS": "200", "IRQ_CACHE_DIR": str(cache)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.decode()[-500:]}")
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, wall


def cpu_of(cmd: list[str], cwd: Path, runs: int, repos: list[Path], warm: bool) -> list[tuple[float, float]]:
    """Per checkout, the median CPU seconds and median wall seconds of `runs` runs (alternating);
    warm: after one untimed run that fills the results cache, cold: each run with an empty one."""
    got: list[list[tuple[float, float]]] = [[] for _ in repos]
    caches = [cwd / f"cache-{i}" for i in range(len(repos))]
    if warm:
        for repo, cache in zip(repos, caches):
            one_run(cmd, cwd, repo, cache, True)
    for _ in range(runs):
        for i, repo in enumerate(repos):
            got[i].append(one_run(cmd, cwd, repo, caches[i], not warm))
    return [(statistics.median(c for c, _w in g), statistics.median(w for _c, w in g)) for g in got]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--experiments", type=int, default=10_000)
    ap.add_argument("--attempts", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--before", type=Path, help="another checkout of irq, measured in the same run")
    args = ap.parse_args()
    repos = [REPO] + ([args.before.resolve()] if args.before else [])
    labels = ["", " (before)"] if args.before else [""]
    tmp = Path(tempfile.mkdtemp())
    try:
        t = time.perf_counter()
        build_ledger(tmp / "queue.db", args.experiments, args.attempts)
        print(f"ledger: {args.experiments:,} experiments, {args.experiments * args.attempts:,} attempts "
              f"(built in {time.perf_counter() - t:.1f} s)")
        irq = [sys.executable, "-m", "irq"]
        commands = {
            "irq results --format csv": ["results", "--format", "csv"],
            "irq results": ["results"],
            "irq results --format csv --resamples 1000": ["results", "--format", "csv", "--resamples", "1000"],
            "irq results --format csv --baseline Q-00001": ["results", "--format", "csv", "--baseline", "Q-00001"],
        }
        cases = [("irq --help", irq + ["--help"], False),
                 # a reference, not irq: what any cold run pays before its first interval
                 ("reference: python -c 'import scipy.stats'", [sys.executable, "-c", "import scipy.stats"], False)]
        for name, cmd in commands.items():
            cases += [(name + " (cold)", irq + cmd, False), (name + " (warm)", irq + cmd, True)]
        base: list[float] = []
        print(f"{'command':60} {'CPU s':>7} {'wall s':>7} {'CPU / start-up':>15}   (median of {args.runs})")
        for name, cmd, warm in cases:
            for i, (cpu, wall) in enumerate(cpu_of(cmd, tmp, args.runs, repos, warm)):
                base = base or [0.0] * len(repos)
                base[i] = base[i] or cpu
                print(f"{name + labels[i]:60} {cpu:7.2f} {wall:7.2f} {cpu / base[i]:14.1f}x", flush=True)
        import numpy as np

        from irq.results.stats import summarise

        x = np.random.default_rng(1).normal(0.035, 0.002, (args.experiments, args.attempts))
        summarise([[0.0, 1.0]])  # import scipy outside the timing
        t = time.process_time()
        summarise(list(x))
        print(f"summaries alone: {args.experiments:,} experiments x 10,000 resamples of {args.attempts} seeds "
              f"with every other summary statistic: {time.process_time() - t:.2f} s CPU")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
