"""The tiny float64 problem the oracle tests share (the `setup` fixture in conftest.py builds it)."""

from __future__ import annotations

from trainer.diffusion import Schedule

N, T, B = 3, 5, 24  # matrix size, diffusion steps, batch


def as_double(s: Schedule) -> Schedule:
    """A schedule in float64, as the oracles compute."""
    return Schedule(*(v.double() for v in vars(s).values()))
