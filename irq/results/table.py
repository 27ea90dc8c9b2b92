"""The results table: one row per experiment, and its renderings (markdown, LaTeX, CSV, JSON).

Each row carries the provenance of its numbers (attempts, seeds, commits), what is missing and
why, the trivial baselines the trainer reports (predict-mean, predict-zero) and, against a
baseline experiment, the comparison statistics.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from irq.results.cache import comparisons, summaries
from irq.results.collect import ExperimentRuns, gc_paused, load_curve
from irq.results.ranks import rank_consistency
from irq.results.records import RESAMPLES, Comparison, Summary
from irq.results.rows import Collected, measure

if TYPE_CHECKING:
    from irq.results.cache import ResultsCache


@dataclass
class Row:
    id: str
    title: str
    state: str
    summary: Summary
    runs: Collected  # the numbers behind the row, with their attempts, seeds and commits
    comparison: Comparison | None = None
    first_in: int | None = None  # seeds (of the paired ones) in which this row ranks first
    steps_to_threshold: float | None = None  # median over runs; None: not reached / no curves
    reached: str = ""  # "k/n runs" reached the threshold

    @property
    def missing(self) -> list[str]:
        """What is missing of the row's runs, and why (its values and provenance: `runs`)."""
        return self.runs.missing


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
    trivial: bool = False  # some row has the trainer's trivial baselines: their columns are shown


def build(exps: Sequence[ExperimentRuns | Collected], metric: str, goal: str = "min", baseline: str | None = None,
          threshold: float | None = None, resamples: int = RESAMPLES, cache: ResultsCache | None = None) -> Table:
    """The table of the experiments' runs (as collect.py or irq/results/rows.py gives them). With a
    `cache`, statistics already computed for the same values and settings are taken from it
    (irq/results/cache.py); without one, all are computed."""
    with gc_paused():
        got = [e if type(e) is Collected else measure(e, metric) for e in exps]  # type: ignore[arg-type]
        per = [c.numbers for c in got]
        sums = summaries(cache, per, resamples)
        rows = [Row(c.id, c.title, c.state, s, c) for c, s in zip(got, sums)]
    t = Table(metric, goal, baseline, rows, threshold=threshold, resamples=resamples,
              trivial=any(r.runs.trivial for r in rows))
    if threshold is not None:
        import numpy as np

        from irq.results.stats import steps_to_threshold

        for c, row in zip(got, rows):
            curves = [cv for cv in (load_curve(r) for r in c.runs()) if any(metric in point for point in cv)]
            reached = [s for cv in curves if (s := steps_to_threshold(cv, metric, threshold, goal)) is not None]
            lacking = len(c.numbers) - len(curves)  # runs without a curve of the metric: not "never reached"
            row.reached = (f"{len(reached)}/{len(curves)}" if curves else "no curve") + (
                f" ({lacking} without a curve)" if curves and lacking else "")
            row.steps_to_threshold = float(np.median(reached)) if reached else None
    if baseline is not None:
        base = next((k for k, c in enumerate(got) if c.id == baseline), None)
        if base is None:  # named experiments always include the baseline: it is not in the ledger
            from irq.ledger.reader import unknown_id

            raise unknown_id(baseline, [c.id for c in got])
        others = [(row, vals) for c, row, vals in zip(got, rows, per) if c.id != baseline]
        found = comparisons(cache, [row.id for row, _v in others], [v for _r, v in others], baseline, per[base], goal,
                            resamples)
        for (row, _v), c in zip(others, found):
            row.comparison = c
        rc = rank_consistency({c.id: c.by_seed() for c in got if c.numbers}, goal)
        t.paired_seeds, t.rank_note = rc.seeds, rc.note
        for row in rows:
            row.first_in = rc.first.get(row.id) if rc.seeds else None
    return t


# -- renderings ---------------------------------------------------------------------------
def num(v: float | None, digits: int = 4) -> str:
    return "–" if v is None else f"{v:.{digits}g}"


def interval(lo: float | None, hi: float | None, digits: int = 4) -> str:
    return "–" if lo is None or hi is None else f"[{lo:.{digits}g}, {hi:.{digits}g}]"


def rel(v: float | None) -> str:
    """A relative difference in percent, one decimal; past a million percent in 3 significant
    digits (a value of 1e300 printed 300 digits and blew the table's width)."""
    return "–" if v is None else f"{v * 100:+.1f}%" if abs(v) < 1e4 else f"{v * 100:+.3g}%"


def columns(t: Table) -> list[str]:
    cols = ["id", "n", "mean", "std", "min", "median", "max", "95% CI (bootstrap)", "95% CI (t)", "IQM"]
    if t.trivial:  # only where some row has them (beside an MSE the trainer measured), never a column of dashes
        cols += ["predict-mean", "predict-zero"]
    if t.threshold is not None:
        cols += [f"steps to {t.threshold:g}", "reached"]
    if t.baseline:
        cols += [f"vs {t.baseline}", "95% CI", "Welch p", "Hedges g", "P(better)",
                 f"first in ({len(t.paired_seeds)} seed{'' if len(t.paired_seeds) == 1 else 's'})"]
    return cols


def cells(t: Table, r: Row) -> list[str]:
    """The row's cells as text (num() and interval() written out inline: this runs for every row)."""
    s, tr, nil = r.summary, r.runs.trivial, "–"
    out = [r.id, str(s.n), nil if (v := s.mean) is None else f"{v:.4g}", nil if (v := s.std) is None else f"{v:.4g}",
           nil if (v := s.min) is None else f"{v:.4g}", nil if (v := s.median) is None else f"{v:.4g}",
           nil if (v := s.max) is None else f"{v:.4g}",
           nil if (lo := s.ci_low) is None or (hi := s.ci_high) is None else f"[{lo:.4g}, {hi:.4g}]",
           nil if (lo := s.t_low) is None or (hi := s.t_high) is None else f"[{lo:.4g}, {hi:.4g}]",
           nil if (v := s.iqm) is None else f"{v:.4g}"]
    if t.trivial:
        out += [nil if (v := tr.get("predict-mean")) is None else f"{v:.4g}",
                nil if (v := tr.get("predict-zero")) is None else f"{v:.4g}"]
    if t.threshold is not None:
        out += [num(r.steps_to_threshold, 6), r.reached or "–"]
    if t.baseline:
        c = r.comparison
        if c is None:
            out += ["baseline", "", "", "", "", str(r.first_in) if r.first_in is not None else "–"]
        else:
            out += [rel(c.rel_diff), nil if c.rel_low is None else f"[{rel(c.rel_low)}, {rel(c.rel_high)}]",
                    nil if (v := c.welch_p) is None else f"{v:.2g}", nil if (v := c.hedges_g) is None else f"{v:.2g}",
                    nil if (v := c.prob_improvement) is None else f"{v:.2g}",
                    str(r.first_in) if r.first_in is not None else nil]
    return out


def row_notes(t: Table, r: Row) -> list[str]:
    """What a row's cells cannot show: why an interval is absent, its missing runs, why it was
    not compared (the ids are the caller's to add)."""
    out = [r.summary.note] if r.summary.note and r.summary.n == 1 else []
    out += [f"missing {m}" for m in r.missing]  # NEVER_RAN, for a row with no attempt
    if r.comparison is not None and r.comparison.note:
        out.append(f"vs {t.baseline}: {r.comparison.note}")
    return out


NEVER_RAN = "missing no attempt in the ledger"


def notes(t: Table) -> list[str]:
    """What the table cannot show in a cell, a line each: missing runs, why an interval is absent.
    The experiments that never ran (a study's proposed ones, its queue) are one line, not one each:
    they would bury the notes that matter."""
    out, never = [], []
    for r in t.rows:
        said = row_notes(t, r)
        if said == [NEVER_RAN]:
            never.append(r.id)
            continue
        out += [f"{r.id}{'' if n.startswith('vs ') else ':'} {n}" for n in said]
    if never:
        shown = ", ".join(never[:12]) + (f" and {len(never) - 12} more" if len(never) > 12 else "")
        out.append(f"no attempt yet (n = 0): {shown}")
    if t.baseline and t.rank_note:
        out.append(f"rank consistency: {t.rank_note}")
    return out


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|$~#])")


def md_text(text: object) -> str:
    """Text from users and jobs (a title, a metric's name) as markdown shows it: as written, never
    markup. Markdown's special characters are escaped, '&' written as an entity, one line."""
    s = " ".join(str(text).splitlines())
    return _MD_SPECIAL.sub(r"\\\1", s.replace("&", "&amp;"))


def md_code(text: str) -> str:
    """A name in a code span (`val_mse`), or escaped text when a code span cannot hold it."""
    return f"`{text}`" if text and "`" not in text and text.isprintable() else md_text(text)


def to_markdown(t: Table) -> str:
    cols = columns(t)
    lines = ["| " + " | ".join(md_text(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    # the id as text (x._y_.z is no emphasis), the other cells irq's numbers
    lines += ["| " + " | ".join([md_text(r.id), *(c.replace("|", "\\|") for c in cells(t, r)[1:])]) + " |"
              for r in t.rows]
    extra = notes(t)
    if extra:
        lines += [""] + [f"- {md_text(n)}" for n in extra]
    return "\n".join(lines) + "\n"


def to_text(t: Table) -> str:
    """Plain columns aligned with spaces: the terminal view of tables too long for rich's layout."""
    grid = [columns(t)] + [cells(t, r) for r in t.rows]
    widths = [max(map(len, col)) for col in zip(*grid)]
    line = "  ".join([f"{{:<{widths[0]}}}"] + [f"{{:>{w}}}" for w in widths[1:]])  # one format per line, not per cell
    lines = [line.format(*row).rstrip() for row in grid]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + notes(t)) + "\n"


_TEX = {"\\": "\\textbackslash{}", "%": "\\%", "_": "\\_", "&": "\\&", "#": "\\#", "$": "\\$", "{": "\\{",
        "}": "\\}", "^": "\\textasciicircum{}", "~": "\\textasciitilde{}", "<": "\\textless{}",
        ">": "\\textgreater{}", "–": "--"}
# a hyphen before another is kept apart: `a.b--c` (an id) would be typeset with an en dash
_TEX_SPECIAL = re.compile("|".join(map(re.escape, _TEX)) + "|-(?=-)")


def _tex(s: str) -> str:
    """Text as LaTeX typesets it, never commands: every special character escaped, in one pass
    (an escape's own braces are not escaped again)."""
    return _TEX_SPECIAL.sub(lambda m: _TEX.get(m.group(), "-{}"), s)


def to_latex(t: Table) -> str:
    cols = columns(t)
    lines = ["\\begin{tabular}{l" + "r" * (len(cols) - 1) + "}", "\\toprule",
             " & ".join(_tex(c) for c in cols) + " \\\\", "\\midrule"]
    lines += [" & ".join(_tex(c) for c in cells(t, r)) + " \\\\" for r in t.rows]
    lines += ["\\bottomrule", "\\end{tabular}"]
    if extra := notes(t):  # missing runs and absent intervals are said, never dropped
        lines += ["", "\\par\\smallskip{\\footnotesize", " \\\\\n".join(_tex(n) for n in extra), "}"]
    return "\n".join(lines) + "\n"


def to_csv(t: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*columns(t), "notes"])  # a row's missing runs and absent intervals: said, never dropped
    rank = f"rank consistency: {t.rank_note}" if t.baseline and t.rank_note else ""
    for r in t.rows:
        said = row_notes(t, r) + ([rank] if rank and r.id == t.baseline else [])
        w.writerow([*cells(t, r), "; ".join(said)])
    return buf.getvalue()


def to_json(t: Table) -> dict[str, Any]:
    rows = [{"id": r.id, "title": r.title, "state": r.state, "summary": asdict(r.summary), "values": r.runs.values,
             "attempts": r.runs.attempts, "seeds": r.runs.seeds, "commits": r.runs.commits, "missing": r.missing,
             "trivial": r.runs.trivial, "comparison": None if r.comparison is None else asdict(r.comparison),
             "first_in": r.first_in, "steps_to_threshold": r.steps_to_threshold, "reached": r.reached}
            for r in t.rows]
    table = {f.name: rows if f.name == "rows" else getattr(t, f.name) for f in fields(t)}
    return _finite(json.loads(json.dumps(table, default=str)))


def _finite(v: Any) -> Any:
    """NaN and infinities as null: JSON has no such numbers (and a reader's parser refuses them)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v
