"""A stand-in for your own training script: plain Python, no dependencies.

It fits y = 3x + 1 by gradient descent on noisy points and follows irq's run contract
(docs/run-contract.md in irq): final numbers in metrics.json, one line per evaluation in
curve.jsonl, both in the run directory irq gives it (--out, or $IRQ_RUN_DIR).
"""
from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path


def data(seed: int, n: int = 64) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    xs = [rng.uniform(-1, 1) for _ in range(n)]
    return [(x, 3 * x + 1 + rng.gauss(0, 0.1)) for x in xs]


def mse(w: float, b: float, points: list[tuple[float, float]]) -> float:
    return sum((w * x + b - y) ** 2 for x, y in points) / len(points)


def train(lr: float, steps: int, seed: int, eval_every: int = 10) -> tuple[dict, list[dict]]:
    """Gradient descent on (w, b); returns the final metrics and the curve."""
    train_set, val_set = data(seed), data(seed + 1000)
    w = b = 0.0
    curve = []
    for step in range(1, steps + 1):
        gw = sum(2 * (w * x + b - y) * x for x, y in train_set) / len(train_set)
        gb = sum(2 * (w * x + b - y) for x, y in train_set) / len(train_set)
        w, b = w - lr * gw, b - lr * gb
        if step % eval_every == 0 or step == steps:
            curve.append({"step": step, "train_loss": mse(w, b, train_set), "val_loss": mse(w, b, val_set)})
    metrics = {"val_loss": mse(w, b, val_set), "train_loss": mse(w, b, train_set), "w": w, "b": b,
               "lr": lr, "steps": steps, "seed": seed}
    return metrics, curve


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.environ.get("IRQ_RUN_DIR", "run"))
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    metrics, curve = train(args.lr, args.steps, args.seed)
    (out / "curve.jsonl").write_text("".join(json.dumps(row) + "\n" for row in curve))
    (out / "model.txt").write_text(f"y = {metrics['w']:.6f} x + {metrics['b']:.6f}\n")  # an artifact
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"lr {args.lr} steps {args.steps} seed {args.seed}: val_loss {metrics['val_loss']:.5f}")


if __name__ == "__main__":
    main()
