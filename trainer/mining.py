"""Negative mining: the study's variable.

A negative is a wrong answer Y^- for the same A. The contrastive term then compares the energy of
the positive y+ = q_sample(Y, t, eps') with the negative y- = q_sample(Y^-, t, eps') (same noise).

* none        no negatives: the denoising loss alone (Q-001).
* random      Y^- from the reference's start, sqrt(abar_t) Y + 3 sqrt(1 - abar_t) eps', rescaled to
              level 0 and clamped, without optimisation (Q-002); or, with random_negative=uniform,
              independent Uniform(-1, 1) matrices (the seeds' wording of Q-002).
* adversarial the same start improved by `mining_opt_steps` steps of energy *descent* with the
              reject rule, then divided by sqrt(abar_t), clamped to [-2, 2] and detached (Q-003).
              The reference descends the energy: the seeds' "energy maximization" is not the code.

Langevin chains, the replay buffer and the mixed strategy live in trainer/negatives.py; `mine`
reads only the keys of `MiningKeys` (a TrainConfig has them too, under the same names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

import torch
from torch import Tensor

from trainer.diffusion import CLAMP, Energy, Schedule, StepRecord, clamp_bound, descend


class HasMiningKeys(Protocol):
    mining: str
    mining_opt_steps: int
    mining_noise_scale: float
    mining_step_scale: float
    random_negative: str
    faithful: bool


@dataclass(frozen=True)
class MiningKeys:
    """The config keys `mine` reads, under their config names."""

    mining: str = "none"
    mining_opt_steps: int = 2
    mining_noise_scale: float = 3.0
    mining_step_scale: float = 1.0
    random_negative: str = "noisy"
    faithful: bool = True

    @classmethod
    def of(cls, cfg: Any) -> "MiningKeys":
        return cls(cfg.mining, cfg.mining_opt_steps, cfg.mining_noise_scale, cfg.mining_step_scale,
                   cfg.random_negative, cfg.faithful)


@torch.no_grad()
def mine(
    keys: HasMiningKeys,
    f: Energy,
    schedule: Schedule,
    y0: Tensor,
    t: Tensor,
    noise: Tensor,
    generator: torch.Generator | None = None,
    strategy: str | None = None,
    record: Optional[Callable[[StepRecord], None]] = None,
) -> Optional[Tensor]:
    """Negatives Y^- at level 0 (B, n^2), or None for `none`. `noise` is eps', shared with y+.

    keys: a MiningKeys (or anything with its fields); strategy overrides keys.mining.
    """
    strategy = strategy or keys.mining
    if strategy == "none":
        return None
    if strategy == "random" and keys.random_negative == "uniform":
        u = torch.rand(y0.shape, generator=generator, dtype=y0.dtype, device="cpu")
        return (u * 2 - 1).to(y0.device)
    start = schedule.q_sample(y0, t, keys.mining_noise_scale * noise)
    steps = keys.mining_opt_steps if strategy == "adversarial" else 0
    y = start
    if steps > 0:
        step_size = keys.mining_step_scale * schedule.step_size[t][:, None]
        y, _ = descend(f, start, step_size, clamp_bound(schedule, t, keys.faithful), steps, keys.faithful,
                       record=record)
    return torch.clamp(y / schedule.sqrt_abar[t][:, None], -CLAMP, CLAMP)
