"""Every statistic of irq.results.stats against an independent computation written out here."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from irq.results.stats import (
    compare,
    hedges_g,
    probability_of_improvement,
    rank_consistency,
    steps_to_threshold,
    summarise,
)

RNG = np.random.default_rng(7)


def independent_bootstrap_mean(x, resamples=40_000, seed=1):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(resamples, len(x)))
    means = np.asarray(x)[idx].mean(axis=1)
    return np.percentile(means, [2.5, 97.5])


@pytest.mark.parametrize("n", [3, 5, 10])
def test_summary_matches_numpy_and_scipy(n):
    x = RNG.normal(0.04, 0.004, size=n)
    (s,) = summarise([list(x)])
    assert s.n == n
    assert s.mean == pytest.approx(x.sum() / n)
    assert s.std == pytest.approx(math.sqrt(((x - x.mean()) ** 2).sum() / (n - 1)))
    assert (s.min, s.max, s.median) == pytest.approx((x.min(), x.max(), np.median(x)))
    half = stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n)
    assert (s.t_low, s.t_high) == pytest.approx((x.mean() - half, x.mean() + half))
    lo, hi = independent_bootstrap_mean(x)
    width = hi - lo
    assert s.ci_low == pytest.approx(lo, abs=0.05 * width)
    assert s.ci_high == pytest.approx(hi, abs=0.05 * width)
    if n >= 5:
        srt = np.sort(x)
        k = int(0.25 * n)
        assert s.iqm == pytest.approx(srt[k:n - k].mean())
    else:
        assert s.iqm is None


def test_two_seeds_bootstrap_interval_is_the_two_values():
    # resampled means of [a, b]: a (p = 1/4), (a+b)/2 (1/2), b (1/4): the 2.5 / 97.5 percentiles are a and b
    (s,) = summarise([[0.03, 0.05]])
    assert (s.ci_low, s.ci_high) == pytest.approx((0.03, 0.05))
    assert s.mean == pytest.approx(0.04)
    assert s.std == pytest.approx(math.sqrt(2) * 0.01)
    assert s.t_low == pytest.approx(0.04 - 12.706204736 * 0.01)  # t(0.975, 1) = 12.7062


def test_one_seed_has_no_interval_and_says_why():
    (s,) = summarise([[0.07]])
    assert s.n == 1 and s.mean == 0.07
    assert s.ci_low is None and s.t_low is None and s.std is None
    assert "n = 1" in s.note


def test_equal_values_give_a_point_interval():
    (s,) = summarise([[0.5] * 4])
    assert (s.ci_low, s.ci_high, s.t_low, s.t_high, s.std) == (0.5, 0.5, 0.5, 0.5, 0.0)


def test_empty_group():
    (s,) = summarise([[]])
    assert s.n == 0 and s.mean is None


def test_groups_of_equal_size_are_bootstrapped_independently_of_each_other():
    a, b = [1.0, 2.0, 3.0], [10.0, 20.0, 30.0]
    sa, sb = summarise([a, b])
    assert sa.ci_low >= 1.0 and sa.ci_high <= 3.0
    assert sb.ci_low >= 10.0 and sb.ci_high <= 30.0


def test_comparison_against_independent_computation():
    x = RNG.normal(0.030, 0.002, size=8)
    b = RNG.normal(0.040, 0.003, size=10)
    c = compare("Q-003", x, "Q-001", b)
    assert c.rel_diff == pytest.approx(x.mean() / b.mean() - 1)
    # Welch, written out
    vx, vb = x.var(ddof=1) / len(x), b.var(ddof=1) / len(b)
    t = (x.mean() - b.mean()) / math.sqrt(vx + vb)
    dof = (vx + vb) ** 2 / (vx**2 / (len(x) - 1) + vb**2 / (len(b) - 1))
    assert c.welch_t == pytest.approx(t)
    assert c.welch_p == pytest.approx(2 * stats.t.sf(abs(t), dof))
    # Hedges' g, written out
    sp = math.sqrt(((len(x) - 1) * x.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(x) + len(b) - 2))
    assert c.hedges_g == pytest.approx((x.mean() - b.mean()) / sp * (1 - 3 / (4 * (len(x) + len(b)) - 9)))
    # probability of improvement (lower is better), by counting pairs
    pairs = [(xi < bi) + 0.5 * (xi == bi) for xi in x for bi in b]
    assert c.prob_improvement == pytest.approx(np.mean(pairs))
    # stratified bootstrap of the ratio, written out
    rng = np.random.default_rng(3)
    rx = x[rng.integers(0, len(x), (40_000, len(x)))].mean(1)
    rb = b[rng.integers(0, len(b), (40_000, len(b)))].mean(1)
    lo, hi = np.percentile(rx / rb - 1, [2.5, 97.5])
    assert c.rel_low == pytest.approx(lo, abs=0.05 * (hi - lo))
    assert c.rel_high == pytest.approx(hi, abs=0.05 * (hi - lo))
    assert c.rel_bound_low > c.rel_low and c.rel_bound_high < c.rel_high


def test_equal_means_compare_as_no_difference():
    x = [1.0, 2.0, 3.0]
    c = compare("a", x, "b", list(x))
    assert c.rel_diff == 0.0
    assert c.welch_p == pytest.approx(1.0)
    assert c.hedges_g == 0.0
    assert c.prob_improvement == pytest.approx(0.5)
    assert c.rel_low < 0 < c.rel_high


def test_one_seed_comparison_has_no_interval_or_test():
    c = compare("a", [0.03], "b", [0.04, 0.05])
    assert c.rel_diff == pytest.approx(0.03 / 0.045 - 1)
    assert c.rel_low is None and c.welch_p is None and c.hedges_g is None
    assert "n = 1" in c.note


def test_hedges_g_and_probability_hand_checked():
    # x = [1, 3], b = [2, 4]: d = (2 - 3) / sqrt(2) ; J = 1 - 3/(16 - 9) = 4/7
    assert hedges_g(np.array([1.0, 3.0]), np.array([2.0, 4.0])) == pytest.approx(-1 / math.sqrt(2) * 4 / 7)
    # pairs (x < b): 1<2, 1<4, 3<4 -> 3 of 4
    assert probability_of_improvement(np.array([1.0, 3.0]), np.array([2.0, 4.0])) == pytest.approx(0.75)
    assert probability_of_improvement(np.array([1.0, 3.0]), np.array([2.0, 4.0]), "max") == pytest.approx(0.25)


def test_rank_consistency_counts_first_places_on_paired_seeds():
    vals = {"Q-001": {0: 3.0, 1: 1.0, 2: 2.0, 7: 0.0}, "Q-003": {0: 1.0, 1: 2.0, 2: 1.0}}
    rc = rank_consistency(vals)
    assert rc.seeds == [0, 1, 2]  # seed 7 is not paired
    assert rc.first == {"Q-001": 1, "Q-003": 2}
    assert rank_consistency(vals, "max").first == {"Q-001": 2, "Q-003": 1}
    assert rank_consistency({"a": {0: 1.0}, "b": {1: 1.0}}).note


def test_steps_to_threshold():
    curve = [{"step": 100, "val_mse": 0.5}, {"step": 200, "val_mse": None}, {"step": 300, "val_mse": 0.09},
             {"step": 400, "val_mse": 0.2}]
    assert steps_to_threshold(curve, "val_mse", 0.1) == 300
    assert steps_to_threshold(curve, "val_mse", 0.01) is None
    assert steps_to_threshold(curve, "val_mse", 0.4, "max") == 100


def test_vectorised_bootstrap_agrees_with_scipy_bootstrap_row_by_row():
    from irq.results.stats import bootstrap_mean_ci

    x = RNG.normal(0.035, 0.003, size=(6, 7))
    low, high = bootstrap_mean_ci(x, 10_000, np.random.default_rng(0))
    for row, lo, hi in zip(x, low, high):
        ref = stats.bootstrap((row,), np.mean, n_resamples=10_000, method="percentile",
                              rng=np.random.default_rng(1)).confidence_interval
        width = ref.high - ref.low
        assert lo == pytest.approx(ref.low, abs=0.04 * width)
        assert hi == pytest.approx(ref.high, abs=0.04 * width)


def test_summaries_of_mixed_sizes_keep_their_order():
    groups = [[1.0, 2.0, 3.0, 4.0, 5.0], [7.0], [], [1.0, 3.0], [2.0, 4.0, 6.0, 8.0, 10.0]]
    out = summarise(groups)
    assert [s.n for s in out] == [5, 1, 0, 2, 5]
    assert [s.mean for s in out] == [3.0, 7.0, None, 2.0, 6.0]
    assert out[4].iqm == pytest.approx(stats.trim_mean([2, 4, 6, 8, 10], 0.25))


@pytest.mark.parametrize("n", [2, 3, 5, 6])
def test_distinct_draws_give_exactly_the_quantiles_of_all_resampled_means(n):
    from irq.results.stats import quantiles_direct, quantiles_of_draws

    x = RNG.normal(0.035, 0.003, size=(40, n))
    counts = np.random.default_rng(n).multinomial(n, np.full(n, 1 / n), size=10_000)
    draws, freq = np.unique(counts, axis=0, return_counts=True)
    qs = [0.025, 0.05, 0.5, 0.95, 0.975]
    expanded = np.quantile(x @ (counts.T / n), qs, axis=1)  # every resample's mean, written out
    np.testing.assert_allclose(quantiles_of_draws(x, draws, freq, qs), expanded, rtol=1e-12)
    np.testing.assert_allclose(quantiles_direct(x, counts, qs), expanded, rtol=1e-12)


def test_many_seeds_take_the_direct_path_and_still_agree_with_scipy():
    from irq.results.stats import bootstrap_mean_ci

    x = RNG.normal(0.035, 0.003, size=(2, 30))
    low, high = bootstrap_mean_ci(x, 10_000, np.random.default_rng(0))
    for row, lo, hi in zip(x, low, high):
        ref = stats.bootstrap((row,), np.mean, n_resamples=10_000, method="percentile",
                              rng=np.random.default_rng(1)).confidence_interval
        assert lo == pytest.approx(ref.low, abs=0.04 * (ref.high - ref.low))
        assert hi == pytest.approx(ref.high, abs=0.04 * (ref.high - ref.low))


@pytest.mark.parametrize("n", [5, 6, 7, 8, 11])
def test_interquartile_mean_is_scipy_trim_mean(n):
    from irq.results.stats import interquartile_mean

    x = RNG.normal(0, 1, size=(4, n))
    np.testing.assert_allclose(interquartile_mean(x), stats.trim_mean(x, 0.25, axis=1), rtol=1e-12)


def test_t_interval_is_scipy_t_interval_for_many_rows():
    x = RNG.normal(0.035, 0.003, size=(20, 4))
    out = summarise(list(x))
    lo, hi = stats.t.interval(0.95, 3, loc=x.mean(1), scale=stats.sem(x, axis=1))
    np.testing.assert_allclose([s.t_low for s in out], lo, rtol=1e-10)
    np.testing.assert_allclose([s.t_high for s in out], hi, rtol=1e-10)
