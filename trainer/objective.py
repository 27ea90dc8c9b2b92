"""The training loss of one batch: denoising MSE plus, with negatives, the contrastive energy term.

    L = mean_b [ ||grad_y E(A, y_t, t) - eps||^2 / n^2  +  w_b * c(E(A, y+, t), E(A, y-, t)) ]

    nce: c = softplus(E+ - E-), the reference's cross-entropy over (-E+, -E-) with the positive as
         class 0: a classifier that treats the negatives as noise;
    cd:  c = E+ - E- + alpha (E+^2 + E-^2), so that with alpha = 0 mean_b c = mean E(x_pos) - mean E(x_neg):
         contrastive divergence, which treats the negatives as samples of the model (seed 004). y- is
         detached: the gradient stops at the sampler (no gradient through the chain that produced it).
         E+ - E- alone is unbounded below (the model can raise E- without limit); alpha = `cd_reg` is
         the L2 energy penalty of Du & Mordatch (2019) that keeps it bounded.

w_b is the energy weight: a float (the reference's fixed 0.5) or per-sample weights from the
energy schedule and the residual filter. y- = q_sample(Y-, t, eps') re-noises the level-0 negative
with the positive's noise (the reference), unless the sampler hands over its level-t state.
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


ENERGY_TERMS = ("nce", "cd")


def contrast_term(e_pos: Tensor, e_neg: Tensor, kind: str, cd_reg: float = 0.0) -> Tensor:
    """Per-sample energy term: softplus(E+ - E-) (nce) or E+ - E- + cd_reg (E+^2 + E-^2) (cd)."""
    if kind == "nce":
        return F.softplus(e_pos - e_neg)
    if kind == "cd":
        return e_pos - e_neg + cd_reg * (e_pos.pow(2) + e_neg.pow(2)) if cd_reg else e_pos - e_neg
    raise ValueError(f"energy_loss must be one of {', '.join(ENERGY_TERMS)}, not {kind!r}")


def training_loss(
    f: Energy,
    schedule: Schedule,
    y0: Tensor,
    t: Tensor,
    noise: Tensor,
    negatives: Optional[Tensor],
    contrast_noise: Optional[Tensor],
    energy_weight: float | Tensor,
    energy_loss: str = "nce",
    neg_state: Optional[Tensor] = None,
    cd_reg: float = 0.0,
) -> LossParts:
    """f must be built with gradients enabled (its ctx/film/weights carry the parameters' graph).

    neg_state: the negatives at level t (B, n^2) to compare as they are, instead of re-noising
    `negatives`; energy_weight: a float or per-sample weights (B,).
    """
    y_t = schedule.q_sample(y0, t, noise)
    if negatives is None:
        _, eps_hat = f.model.energy_and_grad(f.ctx, y_t, f.film, f.weights, need_energy=False)
        denoise = (eps_hat - noise).pow(2).mean(-1)
        loss = denoise.mean()
        return LossParts(loss, denoise.mean().detach(), None)
    pos = schedule.q_sample(y0, t, contrast_noise)
    neg = (neg_state if neg_state is not None else schedule.q_sample(negatives, t, contrast_noise)).detach()
    energies, eps_hat = f.model.energy_and_grad(f.ctx, torch.stack([y_t, pos, neg]), f.film, f.weights,
                                                grad_block=0)
    denoise = (eps_hat - noise).pow(2).mean(-1)
    contrast = contrast_term(energies[1], energies[2], energy_loss, cd_reg)
    loss = (denoise + energy_weight * contrast).mean()
    return LossParts(loss, denoise.mean().detach(), contrast.mean().detach(),
                     energies[1].detach(), energies[2].detach())
