"""What the statistics hand to the table, and the settings they are computed with: plain dataclasses
and constants, without numpy, so that a table whose statistics all come from the results cache
(irq/results/cache.py) imports neither numpy nor scipy.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

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


@dataclass
class RankConsistency:
    seeds: list[int]  # the seeds every compared experiment has a value for
    first: dict[str, int]  # experiment id -> in how many of those seeds it ranks first
    note: str = ""


SUMMARY_FIELDS = tuple(f.name for f in fields(Summary))
COMPARISON_FIELDS = tuple(f.name for f in fields(Comparison))[2:]  # what the values decide: not the two ids
