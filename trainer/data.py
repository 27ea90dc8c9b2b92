"""Matrix-inversion data: A = 2 U U^T + c I with U ~ Uniform(-1, 1)^(n x n), target A^-1.

c = 0.5 in distribution; c = 0.1 gives the harder, worse-conditioned out-of-distribution set.
A is symmetric positive definite, so the inverse comes from a Cholesky factorisation in float64
(exact to ~1e-12, cheaper than LU); both are trained in float32 and flattened to n^2.

Training draws fresh matrices from a seeded generator every step. Validation, test and OOD sets
are fixed, drawn from their own seeds (`data_seed`), so every run of a study is scored on the same
held-out matrices; the reference instead scored fresh draws from its training stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

IN_DISTRIBUTION_SHIFT = 0.5
OOD_SHIFT = 0.1

# offsets of the fixed sets from data_seed: distinct streams, never the training stream
VAL_OFFSET, TEST_OFFSET, OOD_OFFSET, MEAN_OFFSET, OOD_MEAN_OFFSET = 1, 2, 3, 4, 5  # config.FIXED_SETS names them


def make_matrices(n: int, count: int, generator: torch.Generator, ood: bool = False) -> tuple[Tensor, Tensor]:
    """(A, A^-1) as float32 tensors of shape (count, n^2), drawn on the CPU."""
    u = torch.rand(count, n, n, generator=generator, dtype=torch.float64) * 2 - 1
    shift = OOD_SHIFT if ood else IN_DISTRIBUTION_SHIFT
    a = 2 * u @ u.transpose(1, 2) + shift * torch.eye(n, dtype=torch.float64)
    inverse = torch.cholesky_inverse(torch.linalg.cholesky(a))
    return a.reshape(count, n * n).float(), inverse.reshape(count, n * n).float()


def seeded(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


class TrainStream:
    """An endless, seeded stream of fresh training batches whose position can be checkpointed."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size = n, batch_size
        self.generator = seeded(seed)

    def next(self) -> tuple[Tensor, Tensor]:
        return make_matrices(self.n, self.batch_size, self.generator)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


@dataclass
class FixedSet:
    a: Tensor
    y: Tensor

    def to(self, device: torch.device) -> "FixedSet":
        return FixedSet(self.a.to(device), self.y.to(device))

    def __len__(self) -> int:
        return self.a.shape[0]


def fixed_set(n: int, count: int, data_seed: int, offset: int, ood: bool = False) -> FixedSet:
    a, y = make_matrices(n, count, seeded(data_seed * 1000 + offset), ood=ood)
    return FixedSet(a, y)


def mean_inverse(n: int, data_seed: int, count: int = 8192, ood: bool = False) -> Tensor:
    """E[A^-1] estimated on a draw of its own: the 'predict the mean' baseline of the in-distribution
    sets, or (`ood`) of the harder set, as the reference's table reports it (its own mean)."""
    return fixed_set(n, count, data_seed, OOD_MEAN_OFFSET if ood else MEAN_OFFSET, ood=ood).y.mean(0)


def baselines(y: Tensor, mean: Tensor) -> dict[str, float]:
    """Validation MSE of predictors that ignore A: a model must beat both to have learned anything."""
    return {
        "zero": float(y.pow(2).mean()),
        "mean": float((y - mean.to(y.device)).pow(2).mean()),
    }
