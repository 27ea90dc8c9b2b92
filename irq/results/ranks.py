"""Rank consistency against a baseline: in how many of the paired seeds each experiment is best.

Counting first places needs no numpy (min and == on the same floats), so a table whose statistics
all come from the results cache imports neither numpy nor scipy, against a baseline too.
"""
from __future__ import annotations

from irq.results.records import RankConsistency


def rank_consistency(values: dict[str, dict[int, float]], goal: str = "min") -> RankConsistency:
    """Per paired seed, which experiment is best (ties: each tied one counts as first)."""
    ids = list(values)
    common = sorted(set.intersection(*(set(v) for v in values.values()))) if values else []
    first = {i: 0 for i in ids}
    if len(ids) < 2:
        return RankConsistency(common, first, "fewer than two experiments to rank")
    if not common:
        return RankConsistency(common, first, "no seed was run by every compared experiment")
    pick = min if goal == "min" else max
    per = list(values.values())
    for s in common:
        col = [v[s] for v in per]  # each value read once: this runs for every experiment of every paired seed
        best = pick(col)
        for i, v in zip(ids, col):
            if v == best:
                first[i] += 1
    return RankConsistency(common, first)
