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
