"""Negatives for one training batch: every strategy behind one call, with the state they keep.

* none / random / adversarial: trainer/mining.py, unchanged (the reference's negatives);
* langevin: short-run Langevin chains at level t (trainer/langevin.py), started fresh at
  q_sample(Y, t, langevin_init_scale * eps') or, with a replay buffer, from a stored answer
  sqrt(abar_t) Y_buf with probability replay_prob; finished chains are pushed back;
* mixed: contiguous slices of the batch, one per strategy of `mixed_strategy`, in its order
  (round(cumulative fraction x B) rows each), each mined as its own strategy would.

A Langevin chain's final state x_K is the model's sample at level t and is compared as it is; the
other strategies hand over a level-0 answer that the loss re-noises with eps' (the reference).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import Tensor

from trainer.config import parse_mix
from trainer.diffusion import CLAMP, Energy, Schedule
from trainer.langevin import LangevinKeys, run_chains
from trainer.mining import MiningKeys, mine
from trainer.model import Film
from trainer.replay import ReplayBuffer


@dataclass(frozen=True)
class SamplerKeys:
    """The config keys the negative sampler reads."""

    mining: MiningKeys
    langevin: LangevinKeys
    mix: tuple[tuple[str, float], ...] = (("random", 0.7), ("adversarial", 0.3))
    replay_size: int = 0
    replay_prob: float = 0.95
    replay_per_timestep: bool = False

    @classmethod
    def of(cls, cfg: Any) -> "SamplerKeys":
        langevin = LangevinKeys(cfg.langevin_steps, cfg.langevin_init_scale, cfg.langevin_step_scale,
                                cfg.langevin_noise_mult)
        return cls(MiningKeys.of(cfg), langevin, parse_mix(cfg.mixed_strategy), cfg.replay_size,
                   cfg.replay_prob, cfg.replay_per_timestep)

    def uses_langevin(self) -> bool:
        return self.mining.mining == "langevin" or (
            self.mining.mining == "mixed" and any(name == "langevin" and f > 0 for name, f in self.mix))


@dataclass
class Negatives:
    answer: Tensor  # Y^- at level 0 (B, n^2), clamped to [-2, 2]
    state: Optional[Tensor] = None  # level-t negatives to compare as they are (None: re-noise `answer`)
    stats: dict[str, float] = field(default_factory=dict)


def rows(f: Energy, sl: slice) -> Energy:
    """The energy of a slice of the batch's rows (ctx and per-sample FiLM rows sliced alike)."""
    film = Film(*(v[sl] if v.shape[0] > 1 else v for v in vars(f.film).values()))
    return Energy(f.model, f.ctx[sl], film, f.weights)


def mix_slices(mix: tuple[tuple[str, float], ...], batch: int) -> list[tuple[str, slice]]:
    """Strategy i gets rows [round(F_{i-1} B), round(F_i B)), F_i the cumulative fraction."""
    out, total, start = [], 0.0, 0
    for name, frac in mix:
        total += frac
        end = min(batch, round(total * batch))
        if end > start:
            out.append((name, slice(start, end)))
        start = max(start, end)
    return out


class NegativeSampler:
    """Holds what negatives need across steps: the Langevin noise generator and the replay buffer."""

    def __init__(self, keys: SamplerKeys, schedule: Schedule, dim: int, seed: int, device: torch.device):
        self.keys, self.schedule = keys, schedule
        self.chain_noise = torch.Generator(device=device)
        self.chain_noise.manual_seed(seed + 4_000_037)
        self.buffer: Optional[ReplayBuffer] = None
        if keys.uses_langevin() and keys.replay_size > 0:
            buckets = schedule.num_steps if keys.replay_per_timestep else 1
            self.buffer = ReplayBuffer(keys.replay_size, dim, buckets, keys.replay_prob, seed + 5_000_011, device)

    @torch.no_grad()
    def sample(self, f: Energy, y0: Tensor, t: Tensor, noise: Tensor, step: int,
               generator: torch.Generator | None = None) -> Optional[Negatives]:
        """Negatives for the batch (f detached), or None for `none`. noise: eps', shared with y+."""
        strategy = self.keys.mining.mining
        if strategy == "mixed":
            return self.mixed(f, y0, t, noise, step, generator)
        if strategy == "langevin":
            return self.langevin(f, y0, t, noise, step)
        answer = mine(self.keys.mining, f, self.schedule, y0, t, noise, generator)
        return None if answer is None else Negatives(answer)

    def langevin(self, f: Energy, y0: Tensor, t: Tensor, noise: Tensor, step: int) -> Negatives:
        """Chains from the buffer or fresh, k Langevin steps, then pushed back; x_K is the negative."""
        sa = self.schedule.sqrt_abar[t][:, None]
        x = self.schedule.q_sample(y0, t, self.keys.langevin.init_scale * noise)
        stats: dict[str, float] = {}
        if self.buffer is not None:
            draw = self.buffer.draw(t, step)
            x = torch.where(draw.replayed[:, None], sa * draw.start, x)
            stats["replay_frac"] = float(draw.replayed.float().mean())
            if bool(draw.replayed.any()):
                stats["buffer_age"] = float(draw.age[draw.replayed.cpu()].float().mean())
        x = run_chains(f, self.schedule, x, t, self.keys.langevin, self.chain_noise)
        answer = torch.clamp(x / sa, -CLAMP, CLAMP)
        if self.buffer is not None:
            self.buffer.push(answer, t, step)
            stats["buffer_fill"] = sum(map(self.buffer.filled, range(self.buffer.buckets))) / (
                self.buffer.per_bucket * self.buffer.buckets)
        return Negatives(answer, x, stats)

    def mixed(self, f: Energy, y0: Tensor, t: Tensor, noise: Tensor, step: int,
              generator: torch.Generator | None) -> Negatives:
        """Each slice mined by its strategy; every slice's level-t state is handed over."""
        answers, states, stats = [], [], {}
        for name, sl in mix_slices(self.keys.mix, y0.shape[0]):
            if name == "langevin":
                part = self.langevin(rows(f, sl), y0[sl], t[sl], noise[sl], step)
                stats.update(part.stats)
            else:
                keys = MiningKeys(**{**vars(self.keys.mining), "mining": name})
                answer = mine(keys, rows(f, sl), self.schedule, y0[sl], t[sl], noise[sl], generator)
                part = Negatives(answer, self.schedule.q_sample(answer, t[sl], noise[sl]))
            answers.append(part.answer)
            states.append(part.state)
        return Negatives(torch.cat(answers), torch.cat(states), stats)

    def state_dict(self) -> dict:
        return {"chain_noise": self.chain_noise.get_state(),
                "buffer": self.buffer.state_dict() if self.buffer is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self.chain_noise.set_state(state["chain_noise"])
        if self.buffer is not None and state.get("buffer") is not None:
            self.buffer.load_state_dict(state["buffer"])
