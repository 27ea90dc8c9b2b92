"""The energy model E(A, y, t): an MLP over [A, y] whose energy is a sum of squares.

Layout follows the IRED matrix-inverse EBM: four Linear layers of width 512 with swish, FiLM
modulation (out * (1 + g) + b) of layers 2 and 3 from a sinusoidal embedding of the integer step
index, and E = ||fc4(h)||^2.

Why the code looks unusual: the model is evaluated ~7 times per training step, and most of the
reference's cost is recomputing things that do not change. Three facts make it cheaper without
changing the math:

* The FiLM gains and biases depend only on t, which takes T values: `film()` computes a (T, 512)
  table once per call site and rows are gathered per sample.
* fc1 acts on the concatenation [A, y], so fc1([A, y]) = W_A A + W_y y + b. The A half is the same
  for every energy evaluation of a batch (denoising, every mining step, positives, negatives):
  `context()` computes it once.
* The predicted noise is grad_y E. Writing that gradient out by hand (`energy_and_grad`) gives an
  ordinary differentiable expression: training needs a first-order backward through it instead of
  autograd's double backward, and mining/evaluation run under no_grad with no graph at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
import torch.nn.functional as F

HIDDEN = 512
FOURIER_DIM = 128
TIME_DIM = 128


def sinusoidal_embedding(t: Tensor, dim: int = FOURIER_DIM, dtype: torch.dtype = torch.float32) -> Tensor:
    """Transformer-style embedding of the (unnormalised) integer step index, as the reference."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=dtype) * -(math.log(10000) / (half - 1)))
    args = t.to(dtype)[:, None] * freqs[None, :]
    return torch.cat((args.sin(), args.cos()), dim=-1)


@dataclass
class Film:
    """Per-sample FiLM terms for layers 2 and 3: (1 + gain) and bias, each (B, 512) or (1, 512)."""

    scale2: Tensor
    bias2: Tensor
    scale3: Tensor
    bias3: Tensor


@dataclass
class Weights:
    """The weights of one call, sliced once (W_y is a view into fc1)."""

    w1y: Tensor
    w2: Tensor
    b2: Tensor
    w3: Tensor
    b3: Tensor
    w4: Tensor
    b4: Tensor


class EnergyMLP(nn.Module):
    """E(A, y, t) for n x n matrices flattened to n^2 (A and y both)."""

    def __init__(self, dim: int, num_steps: int, kernels: "Kernels | None" = None):
        super().__init__()
        self.dim = dim  # n^2
        self.num_steps = num_steps
        self.kernels = kernels if kernels is not None else EAGER  # per model: no module global changes
        self.time_mlp = nn.Sequential(nn.Linear(FOURIER_DIM, TIME_DIM), nn.GELU(), nn.Linear(TIME_DIM, TIME_DIM))
        self.fc1 = nn.Linear(2 * dim, HIDDEN)  # over [A, y], as the reference lays it out
        self.fc2 = nn.Linear(HIDDEN, HIDDEN)
        self.fc3 = nn.Linear(HIDDEN, HIDDEN)
        self.fc4 = nn.Linear(HIDDEN, dim)
        self.film2 = nn.Linear(TIME_DIM, 2 * HIDDEN)
        self.film3 = nn.Linear(TIME_DIM, 2 * HIDDEN)

    # ---- pieces that depend on t only, or on A only -------------------------------------------
    def film_table(self) -> Film:
        """FiLM terms for every step index 0..T-1, shape (T, 512) each."""
        steps = torch.arange(self.num_steps, device=self.fc1.weight.device)
        emb = self.time_mlp(sinusoidal_embedding(steps, dtype=self.fc1.weight.dtype))
        g2, b2 = self.film2(emb).chunk(2, dim=-1)
        g3, b3 = self.film3(emb).chunk(2, dim=-1)
        return Film(1 + g2, b2, 1 + g3, b3)

    def film(self, t: Tensor | int, table: Film | None = None) -> Film:
        """FiLM rows for per-sample steps t (B,), or one shared row if t is an int."""
        table = table if table is not None else self.film_table()
        if isinstance(t, int):
            sl = slice(t, t + 1)
            return Film(table.scale2[sl], table.bias2[sl], table.scale3[sl], table.bias3[sl])
        # a one-hot product rather than indexing: same rows, and its backward is one small matmul
        # instead of a serial scatter-add into the (T, 512) table
        onehot = F.one_hot(t, self.num_steps).to(table.scale2.dtype)
        return Film(onehot @ table.scale2, onehot @ table.bias2, onehot @ table.scale3, onehot @ table.bias3)

    def context(self, a: Tensor) -> Tensor:
        """The A half of fc1 (plus its bias): shared by every energy evaluation on this batch."""
        return F.linear(a, self.fc1.weight[:, : self.dim], self.fc1.bias)

    def weights(self) -> Weights:
        return Weights(
            self.fc1.weight[:, self.dim :], self.fc2.weight, self.fc2.bias, self.fc3.weight,
            self.fc3.bias, self.fc4.weight, self.fc4.bias,
        )

    # ---- the energy and its gradient -----------------------------------------------------------
    def energy(self, ctx: Tensor, y: Tensor, film: Film, w: Weights | None = None) -> Tensor:
        """E(A, y, t) per sample. ctx/film broadcast against y, so y may be (k, B, n^2)."""
        return self.kernels.energy(ctx, y, film, w or self.weights())

    def energy_and_grad(self, ctx: Tensor, y: Tensor, film: Film, w: Weights | None = None,
                        need_energy: bool = True, grad_block: int | None = None) -> tuple[Tensor | None, Tensor]:
        """(E, dE/dy); see `energy_and_grad` below."""
        return self.kernels.energy_and_grad(ctx, y, film, w or self.weights(), need_energy, grad_block)

    def forward(self, a: Tensor, y: Tensor, t: Tensor) -> Tensor:
        """Energy of (a, y) at per-sample steps t: the plain, readable entry point."""
        return self.energy(self.context(a), y, self.film(t))


def energy(ctx: Tensor, y: Tensor, film: Film, w: Weights) -> Tensor:
    """E = ||fc4(h3)||^2 with h1 = swish(ctx + W_y y), h2, h3 FiLM-modulated swish layers."""
    h1 = F.silu(ctx + y @ w.w1y.t())
    h2 = F.silu(torch.addcmul(film.bias2, F.linear(h1, w.w2, w.b2), film.scale2))
    h3 = F.silu(torch.addcmul(film.bias3, F.linear(h2, w.w3, w.b3), film.scale3))
    out = F.linear(h3, w.w4, w.b4)
    return out.pow(2).sum(-1)


def energy_and_grad(ctx: Tensor, y: Tensor, film: Film, w: Weights, need_energy: bool = True,
                    grad_block: int | None = None) -> tuple[Tensor | None, Tensor]:
    """(E, dE/dy) with the backward pass written out, so it is itself differentiable.

    y may stack k inputs that share A and t, (k, B, n^2): the forward pass then runs as one
    matrix product per layer, and `grad_block` picks the one block whose gradient is needed.
    swish(z) = z s(z) has derivative s(z) (1 + z (1 - s(z))) = s + h (1 - s), h = swish(z).
    """
    z1 = ctx + y @ w.w1y.t()
    s1 = torch.sigmoid(z1)
    h1 = z1 * s1
    z2 = torch.addcmul(film.bias2, F.linear(h1, w.w2, w.b2), film.scale2)
    s2 = torch.sigmoid(z2)
    h2 = z2 * s2
    z3 = torch.addcmul(film.bias3, F.linear(h2, w.w3, w.b3), film.scale3)
    s3 = torch.sigmoid(z3)
    h3 = z3 * s3
    out = F.linear(h3, w.w4, w.b4)
    e = out.pow(2).sum(-1) if need_energy else None
    if grad_block is not None:
        out, s1, h1, s2, h2, s3, h3 = (v[grad_block] for v in (out, s1, h1, s2, h2, s3, h3))
    # backward from dE/dout = 2 out, layer by layer
    d = (out @ w.w4) * torch.addcmul(s3, h3, 1 - s3) * film.scale3
    d = (d @ w.w3) * torch.addcmul(s2, h2, 1 - s2) * film.scale2
    d = (d @ w.w2) * torch.addcmul(s1, h1, 1 - s1)
    return e, 2 * (d @ w.w1y)


class Kernels:
    """The two hot functions, eager by default; `Kernels.compiled()` holds torch.compile'd versions
    for the no-grad paths (mining, sampling), and any compile failure falls back to eager for good.

    A model holds its own Kernels (`EnergyMLP(..., kernels=...)`); copies of the model (the EMA)
    share it rather than copying compiled functions.
    """

    def __init__(self) -> None:
        self._compiled: dict | None = None
        self.failure: str | None = None

    def __deepcopy__(self, memo: dict) -> "Kernels":
        return self

    @classmethod
    def compiled(cls) -> "Kernels":
        kernels = cls()
        kernels._compile()
        return kernels

    def _compile(self) -> None:
        try:
            self._compiled = {
                "energy": torch.compile(energy, dynamic=False),
                "energy_and_grad": torch.compile(energy_and_grad, dynamic=False),
            }
        except Exception as exc:  # noqa: BLE001 - no compiler, unsupported platform...
            self.failure = f"{type(exc).__name__}: {exc}"

    def _call(self, name: str, eager, *args):
        if self._compiled is not None and not torch.is_grad_enabled():
            try:
                return self._compiled[name](*args)
            except Exception as exc:  # noqa: BLE001
                self.failure = f"{type(exc).__name__}: {exc}"
                self._compiled = None
        return eager(*args)

    def energy(self, *args):
        return self._call("energy", energy, *args)

    def energy_and_grad(self, *args):
        return self._call("energy_and_grad", energy_and_grad, *args)


EAGER = Kernels()  # the default of every model; never compiled
