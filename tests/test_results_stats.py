"""Every statistic of irq.results.stats against an independent computation written out here or in
tests/stats_reference.py (never the scipy.stats call irq makes), and small cases checked by hand."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from irq.results.collect import ExperimentRuns, Run
from irq.results.stats import (
    bootstrap_mean_ci,
    compare,
    hedges_g,
    probability_of_improvement,
    rank_consistency,
    steps_to_threshold,
    summarise,
)
from irq.results.table import build
from tests import stats_reference as ref

RNG = np.random.default_rng(7)


def exact_interval(x, qs=(0.025, 0.975)):
    """The percentile interval of the exact bootstrap distribution (every resample enumerated)."""
    return np.quantile(ref.all_resampled_means(x), qs, method="inverted_cdf")


@pytest.mark.parametrize("n", [3, 5, 10])
def test_summary_matches_independent_computation(n):
    x = RNG.normal(0.04, 0.004, size=n)
    (s,) = summarise([list(x)])
    assert s.n == n
    assert s.mean == pytest.approx(x.sum() / n)
    assert s.std == pytest.approx(math.sqrt(((x - x.mean()) ** 2).sum() / (n - 1)))
    assert (s.min, s.max, s.median) == pytest.approx((min(x), max(x), sorted(x)[n // 2] if n % 2 else
                                                      (sorted(x)[n // 2 - 1] + sorted(x)[n // 2]) / 2))
    assert (s.t_low, s.t_high) == pytest.approx(ref.t_interval(x), rel=1e-9)
    lo, hi = exact_interval(x) if n <= 5 else np.percentile(ref.drawn_resampled_means(x), [2.5, 97.5])
    assert s.ci_low == pytest.approx(lo, abs=0.04 * (hi - lo))
    assert s.ci_high == pytest.approx(hi, abs=0.04 * (hi - lo))
    assert s.iqm == (pytest.approx(ref.iqm(x)) if n >= 5 else None)


@pytest.mark.parametrize(("n", "printed"), [(2, 12.706), (3, 4.303), (5, 2.776), (10, 2.262)])
def test_t_interval_uses_the_printed_t_quantile(n, printed):
    # two-sided 95 % t quantiles, t(0.975, n - 1), as printed in any table of Student's t
    assert ref.t_quantile(0.975, n - 1) == pytest.approx(printed, abs=5e-4)
    x = RNG.normal(0.04, 0.004, size=n)
    (s,) = summarise([list(x)])
    assert (s.t_high - s.mean) / (x.std(ddof=1) / math.sqrt(n)) == pytest.approx(printed, abs=5e-4)


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


def test_an_interval_does_not_depend_on_the_other_experiments_in_the_table():
    x = list(RNG.normal(0.04, 0.004, size=5))
    others = [list(RNG.normal(0.03, 0.004, size=5)) for _ in range(450)]  # more than one bootstrap block
    (alone,) = summarise([x])
    among = summarise(others[:300] + [x] + others[300:])[300]
    assert (among.ci_low, among.ci_high) == (alone.ci_low, alone.ci_high)
    assert summarise([x]) == [alone]  # and the same ledger gives the same table


def test_a_table_of_single_runs_never_imports_scipy_stats():
    code = ("import sys; from irq.results.stats import summarise; summarise([[1.0], [2.0], []]); "
            "assert 'scipy.stats' not in sys.modules, 'imported'; summarise([[1.0, 2.0]]); "
            "assert 'scipy.stats' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bootstrap_of_many_rows_matches_each_rows_exact_bootstrap():
    x = RNG.normal(0.035, 0.003, size=(6, 4))
    low, high = bootstrap_mean_ci(x)
    for row, lo, hi in zip(x, low, high):
        e_lo, e_hi = exact_interval(row)
        assert lo == pytest.approx(e_lo, abs=0.03 * (e_hi - e_lo))
        assert hi == pytest.approx(e_hi, abs=0.03 * (e_hi - e_lo))


def test_many_seeds_agree_with_independently_drawn_resamples():
    x = RNG.normal(0.035, 0.003, size=(2, 30))
    low, high = bootstrap_mean_ci(x)
    for row, lo, hi in zip(x, low, high):
        r_lo, r_hi = np.percentile(ref.drawn_resampled_means(row), [2.5, 97.5])
        assert lo == pytest.approx(r_lo, abs=0.04 * (r_hi - r_lo))
        assert hi == pytest.approx(r_hi, abs=0.04 * (r_hi - r_lo))


@pytest.mark.parametrize("n", [5, 6, 7, 8, 11])
def test_interquartile_mean_written_out(n):
    x = RNG.normal(0, 1, size=(4, n))
    out = summarise(list(x))
    assert [s.iqm for s in out] == pytest.approx([ref.iqm(row) for row in x], rel=1e-12)


def test_t_interval_for_many_rows():
    x = RNG.normal(0.035, 0.003, size=(20, 4))
    out = summarise(list(x))
    for s, row in zip(out, x):
        assert (s.t_low, s.t_high) == pytest.approx(ref.t_interval(row), rel=1e-9)


def test_comparison_against_independent_computation():
    x = RNG.normal(0.030, 0.002, size=8)
    b = RNG.normal(0.040, 0.003, size=10)
    c = compare("Q-003", x, "Q-001", b)
    assert c.rel_diff == pytest.approx(x.mean() / b.mean() - 1)
    t, dof = ref.welch(x, b)
    assert c.welch_t == pytest.approx(t)
    assert c.welch_p == pytest.approx(2 * ref.t_sf(abs(t), dof), rel=1e-6)
    sp = math.sqrt(((len(x) - 1) * x.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(x) + len(b) - 2))
    assert c.hedges_g == pytest.approx((x.mean() - b.mean()) / sp * (1 - 3 / (4 * (len(x) + len(b)) - 9)))
    pairs = [(xi < bi) + 0.5 * (xi == bi) for xi in x for bi in b]  # lower is better, ties count half
    assert c.prob_improvement == pytest.approx(np.mean(pairs))
    # stratified bootstrap of the ratio, written out: each sample resampled on its own
    ratio = ref.drawn_resampled_means(x, seed=3) / ref.drawn_resampled_means(b, seed=4) - 1
    lo, hi, b_lo, b_hi = np.percentile(ratio, [2.5, 97.5, 5, 95])
    assert (c.rel_low, c.rel_high) == pytest.approx((lo, hi), abs=0.05 * (hi - lo))
    assert (c.rel_bound_low, c.rel_bound_high) == pytest.approx((b_lo, b_hi), abs=0.05 * (hi - lo))
    assert c.rel_low < c.rel_bound_low < c.rel_bound_high < c.rel_high


def test_stratified_bootstrap_matches_the_exact_one_for_three_seeds_each():
    x, b = np.array([0.030, 0.034, 0.029]), np.array([0.040, 0.037, 0.043])
    ratio = (ref.all_resampled_means(x)[:, None] / ref.all_resampled_means(b)[None, :] - 1).ravel()
    lo, hi, b_lo, b_hi = np.quantile(ratio, [0.025, 0.975, 0.05, 0.95], method="inverted_cdf")
    c = compare("x", x, "b", b)
    assert (c.rel_low, c.rel_high) == pytest.approx((lo, hi), abs=0.03 * (hi - lo))
    assert (c.rel_bound_low, c.rel_bound_high) == pytest.approx((b_lo, b_hi), abs=0.03 * (hi - lo))


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


def test_a_nan_and_a_missing_metric_are_left_out_of_every_statistic():
    runs = [Run("Q-001", 1, 0, {"val_mse": 0.03}), Run("Q-001", 1, 1, {"val_mse": float("nan")}),
            Run("Q-001", 1, 2, {"val_mse": 0.05}), Run("Q-001", 1, 3, {"train_mse": 0.01})]
    e = ExperimentRuns("Q-001", "base", "DONE", {}, runs)
    (row,) = build([e], "val_mse").rows
    s = row.summary
    assert s.n == 2 and s.mean == pytest.approx(0.04)  # not (0.03 + 0 + 0.05 + 0) / 4
    assert (s.ci_low, s.ci_high) == pytest.approx((0.03, 0.05))  # the two-seed case above
    assert len(row.missing) == 2 and "seed 1" in row.missing[0] and "no val_mse" in row.missing[1]


def test_rank_consistency_counts_first_places_on_paired_seeds():
    vals = {"Q-001": {0: 3.0, 1: 1.0, 2: 2.0, 7: 0.0}, "Q-003": {0: 1.0, 1: 2.0, 2: 1.0}}
    rc = rank_consistency(vals)
    assert rc.seeds == [0, 1, 2]  # seed 7 is not paired
    assert rc.first == {"Q-001": 1, "Q-003": 2}
    assert rank_consistency(vals, "max").first == {"Q-001": 2, "Q-003": 1}
    assert rank_consistency({"a": {0: 1.0}, "b": {1: 1.0}}).note
    ties = {"a": {0: 1.0, 1: 2.0, 2: 0.0}, "b": {0: 1.0, 1: 3.0, 2: 5.0}, "c": {0: 2.0, 1: 2.0, 2: -0.0}}
    assert rank_consistency(ties).first == {"a": 3, "b": 1, "c": 2}  # every tied one counts as first
    assert rank_consistency(ties, "max").first == {"a": 0, "b": 2, "c": 1}


def test_steps_to_threshold():
    curve = [{"step": 100, "val_mse": 0.5}, {"step": 200, "val_mse": None}, {"step": 300, "val_mse": 0.09},
             {"step": 400, "val_mse": 0.2}]
    assert steps_to_threshold(curve, "val_mse", 0.1) == 300
    assert steps_to_threshold(curve, "val_mse", 0.01) is None
    assert steps_to_threshold(curve, "val_mse", 0.4, "max") == 100


def test_summaries_of_mixed_sizes_keep_their_order():
    groups = [[1.0, 2.0, 3.0, 4.0, 5.0], [7.0], [], [1.0, 3.0], [2.0, 4.0, 6.0, 8.0, 10.0]]
    out = summarise(groups)
    assert [s.n for s in out] == [5, 1, 0, 2, 5]
    assert [s.mean for s in out] == [3.0, 7.0, None, 2.0, 6.0]
    assert out[4].iqm == pytest.approx((4 + 6 + 8) / 3)  # int(5 / 4) = 1 dropped at each end


@pytest.mark.parametrize("n", [3, 6, 7, 10])
def test_seeds_that_all_gave_one_value_have_no_spread_whatever_their_number(n):
    """mean([0.1] * 3) is 0.10000000000000002 and its std 1.7e-17: reported as 0.1 and 0."""
    (s,) = summarise([[0.1] * n])
    assert (s.mean, s.std, s.ci_low, s.ci_high, s.t_low, s.t_high) == (0.1, 0.0, 0.1, 0.1, 0.1, 0.1)


def test_relative_difference_to_a_negative_baseline_is_measured_from_its_size():
    x, b = np.array([-100.0, -110.0, -90.0]), np.array([-200.0, -210.0, -190.0])
    c = compare("x", x, "b", b, "max")
    assert c.rel_diff == pytest.approx((x.mean() - b.mean()) / abs(b.mean()))  # +50 %
    ratio = ((ref.all_resampled_means(x)[:, None] - ref.all_resampled_means(b)[None, :])
             / np.abs(ref.all_resampled_means(b)[None, :])).ravel()
    lo, hi = np.quantile(ratio, [0.025, 0.975], method="inverted_cdf")
    assert (c.rel_low, c.rel_high) == pytest.approx((lo, hi), abs=0.03 * (hi - lo))
    assert 0 < c.rel_low < c.rel_high


def test_json_of_a_table_holds_no_nan_or_infinity():
    """A t interval of values near the largest float reaches past it (inf):
    `--json` wrote them as NaN / Infinity (no JSON number) or as strings. They are null."""
    import json

    from irq.results.table import to_json

    runs = [Run("Q-001", 1, i, {"val_mse": v}) for i, v in enumerate([1e308, -1e308, 1.5e308])]
    table = build([ExperimentRuns("Q-001", "huge", "DONE", {}, runs)], "val_mse")
    out = to_json(table)
    text = json.dumps(out, allow_nan=False)  # raises on NaN or infinity anywhere
    assert out["rows"][0]["summary"]["t_low"] is None and "1e+308" in text  # the bound is past the largest float


def test_values_near_the_largest_float_get_statistics_not_overflow(recwarn):
    """Metrics near 1e308 overflowed the sums: std inf, the t interval (-inf, inf), Welch p = 1,
    Hedges g = 0, and so a wrong "undecided" verdict. Every statistic is computed on the values
    divided by a power of two (exact) and multiplied back."""
    from irq.results.verdict import judge, parse_criterion

    x, b = [1.7e308, 1.6e308, 1.75e308], [1.0e308, 1.1e308, 0.9e308]
    (s,) = summarise([x], resamples=500)
    assert s.mean == pytest.approx(np.mean(np.array(x) / 2**1000) * 2**1000)
    assert s.std == pytest.approx(np.std(np.array(x) / 2**1000, ddof=1) * 2**1000)
    assert math.isfinite(s.ci_low) and math.isfinite(s.t_low) and s.t_low < s.mean < s.t_high
    small = compare("a", [v / 1e300 for v in x], "b", [v / 1e300 for v in b], resamples=500)
    big = compare("a", x, "b", b, resamples=500)
    for f in ("rel_diff", "rel_low", "rel_high", "welch_t", "welch_p", "hedges_g", "prob_improvement"):
        assert getattr(big, f) == pytest.approx(getattr(small, f)), f
    assert judge("a", x, "b", b, parse_criterion("m +20%", "m"), resamples=500).outcome == "met"
    assert [str(w.message) for w in recwarn] == []
