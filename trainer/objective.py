"""The training loss of one batch: denoising MSE plus, with negatives, the contrastive energy term.

    L = mean_b [ ||grad_y E(A, y_t, t) - eps||^2 / n^2  +  w * softplus(E(A, y+, t) - E(A, y-, t)) ]

softplus(E+ - E-) is the reference's cross-entropy over (-E+, -E-) with the positive as class 0.
The three energy evaluations (y_t, y+, y-) share A and t, so they run as one stacked forward pass;
only the y_t block is differentiated with respect to y.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from trainer.diffusion import Energy, Schedule


@dataclass
class LossParts:
    loss: Tensor
    denoise: Tensor
    energy: Optional[Tensor]  # None without negatives
    energy_pos: Optional[Tensor] = None  # (B,) detached, for diagnostics
    energy_neg: Optional[Tensor] = None


def training_loss(
    f: Energy,
    schedule: Schedule,
    y0: Tensor,
    t: Tensor,
    noise: Tensor,
    negatives: Optional[Tensor],
    contrast_noise: Optional[Tensor],
    energy_weight: float,
) -> LossParts:
    """f must be built with gradients enabled (its ctx/film/weights carry the parameters' graph)."""
    y_t = schedule.q_sample(y0, t, noise)
    if negatives is None:
        _, eps_hat = f.model.energy_and_grad(f.ctx, y_t, f.film, f.weights, need_energy=False)
        denoise = (eps_hat - noise).pow(2).mean(-1)
        loss = denoise.mean()
        return LossParts(loss, denoise.mean().detach(), None)
    pos = schedule.q_sample(y0, t, contrast_noise)
    neg = schedule.q_sample(negatives, t, contrast_noise)
    energies, eps_hat = f.model.energy_and_grad(f.ctx, torch.stack([y_t, pos, neg]), f.film, f.weights,
                                                grad_block=0)
    denoise = (eps_hat - noise).pow(2).mean(-1)
    contrast = F.softplus(energies[1] - energies[2])
    loss = (denoise + energy_weight * contrast).mean()
    return LossParts(loss, denoise.mean().detach(), contrast.mean().detach(),
                     energies[1].detach(), energies[2].detach())
