"""The results table: one row per experiment, and its renderings (markdown, LaTeX, CSV, JSON).

Each row carries the provenance of its numbers (attempts, seeds, commits), what is missing and
why, the trivial baselines the trainer reports (predict-mean, predict-zero) and, against a
baseline experiment, the comparison statistics.
"""
from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from irq.results.cache import comparisons, summaries
from irq.results.collect import ExperimentRuns, Missing, Run, gc_paused, load_curve
from irq.results.ranks import rank_consistency
from irq.results.records import RESAMPLES, Comparison, Summary

if TYPE_CHECKING:
    from irq.results.cache import ResultsCache

TRIVIAL = (("baseline_mean_mse", "predict-mean"), ("baseline_zero_mse", "predict-zero"))


@dataclass
class Row:
    id: str
    title: str
    state: str
    summary: Summary
    values: list[dict[str, Any]]  # every number behind the row: {attempt, seed, value, commit}
    attempts: list[int]
    seeds: list[int]
    commits: list[str]
    missing: list[str]
    trivial: dict[str, float] = field(default_factory=dict)  # predict-mean / predict-zero (mean over runs)
    comparison: Comparison | None = None
    first_in: int | None = None  # seeds (of the paired ones) in which this row ranks first
    steps_to_threshold: float | None = None  # median over runs; None: not reached / no curves
    reached: str = ""  # "k/n runs" reached the threshold


@dataclass
class Table:
    metric: str
    goal: str
    baseline: str | None
    rows: list[Row]
    paired_seeds: list[int] = field(default_factory=list)
    rank_note: str = ""
    threshold: float | None = None
    resamples: int = RESAMPLES


def build(exps: list[ExperimentRuns], metric: str, goal: str = "min", baseline: str | None = None,
          threshold: float | None = None, resamples: int = RESAMPLES, cache: ResultsCache | None = None) -> Table:
    """The table of the experiments' runs. With a `cache`, statistics already computed for the same
    values and settings are taken from it (irq/results/cache.py); without one, all are computed."""
    from irq import errors

    with gc_paused():
        measured = [e.measured(metric) for e in exps]
        sums = summaries(cache, [vals for _have, vals, _m in measured], resamples)
        rows = [_row(e, have, vals, missing, s) for e, (have, vals, missing), s in zip(exps, measured, sums)]
    t = Table(metric, goal, baseline, rows, threshold=threshold, resamples=resamples)
    per = [(e, have, vals) for e, (have, vals, _m) in zip(exps, measured)]
    if threshold is not None:
        import numpy as np

        from irq.results.stats import steps_to_threshold

        for (e, have, _v), row in zip(per, rows):
            steps = [steps_to_threshold(load_curve(r), metric, threshold, goal) for r in have]
            got = [s for s in steps if s is not None]
            row.reached = f"{len(got)}/{len(steps)}"
            row.steps_to_threshold = float(np.median(got)) if got else None
    if baseline is not None:
        base = next((p for p in per if p[0].id == baseline), None)
        if base is None:
            raise errors.UsageError(f"the baseline {baseline} is not among the experiments shown",
                                    f"name it too: irq results {baseline} ... --baseline {baseline}")
        others = [(row, vals) for (e, _h, vals), row in zip(per, rows) if e.id != baseline]
        found = comparisons(cache, [row.id for row, _v in others], [v for _r, v in others], baseline, base[2], goal,
                            resamples)
        for (row, _v), c in zip(others, found):
            row.comparison = c
        rc = rank_consistency({e.id: {r.seed: v for r, v in zip(have, vals) if r.seed is not None}
                               for e, have, vals in per if have}, goal)
        t.paired_seeds, t.rank_note = rc.seeds, rc.note
        for row in rows:
            row.first_in = rc.first.get(row.id) if rc.seeds else None
    return t


def _row(e: ExperimentRuns, have: list[Run], vals: list[float], missing: list[Missing], s: Summary) -> Row:
    trivial = {}
    for key, label in TRIVIAL:
        got = [v for r in have if (v := r.value(key)) is not None]
        if got:
            trivial[label] = statistics.fmean(got)
    return Row(
        id=e.id, title=e.title, state=e.state, summary=s,
        values=[{"attempt": r.attempt, "seed": r.seed, "value": v, "commit": r.git_sha} for r, v in zip(have, vals)],
        attempts=sorted({r.attempt for r in have}), seeds=sorted({r.seed for r in have if r.seed is not None}),
        commits=sorted({r.git_sha[:12] for r in have if r.git_sha}), missing=[str(m) for m in missing],
        trivial=trivial)


# -- renderings ---------------------------------------------------------------------------
def num(v: float | None, digits: int = 4) -> str:
    return "–" if v is None else f"{v:.{digits}g}"


def interval(lo: float | None, hi: float | None, digits: int = 4) -> str:
    return "–" if lo is None or hi is None else f"[{lo:.{digits}g}, {hi:.{digits}g}]"


def rel(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:+.1f}%"


def columns(t: Table) -> list[str]:
    cols = ["id", "n", "mean", "std", "min", "median", "max", "95% CI (bootstrap)", "95% CI (t)", "IQM",
            "predict-mean", "predict-zero"]
    if t.threshold is not None:
        cols += [f"steps to {t.threshold:g}", "reached"]
    if t.baseline:
        cols += [f"vs {t.baseline}", "95% CI", "Welch p", "Hedges g", "P(better)",
                 f"first in ({len(t.paired_seeds)} seeds)"]
    return cols


def cells(t: Table, r: Row) -> list[str]:
    s = r.summary
    out = [r.id, str(s.n), num(s.mean), num(s.std), num(s.min), num(s.median), num(s.max),
           interval(s.ci_low, s.ci_high), interval(s.t_low, s.t_high), num(s.iqm),
           num(r.trivial.get("predict-mean")), num(r.trivial.get("predict-zero"))]
    if t.threshold is not None:
        out += [num(r.steps_to_threshold, 6), r.reached or "–"]
    if t.baseline:
        c = r.comparison
        if c is None:
            out += ["baseline", "", "", "", "", str(r.first_in) if r.first_in is not None else "–"]
        else:
            out += [rel(c.rel_diff), "–" if c.rel_low is None else f"[{rel(c.rel_low)}, {rel(c.rel_high)}]",
                    num(c.welch_p, 2), num(c.hedges_g, 2), num(c.prob_improvement, 2),
                    str(r.first_in) if r.first_in is not None else "–"]
    return out


def notes(t: Table) -> list[str]:
    """What the table cannot show in a cell: missing runs, why an interval is absent."""
    out = []
    for r in t.rows:
        if r.summary.note and r.summary.n == 1:
            out.append(f"{r.id}: {r.summary.note}")
        for m in r.missing:
            out.append(f"{r.id}: missing {m}")
        if r.comparison is not None and r.comparison.note:
            out.append(f"{r.id} vs {t.baseline}: {r.comparison.note}")
    if t.baseline and t.rank_note:
        out.append(f"rank consistency: {t.rank_note}")
    return out


def to_markdown(t: Table) -> str:
    cols = columns(t)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells(t, r)) + " |" for r in t.rows]
    extra = notes(t)
    if extra:
        lines += [""] + [f"- {n}" for n in extra]
    return "\n".join(lines) + "\n"


def to_text(t: Table) -> str:
    """Plain columns aligned with spaces: the terminal view of tables too long for rich's layout."""
    grid = [columns(t)] + [cells(t, r) for r in t.rows]
    widths = [max(len(row[i]) for row in grid) for i in range(len(grid[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
             for row in grid]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + notes(t)) + "\n"


def _tex(s: str) -> str:
    return (s.replace("\\", "\\textbackslash{}").replace("%", "\\%").replace("_", "\\_").replace("&", "\\&")
            .replace("#", "\\#").replace("–", "--"))


def to_latex(t: Table) -> str:
    cols = columns(t)
    lines = ["\\begin{tabular}{l" + "r" * (len(cols) - 1) + "}", "\\toprule",
             " & ".join(_tex(c) for c in cols) + " \\\\", "\\midrule"]
    lines += [" & ".join(_tex(c) for c in cells(t, r)) + " \\\\" for r in t.rows]
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_csv(t: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns(t))
    for r in t.rows:
        w.writerow(cells(t, r))
    return buf.getvalue()


def to_json(t: Table) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(t), default=str))
