"""The false-negative filter of seed 004: a negative close to the true inverse is not a negative.

    r(Y-) = ||A Y- - I||_F                       (0 for the true inverse)
    q(t)  = p_0 + (p_last - p_0) t / (T - 1)     (a percentile: higher, so stricter, at small t)
    tau_b = the q(t_b)-th percentile of the batch's residuals (linear interpolation)
    w_b   = [r_b >= tau_b]                      (drop)   or   min(1, r_b / tau_b)   (weight)

w multiplies each sample's energy term; `filtered_frac` = mean(1 - w) is what the filter removed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class FilterKeys:
    """The config keys the residual filter reads."""

    mode: str = "off"  # off | drop | weight
    percentile: float = 30.0  # at t = 0
    percentile_last: float = 10.0  # at t = T - 1


def residuals(a: Tensor, y: Tensor, n: int) -> Tensor:
    """||A Y - I||_F per row of flattened n x n matrices, in float64."""
    eye = torch.eye(n, dtype=torch.float64, device=a.device)
    prod = a.double().reshape(-1, n, n) @ y.double().reshape(-1, n, n)
    return (prod - eye).flatten(1).norm(dim=-1)


def percentile_levels(t: Tensor, num_steps: int, keys: FilterKeys) -> Tensor:
    """q(t) in [0, 100] per sample, linear from `percentile` at t = 0 to `percentile_last` at T - 1."""
    frac = t.double() / max(num_steps - 1, 1)
    return keys.percentile + (keys.percentile_last - keys.percentile) * frac


def filter_weights(r: Tensor, t: Tensor, num_steps: int, keys: FilterKeys) -> Tensor:
    """w (B,) in [0, 1]: 0 (drop) or r / tau (weight) for residuals under their level's threshold."""
    tau = torch.quantile(r, (percentile_levels(t, num_steps, keys) / 100).to(r.device))
    if keys.mode == "drop":
        return (r >= tau).to(r.dtype)
    return torch.where(r >= tau, torch.ones_like(r), r / tau.clamp_min(1e-300))
