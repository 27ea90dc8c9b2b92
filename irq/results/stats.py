"""The statistics of a few seeds, from scipy and numpy; every one is checked against scipy.stats in the tests.

- the mean's 95 % interval: percentile bootstrap (10,000 resamples, vectorised across experiments
  with numpy, see bootstrap_mean_ci; checked against scipy.stats.bootstrap in the tests), and the
  t interval beside it (the t quantile from scipy.special.stdtrit, which scipy.stats.t.ppf calls);
- the interquartile mean (scipy.stats.trim_mean(x, 0.25), computed row-wise with numpy: see
  interquartile_mean) from n >= 5, as rliable reports it;
- against a baseline: the relative difference of the means with a stratified bootstrap interval
  (each experiment's seeds resampled separately, as rliable's stratified bootstrap does), Welch's
  t-test (scipy.stats.ttest_ind(equal_var=False)), Hedges' g, the probability of improvement
  (the Mann-Whitney U statistic over nx*nb, rliable's definition), and rank consistency over the
  seeds every compared experiment ran.

Random draws come from a fixed seed, so the same ledger gives the same table every time.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000
CONFIDENCE = 0.95
SEED = 20260121  # fixed: tables are reproducible
IQM_MIN_N = 5


@dataclass
class Summary:
    n: int
    mean: float | None = None
    std: float | None = None  # sample standard deviation (ddof = 1)
    min: float | None = None
    max: float | None = None
    median: float | None = None
    ci_low: float | None = None  # bootstrap percentile interval of the mean
    ci_high: float | None = None
    t_low: float | None = None  # t interval of the mean
    t_high: float | None = None
    iqm: float | None = None
    note: str = ""  # why an interval (or the IQM) is absent


def summarise(groups: Sequence[Sequence[float]], resamples: int = RESAMPLES, seed: int = SEED) -> list[Summary]:
    """One Summary per group of per-seed values (finite floats).

    Groups with the same number of values are computed together, as one (experiments x seeds)
    matrix: numpy and scipy.stats along axis 1, so ten thousand experiments cost a few array
    operations, not ten thousand calls.
    """
    from scipy.special import (
        stdtrit,  # what scipy.stats.t.ppf evaluates; scipy.stats itself costs a start-up
    )

    rng = np.random.default_rng(seed)
    out: list[Summary | None] = [None] * len(groups)
    by_n: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        by_n.setdefault(len(g), []).append(i)
    for n, idx in sorted(by_n.items()):
        if n == 0:
            for i in idx:
                out[i] = Summary(0, note="no values")
            continue
        x = np.array([groups[i] for i in idx], dtype=float).reshape(len(idx), n)
        mean, lo_, hi_, med = x.mean(axis=1), x.min(axis=1), x.max(axis=1), np.median(x, axis=1)
        cols: dict[str, np.ndarray] = {}
        if n > 1:
            std = x.std(axis=1, ddof=1)
            sem = np.where(std > 0, std / np.sqrt(n), np.nan)
            half = stdtrit(n - 1, 0.5 + CONFIDENCE / 2) * sem  # = scipy.stats.t.interval(CONFIDENCE, n - 1, ...)
            t_lo, t_hi = mean - half, mean + half
            zero = std == 0  # no spread: the interval is the point itself
            cols = {"std": std, "t_low": np.where(zero, mean, t_lo), "t_high": np.where(zero, mean, t_hi)}
            cols["ci_low"], cols["ci_high"] = bootstrap_mean_ci(x, resamples, rng)
        if n >= IQM_MIN_N:
            cols["iqm"] = interquartile_mean(x)
        note = ("n = 1: no spread, so no interval" if n == 1 else
                f"n = {n}: no IQM below n = {IQM_MIN_N}" if n < IQM_MIN_N else "")
        for row, i in enumerate(idx):
            out[i] = Summary(n, float(mean[row]), min=float(lo_[row]), max=float(hi_[row]), median=float(med[row]),
                             note=note, **{k: float(v[row]) for k, v in cols.items()})
    return [s for s in out if s is not None]


def interquartile_mean(x: np.ndarray) -> np.ndarray:
    """Row-wise scipy.stats.trim_mean(x, 0.25, axis=1): drop int(n / 4) values at each end, average
    the rest. Written with numpy because importing scipy.stats alone costs as much CPU as the
    CLI's whole start-up; the tests check it against scipy.stats.trim_mean."""
    n = x.shape[1]
    cut = int(0.25 * n)
    return np.sort(x, axis=1)[:, cut:n - cut].mean(axis=1)


def bootstrap_mean_ci(x: np.ndarray, resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the mean of every row of x (rows: experiments, columns: seeds).

    What scipy.stats.bootstrap(method="percentile") computes (the tests compare the two), vectorised
    across rows. The resamples are drawn once, as multinomial counts (how often each seed is drawn),
    and serve every row: each row's interval is a proper bootstrap interval; the rows' intervals are
    just not independent of each other.

    With few seeds the 10,000 resamples repeat the same few draws (n = 5 seeds have only 126
    distinct multisets): each distinct draw's mean is computed once and weighted by how often it
    was drawn, which gives exactly the percentiles of the 10,000 resampled means (np.quantile's
    linear rule) at a hundredth of the cost. With many seeds every draw is distinct, and the
    10,000 means of each row are computed and partially sorted directly.
    """
    n = x.shape[1]
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples)
    alpha = (1 - CONFIDENCE) / 2
    draws, freq = np.unique(counts, axis=0, return_counts=True)
    if len(draws) * 4 <= resamples:
        return quantiles_of_draws(x, draws, freq, [alpha, 1 - alpha])
    return quantiles_direct(x, counts, [alpha, 1 - alpha])


def quantiles_direct(x: np.ndarray, counts: np.ndarray, qs: list[float]) -> tuple[np.ndarray, ...]:
    """np.quantile over each row's resampled means, in blocks of rows (bounded memory)."""
    k, n = x.shape
    weights = counts.T / n  # seeds x resamples
    out = np.empty((len(qs), k))
    chunk = max(1, 2_000_000 // len(counts))
    for a in range(0, k, chunk):
        out[:, a:a + chunk] = np.quantile(x[a:a + chunk] @ weights, qs, axis=1)
    return tuple(out)


def quantiles_of_draws(x: np.ndarray, draws: np.ndarray, freq: np.ndarray, qs: list[float]) -> tuple[np.ndarray, ...]:
    """The same quantiles as quantiles_direct, from the distinct draws and how often each was drawn.

    np.quantile (linear) of B sorted values at q reads positions floor(h) and floor(h) + 1 with
    h = (B - 1) q; the value at position p is the mean of the first draw (in sorted order) whose
    cumulative count exceeds p.
    """
    k, n = x.shape
    total = int(freq.sum())
    out = np.empty((len(qs), k))
    chunk = max(1, 2_000_000 // len(draws))
    for a in range(0, k, chunk):
        means = x[a:a + chunk] @ (draws.T / n)  # rows x distinct draws
        order = np.argsort(means, axis=1, kind="stable")
        srt = np.take_along_axis(means, order, axis=1)
        cum = np.cumsum(freq[order], axis=1)
        rows = np.arange(len(srt))

        def at(p: int, srt=srt, cum=cum, rows=rows) -> np.ndarray:
            return srt[rows, np.minimum((cum <= p).sum(axis=1), srt.shape[1] - 1)]

        for i, q in enumerate(qs):
            h = (total - 1) * q
            lo = int(np.floor(h))
            v0, v1 = at(lo), at(min(lo + 1, total - 1))
            out[i, a:a + chunk] = v0 + (h - lo) * (v1 - v0)
    return tuple(out)


@dataclass
class Comparison:
    """An experiment against the baseline on one metric; 'better' follows the goal (min or max)."""

    id: str
    baseline: str
    n: int
    n_baseline: int
    rel_diff: float | None = None  # mean(x) / mean(baseline) - 1
    rel_low: float | None = None  # two-sided 95 % bootstrap interval of rel_diff
    rel_high: float | None = None
    rel_bound_low: float | None = None  # one-sided 95 % bounds (5th and 95th bootstrap percentiles)
    rel_bound_high: float | None = None
    welch_t: float | None = None
    welch_p: float | None = None
    hedges_g: float | None = None
    prob_improvement: float | None = None
    note: str = ""


def relative_difference_bootstrap(x: np.ndarray, b: np.ndarray, resamples: int, rng: np.random.Generator):
    """The scipy bootstrap result of mean(x)/mean(b) - 1, each sample resampled separately (stratified)."""
    from scipy import stats

    def ratio(xs: np.ndarray, bs: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(xs, axis=axis) / np.mean(bs, axis=axis) - 1.0

    return stats.bootstrap((x, b), ratio, vectorized=True, paired=False, n_resamples=resamples,
                           confidence_level=CONFIDENCE, method="percentile", rng=rng)


def hedges_g(x: np.ndarray, b: np.ndarray) -> float | None:
    """Cohen's d with the pooled sample standard deviation, times Hedges' small-sample correction
    J = 1 - 3 / (4 (nx + nb) - 9). None when it is undefined (n < 2 or no spread)."""
    nx, nb = len(x), len(b)
    if nx < 2 or nb < 2:
        return None
    pooled = np.sqrt(((nx - 1) * np.var(x, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / (nx + nb - 2))
    if pooled == 0:
        return None
    return float((np.mean(x) - np.mean(b)) / pooled * (1 - 3 / (4 * (nx + nb) - 9)))


def probability_of_improvement(x: np.ndarray, b: np.ndarray, goal: str = "min") -> float:
    """P(a run of x is better than a run of b) + half the ties: U / (nx nb), as rliable defines it."""
    from scipy import stats

    if goal == "min":
        u = stats.mannwhitneyu(b, x, alternative="two-sided").statistic  # pairs with b > x
    else:
        u = stats.mannwhitneyu(x, b, alternative="two-sided").statistic
    return float(u / (len(x) * len(b)))


def compare(exp_id: str, x: Sequence[float], baseline_id: str, b: Sequence[float], goal: str = "min",
            resamples: int = RESAMPLES, seed: int = SEED) -> Comparison:
    from scipy import stats

    xa, ba = np.asarray(x, dtype=float), np.asarray(b, dtype=float)
    c = Comparison(exp_id, baseline_id, len(xa), len(ba))
    if len(xa) == 0 or len(ba) == 0:
        c.note = "no values" if len(xa) == 0 else "the baseline has no values"
        return c
    mb = float(np.mean(ba))
    if mb == 0:
        c.note = "the baseline's mean is 0: no relative difference"
    else:
        c.rel_diff = float(np.mean(xa)) / mb - 1.0
    c.prob_improvement = probability_of_improvement(xa, ba, goal)
    if len(xa) < 2 or len(ba) < 2:
        c.note = c.note or f"n = {min(len(xa), len(ba))}: no interval and no test from one seed"
        return c
    c.hedges_g = hedges_g(xa, ba)
    if np.var(xa) == 0 and np.var(ba) == 0:
        c.note = c.note or "no spread in either: no test"
    else:
        t = stats.ttest_ind(xa, ba, equal_var=False)
        c.welch_t, c.welch_p = float(t.statistic), float(t.pvalue)
    if c.rel_diff is not None:
        res = relative_difference_bootstrap(xa, ba, resamples, np.random.default_rng(seed))
        c.rel_low, c.rel_high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        lo, hi = np.percentile(res.bootstrap_distribution, [100 * (1 - CONFIDENCE), 100 * CONFIDENCE])
        c.rel_bound_low, c.rel_bound_high = float(lo), float(hi)
    return c


@dataclass
class RankConsistency:
    seeds: list[int]  # the seeds every compared experiment has a value for
    first: dict[str, int]  # experiment id -> in how many of those seeds it ranks first
    note: str = ""


def rank_consistency(values: dict[str, dict[int, float]], goal: str = "min") -> RankConsistency:
    """Per paired seed, which experiment is best (ties: each tied one counts as first)."""
    ids = list(values)
    common = sorted(set.intersection(*(set(v) for v in values.values()))) if values else []
    first = {i: 0 for i in ids}
    if len(ids) < 2:
        return RankConsistency(common, first, "fewer than two experiments to rank")
    if not common:
        return RankConsistency(common, first, "no seed was run by every compared experiment")
    m = np.array([[values[i][s] for i in ids] for s in common])  # seeds x experiments
    best = m.min(axis=1, keepdims=True) if goal == "min" else m.max(axis=1, keepdims=True)
    wins = (m == best).sum(axis=0)
    return RankConsistency(common, {i: int(w) for i, w in zip(ids, wins)})


def steps_to_threshold(curve: list[dict], metric: str, threshold: float, goal: str = "min") -> int | None:
    """The first checkpoint step at which the curve's metric reaches the threshold (None: never)."""
    for row in curve:
        v = row.get(metric)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
        if ok and ((v <= threshold) if goal == "min" else (v >= threshold)):
            return int(row["step"])
    return None
