"""Commands that answer the study's question: results, sweep, plot, report.

scipy and matplotlib are imported inside irq.results' functions, never at import time here.
"""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from irq import errors
from irq.cli.app import app, ctx
from irq.cli.common import _config
from irq.ui import counted


class Format(str, Enum):
    """How `irq results` writes its table (the choices -h lists)."""

    rich = "rich"
    md = "md"
    latex = "latex"
    csv = "csv"
    json = "json"


class Goal(str, Enum):
    """Which way the metric is better."""

    min = "min"
    max = "max"


class PlotKind(str, Enum):
    curves = "curves"
    final = "final"
    conditioning = "conditioning"
    energy = "energy"


GOAL_HELP = "Which way the metric is better: min (lower) or max (higher); default: [project] goal."


def _goal(goal: Goal | None) -> str | None:
    return goal.value if goal is not None else None


@app.command()
def results(
    c: typer.Context,
    ids: list[str] | None = typer.Argument(None, metavar="[ID...]", help="Experiments (default: all)."),
    metric: str | None = typer.Option(None, "--metric", help="Metric to compare (default: [project] metric, val_mse)."),
    goal: Goal | None = typer.Option(None, "--goal", case_sensitive=False, help=GOAL_HELP),
    baseline: str | None = typer.Option(None, "--baseline", help="Compare every other row with this experiment."),
    criterion: list[str] | None = typer.Option(None, "--criterion",
                                                  help='A stated criterion, e.g. "val_mse -20%" (needs --baseline).'),
    threshold: float | None = typer.Option(None, "--threshold", help="Steps until the curve reaches this value."),
    fmt: Format = typer.Option(Format.rich, "--format", case_sensitive=False, help="How the table is written."),
    resamples: int = typer.Option(10_000, "--resamples", min=100, max=1_000_000,
                                  help="Bootstrap resamples (100 to 1,000,000: each costs memory per experiment)."),
    as_json: bool = typer.Option(False, "--json", help="The same as --format json."),
) -> None:
    """One row per experiment over all its seeds: mean, spread, 95 % intervals; vs a baseline, verdicts.

    Example: irq results --baseline Q-001 --criterion "val_mse -20%"
    """
    from irq.cli.results_render import print_results
    from irq.config_files import read_settings
    from irq.results.collect import gc_paused
    from irq.results.service import answer

    if as_json and fmt not in (Format.rich, Format.json):
        raise errors.UsageError(f"--json and --format {fmt.value} ask for two formats", "give one of them")
    form = "json" if as_json else fmt.value
    x = ctx(c)  # the read path: no ORM or pydantic, read-only ledgers too
    with gc_paused(freeze=True):  # a table's objects hold no cycles: nothing for the collector to find
        ans = answer(x.db, read_settings(x.config), ids, metric, baseline, list(criterion or []), threshold, resamples,
                     _goal(goal))
        print_results(x.ui, ans, form)


@app.command()
def sweep(
    c: typer.Context,
    base: str = typer.Argument(..., metavar="BASE", help="The experiment the points copy."),
    overrides: list[str] = typer.Argument(..., metavar="KEY=VALUES...", help="key=v1,v2 | key=range(a,b,s) | key=choice(a,b)"),
    seeds: str | None = typer.Option(None, "--seeds", help="Seeds of every point, e.g. 0-9 (default: the base's)."),
    proposed: bool = typer.Option(False, "--proposed", help="Create the points PROPOSED instead of READY."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the points; create nothing."),
    force: bool = typer.Option(False, "--force", help="Create points that run exactly what an experiment runs."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One experiment (or one array, with --seeds) per combination of the overrides, linked to BASE.

    Example: irq sweep Q-003 mining_opt_steps=1,3,5 --seeds 0-9 --dry-run
    """
    from irq.cli.results_render import print_sweep
    from irq.results.service import sweep as sweep_

    x = ctx(c)
    out = sweep_(x.ledger(), _config(x), base, overrides, seeds, proposed, dry_run, force)
    print_sweep(x.ui, out, proposed, as_json)


@app.command()
def plot(
    c: typer.Context,
    kind: PlotKind = typer.Argument(..., metavar="KIND", case_sensitive=False,
                                    help="curves, final, conditioning or energy."),
    ids: list[str] | None = typer.Argument(None, metavar="[ID...]", help="Experiments (default: all with results)."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Folder for the PNG and PDF (default: the project's results/figures)."),
    metric: str | None = typer.Option(None, "--metric"),
    goal: Goal | None = typer.Option(None, "--goal", case_sensitive=False, help=GOAL_HELP),
) -> None:
    """Figures from the fetched runs (PNG and PDF): learning curves, final values, conditioning, energy.

    Example: irq plot curves Q-001 Q-003
    """
    from irq.config_files import read_settings
    from irq.results.service import plot as plot_

    x = ctx(c)
    drawn = plot_(x.db, read_settings(x.config), kind.value, list(ids or []), out, metric, _goal(goal))
    for p in drawn.paths:
        x.ui.print(f"wrote {p}")
    if drawn.note:
        x.ui.print(drawn.note)


@app.command()
def report(
    c: typer.Context,
    ids: list[str] | None = typer.Argument(None, metavar="[ID...]", help="Experiments (default: all)."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="The summary, figures beside it (default: the project's results/summary.md)."),
    metric: str | None = typer.Option(None, "--metric"),
    goal: Goal | None = typer.Option(None, "--goal", case_sensitive=False, help=GOAL_HELP),
    baseline: str | None = typer.Option(None, "--baseline"),
    criterion: list[str] | None = typer.Option(None, "--criterion"),
    threshold: float | None = typer.Option(None, "--threshold"),
) -> None:
    """The study's summary: table, verdicts, figures, and the runs behind every number.

    Example: irq report --baseline Q-001
    """
    from irq.config_files import read_settings
    from irq.results.report import write
    from irq.results.service import check_threshold, metric_goal, project_root, with_baseline

    if criterion and not baseline:
        raise errors.UsageError("a criterion compares with a baseline", "add --baseline Q-001")
    check_threshold(threshold)
    x = ctx(c)
    settings = read_settings(x.config)
    metric, goal_ = metric_goal(settings, metric, _goal(goal))
    root = project_root(settings)
    rep = write(x.db, root, out or root / "results" / "summary.md", metric, goal_, baseline, list(criterion or []),
                with_baseline(ids, baseline), threshold)
    x.ui.print(f"wrote {rep.path} ({counted(len(rep.table.rows), 'experiment')}, "
               f"{counted(len(rep.verdicts), 'verdict')}, {counted(len(rep.figures) // 2, 'figure')})")
    if rep.shown_note:
        x.ui.print(f"  figures: {rep.shown_note}")
    for s in rep.skipped:
        x.ui.print(f"  no figure: {s}")
