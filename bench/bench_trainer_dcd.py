"""Cost of seed 004's negatives against `adversarial`, and of the existing three against an older commit.

    .venv/bin/python bench/bench_trainer_dcd.py [--steps 20] [--threads 2] [--study | --study-only]
                                                [--only CASE ...] [--against REV]

Times whole training steps (fresh batch + negatives + loss + backward + Adam + EMA) for each case at
the pilot config (rank 10, T 5, batch 256) and, with --study, at the study config (rank 20, T 10,
batch 2048; ~0.5-2 s a step). All cases live in one worker process and are stepped round-robin, so
machine load hits them alike and the ratios to `adversarial` are measured in the same run. The
buffer's and the filter's own cost (draw + push; residuals + percentile weights) are timed alone.

--against REV (default: the commit before seed 004's trainer) extracts that revision's trainer/ with
`git archive` into a temporary directory and steps its none / random / adversarial in a second
worker, interleaved with this checkout's: "vs REV" > 1.00 would mean the new code slowed them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {"pilot": dict(rank=10, diffusion_steps=5, batch_size=256),
          "study": dict(rank=20, diffusion_steps=10, batch_size=2048)}
LANGEVIN = dict(mining="langevin", langevin_steps=10, langevin_init_scale=1.5, energy_loss="cd", cd_reg=0.03)
REPLAY = dict(replay_size=10_000, replay_per_timestep=True)
FULL = dict(residual_filter="drop", energy_loss_weight=0.1, energy_warmup_frac=0.2, energy_t_min=0.2,
            energy_t_max=0.8)
CASES = {  # name -> config keys (seed 004's table: noise 1.5, 10 optimisation / Langevin steps)
    "none": dict(mining="none"),
    "random": dict(mining="random"),
    "adversarial": dict(mining="adversarial"),
    "mixed 70/30": dict(mining="mixed", mixed_strategy="random:0.7,adversarial:0.3"),
    "q201 adv k=10": dict(mining="adversarial", mining_opt_steps=10, mining_noise_scale=1.5),
    "q202 langevin": LANGEVIN,
    "q203 +replay": {**LANGEVIN, **REPLAY},
    "q204 full": {**LANGEVIN, **REPLAY, **FULL},
}
OLD_CASES = ("none", "random", "adversarial")
BASE_REV = "9b030a2"  # main before the seed 004 trainer


# ---- worker: holds trainers, times one step per request ---------------------------------------
def worker(root: str, shape: str, cases: list[str], threads: int | None) -> None:
    sys.path.insert(0, root)
    from trainer.config import TrainConfig
    from trainer.data import TrainStream
    from trainer.rundir import RunDir
    from trainer.train import Trainer

    tmp = tempfile.mkdtemp()
    steppers = {}
    for name in cases:
        if name.startswith("op:"):
            continue
        cfg = TrainConfig(**SHAPES[shape], **CASES[name], val_size=16, test_size=0, ood_size=0,
                          num_threads=threads, device="cpu").validate()
        steppers[name] = stepper(Trainer(cfg, RunDir(tmp)), TrainStream(cfg.rank, cfg.batch_size, seed=0))
    steppers.update(component_ops(shape, threads) if any(c.startswith("op:") for c in cases) else {})
    print("ready", flush=True)
    for line in sys.stdin:
        name = line.strip()
        t0 = time.perf_counter()
        steppers[name]()
        print(json.dumps(time.perf_counter() - t0), flush=True)


def stepper(trainer, stream):
    """One training step on a fresh batch of `stream`."""
    return lambda: trainer.train_step(*stream.next())


def component_ops(shape: str, threads: int | None) -> dict:
    """The buffer's draw + push and the filter's residuals + weights, alone, at the batch size."""
    import torch

    from trainer.data import TrainStream
    from trainer.replay import ReplayBuffer
    from trainer.residual import FilterKeys, filter_weights, residuals

    if threads:
        torch.set_num_threads(threads)
    s = SHAPES[shape]
    a, y = TrainStream(s["rank"], s["batch_size"], 0).next()
    t = torch.randint(0, s["diffusion_steps"], (s["batch_size"],))
    buf = ReplayBuffer(10_000, s["rank"] ** 2, s["diffusion_steps"], 0.95, 0)
    step = [0]

    def buffer_ops() -> None:
        step[0] += 1
        buf.draw(t, step[0])
        buf.push(y, t, step[0])

    keys = FilterKeys("drop", 30.0, 10.0)
    return {"op:buffer": buffer_ops,
            "op:filter": lambda: filter_weights(residuals(a, y, s["rank"]), t, s["diffusion_steps"], keys)}


# ---- parent: round-robin over workers -----------------------------------------------------------
class Worker:
    def __init__(self, root: str, shape: str, cases: list[str], threads: int | None):
        cmd = [sys.executable, __file__, "--worker", root, "--shape", shape, "--cases", json.dumps(cases)]
        if threads:
            cmd += ["--threads", str(threads)]
        # PASSIVE: an idle worker must not spin its OpenMP threads while the other one is timed
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_WAIT_POLICY": "PASSIVE"}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout.readline().strip() == "ready"

    def time(self, name: str) -> float:
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def measure(shape: str, cases: list[str], steps: int, warmup: int, threads: int | None,
            old_root: str | None) -> dict:
    """{(label, case): median seconds}, every case stepped once per round, beside its old twin."""
    ours = cases + (["op:buffer", "op:filter"] if "q204 full" in cases else [])
    olds = [c for c in cases if c in OLD_CASES] if old_root else []
    workers = {"this": Worker(str(ROOT), shape, ours, threads)}
    if olds:
        workers["old"] = Worker(old_root, shape, olds, threads)
    plan = [(label, c) for c in ours for label in ("this", "old") if label == "this" or c in olds]
    times: dict = {key: [] for key in plan}
    for i in range(warmup + steps):
        order = plan if i % 2 == 0 else [(lb, c) for c in ours for lb in ("old", "this") if (lb, c) in times]
        for label, case in order:  # the twins alternate who goes first, round by round
            elapsed = workers[label].time(case)
            if i >= warmup:
                times[(label, case)].append(elapsed)
    for w in workers.values():
        w.close()
    return {key: statistics.median(v) for key, v in times.items()}


def extract(rev: str) -> str:
    """`git archive REV trainer` into a temporary directory; returns its path."""
    out = tempfile.mkdtemp(prefix="trainer-" + rev + "-")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "trainer"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", out], input=archive.stdout, check=True)
    return out


def report(shape: str, med: dict, rev: str | None) -> None:
    adv = med[("this", "adversarial")]
    cases = [c for c in CASES if ("this", c) in med]
    print(f"\n{shape}: {'case':<15} {'s/step':>8} {'vs adversarial':>14}" + (f" {'vs ' + rev:>12}" if rev else ""))
    for case in cases:
        line = f"{shape}: {case:<15} {med[('this', case)]:8.4f} {med[('this', case)] / adv:13.2f}x"
        if rev and ("old", case) in med:
            line += f" {med[('this', case)] / med[('old', case)]:11.2f}x"
        print(line)
    if ("this", "op:buffer") not in med or ("this", "q202 langevin") not in med:
        return
    lang, replay, full = (med[("this", c)] for c in ("q202 langevin", "q203 +replay", "q204 full"))
    print(f"{shape}: buffer draw+push alone {med[('this', 'op:buffer')] * 1000:.2f} ms/step; "
          f"q203 - q202 {1000 * (replay - lang):+.2f} ms/step")
    print(f"{shape}: filter residuals+weights alone {med[('this', 'op:filter')] * 1000:.2f} ms/step; "
          f"q204 - q203 {1000 * (full - replay):+.2f} ms/step (also the schedule and t window)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="timed rounds per config")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--study", action="store_true", help="also the study config (slow: minutes)")
    p.add_argument("--study-only", action="store_true", help="the study config only")
    p.add_argument("--against", default=BASE_REV, help="git revision whose none/random/adversarial to compare ('' skips)")
    p.add_argument("--only", nargs="+", choices=list(CASES), help="these cases only (adversarial is always in)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--shape", help=argparse.SUPPRESS)
    p.add_argument("--cases", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.worker, args.shape, json.loads(args.cases), args.threads)
    import torch

    old_root = extract(args.against) if args.against else None
    print(f"torch {torch.__version__}, cpu, threads {args.threads or torch.get_num_threads()}, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.steps} rounds, medians")
    for shape in (["pilot"] if not args.study_only else []) + (["study"] if args.study or args.study_only else []):
        cases = [c for c in CASES if not args.only or c in args.only or c == "adversarial"]
        report(shape, measure(shape, cases, args.steps, args.warmup, args.threads, old_root), args.against or None)


if __name__ == "__main__":
    main()
