"""Langevin negatives (seed 004): short-run MCMC samples of the model at level t.

    x <- clamp(x - eta grad_x E(A, x, t) + sigma xi, -2 sqrt(abar_t), 2 sqrt(abar_t)),  xi ~ N(0, I)

with eta = langevin_step_scale * lambda_t and sigma = langevin_noise_mult * sqrt(2 eta), both per
sample. Unlike adversarial descent there is no reject rule (a Langevin step may go uphill: that is
what makes the chain a sampler rather than a minimiser) and no faithful-mode quirk (constant step,
per-sample clamp). The clamp keeps chains in the box every other path of the trainer uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from trainer.diffusion import CLAMP, Energy, Schedule


@dataclass(frozen=True)
class LangevinKeys:
    """The config keys a Langevin chain reads."""

    steps: int = 10
    init_scale: float = 1.5
    step_scale: float = 1.0
    noise_mult: float = 1.0


def step_sizes(schedule: Schedule, t: Tensor, keys: LangevinKeys) -> tuple[Tensor, Tensor]:
    """(eta, sigma), each (B, 1): eta = step_scale * lambda_t, sigma = noise_mult * sqrt(2 eta)."""
    eta = keys.step_scale * schedule.step_size[t][:, None]
    return eta, keys.noise_mult * (2 * eta).sqrt()


def langevin_step(f: Energy, x: Tensor, eta: Tensor, sigma: Tensor, bound: Tensor, xi: Tensor) -> Tensor:
    """One step: clamp(x - eta * grad E(x) + sigma * xi, -bound, bound); no reject rule."""
    return torch.clamp(x - eta * f.grad(x) + sigma * xi, -bound, bound)


@torch.no_grad()
def run_chains(f: Energy, schedule: Schedule, x: Tensor, t: Tensor, keys: LangevinKeys,
               generator: torch.Generator | None = None) -> Tensor:
    """`keys.steps` Langevin steps from x (B, n^2) at per-sample levels t; returns the final state.

    The noise xi is drawn from `generator` on x's device, one (B, n^2) draw per step, in order.
    """
    eta, sigma = step_sizes(schedule, t, keys)
    bound = CLAMP * schedule.sqrt_abar[t][:, None]
    for _ in range(keys.steps):
        xi = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = langevin_step(f, x, eta, sigma, bound, xi)
    return x
