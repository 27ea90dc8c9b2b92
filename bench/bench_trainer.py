"""Speed of the bundled trainer (trainer/) against the IRED reference figures on this machine class.

    .venv/bin/python bench/bench_trainer.py [--steps 10] [--threads 2] [--naive] [--compile]

Times whole training steps (a fresh batch of matrices + loss + backward + Adam + EMA; evaluation
excluded, as in the reference figures) for each mining strategy at the pilot and the study config,
and the evaluation of 1,024 rank-20 matrices (T = 10, 5 inner steps). --naive also times a
straightforward autograd implementation of the same math (tests/trainer/naive.py) in the same
process, so the comparison does not depend on how busy the machine is.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from trainer.config import TrainConfig  # noqa: E402
from trainer.data import TrainStream, fixed_set  # noqa: E402
from trainer.diffusion import Schedule, sample  # noqa: E402
from trainer.model import EnergyMLP  # noqa: E402
from trainer.rundir import RunDir  # noqa: E402
from trainer.train import Trainer  # noqa: E402

# median s/step of the reference code (adversarial mining) on a 2-core CPU: docs/trainer.md
REFERENCE = {"pilot": 0.078, "study": 0.72}
REFERENCE_EVAL_1024 = 3.5
CONFIGS = {
    "pilot": dict(rank=10, diffusion_steps=5, batch_size=256),
    "study": dict(rank=20, diffusion_steps=10, batch_size=2048),
}


def fast_stepper(cfg: TrainConfig, tmp: str):
    trainer = Trainer(cfg, RunDir(tmp))
    stream = TrainStream(cfg.rank, cfg.batch_size, seed=0)

    def step() -> None:
        a, y0 = stream.next()
        trainer.train_step(a.to(trainer.device), y0.to(trainer.device))
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
    return step


def naive_stepper(cfg: TrainConfig):
    sys.path.insert(0, str(ROOT / "tests" / "trainer"))
    import naive  # the same math, written the obvious way

    torch.manual_seed(0)
    model = EnergyMLP(cfg.rank ** 2, cfg.diffusion_steps)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.99))
    sched = Schedule.cosine(cfg.diffusion_steps)
    stream = TrainStream(cfg.rank, cfg.batch_size, seed=0)

    def step() -> None:
        a, y0 = stream.next()
        t = torch.randint(0, cfg.diffusion_steps, (cfg.batch_size,))
        loss = naive.training_loss(model, sched, a, y0, t, torch.randn_like(y0), torch.randn_like(y0), cfg.mining)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return step


def time_steps(cfg: TrainConfig, steps: int, warmup: int, naive: bool) -> tuple[list[float], list[float]]:
    """Median-able step times of the trainer and (interleaved, so load hits both alike) the naive code."""
    with tempfile.TemporaryDirectory() as tmp:
        runners = [fast_stepper(cfg, tmp)] + ([naive_stepper(cfg)] if naive else [])
        times: list[list[float]] = [[] for _ in runners]
        for i in range(warmup + steps):
            for runner, out in zip(runners, times):
                t0 = time.perf_counter()
                runner()
                if i >= warmup:
                    out.append(time.perf_counter() - t0)
        return times[0], (times[1] if naive else [])


def time_eval(n: int = 20, count: int = 1024, repeats: int = 3, naive_too: bool = False) -> tuple[float, float | None]:
    torch.manual_seed(0)
    model = EnergyMLP(n * n, 10).eval()
    sched = Schedule.cosine(10)
    data = fixed_set(n, count, 1234, 1)
    noise = torch.randn(data.a.shape)
    fast, slow = [], []
    if naive_too:
        sys.path.insert(0, str(ROOT / "tests" / "trainer"))
        import naive
    for _ in range(repeats):
        fast.append(_timed(lambda: sample(model, sched, data.a, 5, True, init=noise)))
        if naive_too:
            slow.append(_timed(lambda: naive.sample(model, sched, data.a, 5, noise)))
    return min(fast), (min(slow) if slow else None)


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=10, help="timed steps per study-config case (pilot: 3x)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--naive", action="store_true", help="also time the naive autograd implementation")
    p.add_argument("--compile", action="store_true", help="run the trainer with compile=true")
    p.add_argument("--only", choices=list(CONFIGS), help="one config only")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, compile={args.compile}, "
          f"load average {load} (other processes slow both columns alike: steps are interleaved)")
    print(f"{'config':<6} {'mining':<12} {'s/step':>8} {'steps/s':>8} {'ref s/step':>10} {'vs ref':>7}"
          + (f" {'naive s/step':>12} {'vs naive':>8}" if args.naive else ""))
    for name, shape in CONFIGS.items():
        if args.only and name != args.only:
            continue
        steps = args.steps * (3 if name == "pilot" else 1)
        for mining in ("none", "random", "adversarial"):
            cfg = TrainConfig(**shape, mining=mining, val_size=16, test_size=0, ood_size=0, compile=args.compile,
                              device=device, num_threads=args.threads).validate()
            naive_on = args.naive and device == "cpu"
            fast_times, naive_times = time_steps(cfg, steps, args.warmup, naive_on)
            med = statistics.median(fast_times)
            ref = REFERENCE[name] if mining == "adversarial" else None
            line = (f"{name:<6} {mining:<12} {med:8.4f} {1 / med:8.2f} "
                    f"{(f'{ref:.3f}' if ref else '-'):>10} {(f'{ref / med:.2f}x' if ref else '-'):>7}")
            if naive_on:
                naive_med = statistics.median(naive_times)
                line += f" {naive_med:12.4f} {naive_med / med:7.2f}x"
            print(line, flush=True)
    if not args.only or args.only == "study":
        ev, naive_ev = time_eval(naive_too=args.naive)
        line = f"eval 1024 x rank 20 (T 10, 5 inner steps): {ev:.2f} s (reference {REFERENCE_EVAL_1024} s, {REFERENCE_EVAL_1024 / ev:.2f}x)"
        if naive_ev:
            line += f"; naive {naive_ev:.2f} s ({naive_ev / ev:.2f}x)"
        print(line)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak:.0f} MB (reference study step: 1,560 MB)")


if __name__ == "__main__":
    main()
