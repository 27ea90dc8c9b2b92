"""Verdicts on constructed data where the answer is known: clearly met, clearly not, straddling."""
from __future__ import annotations

import numpy as np
import pytest

from irq import errors
from irq.results.verdict import judge, parse_criterion, pct
from tests import stats_reference as ref

BASE = [0.040, 0.041, 0.039, 0.0405, 0.0395, 0.040, 0.0402, 0.0398, 0.0401, 0.0399]


def scaled(factor, jitter=0.0):
    rng = np.random.default_rng(5)
    return list(np.array(BASE) * factor + rng.normal(0, jitter, len(BASE)))


def test_parse_criterion():
    c = parse_criterion("val_mse -20%", "val_mse")
    assert (c.metric, c.change) == ("val_mse", pytest.approx(-0.20))
    assert parse_criterion("+5 %", "accuracy").metric == "accuracy"
    assert parse_criterion("ood_mse −3.5%", "val_mse").change == pytest.approx(-0.035)
    for bad in ("val_mse 20", "val_mse -0%", "lower please"):
        with pytest.raises(errors.UsageError):
            parse_criterion(bad, "val_mse")


def test_clearly_met():
    c = parse_criterion("val_mse -20%", "val_mse")
    v = judge("Q-003", scaled(0.6), "Q-001", BASE, c)
    assert v.outcome == "met"
    assert v.comparison.rel_bound_high <= -0.20
    # the matching Welch test, written out: x against 0.8 * baseline, one-sided
    x, b = np.array(scaled(0.6)), 0.8 * np.array(BASE)
    t, dof = ref.welch(x, b)
    assert v.p_met == pytest.approx(ref.t_sf(-t, dof), rel=1e-6)  # P(T <= t)
    assert v.p_met < 0.05
    assert v.sentence.startswith("Q-003 vs Q-001: −40.0 % (95 % CI −")
    assert "n = 10 each): the ≥ 20 % lower val_mse criterion is met" in v.sentence


def test_clearly_not_met():
    c = parse_criterion("val_mse -20%", "val_mse")
    v = judge("Q-002", scaled(0.97, 0.0005), "Q-001", BASE, c)
    assert v.outcome == "not met"
    assert v.comparison.rel_bound_low > -0.20
    assert "criterion is not met" in v.sentence and "n = 10 each" in v.sentence


def test_straddling_is_undecided():
    c = parse_criterion("val_mse -20%", "val_mse")
    rng = np.random.default_rng(11)
    x = list(0.032 + rng.normal(0, 0.006, 5))  # about -20 %, wide spread
    v = judge("Q-003", x, "Q-001", BASE, c)
    assert v.comparison.rel_low < -0.20 < v.comparison.rel_high
    assert v.outcome == "undecided"
    assert "includes the required change" in v.sentence


def test_higher_is_better_criterion():
    c = parse_criterion("accuracy +5%", "val_mse")
    assert judge("Q-003", scaled(1.2), "Q-001", BASE, c).outcome == "met"
    assert judge("Q-003", scaled(0.9), "Q-001", BASE, c).outcome == "not met"


def test_one_seed_is_undecided_and_says_why():
    c = parse_criterion("val_mse -20%", "val_mse")
    v = judge("Q-003", [0.01], "Q-001", BASE, c)
    assert v.outcome == "undecided" and "n = 1" in v.sentence


def test_a_negative_baseline_keeps_higher_higher():
    """A log-likelihood or a reward: -100 against a baseline of -200 is 50 % higher, not -50 %."""
    c = parse_criterion("loglik +5%", "loglik")
    base = [-200.0, -210.0, -190.0, -205.0, -195.0]
    v = judge("new", [-100.0, -110.0, -90.0, -105.0, -95.0], "base", base, c)
    assert v.comparison.rel_diff == pytest.approx(0.5)
    assert v.outcome == "met" and v.sentence.startswith("new vs base: +50.0 %")
    # the matching Welch test, written out: x against the baseline moved up by 5 % of |mean|, i.e. 0.95 * b
    t, dof = ref.welch(np.array([-100.0, -110.0, -90.0, -105.0, -95.0]), 0.95 * np.array(base))
    assert v.p_met == pytest.approx(ref.t_sf(t, dof), rel=1e-6)  # P(T >= t)
    assert judge("worse", [-300.0, -310.0, -290.0, -305.0, -295.0], "base", base, c).outcome == "not met"


def test_seeds_that_all_gave_the_same_value_are_no_evidence():
    """0.1 from three seeds each against 0.2: a sum's rounding once made std 1.7e-17, a Welch p of
    1e-46 and a 'met'; the same values from four seeds said 'no test'. Both say it now."""
    c = parse_criterion("val_mse -20%", "val_mse")
    for n in (3, 4, 6, 7):
        v = judge("a", [0.1] * n, "b", [0.2] * n, c)
        assert v.comparison.welch_p is None and v.comparison.hedges_g is None, n
        assert v.comparison.note == "no spread in either: no test"
        assert v.p_met is None and v.comparison.rel_diff == pytest.approx(-0.5)


def test_a_huge_relative_difference_is_written_in_three_digits_not_three_hundred():
    from irq.results.table import rel

    assert rel(-0.5) == "-50.0%" and rel(1e298) == "+1e+300%" and pct(1e300) == "+1e+302 %"
    assert pct(-0.031) == "−3.1 %"


def test_a_baseline_seed_of_zero_gives_no_interval_and_says_why(recwarn):
    """One baseline seed at exactly 0: resamples of only that seed have mean 0, the ratio of those
    is no number, and the table showed a `[+nan%, +nan%]` interval, the verdict "the interval
    includes the required change" (there was none), and numpy and scipy warnings on stderr."""
    c = parse_criterion("m -10%", "m")
    v = judge("c", [1.3, 1.4, 1.5], "b", [0.0, 1.1, 1.2], c)
    cmp = v.comparison
    assert cmp.rel_diff == pytest.approx(np.mean([1.3, 1.4, 1.5]) / np.mean([0.0, 1.1, 1.2]) - 1)
    assert (cmp.rel_low, cmp.rel_high, cmp.rel_bound_low, cmp.rel_bound_high) == (None, None, None, None)
    assert v.outcome == "undecided"
    assert v.sentence.endswith("criterion is undecided (the baseline's mean is 0 in some resamples: "
                               "no interval of the relative difference)"), v.sentence
    assert [str(w.message) for w in recwarn] == []


def test_a_criterion_on_a_metric_no_run_has_is_refused_with_the_names_there_are(recwarn):
    """`--criterion 'VAL_MSE -20%'` printed numpy's "Mean of empty slice" and an "undecided (no
    values)" verdict, exit 0: a typo judged nothing without a word."""
    from irq.results.collect import ExperimentRuns, Run
    from irq.results.table import build
    from irq.results.verdict import verdicts

    exps = [ExperimentRuns(i, i, "DONE", {}, [Run(i, 1, s, {"val_mse": v + s / 10, "device": "cpu"}) for s in range(3)])
            for i, v in (("b", 1.0), ("c", 0.5))]
    table = build(exps, "val_mse", baseline="b", resamples=200)
    for bad, hint in (("VAL_MSE -20%", "did you mean val_mse?"), ("device -20%", "the runs' metrics: val_mse")):
        with pytest.raises(errors.UsageError, match=f"no run has a number named '{bad.split()[0]}'") as exc:
            verdicts(exps, table, [bad], 200)
        assert hint in exc.value.hint
    (v,) = verdicts(exps, table, ["val_mse -20%"], 200)
    assert v.outcome in ("met", "not met", "undecided")
    assert judge("a", [1.0, 2.0], "b", [], parse_criterion("m -10%", "m")).outcome == "undecided"
    assert [str(w.message) for w in recwarn] == []
