"""Figures with matplotlib (Agg, headless; imported only here, inside the functions).

Every function returns the Figure, so a caller (or a test) can look at what it shows; `save`
writes it as PNG and PDF. Kinds (`irq plot KIND`):

- curves: the metric over training per experiment, mean over seeds with a 95 % t band, the best
  checkpoint (lowest mean) and the final one marked;
- final: the final metric per experiment, one dot per seed, the mean with its bootstrap interval;
- conditioning: histograms of the per-checkpoint medians of cond, sigma_min and log|det| for
  positives and negatives (the trainer's diagnostics record medians over diag_size samples);
- energy: the energy gap E(pos) - E(neg) over training (mean and band), and the distribution of
  the mining gradient norm per descent step.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from irq.fields import finite
from irq.results.collect import ExperimentRuns, load_curve
from irq.results.stats import RESAMPLES, Summary, summarise

KINDS = ("curves", "final", "conditioning", "energy")
# experiments one figure draws: beyond this a legend, a row of histograms per experiment or a tick
# per experiment is unreadable, and the canvas grows with them (10,000 experiments: tens of GB)
MAX_SHOWN = 20
UNITS = {"val_mse": "MSE", "train_mse": "MSE", "best_val_mse": "MSE", "test_mse": "MSE", "ood_mse": "MSE",
         "accuracy": "fraction", "val_accuracy": "fraction"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def typed(text: str) -> str:
    """User text (a metric's name) as typed: matplotlib reads `$...$` as math (`$\\foo$` fails,
    `$\\alpha$` becomes α), so its dollars are escaped; irq's own labels and the axes' ticks keep math."""
    return text.replace("$", "\\$")


def label(metric: str) -> str:
    unit = UNITS.get(metric)
    return typed(f"{metric} ({unit})" if unit else metric)


def _series(curves: list[list[dict]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Every step at which some curve has a finite `key`, and a (runs x steps) matrix of it (NaN
    where a run has none: a seed that stopped early leaves the others' later steps drawn, from the
    seeds that reached them)."""
    by = [{r["step"]: v for r in c if (v := finite(r.get(key))) is not None} for c in curves]
    steps = sorted(set().union(*by))
    m = np.full((len(curves), len(steps)), np.nan)
    for i, values in enumerate(by):
        for j, s in enumerate(steps):
            if s in values:
                m[i, j] = values[s]
    return np.array(steps), m


def _band(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over runs and a 95 % t interval per column (no band from one run)."""
    from scipy import stats

    mean = np.nanmean(m, axis=0)
    n = np.sum(~np.isnan(m), axis=0)
    if m.shape[0] < 2:
        return mean, mean, mean
    sem = np.full(m.shape[1], np.nan)  # a step one seed reached has no sem: no band there
    if (two := n > 1).any():
        sem[two] = stats.sem(m[:, two], axis=0, nan_policy="omit")
    sem = np.where(sem > 0, sem, np.nan)
    lo, hi = stats.t.interval(0.95, np.maximum(n - 1, 1), loc=mean, scale=sem)
    return mean, np.where(np.isnan(lo), mean, lo), np.where(np.isnan(hi), mean, hi)


def curves(exps: list[ExperimentRuns], metric: str = "val_mse", goal: str = "min", log_y: bool = True):
    """Mean over seeds with a 95 % t band, ★ at the best and ● at the final step; `log_y` draws a
    log axis only when every value drawn is positive (a log-likelihood or a reward is not)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    positive = True
    for e in exps:
        cs = [c for c in (load_curve(r) for r in e.runs) if c]
        if not cs:
            continue
        steps, m = _series(cs, metric)
        if not len(steps):
            continue
        mean, lo, hi = _band(m)
        positive = positive and bool(np.nanmin(lo) > 0)
        (line,) = ax.plot(steps, mean, label=f"{e.id} (n = {len(cs)})", gid=f"mean:{e.id}")
        if len(cs) > 1:
            ax.fill_between(steps, lo, hi, alpha=0.2, color=line.get_color(), gid=f"band:{e.id}")
        best = int(np.nanargmin(mean) if goal == "min" else np.nanargmax(mean))
        ax.plot([steps[best]], [mean[best]], marker="*", markersize=11, linestyle="none", color=line.get_color(),
                gid=f"best:{e.id}")
        ax.plot([steps[-1]], [mean[-1]], marker="o", linestyle="none", color=line.get_color(), gid=f"final:{e.id}")
    ax.set_xlabel("training step")
    ax.set_ylabel(label(metric))
    if log_y and ax.lines and positive:
        ax.set_yscale("log")
    ax.set_title(f"{typed(metric)} over training\nmean over seeds, 95 % t band; ★ best, ● final", fontsize="medium")
    if ax.lines:
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def final(exps: list[ExperimentRuns], metric: str = "val_mse", resamples: int = RESAMPLES,
          summaries: list[Summary] | None = None):
    """`summaries`: the results table's, one per experiment of `exps` (`irq report` has them
    already: the bootstrap is not run twice)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4, 1.4 * len(exps) + 2), 4.5))
    groups = [e.measured(metric)[1] for e in exps]
    sums = summaries if summaries is not None else summarise(groups, resamples)
    jitter = np.random.default_rng(0)
    for i, (e, vals, s) in enumerate(zip(exps, groups, sums)):
        if not vals:
            continue
        xs = i + jitter.uniform(-0.12, 0.12, len(vals))
        ax.plot(xs, vals, marker="o", linestyle="none", alpha=0.6, gid=f"seeds:{e.id}")
        if s.ci_low is not None:
            ax.errorbar([i + 0.3], [s.mean], yerr=[[s.mean - s.ci_low], [s.ci_high - s.mean]], fmt="D", color="black",
                        capsize=4, gid=f"ci:{e.id}")
        else:
            ax.plot([i + 0.3], [s.mean], marker="D", color="black", linestyle="none", gid=f"ci:{e.id}")
    ax.set_xticks(range(len(exps)), [f"{e.id}\nn = {len(g)}" for e, g in zip(exps, groups)])
    ax.set_xlabel("experiment")
    ax.set_ylabel(label(metric))
    ax.set_title(f"final {typed(metric)}\nseeds, and mean with 95 % bootstrap interval", fontsize="medium")
    fig.tight_layout()
    return fig


COND = (("cond_median", "condition number (median per checkpoint)", True),
        ("smin_median", "σ_min (median per checkpoint)", True),
        ("logabsdet_median", "log|det| (median per checkpoint)", False))


def _diag_values(e: ExperimentRuns, key: str) -> list[float]:
    out = []
    for r in e.runs:
        for row in load_curve(r):
            if (v := finite(row.get(key))) is not None:
                out.append(v)
    return out


def conditioning(exps: list[ExperimentRuns]):
    plt = _plt()
    fig, axes = plt.subplots(len(exps) or 1, 3, figsize=(11, 3 * max(1, len(exps))), squeeze=False)
    for row, e in zip(axes, exps):
        for ax, (key, title, logx) in zip(row, COND):
            for side, color in (("pos", "tab:blue"), ("neg", "tab:red")):
                vals = np.array(_diag_values(e, f"diag_{side}_{key}"))
                if logx:
                    vals = vals[vals > 0]
                if not len(vals):
                    continue
                bins = np.geomspace(vals.min(), vals.max() * 1.0001, 20) if logx and vals.min() < vals.max() else 20
                ax.hist(vals, bins=bins, alpha=0.5, color=color, gid=f"{side}:{e.id}:{key}",
                        label=f"{'positives (true inverses)' if side == 'pos' else 'negatives'} ({len(vals)})")
            if logx:
                ax.set_xscale("log")
            ax.set_xlabel(title)
            ax.set_ylabel("checkpoints × seeds (count)")
            ax.set_title(e.id, fontsize="small")
            if ax.patches:
                ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def energy(exps: list[ExperimentRuns]):
    plt = _plt()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.5))
    grads: list[np.ndarray] = []
    names: list[str] = []
    for e in exps:
        cs = [c for c in (load_curve(r) for r in e.runs) if c]
        if not cs:
            continue
        steps, m = _series(cs, "diag_energy_gap")
        if len(steps):
            mean, lo, hi = _band(m)
            (line,) = ax.plot(steps, mean, label=f"{e.id} (n = {len(cs)})", gid=f"mean:{e.id}")
            if len(cs) > 1:
                ax.fill_between(steps, lo, hi, alpha=0.2, color=line.get_color(), gid=f"band:{e.id}")
        per_step: dict[int, list[float]] = {}
        for c in cs:
            for row in c:
                for k, raw in enumerate(row.get("diag_step_grad_norm") or []):
                    if (v := finite(raw)) is not None:
                        per_step.setdefault(k, []).append(v)
        for k in sorted(per_step):
            grads.append(np.array(per_step[k]))
            names.append(f"{e.id}\nstep {k + 1}")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("training step")
    ax.set_ylabel("E(pos) − E(neg) (energy units)")
    ax.set_title("energy gap over training (< 0: positive ranked lower)")
    if ax.lines[1:]:
        ax.legend(fontsize="small")
    if grads:
        bx.boxplot(grads, tick_labels=names)
    bx.set_xlabel("experiment, mining descent step")
    bx.set_ylabel("‖∇_y E‖ (mean over samples)")
    bx.set_title("mining gradient norms over checkpoints and seeds")
    fig.tight_layout()
    return fig


def choose(exps: list[ExperimentRuns], metric: str, goal: str = "min", baseline: str | None = None,
           limit: int | None = None) -> tuple[list[int], str]:
    """Which experiments a figure draws when there are more than `limit`: the baseline, then
    those with the best mean `metric` (the goal's direction; none without a value ahead of one
    with), kept in queue order. Returns their positions in `exps`, and a sentence saying what
    was left out ("" when nothing was)."""
    limit = MAX_SHOWN if limit is None else limit
    if len(exps) <= limit:
        return list(range(len(exps))), ""
    import math
    import statistics

    sign = 1.0 if goal == "min" else -1.0

    def rank(i: int) -> tuple[int, float]:
        vals = [v for v in exps[i].measured(metric)[1] if math.isfinite(v)]
        if exps[i].id == baseline:
            return 0, 0.0
        return (1, sign * statistics.fmean(vals)) if vals else (2, 0.0)

    ranks = {i: rank(i) for i in range(len(exps))}
    picked = sorted(sorted(ranks, key=lambda i: (*ranks[i], i))[:limit])
    has_base = any(ranks[i][0] == 0 for i in picked)
    valued = sum(ranks[i][0] == 1 for i in picked)
    without = len(picked) - has_base - valued
    what = ((f"the baseline {baseline} and " if has_base else "") + f"the {valued} with the best mean {metric}"
            + (f" and {without} without one" if without else ""))
    return picked, (f"{len(picked)} of {len(exps):,} experiments drawn ({what}); "
                    "`irq plot KIND ID...` draws the ones you name")


def make(kind: str, exps: list[ExperimentRuns], metric: str = "val_mse", goal: str = "min",
         summaries: list[Summary] | None = None) -> Any:
    if kind == "curves":
        return curves(exps, metric, goal)
    if kind == "final":
        return final(exps, metric, summaries=summaries)
    if kind == "conditioning":
        return conditioning(exps)
    if kind == "energy":
        return energy(exps)
    from irq import errors

    raise errors.UsageError(f"unknown plot kind {kind!r}", "kinds: " + ", ".join(KINDS))


def folder(path: Path, example: str = "-o results/figures") -> Path:
    """`path` as a folder to write into, made if missing; one UsageError if it cannot be."""
    from irq import errors

    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise errors.UsageError(f"cannot make the folder {path}: {exc.strerror or exc}",
                                f"name a place you may write, e.g. {example}") from None
    return path


def save(fig: Any, out_dir: Path, name: str) -> list[Path]:
    """PNG (for markdown) and PDF (for the paper); the figure is closed afterwards."""
    import matplotlib.pyplot as plt

    from irq import errors

    paths = [folder(out_dir) / f"{name}.png", out_dir / f"{name}.pdf"]
    try:
        for p in paths:
            fig.savefig(p, dpi=150 if p.suffix == ".png" else None)
    except OSError as exc:
        raise errors.UsageError(f"cannot write {p}: {exc.strerror or exc}",
                                "name a folder you may write, e.g. -o results/figures") from None
    finally:
        plt.close(fig)
    return paths


def shows_something(kind: str, fig: Any) -> bool:
    """Whether a figure of `kind` draws any data (a run may lack what it plots)."""
    axes = fig.get_axes()
    if kind == "conditioning":
        return any(ax.patches for ax in axes)
    if kind == "energy":
        return any(len(ax.lines) > 1 for ax in axes[:1]) or any(ax.lines for ax in axes[1:])
    return any(ax.lines for ax in axes)
