"""Exponential moving average of the weights, with the reference's warm-up and decay ramp.

The reference (ema_pytorch, update_every=10, update_after_step=100, inv_gamma=1, power=2/3) copies
the online weights while its counter is <= 100, then every 10 steps blends with decay
min(0.995, 1 - (1 + e)^(-2/3)), e = (counter after the update) - 101. Evaluation always uses these weights.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float = 0.995, update_every: int = 10, warmup: int = 100):
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.decay, self.update_every, self.warmup = decay, update_every, warmup
        self.counter = 0  # number of update() calls so far

    def current_decay(self) -> float:
        """Decay used by the update that brought the counter to its current value."""
        epoch = self.counter - self.warmup - 1
        if epoch <= 0:
            return 0.0
        return min(self.decay, 1 - (1 + epoch) ** (-2 / 3))

    @torch.no_grad()
    def update(self, online: nn.Module) -> None:
        step, self.counter = self.counter, self.counter + 1
        if step % self.update_every != 0:
            return
        if step <= self.warmup:
            for e, o in zip(self.model.parameters(), online.parameters()):
                e.copy_(o)
            return
        decay = self.current_decay()
        for e, o in zip(self.model.parameters(), online.parameters()):
            e.lerp_(o, 1 - decay)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "counter": self.counter}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.counter = state["counter"]
