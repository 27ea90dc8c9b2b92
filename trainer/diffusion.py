"""The diffusion side of IRED: cosine schedule, q_sample, energy descent, and sampling.

Energy descent is the one primitive shared by negative mining (training) and the inner loop of
inference: y <- y - step * grad_y E(A, y, t), clamped, and undone for every sample whose energy
went up (the reject rule). Written so each step costs one energy-and-gradient evaluation: the
energy at a candidate is also the energy at the next start, and its gradient the next direction.

Faithful mode keeps two quirks of the reference's `opt_step` (they change results):
  * the first step of a call uses lambda_t and every later step 2 * lambda_t (the step-size factor
    is overwritten inside the reference's loop);
  * the clamp to +-2 sqrt(abar_t) uses the first sample's t for the whole batch (harmless at
    inference, where all samples share t; during mining it clamps by an arbitrary level).
Clean mode uses a constant step lambda_t and a per-sample clamp: a different algorithm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

from trainer.model import EnergyMLP, Film, Weights

CLAMP = 2.0  # the matrix-inverse task clamps x0 to [-2, 2] ("continuous" tasks in the reference)


def cosine_betas(num_steps: int, s: float = 0.008) -> Tensor:
    """Nichol & Dhariwal's cosine schedule in float64, betas clipped at 0.999."""
    x = torch.linspace(0, num_steps, num_steps + 1, dtype=torch.float64)
    abar = torch.cos(((x / num_steps) + s) / (1 + s) * math.pi * 0.5) ** 2
    abar = abar / abar[0]
    return torch.clip(1 - abar[1:] / abar[:-1], 0, 0.999)


@dataclass
class Schedule:
    betas: Tensor
    sqrt_abar: Tensor  # sqrt(abar_t)
    sqrt_one_minus_abar: Tensor  # sqrt(1 - abar_t)
    step_size: Tensor  # lambda_t = beta_t / sqrt(1 - abar_t)

    @classmethod
    def cosine(cls, num_steps: int, device: torch.device | str = "cpu") -> "Schedule":
        betas = cosine_betas(num_steps)
        abar = torch.cumprod(1 - betas, dim=0)
        f32 = lambda v: v.to(device=device, dtype=torch.float32)  # noqa: E731  (float64 math, float32 use)
        return cls(f32(betas), f32(abar.sqrt()), f32((1 - abar).sqrt()), f32(betas / (1 - abar).sqrt()))

    @property
    def num_steps(self) -> int:
        return self.betas.shape[0]

    def q_sample(self, y0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """y_t = sqrt(abar_t) y0 + sqrt(1 - abar_t) noise."""
        return self.sqrt_abar[t, None] * y0 + self.sqrt_one_minus_abar[t, None] * noise


@dataclass
class Energy:
    """An energy function with everything that depends only on (A, t) precomputed."""

    model: EnergyMLP
    ctx: Tensor
    film: Film
    weights: Weights

    def energy(self, y: Tensor) -> Tensor:
        return self.model.energy(self.ctx, y, self.film, self.weights)

    def energy_and_grad(self, y: Tensor) -> tuple[Tensor, Tensor]:
        e, g = self.model.energy_and_grad(self.ctx, y, self.film, self.weights)
        return e, g  # type: ignore[return-value]

    def grad(self, y: Tensor) -> Tensor:
        return self.model.energy_and_grad(self.ctx, y, self.film, self.weights, need_energy=False)[1]


@dataclass
class StepRecord:
    """What one descent step did, for the diagnostics (means over the batch)."""

    energy: Tensor  # (B,) energy after the step (after the reject rule)
    grad_norm: Tensor  # (B,) norm of the gradient that proposed the step
    accepted: Tensor  # (B,) bool
    moved: Tensor  # (B,) RMS distance between consecutive iterates


def descend(
    f: Energy,
    y: Tensor,
    step_size: Tensor,
    clamp_max: Tensor,
    steps: int,
    faithful: bool = True,
    start: tuple[Tensor, Tensor] | None = None,
    record: Optional[Callable[[StepRecord], None]] = None,
) -> tuple[Tensor, Tensor]:
    """`steps` steps of energy descent with the reject rule; returns (y, E(y)).

    step_size: (B, 1) lambda_t (times any scale); clamp_max: (B, 1) or scalar bound on |y|.
    start: (E(y), grad E(y)) if already known. Must run under no_grad: nothing here is trained.
    """
    if steps == 0:
        return y, (start[0] if start is not None else f.energy(y))
    energy, grad = start if start is not None else f.energy_and_grad(y)
    for i in range(steps):
        factor = 2.0 if (faithful and i > 0) else 1.0
        candidate = torch.clamp(y - factor * step_size * grad, -clamp_max, clamp_max)
        last = i == steps - 1
        if last:
            cand_energy, cand_grad = f.energy(candidate), None
        else:
            cand_energy, cand_grad = f.energy_and_grad(candidate)
        keep_old = cand_energy > energy  # the reject rule: a step may not raise a sample's energy
        new_y = torch.where(keep_old[:, None], y, candidate)
        if record is not None:
            record(StepRecord(
                energy=torch.where(keep_old, energy, cand_energy), grad_norm=grad.norm(dim=-1),
                accepted=~keep_old, moved=(new_y - y).pow(2).mean(-1).sqrt(),
            ))
        y = new_y
        energy = torch.where(keep_old, energy, cand_energy)
        if not last:
            grad = torch.where(keep_old[:, None], grad, cand_grad)
    return y, energy


def clamp_bound(schedule: Schedule, t: Tensor, faithful: bool) -> Tensor:
    """+-2 sqrt(abar_t): per sample (clean) or from the first sample's t (faithful, as the reference)."""
    if faithful:
        return CLAMP * schedule.sqrt_abar[t[:1]][:, None]
    return CLAMP * schedule.sqrt_abar[t][:, None]


@torch.no_grad()
def sample(
    model: EnergyMLP,
    schedule: Schedule,
    a: Tensor,
    inner_steps: int,
    faithful: bool = True,
    generator: torch.Generator | None = None,
    init: Tensor | None = None,
) -> Tensor:
    """Predict A^-1 for a batch of A (B, n^2) by reverse diffusion with inner energy descent.

    From y ~ N(0, I), for t = T-1 .. 0: x0 = (y - sqrt(1-abar_t) eps_hat) / sqrt(abar_t) clamped to
    [-2, 2]; y = sqrt(abar_t) x0; `inner_steps` descent steps; clamp to +-2 sqrt(abar_t); rescale to
    level t-1. Faithful mode returns y still scaled by sqrt(abar_0), as the reference does.
    """
    if init is None:  # drawn on the CPU so a seed gives the same start on every device
        init = torch.randn(a.shape, generator=generator, dtype=a.dtype, device="cpu").to(a.device)
    y = init
    table = model.film_table()
    weights = model.weights()
    ctx = model.context(a)
    x0 = y
    for t in reversed(range(schedule.num_steps)):
        f = Energy(model, ctx, model.film(t, table), weights)
        sa, s1a = schedule.sqrt_abar[t], schedule.sqrt_one_minus_abar[t]
        eps_hat = f.grad(y)
        x0 = torch.clamp((y - s1a * eps_hat) / sa, -CLAMP, CLAMP)
        y = sa * x0
        y, _ = descend(f, y, schedule.step_size[t], CLAMP * sa, inner_steps, faithful)
        y = torch.clamp(y, -CLAMP * sa, CLAMP * sa)
        x0 = y / sa
        if t > 0:
            y = schedule.sqrt_abar[t - 1] * x0
    return y if faithful else x0
