"""The replay buffer of Langevin chains (persistent contrastive divergence, seed 004).

FIFO storage of finished chains as level-0 answers Y^- (B, n^2), either one buffer or one per
diffusion level (`replay_per_timestep`, capacity split evenly). Each new chain starts from a
uniformly drawn stored answer with probability `replay_prob` when its bucket is not empty, else
fresh. Every batch holds fresh matrices, so a replayed chain restarts from another matrix's
negative: the buffer persists answers in y-space, not chains per A (say so when reading results).

The buffer, its write positions and its own random generator are part of the checkpoint, so a
resumed run continues bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Draw:
    """Which chains of a batch restart from the buffer, from which stored answers, and their age."""

    replayed: Tensor  # (B,) bool
    start: Tensor  # (B, dim) the stored answer for replayed rows (zeros elsewhere)
    age: Tensor  # (B,) steps since the stored answer was pushed (0 for fresh rows)


class ReplayBuffer:
    def __init__(self, capacity: int, dim: int, buckets: int, prob: float, seed: int,
                 device: torch.device | str = "cpu"):
        """`buckets` FIFOs of capacity // buckets answers each (1 bucket: a global buffer)."""
        self.per_bucket = max(capacity // buckets, 1)
        self.buckets, self.prob = buckets, prob
        self.data = torch.zeros(buckets, self.per_bucket, dim, device=device)
        self.born = torch.zeros(buckets, self.per_bucket, dtype=torch.long)
        self.count = [0] * buckets  # answers stored so far (may exceed per_bucket: FIFO overwrite)
        self.generator = torch.Generator()
        self.generator.manual_seed(seed)

    def bucket_of(self, t: Tensor) -> Tensor:
        """Level t -> bucket index: t itself with one bucket per level, else 0."""
        return t.cpu() if self.buckets > 1 else torch.zeros_like(t, device="cpu")

    def filled(self, bucket: int) -> int:
        return min(self.count[bucket], self.per_bucket)

    def slot(self, bucket: Tensor, age_rank: Tensor) -> Tensor:
        """The slot holding the age_rank-th oldest answer of each bucket (0 = oldest)."""
        filled = torch.tensor([self.filled(b) for b in range(self.buckets)])
        oldest = (torch.tensor(self.count) - filled) % self.per_bucket
        return (oldest[bucket] + age_rank) % self.per_bucket

    def draw(self, t: Tensor, step: int) -> Draw:
        """Per row: replay if u < prob and its bucket is not empty, from the floor(v x filled)-th oldest.

        u, v ~ U(0, 1): two (B,) draws from the buffer's own generator, every call, in that order.
        """
        u = torch.rand(t.shape[0], generator=self.generator)
        v = torch.rand(t.shape[0], generator=self.generator)
        bucket = self.bucket_of(t)
        size = torch.tensor([self.filled(b) for b in range(self.buckets)])[bucket]
        replayed = (u < self.prob) & (size > 0)
        slot = self.slot(bucket, (v * size).long().clamp_max((size - 1).clamp_min(0)))
        start = self.data[bucket.to(self.data.device), slot.to(self.data.device)].clone()
        start[~replayed.to(start.device)] = 0
        age = torch.where(replayed, step - self.born[bucket, slot], torch.zeros_like(slot))
        return Draw(replayed.to(self.data.device), start, age)

    def entries(self, bucket: int = 0) -> Tensor:
        """The stored answers of a bucket, oldest first."""
        order = self.slot(torch.full((self.filled(bucket),), bucket), torch.arange(self.filled(bucket)))
        return self.data[bucket, order.to(self.data.device)]

    def push(self, answers: Tensor, t: Tensor, step: int) -> None:
        """Append finished chains in row order; a full bucket overwrites its oldest entries.

        Vectorised: the rows of bucket b go to slots (count_b + i) mod capacity, i = 0, 1, ...; when
        more rows than slots arrive, only the last `capacity` survive, as sequential pushes would leave.
        """
        bucket = self.bucket_of(t)
        for b in range(self.buckets):
            rows = (bucket == b).nonzero().flatten()
            pushed = len(rows)
            rows = rows[-self.per_bucket:]
            slots = (self.count[b] + pushed - len(rows) + torch.arange(len(rows))) % self.per_bucket
            self.data[b, slots.to(self.data.device)] = answers[rows.to(answers.device)]
            self.born[b, slots] = step
            self.count[b] += pushed

    def state_dict(self) -> dict:
        return {"data": self.data.cpu(), "born": self.born, "count": list(self.count),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.data = state["data"].to(self.data.device)
        self.born, self.count = state["born"], list(state["count"])
        self.generator.set_state(state["generator"])
