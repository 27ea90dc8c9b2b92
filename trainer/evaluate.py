"""Scoring: sample A^-1 with the (EMA) model and compare with the true inverse."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from trainer.data import FixedSet
from trainer.diffusion import Schedule, sample
from trainer.model import EnergyMLP

EVAL_NOISE_SEED = 20240711  # the same starting noise at every evaluation: curves are not noisier than needed


@dataclass
class Score:
    mse: float
    accuracy: float  # fraction of entries within the tolerance


@torch.no_grad()
def predict(model: EnergyMLP, schedule: Schedule, a: Tensor, inner_steps: int, faithful: bool,
            batch_size: int, seed: int = EVAL_NOISE_SEED) -> Tensor:
    generator = torch.Generator()
    generator.manual_seed(seed)
    chunks = [sample(model, schedule, chunk, inner_steps, faithful, generator) for chunk in a.split(batch_size)]
    return torch.cat(chunks)


@torch.no_grad()
def score(model: EnergyMLP, schedule: Schedule, data: FixedSet, inner_steps: int, faithful: bool,
          batch_size: int, accuracy_tol: float) -> Score:
    pred = predict(model, schedule, data.a, inner_steps, faithful, batch_size)
    err = pred - data.y
    return Score(float(err.pow(2).mean()), float((err.abs() < accuracy_tol).float().mean()))
