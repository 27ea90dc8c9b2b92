"""How quick the CLI is: wall time of common commands on this repository's study ledger.

    .venv/bin/python bench/bench_cli.py [--runs 10]

Prints the median and the slowest of N runs per command, plus Python's own start-up for
comparison. Nothing is asserted; figures go to docs/ when they change.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed(cmd: list[str], cwd: Path, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, capture_output=True, check=False)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    shutil.copy(REPO / "queue.db", tmp / "queue.db")
    py = sys.executable
    cases = {
        "python -c pass": [py, "-c", "pass"],
        "irq --help": [py, "-m", "irq", "--help"],
        "irq status --offline": [py, "-m", "irq", "status", "--offline"],
        "irq status --json": [py, "-m", "irq", "status", "--json"],
        "irq show Q-004": [py, "-m", "irq", "show", "Q-004"],
        "irq export": [py, "-m", "irq", "export"],
    }
    print(f"{'command':28} {'median s':>9} {'max s':>7}   ({args.runs} runs, study ledger: 10 experiments, 8 attempts)")
    for name, cmd in cases.items():
        t = timed(cmd, tmp, args.runs)
        print(f"{name:28} {statistics.median(t):9.3f} {max(t):7.3f}")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
