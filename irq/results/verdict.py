"""Verdicts in words on a stated criterion, e.g. "val_mse -20%": at least 20 % lower than the baseline.

The answer comes from the one-sided 95 % bootstrap bound of the relative difference and the
matching one-sided Welch test of mean(x) against mean(baseline) moved by the change (relative to
|mean(baseline)|, so that "higher" stays higher for a negative baseline); both must agree:

- met: the bound lies beyond the required change, and Welch rejects "not beyond" at 5 %;
- not met: the opposite bound lies on the wrong side of it, and Welch rejects "beyond" at 5 %;
- undecided: anything else (the interval straddles the required change, or n < 2 on a side).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from irq import errors
from irq.results.stats import RESAMPLES, SEED, Comparison, common_scale, compare

if TYPE_CHECKING:
    from irq.results.collect import ExperimentRuns
    from irq.results.table import Table

ALPHA = 0.05
CRITERION = re.compile(r"^\s*(?:(?P<metric>[A-Za-z_][\w.]*)\s*)?(?P<sign>[-+−])\s*(?P<pct>\d+(?:\.\d+)?)\s*%\s*$")


@dataclass(frozen=True)
class Criterion:
    metric: str
    change: float  # relative: -0.20 = at least 20 % lower; +0.05 = at least 5 % higher
    text: str

    @property
    def wording(self) -> str:
        return f"≥ {abs(self.change) * 100:g} % {'lower' if self.change < 0 else 'higher'}"


def parse_criterion(text: str, default_metric: str) -> Criterion:
    m = CRITERION.match(text)
    if not m:
        raise errors.UsageError(f"cannot read the criterion {text!r}",
                                'write METRIC and a signed percentage, e.g. "val_mse -20%" (at least 20 % lower)')
    change = float(m.group("pct")) / 100 * (-1 if m.group("sign") in "-−" else 1)
    if change == 0:
        raise errors.UsageError(f"the criterion {text!r} asks for no change", 'e.g. "val_mse -20%"')
    return Criterion(m.group("metric") or default_metric, change, text.strip())


@dataclass
class Verdict:
    id: str
    baseline: str
    criterion: Criterion
    outcome: str  # met | not met | undecided
    comparison: Comparison
    p_met: float | None  # one-sided Welch p for "beyond the required change"
    p_not_met: float | None  # one-sided Welch p for "short of it"
    sentence: str


def pct(v: float | None, signed: bool = True) -> str:
    if v is None:
        return "–"
    s = f"{v * 100:{'+' if signed else ''}{'.1f' if abs(v) < 1e4 else '.3g'}} %"
    return s.replace("-", "−")


def judge(exp_id: str, x: Sequence[float], baseline_id: str, b: Sequence[float], criterion: Criterion,
          resamples: int = RESAMPLES, seed: int = SEED, comparison: Comparison | None = None) -> Verdict:
    """`comparison`: the results table's comparison of the same values (same resamples and seed),
    so its bootstrap is not run a second time."""
    from scipy import stats

    c = comparison or compare(exp_id, x, baseline_id, b, "min", resamples, seed)
    xa, ba = np.asarray(x, dtype=float), np.asarray(b, dtype=float)
    scale = common_scale(xa, ba)  # the tests below are the same on x / scale, and finite near 1e308
    xa, ba = xa / scale, ba / scale
    # the baseline's mean moved by the change, as a factor on its seeds: (1 + change) * mean(b) for a
    # positive mean, mean(b) + change * |mean(b)| for a negative one (stats.relative)
    target = 1 + criterion.change * (1.0 if len(ba) == 0 or np.mean(ba) >= 0 else -1.0)
    p_met = p_not = None
    outcome = "undecided"
    why = ""
    if c.rel_bound_low is None or c.rel_bound_high is None:
        why = c.note or "no interval"
    else:
        lower = criterion.change < 0
        # H1 "met": mean(x) < target * mean(b) (lower) or > (higher)
        alt_met, alt_not = ("less", "greater") if lower else ("greater", "less")
        if np.ptp(xa) > 0 or np.ptp(ba) > 0:
            p_met = float(stats.ttest_ind(xa, target * ba, equal_var=False, alternative=alt_met).pvalue)
            p_not = float(stats.ttest_ind(xa, target * ba, equal_var=False, alternative=alt_not).pvalue)
        met_bound = c.rel_bound_high <= criterion.change if lower else c.rel_bound_low >= criterion.change
        not_bound = c.rel_bound_low > criterion.change if lower else c.rel_bound_high < criterion.change
        if met_bound and (p_met is None or p_met < ALPHA):
            outcome = "met"
        elif not_bound and (p_not is None or p_not < ALPHA):
            outcome = "not met"
        elif met_bound or not_bound:
            why = "the bootstrap bound and Welch's test disagree"
        else:
            why = "the interval includes the required change"
    sizes = f"n = {c.n} each" if c.n == c.n_baseline else f"n = {c.n} and {c.n_baseline}"
    head = f"{exp_id} vs {baseline_id}: {pct(c.rel_diff)}"
    if c.rel_low is not None:
        head += f" (95 % CI {pct(c.rel_low)} to {pct(c.rel_high)}, {sizes})"
    else:
        head += f" ({sizes})"
    sentence = f"{head}: the {criterion.wording} {criterion.metric} criterion is {outcome}"
    if outcome == "undecided" and why:
        sentence += f" ({why})"
    elif outcome != "undecided":
        bound = c.rel_bound_high if (criterion.change < 0) == (outcome == "met") else c.rel_bound_low
        p = p_met if outcome == "met" else p_not
        sentence += f" (one-sided 95 % bound {pct(bound)}" + (f", Welch p = {p:.2g}" if p is not None else "") + ")"
    return Verdict(exp_id, baseline_id, criterion, outcome, c, p_met, p_not, sentence)


def unknown_metric(metric: str, exps: list[ExperimentRuns], where: str) -> errors.UsageError:
    """No run has `metric` as a number: the names the runs do have, the closest first."""
    import difflib

    names = sorted({k for e in exps for r in e.runs for k, v in r.metrics.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)})
    close = difflib.get_close_matches(metric, names, 3, 0.5) or difflib.get_close_matches(
        metric.lower(), [n.lower() for n in names], 3, 0.5)
    return errors.UsageError(f"{where}: no run has a number named {metric!r}",
                             (f"did you mean {', '.join(close)}? " if close else "")
                             + ("the runs' metrics: " + ", ".join(names[:12]) if names else "no run has a metric yet"))


def verdicts(exps: list[ExperimentRuns], table: Table, criteria: list[str],
             resamples: int = RESAMPLES) -> list[Verdict]:
    """One verdict per criterion and non-baseline experiment (each on the criterion's metric). On
    the table's own metric the table's comparisons are used, not computed again."""
    if not criteria or not table.baseline:
        return []
    rows = {r.id: r for r in table.rows}
    out = []
    for text in criteria:
        c = parse_criterion(text, table.metric)
        vals = {e.id: [r.value(c.metric) for r in e.values(c.metric)[0]] for e in exps}
        if not any(vals.values()) and any(e.runs for e in exps):  # a misspelt name judged nothing, silently
            raise unknown_metric(c.metric, exps, f"--criterion {text!r}")
        same = c.metric == table.metric and resamples == table.resamples
        for e in exps:
            if e.id != table.baseline:
                done = rows[e.id].comparison if same and e.id in rows else None
                out.append(judge(e.id, vals[e.id], table.baseline, vals[table.baseline], c, resamples,
                                 comparison=done))
    return out
