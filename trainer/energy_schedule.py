"""The weight of the energy term per sample and step (seed 004: gentle, late, mid-levels only).

    w(s, t) = w_max * min(1, s / (f * S)) * [t_min T <= t <= t_max T]

s: the optimiser step about to be taken (0 first), S: train_steps, f: energy_warmup_frac (0: no
ramp), w_max: energy_loss_weight. With the defaults (f = 0, window [0, 1]) w is the constant
w_max, the reference's fixed weight, and the loss is computed exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class EnergySchedule:
    max_weight: float
    warmup_steps: int  # f * S, rounded
    t_min: float
    t_max: float
    num_steps: int  # T

    @property
    def constant(self) -> bool:
        return self.warmup_steps == 0 and self.t_min <= 0 and self.t_max >= 1

    def ramp(self, step: int) -> float:
        """min(1, s / (f S)): 0 at the first step, w_max from the end of the warm-up on."""
        return 1.0 if self.warmup_steps == 0 else min(1.0, step / self.warmup_steps)

    def window(self, t: Tensor) -> Tensor:
        """1 where t_min T <= t <= t_max T, else 0."""
        ok = (t >= self.t_min * self.num_steps) & (t <= self.t_max * self.num_steps)
        return ok.float()

    def weights(self, step: int, t: Tensor) -> Tensor | float:
        """Per-sample weights (B,), or the plain float w_max when nothing varies (bit-identical path)."""
        if self.constant:
            return self.max_weight
        return self.max_weight * self.ramp(step) * self.window(t)


def schedule_from(max_weight: float, warmup_frac: float, train_steps: int, t_min: float, t_max: float,
                  num_steps: int) -> EnergySchedule:
    return EnergySchedule(max_weight, round(warmup_frac * train_steps), t_min, t_max, num_steps)
