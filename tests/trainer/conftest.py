"""Shared helpers for the trainer tests: one CPU thread, tiny configs, in-process CLI runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "trainer" / "configs" / "tiny.json"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for naive.py

torch.set_num_threads(1)


def run_trainer(*args: str) -> int:
    """`python -m trainer ARGS` in this process (fast: torch is already imported)."""
    from trainer.cli import main

    return main([str(a) for a in args])


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def read_curve(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "curve.jsonl").read_text().splitlines()]


@pytest.fixture
def tiny() -> Path:
    return TINY


@pytest.fixture
def setup():
    """(model, schedule, conditions, clean answers, timesteps) of a tiny problem in float64."""
    from problem import B, N, T, as_double

    from trainer.diffusion import Schedule
    from trainer.model import EnergyMLP

    torch.manual_seed(0)
    model = EnergyMLP(N * N, T).double()
    sched = as_double(Schedule.cosine(T))
    a = torch.randn(B, N * N, dtype=torch.float64)
    y0 = 0.3 * torch.randn(B, N * N, dtype=torch.float64)
    t = torch.randint(0, T, (B,))
    return model, sched, a, y0, t
