"""The results commands' work, apart from their rendering: what `irq results` and `irq sweep` answer.

`irq results` only reads: the ledger on the stdlib read path and, of irq.toml, the headline metric
and its goal (irq/config_files.py), so it imports neither SQLAlchemy nor pydantic and works on a
ledger the user may only read. `irq sweep` writes, through the Ledger and the validated config.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from irq import errors
from irq.config_files import GOALS, ReadSettings

if TYPE_CHECKING:
    from irq.config import Config
    from irq.ledger.database import Ledger


@dataclass
class ResultsAnswer:
    """The table of `irq results` and the verdicts on the stated criteria."""

    table: Any  # irq.results.table.Table
    verdicts: list[Any] = field(default_factory=list)
    metric: str = "val_mse"
    goal: str = "min"


@dataclass
class SweepOutcome:
    base: Any  # the base Experiment
    points: list[Any]  # irq.results.sweep points
    config_file: Path | None
    created: bool


@dataclass
class Drawn:
    """A figure `irq plot` wrote (PNG and PDF), and which experiments it left out, if any."""

    paths: list[Path]
    note: str = ""


def plot(db: Path, settings: ReadSettings, kind: str, ids: list[str], out: Path | None, metric: str | None,
         goal: str | None = None) -> Drawn:
    """One figure of `kind` from the named experiments' fetched runs (default: all that have
    some, at most plots.MAX_SHOWN of them, the best by the metric), into `out` (default: the
    project's results/figures, wherever the command runs from); an error when it would draw nothing."""
    out = out if out is not None else project_root(settings) / "results" / "figures"
    from irq.results import plots
    from irq.results.collect import collect

    if kind not in plots.KINDS:
        raise errors.UsageError(f"unknown plot kind {kind!r}", "kinds: " + ", ".join(plots.KINDS))
    metric, goal = metric_goal(settings, metric, goal)
    if len(set(ids)) > plots.MAX_SHOWN:
        raise errors.UsageError(f"a figure draws at most {plots.MAX_SHOWN} experiments ({len(set(ids))} named)",
                                f"name fewer, or none: then the {plots.MAX_SHOWN} with the best mean are drawn")
    exps = [e for e in collect(db, project_root(settings), ids or None) if ids or e.runs]
    if not exps:
        raise errors.IrqError("no experiment has fetched results to plot", "`irq fetch` brings them in")
    shown, note = plots.choose(exps, metric, goal)
    fig = plots.make(kind, [exps[i] for i in shown], metric, goal)
    if not plots.shows_something(kind, fig):
        import matplotlib.pyplot as plt

        plt.close(fig)
        if kind in ("conditioning", "energy"):
            raise errors.IrqError("nothing to draw: no fetched run of these experiments has the trainer's diagnostics",
                                  "train with the trainer's --diagnostics true (docs/trainer.md)")
        if kind == "curves" and any(e.measured(metric)[1] for e in exps):
            raise errors.IrqError(f"nothing to draw: the fetched runs of these experiments have {metric} but no "
                                  f"learning curve of it (curve.jsonl)",
                                  "a curve is one JSON object per checkpoint in $IRQ_RUN_DIR/curve.jsonl "
                                  "(docs/run-contract.md); `irq plot final` draws the final values")
        raise errors.IrqError(f"nothing to draw: no fetched run of these experiments has {metric}",
                              f"`irq show {exps[(shown or [0])[0]].id}` lists a run's results; --metric names another")
    return Drawn(plots.save(fig, out, kind), note)


def metric_goal(settings: ReadSettings, metric: str | None, goal: str | None = None) -> tuple[str, str]:
    """The metric to compare (the flag, else irq.toml's [project] metric) and its direction (the
    flag, else irq.toml's goal: that of its metric, so another metric says which way is better)."""
    if metric is not None and (not metric.strip() or not metric.isprintable()):
        raise errors.UsageError(f"--metric {metric!r} names no metric", "e.g. --metric val_mse")
    if goal is not None and goal not in GOALS:
        raise errors.UsageError(f"--goal {goal!r}: min (lower is better) or max (higher is better)", "e.g. --goal max")
    return metric or settings.metric, goal or settings.goal


def check_threshold(threshold: float | None) -> None:
    """--threshold is a finite number (a curve never reaches nan)."""
    import math

    if threshold is not None and not math.isfinite(threshold):
        raise errors.UsageError(f"--threshold {threshold}: a threshold is a finite number", "e.g. --threshold 0.05")


def project_root(settings: ReadSettings) -> Path:
    """The folder run directories are relative to: irq.toml's, else the current one (as irq.config)."""
    return settings.file.parent if settings.file is not None else Path.cwd()


def with_baseline(ids: list[str] | None, baseline: str | None) -> list[str] | None:
    """The experiments to show: the baseline first when the user named some and not it."""
    wanted = list(ids or [])
    if baseline and wanted and baseline not in wanted:
        wanted.insert(0, baseline)
    return wanted or None


def answer(db: Path, settings: ReadSettings, ids: list[str] | None, metric: str | None, baseline: str | None,
           criteria: list[str], threshold: float | None, resamples: int, goal: str | None = None) -> ResultsAnswer:
    """Collect every experiment's runs from the ledger file `db`, summarise them, and judge the
    stated criteria."""
    from irq.results.cache import ResultsCache
    from irq.results.collect import gc_paused
    from irq.results.rows import collect_rows
    from irq.results.table import build

    if criteria and not baseline:
        raise errors.UsageError("a criterion compares with a baseline", "add --baseline Q-001")
    check_threshold(threshold)
    metric, goal = metric_goal(settings, metric, goal)
    root, wanted = project_root(settings), with_baseline(ids, baseline)
    with gc_paused():  # the rows, the runs and the cache's entries hold no cycles: nothing to collect
        cache = ResultsCache.open(db)  # beside the user's files, never in the ledger: this command only reads it
        rows = collect_rows(db, root, wanted, metric, cache)  # only the experiments that changed are read whole
        table = build(rows, metric, goal, baseline, threshold, resamples, cache)
    cache.save()
    if not criteria:
        return ResultsAnswer(table, [], metric, goal)
    from irq.results.collect import collect
    from irq.results.verdict import verdicts

    exps = collect(db, root, wanted)  # a criterion may name another metric: its runs, read afresh
    return ResultsAnswer(table, verdicts(exps, table, criteria, resamples), metric, goal)


def sweep(ledger: Ledger, config: Config, base: str, overrides: list[str], seeds: str | None,
          proposed: bool, dry_run: bool, force: bool = False) -> SweepOutcome:
    """Plan one experiment per combination of the overrides, each checked as `irq add` checks one;
    create them all (or none) unless dry_run. A point that would run exactly what an experiment
    already runs is refused unless `force`."""
    from irq.fields import FieldError, parse_seeds
    from irq.jobs.jobscript import trainer_keys
    from irq.results import sweep as sw

    try:
        seed_list = parse_seeds(seeds) if seeds is not None else None  # '' names no seed: refused, not "the base's"
    except FieldError as exc:
        raise errors.UsageError(str(exc), "e.g. --seeds 0-9") from None
    base_exp, points = sw.plan(ledger, base, overrides, seed_list, trainer_keys(), config.project.command)
    cfg_file = sw.base_config(base_exp, config.root)
    made = sw.drafts(base_exp, points, config.root, proposed, config.project.command)
    from irq.experiments.edit import add_experiments

    add_experiments(ledger, made, refuse_same_run=not force, dry_run=dry_run)  # a dry run refuses what a sweep does
    if not dry_run:
        from irq.jobs.actions import export_after_change

        export_after_change(ledger, config)
    return SweepOutcome(base_exp, points, cfg_file, not dry_run)
