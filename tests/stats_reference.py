"""Reference statistics written out for the tests, independently of the scipy.stats calls irq makes.

Student's t from its density (numerical integration with Gauss-Legendre nodes), Welch's test from
its formula, bootstrap distributions by enumerating every resample or by drawing with numpy, and
the interquartile mean by sorting. Nothing here calls scipy.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

NODES, WEIGHTS = np.polynomial.legendre.leggauss(400)


def t_pdf(u: np.ndarray | float, dof: float) -> np.ndarray | float:
    c = math.exp(math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2)) / math.sqrt(dof * math.pi)
    return c * (1 + u * u / dof) ** (-(dof + 1) / 2)


def t_sf(t: float, dof: float) -> float:
    """P(T > t) for Student's t with `dof` degrees of freedom (any real dof >= 1).

    The tail integral of the density, with u = t / w^2 so that it runs over (0, 1] and stays
    accurate far out in the tail (agrees with published tables to 1e-12)."""
    if t < 0:
        return 1.0 - t_sf(-t, dof)
    if t == 0:
        return 0.5
    w = (NODES + 1) / 2
    v = w * w
    return float(np.sum(WEIGHTS * t_pdf(t / v, dof) * t / (v * v) * 2 * w) / 2)


def t_quantile(p: float, dof: float) -> float:
    """The t value with P(T <= t) = p, by bisection on t_sf."""
    if p < 0.5:
        return -t_quantile(1 - p, dof)
    lo, hi = 0.0, 1.0
    while t_sf(hi, dof) > 1 - p:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_sf(mid, dof) > 1 - p else (lo, mid)
    return (lo + hi) / 2


def welch(x: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Welch's t statistic and its Welch-Satterthwaite degrees of freedom."""
    vx, vb = x.var(ddof=1) / len(x), b.var(ddof=1) / len(b)
    t = (x.mean() - b.mean()) / math.sqrt(vx + vb)
    dof = (vx + vb) ** 2 / (vx**2 / (len(x) - 1) + vb**2 / (len(b) - 1))
    return t, dof


def t_interval(x: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    n = len(x)
    half = t_quantile(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
    return x.mean() - half, x.mean() + half


def iqm(x) -> float:
    """Interquartile mean: drop int(n / 4) values at each end of the sorted values, average the rest."""
    s = sorted(x)
    k = int(len(s) / 4)
    kept = s[k:len(s) - k]
    return sum(kept) / len(kept)


def all_resampled_means(x) -> np.ndarray:
    """The exact bootstrap distribution of the mean: the mean of every one of the n^n equally likely
    resamples (index tuples) of x."""
    x = np.asarray(x, dtype=float)
    idx = np.array(list(itertools.product(range(len(x)), repeat=len(x))))
    return x[idx].mean(axis=1)


def drawn_resampled_means(x, resamples: int = 40_000, seed: int = 1) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    return x[idx].mean(axis=1)
