"""The statistics of a few seeds: scipy.stats and numpy, none written by hand.

- n, mean, std (ddof = 1), min, median, max: numpy, along the rows of an (experiments x seeds) matrix;
- the mean's 95 % interval: the percentile bootstrap, scipy.stats.bootstrap(method="percentile",
  10,000 resamples, vectorised over the experiments that have the same number of seeds), and the
  t interval beside it, scipy.stats.t.interval with scipy.stats.sem;
- the interquartile mean, scipy.stats.trim_mean(x, 0.25), from n >= 5, as rliable reports it;
- against a baseline: the relative difference of the means with a stratified bootstrap interval,
  scipy.stats.bootstrap(paired=False) (each experiment's seeds resampled separately, as rliable's
  stratified bootstrap does), Welch's t-test (scipy.stats.ttest_ind(equal_var=False)), the
  probability of improvement (scipy.stats.mannwhitneyu's U over nx*nb, rliable's definition),
  Hedges' g (numpy: scipy.stats has no effect size) and rank consistency over the seeds every
  compared experiment ran.

Random draws come from fixed seeds, so the same ledger gives the same table every time.
scipy.stats is imported only when a statistic needs it (its import alone costs several CLI
start-ups): a table of single runs never loads it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000
CONFIDENCE = 0.95
SEED = 20260121  # fixed: tables are reproducible
IQM_MIN_N = 5
BLOCK = 2_000_000  # values per bootstrap block: rows x resamples (and rows x batch x seeds), 16 MB


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
    """One Summary per group of per-seed values (finite floats), in the order given.

    Groups with the same number of values are computed together, as one (experiments x seeds)
    matrix: numpy and scipy.stats along its rows, so ten thousand experiments cost a few array
    operations and a few scipy calls, not ten thousand of each.
    """
    out: list[Summary | None] = [None] * len(groups)
    by_n: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        by_n.setdefault(len(g), []).append(i)
    for n, idx in sorted(by_n.items()):
        x = np.array([groups[i] for i in idx], dtype=float).reshape(len(idx), n)
        for i, s in zip(idx, summarise_rows(x, resamples, seed)):
            out[i] = s
    return [s for s in out if s is not None]


def summarise_rows(x: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> list[Summary]:
    """The Summary of every row of x (rows: experiments, columns: their n seeds)."""
    k, n = x.shape
    if n == 0:
        return [Summary(0, note="no values") for _ in range(k)]
    mean, lo_, hi_, med = x.mean(axis=1), x.min(axis=1), x.max(axis=1), np.median(x, axis=1)
    cols = intervals(x, mean, resamples, seed) if n > 1 else {}
    if n >= IQM_MIN_N:
        from scipy import stats

        cols["iqm"] = stats.trim_mean(x, 0.25, axis=1)
    note = ("n = 1: no spread, so no interval" if n == 1 else
            f"n = {n}: no IQM below n = {IQM_MIN_N}" if n < IQM_MIN_N else "")
    return [Summary(n, float(mean[r]), min=float(lo_[r]), max=float(hi_[r]), median=float(med[r]), note=note,
                    **{key: float(v[r]) for key, v in cols.items()}) for r in range(k)]


def intervals(x: np.ndarray, mean: np.ndarray, resamples: int, seed: int) -> dict[str, np.ndarray]:
    """The sample standard deviation and both 95 % intervals of every row's mean (n >= 2).

    A row without spread (every seed gave the same value) has the point itself as its interval:
    only rows with spread are resampled, and only they reach scipy.
    """
    from scipy import stats

    std = x.std(axis=1, ddof=1)
    spread = std > 0
    cols = {"std": std, **{key: mean.copy() for key in ("t_low", "t_high", "ci_low", "ci_high")}}
    if spread.any():
        xs, n = x[spread], x.shape[1]
        t_lo, t_hi = stats.t.interval(CONFIDENCE, n - 1, loc=mean[spread], scale=stats.sem(xs, axis=1))
        cols["t_low"][spread], cols["t_high"][spread] = t_lo, t_hi
        cols["ci_low"][spread], cols["ci_high"][spread] = bootstrap_mean_ci(xs, resamples, seed)
    return cols


def bootstrap_mean_ci(x: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """The percentile bootstrap 95 % interval of the mean of every row of x (rows: experiments with n
    seeds each): scipy.stats.bootstrap(method="percentile", vectorized=True, axis=-1).

    scipy draws one set of resampled seed indices per call and applies it to every row it is given,
    so each row's interval is a proper bootstrap interval and the rows of one call share their
    draws. The rows go to scipy in blocks that bound the memory (the bootstrap distribution of a
    call is rows x resamples: 800 MB for 10,000 experiments at once); every block starts from the
    same seed, derived from `seed` and n, so an experiment's interval depends on its own values
    only, never on which other experiments are in the table.
    """
    from scipy import stats

    k, n = x.shape
    rows = max(1, BLOCK // resamples)
    batch = max(1, BLOCK // (min(rows, k) * n))
    low, high = np.empty(k), np.empty(k)
    for a in range(0, k, rows):
        res = stats.bootstrap((x[a:a + rows],), np.mean, n_resamples=resamples, batch=batch, vectorized=True,
                              axis=-1, confidence_level=CONFIDENCE, method="percentile",
                              rng=np.random.default_rng([seed, n]))
        low[a:a + rows], high[a:a + rows] = res.confidence_interval
    return low, high


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


def relative_difference_intervals(x: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES,
                                  seed: int = SEED) -> tuple[tuple[float, float], tuple[float, float]]:
    """The two-sided 95 % interval and the one-sided 95 % bounds of mean(x) / mean(b) - 1.

    One scipy.stats.bootstrap(paired=False) distribution: each sample is resampled separately
    (stratified). The one-sided 95 % bounds are the ends of the two-sided 90 % percentile interval
    of that same distribution (scipy re-reads it: bootstrap_result, n_resamples=0).
    """
    from scipy import stats

    def ratio(xs: np.ndarray, bs: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(xs, axis=axis) / np.mean(bs, axis=axis) - 1.0

    kw = {"vectorized": True, "paired": False, "axis": -1, "method": "percentile"}
    res = stats.bootstrap((x, b), ratio, n_resamples=resamples, confidence_level=CONFIDENCE,
                          rng=np.random.default_rng(seed), **kw)
    one = stats.bootstrap((x, b), ratio, n_resamples=0, bootstrap_result=res, confidence_level=1 - 2 * (1 - CONFIDENCE),
                          **kw)
    ci, bounds = res.confidence_interval, one.confidence_interval
    return (float(ci.low), float(ci.high)), (float(bounds.low), float(bounds.high))


def hedges_g(x: np.ndarray, b: np.ndarray) -> float | None:
    """Hedges' g: Cohen's d with the pooled sample standard deviation, times the small-sample
    correction J = 1 - 3 / (4 df - 1), df = nx + nb - 2, i.e. 1 - 3 / (4 (nx + nb) - 9) (Hedges 1981,
    "Distribution theory for Glass's estimator of effect size and related estimators", J. Educ.
    Stat. 6(2), 107-128; Hedges & Olkin 1985, ch. 5). numpy: scipy.stats (1.17) has no effect size.
    None when it is undefined (n < 2 or no spread)."""
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
        (c.rel_low, c.rel_high), (c.rel_bound_low, c.rel_bound_high) = relative_difference_intervals(
            xa, ba, resamples, seed)
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
