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
  compared experiment ran. The experiments with the same number of seeds are compared together:
  one scipy call per block, along its rows, each row getting what it would get alone.

Random draws come from fixed seeds, so the same ledger gives the same table every time.
scipy.stats is imported only when a statistic needs it (its import alone costs several CLI
start-ups): a table of single runs never loads it.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import numpy as np

from irq.results.ranks import rank_consistency  # noqa: F401  (one of the statistics; needs no numpy)
from irq.results.records import (  # the dataclasses and settings, imported from here too
    CONFIDENCE,
    IQM_MIN_N,
    RESAMPLES,
    SEED,
    Comparison,
    Summary,
)

ZERO_RESAMPLES = "the baseline's mean is 0 in some resamples: no interval of the relative difference"
BLOCK = 2_000_000  # values per bootstrap block: rows x resamples (and rows x batch x seeds), 16 MB


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
    lo_, hi_, med = x.min(axis=1), x.max(axis=1), np.median(x, axis=1)
    scale = row_scales(x)  # 1, or a power of two that keeps sums of values near 1e308 finite
    xs = x / scale[:, None]
    mean = xs.mean(axis=1)
    same = lo_ == hi_  # every seed gave the same value: that value, not a sum's rounding of it
    mean[same] = xs.min(axis=1)[same]
    cols = intervals(xs, mean, resamples, seed) if n > 1 else {}
    if n >= IQM_MIN_N:
        from scipy import stats

        cols["iqm"] = stats.trim_mean(xs, 0.25, axis=1)
    with np.errstate(over="ignore"):  # a bound past the largest float is inf: said as no number, not wrapped
        cols = {key: v * scale for key, v in cols.items()}
        mean = mean * scale
    note = ("n = 1: no spread, so no interval" if n == 1 else
            f"n = {n}: no IQM below n = {IQM_MIN_N}" if n < IQM_MIN_N else "")
    cols.update(mean=mean, min=lo_, max=hi_, median=med)
    names, columns = list(cols), [v.tolist() for v in cols.values()]  # Python floats, converted in C
    return [Summary(n, note=note, **dict(zip(names, r))) for r in zip(*columns)]


HUGE = 2.0 ** 500  # beyond this, sums and squares of a few values overflow a float


def row_scales(x: np.ndarray) -> np.ndarray:
    """Per row: 1, or for a row with values beyond HUGE, the power of two at its largest magnitude.
    Dividing by a power of two is exact, and every statistic here scales with its values (the
    relative ones not at all): computed on x / scale, they are multiplied back, and values near the
    largest float get a mean and interval instead of inf and nan."""
    top = np.abs(x).max(axis=1) if x.size else np.zeros(len(x))
    return np.where(top > HUGE, np.exp2(np.floor(np.log2(np.where(top > HUGE, top, 1.0)))), 1.0)


def common_scale(*arrays: np.ndarray) -> float:
    """row_scales() of all the values at once: one factor for values compared with each other."""
    top = max((float(np.abs(a).max()) for a in arrays if a.size), default=0.0)
    return float(np.exp2(np.floor(np.log2(top)))) if top > HUGE else 1.0


def intervals(x: np.ndarray, mean: np.ndarray, resamples: int, seed: int) -> dict[str, np.ndarray]:
    """The sample standard deviation and both 95 % intervals of every row's mean (n >= 2).

    A row without spread (every seed gave the same value, exactly: not a standard deviation of
    1e-17 from rounding) has std 0 and the point itself as its interval: only rows with spread are
    resampled, and only they reach scipy.
    """
    from scipy import stats

    spread = x.min(axis=1) < x.max(axis=1)
    std = np.where(spread, x.std(axis=1, ddof=1), 0.0)
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
    same seed, derived from `seed` and n, and draws in the same batches, so an experiment's
    interval depends on its own values only, never on which other experiments are in the table.
    """
    from scipy import stats

    k, n = x.shape
    rows = max(1, BLOCK // resamples)
    batch = max(1, BLOCK // (rows * n))
    low, high = np.empty(k), np.empty(k)
    for sl, blk in _blocks(x, rows):
        res = stats.bootstrap((blk,), np.mean, n_resamples=resamples, batch=batch, vectorized=True,
                              axis=-1, confidence_level=CONFIDENCE, method="percentile",
                              rng=np.random.default_rng([seed, n]))
        m = sl.stop - sl.start
        low[sl], high[sl] = res.confidence_interval.low[:m], res.confidence_interval.high[:m]
    return low, high


def _blocks(x: np.ndarray, rows: int) -> Iterator[tuple[slice, np.ndarray]]:
    """The rows of x in blocks of at most `rows`, each at least two deep: a block of one row goes
    twice. (numpy sums a resampled block of one row pairwise and a deeper block seed after seed;
    past eight seeds the two differ in the last bit, and an experiment's interval would depend on
    how many others share its block.)"""
    for a in range(0, len(x), rows):
        blk = x[a:a + rows]
        yield slice(a, a + len(blk)), (np.concatenate([blk, blk]) if len(blk) == 1 else blk)


def relative(mx: np.ndarray | float, mb: np.ndarray | float) -> np.ndarray | float:
    """The relative difference of the means, (mx - mb) / |mb|: how much higher (+) or lower (-)
    than the baseline, also when the baseline's mean is negative (a log-likelihood, a reward),
    where mx / mb - 1 has the wrong sign. Written as sign(mb) * (mx / mb - 1): for a positive mb
    exactly mx / mb - 1 (and no second pass over the bootstrap's resamples unless one is negative)."""
    r = mx / mb - 1.0
    negative = np.less(mb, 0)
    return np.where(negative, -r, r) if np.any(negative) else r


def _ratio(xs: np.ndarray, bs: np.ndarray, axis: int = -1) -> np.ndarray:
    """relative() of a positive baseline (every resampled mean of positive values is positive)."""
    return np.mean(xs, axis=axis) / np.mean(bs, axis=axis) - 1.0


def _ratio_signed(xs: np.ndarray, bs: np.ndarray, axis: int = -1) -> np.ndarray:
    return relative(np.mean(xs, axis=axis), np.mean(bs, axis=axis))


def relative_difference_intervals(x: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED
                                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For every row of x (experiments with the same number of seeds) against the baseline's values
    b: the two-sided 95 % interval of relative(mean(x), mean(b)) and its one-sided 95 % bounds, as
    arrays (low, high, bound_low, bound_high).

    One scipy.stats.bootstrap(paired=False) distribution per row: each sample is resampled
    separately (stratified). The one-sided 95 % bounds are the ends of the two-sided 90 % percentile
    interval of that same distribution (scipy re-reads it: bootstrap_result, n_resamples=0). Rows
    go to scipy in blocks, each starting from `seed`: the draws do not depend on the block.
    """
    from scipy import stats

    kw = {"vectorized": True, "paired": False, "axis": -1, "method": "percentile"}
    rows = max(1, BLOCK // (resamples * max(x.shape[1], len(b))))
    out = [np.empty(len(x)) for _ in range(4)]
    ratio = _ratio if np.all(b > 0) else _ratio_signed
    for sl, blk in _blocks(x, rows):
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            # a resample of the baseline whose mean is 0 has no ratio: a NaN end, said by the caller
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            res = stats.bootstrap((blk, b), ratio, n_resamples=resamples, confidence_level=CONFIDENCE,
                                  rng=np.random.default_rng(seed), **kw)
            one = stats.bootstrap((blk, b), ratio, n_resamples=0, bootstrap_result=res,
                                  confidence_level=1 - 2 * (1 - CONFIDENCE), **kw)
        m = sl.stop - sl.start
        for o, v in zip(out, (*res.confidence_interval, *one.confidence_interval)):
            o[sl] = v[:m]
    return out[0], out[1], out[2], out[3]


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
    if pooled == 0 or (pooled < 1e-9 * (abs(np.mean(x)) + abs(np.mean(b))) and np.ptp(x) == 0 and np.ptp(b) == 0):
        return None  # no spread: every seed gave one value (a sum's rounding left 1e-17)
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
    return compare_many([exp_id], [x], baseline_id, b, goal, resamples, seed)[0]


def compare_many(ids: Sequence[str], xs: Sequence[Sequence[float]], baseline_id: str, b: Sequence[float],
                 goal: str = "min", resamples: int = RESAMPLES, seed: int = SEED) -> list[Comparison]:
    """Every experiment against the baseline. The experiments with the same number of seeds go
    through scipy together (one Welch test, one Mann-Whitney U and one bootstrap per block, along
    the rows), and each gets what it would get alone."""
    ba = np.asarray(b, dtype=float)
    out = [Comparison(i, baseline_id, len(x), len(ba)) for i, x in zip(ids, xs)]
    by_n: dict[int, list[int]] = {}
    for k, x in enumerate(xs):
        by_n.setdefault(len(x), []).append(k)
    for n, idx in by_n.items():
        x = np.array([xs[k] for k in idx], dtype=float).reshape(len(idx), n)
        _compare_rows(x, ba, [out[k] for k in idx], goal, resamples, seed)
    return out


def _compare_rows(x: np.ndarray, ba: np.ndarray, cs: list[Comparison], goal: str, resamples: int, seed: int) -> None:
    from scipy import stats

    n, nb = x.shape[1], len(ba)
    if n == 0 or nb == 0:
        for c in cs:
            c.note = "no values" if n == 0 else "the baseline has no values"
        return
    scale = common_scale(x, ba)  # every comparison is the same on x / scale: none overflows near 1e308
    x, ba = x / scale, ba / scale
    mb = float(np.mean(ba))
    rel = relative(x.mean(axis=1), mb) if mb != 0 else None
    # P(better): U / (nx nb), U counting the pairs where x is better (ties half); rliable's definition
    u = (stats.mannwhitneyu(ba, x, axis=-1) if goal == "min" else stats.mannwhitneyu(x, ba, axis=-1)).statistic
    for r, c in enumerate(cs):
        c.prob_improvement = float(u[r] / (n * nb))
        if rel is None:
            c.note = "the baseline's mean is 0: no relative difference"
        else:
            c.rel_diff = float(rel[r])
    if n < 2 or nb < 2:
        for c in cs:
            c.note = c.note or f"n = {min(n, nb)}: no interval and no test from one seed"
        return
    tested = (np.ptp(x, axis=1) > 0) | (np.ptp(ba) > 0)  # some seed differs from another: not rounding
    if tested.any():
        t = stats.ttest_ind(x[tested], ba, equal_var=False, axis=-1)
        for c, ts, p in zip((c for c, ok in zip(cs, tested) if ok), t.statistic, t.pvalue):
            c.welch_t, c.welch_p = float(ts), float(p)
    ci = relative_difference_intervals(x, ba, resamples, seed) if rel is not None else None
    for r, c in enumerate(cs):
        c.hedges_g = hedges_g(x[r], ba)
        if not tested[r]:
            c.note = c.note or "no spread in either: no test"
        if ci is not None and all(np.isfinite(v[r]) for v in ci):
            c.rel_low, c.rel_high, c.rel_bound_low, c.rel_bound_high = (float(v[r]) for v in ci)
        elif ci is not None:
            c.note = c.note or ZERO_RESAMPLES


def steps_to_threshold(curve: list[dict], metric: str, threshold: float, goal: str = "min") -> int | None:
    """The first checkpoint step at which the curve's metric reaches the threshold (None: never)."""
    for row in curve:
        v = row.get(metric)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
        if ok and ((v <= threshold) if goal == "min" else (v >= threshold)):
            return int(row["step"])
    return None
