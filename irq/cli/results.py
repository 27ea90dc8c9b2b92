"""Commands that answer the study's question: results, sweep, plot, report.

scipy and matplotlib are imported inside irq.results' functions, never at import time here.
"""
from __future__ import annotations

import sys
from pathlib import Path

import typer

from irq import errors
from irq.cli.app import app, ctx
from irq.cli.common import _config, _esc

FORMATS = ("rich", "md", "latex", "csv", "json")
RICH_ROWS = 300  # more rows than this print as plain aligned text


def _metric_goal(config, metric: str | None) -> tuple[str, str]:
    return metric or config.project.metric, config.project.goal


@app.command()
def results(
    c: typer.Context,
    ids: list[str] | None = typer.Argument(None, metavar="[ID...]", help="Experiments (default: all)."),
    metric: str | None = typer.Option(None, "--metric", help="Metric to compare (default: [project] metric, val_mse)."),
    baseline: str | None = typer.Option(None, "--baseline", help="Compare every other row with this experiment."),
    criterion: list[str] | None = typer.Option(None, "--criterion",
                                                  help='A stated criterion, e.g. "val_mse -20%" (needs --baseline).'),
    threshold: float | None = typer.Option(None, "--threshold", help="Steps until the curve reaches this value."),
    fmt: str = typer.Option("rich", "--format", help="rich | md | latex | csv | json"),
    resamples: int = typer.Option(10_000, "--resamples", min=100, help="Bootstrap resamples."),
) -> None:
    """One row per experiment over all its seeds: mean, spread, 95 % intervals; vs a baseline, verdicts."""
    from irq.results.collect import collect
    from irq.results.table import build, to_csv, to_json, to_latex, to_markdown

    if fmt not in FORMATS:
        raise errors.UsageError(f"unknown format {fmt!r}", "use " + ", ".join(FORMATS))
    if criterion and not baseline:
        raise errors.UsageError("a criterion compares with a baseline", "add --baseline Q-001")
    x = ctx(c)
    config = _config(x)
    metric, goal = _metric_goal(config, metric)
    wanted = list(ids or [])
    if baseline and wanted and baseline not in wanted:
        wanted.insert(0, baseline)
    exps = collect(x.ledger(), config.root, wanted or None)
    table = build(exps, metric, goal, baseline, threshold, resamples)
    vs = []
    if criterion:
        from irq.results.report import verdicts

        vs = verdicts(exps, table, list(criterion), resamples)
    if fmt == "json":
        x.ui.json({"table": to_json(table), "verdicts": [{"id": v.id, "baseline": v.baseline, "criterion": v.criterion.text,
                                                          "outcome": v.outcome, "sentence": v.sentence,
                                                          "p_met": v.p_met, "p_not_met": v.p_not_met} for v in vs]})
        return
    if fmt != "rich":
        text = {"md": to_markdown, "latex": to_latex, "csv": to_csv}[fmt](table)
        sys.stdout.write(text)
        if vs:
            sys.stdout.write("\n" + "".join(f"{'%' if fmt == 'latex' else '-'} {v.sentence}\n" for v in vs))
        return
    from irq.results.table import to_text

    if len(table.rows) > RICH_ROWS:  # rich lays out every cell: seconds for thousands of rows
        sys.stdout.write(to_text(table))
    else:
        _rich_table(x, table, metric, goal)
    for v in vs:
        style = {"met": "green", "not met": "red"}.get(v.outcome, "yellow")
        x.ui.styled(f"[{style}]{v.outcome}[/]: {_esc(v.sentence)}")


def _rich_table(x, table, metric: str, goal: str) -> None:
    from rich.table import Table

    from irq.results.table import cells, columns, notes

    t = Table(title=f"{metric} ({'lower' if goal == 'min' else 'higher'} is better)", title_justify="left")
    for col in columns(table):
        t.add_column(col, justify="left" if col == "id" else "right", no_wrap=col in ("id", "n"), overflow="fold")
    for r in table.rows:
        t.add_row(*cells(table, r))
    x.ui.print(t)
    for n in notes(table):
        x.ui.print(n)


@app.command()
def sweep(
    c: typer.Context,
    base: str = typer.Argument(..., metavar="BASE", help="The experiment the points copy."),
    overrides: list[str] = typer.Argument(..., metavar="KEY=VALUES...", help="key=v1,v2 | key=range(a,b,s) | key=choice(a,b)"),
    seeds: str | None = typer.Option(None, "--seeds", help="Seeds of every point, e.g. 0-9 (default: the base's)."),
    proposed: bool = typer.Option(False, "--proposed", help="Create the points PROPOSED instead of READY."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the points; create nothing."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One experiment (or one array, with --seeds) per combination of the overrides, linked to BASE."""
    from irq.formats.fields import FieldError, fmt_seeds, parse_seeds
    from irq.jobs.jobscript import trainer_keys
    from irq.results import sweep as sw

    x = ctx(c)
    config = _config(x)
    try:
        seed_list = parse_seeds(seeds) if seeds else None
    except FieldError as exc:
        raise errors.UsageError(str(exc)) from None
    ledger = x.ledger()
    base_exp, points = sw.plan(ledger, base, overrides, seed_list, trainer_keys())
    cfg_file = sw.base_config(base_exp, config.root)
    if not dry_run:
        sw.create(ledger, base_exp, points, config.root, proposed)
        from irq.cli.common import _after_change

        _after_change(x, config)
    if as_json:
        x.ui.json({"base": base_exp.id, "dry_run": dry_run, "config": str(cfg_file) if cfg_file else None,
                   "points": [{"id": p.id, "title": p.title, "overrides": p.overrides, "seeds": p.seeds} for p in points]})
        return
    verb = "would create" if dry_run else "created"
    state = "PROPOSED" if proposed else "READY"
    x.ui.print(f"{verb} {len(points)} experiment{'s' if len(points) != 1 else ''} from {base_exp.id} ({state}):")
    for p in points:
        x.ui.print(f"  {p.id}  {p.title}" + (f"  seeds {fmt_seeds(p.seeds)}" if p.seeds else ""))
    if base_exp.config_path and cfg_file is None:
        x.ui.err.print(f"warning: {base_exp.id}'s config {base_exp.config_path} is not readable from here; "
                       "the points carry its parameters only", markup=False)


@app.command()
def plot(
    c: typer.Context,
    kind: str = typer.Argument(..., metavar="KIND", help="curves | final | conditioning | energy"),
    ids: list[str] | None = typer.Argument(None, metavar="[ID...]", help="Experiments (default: all with results)."),
    out: Path = typer.Option(Path("results/figures"), "-o", "--out", help="Folder for the PNG and PDF."),
    metric: str | None = typer.Option(None, "--metric"),
) -> None:
    """Figures from the fetched runs (PNG and PDF): learning curves, final values, conditioning, energy."""
    from irq.results import plots
    from irq.results.collect import collect

    if kind not in plots.KINDS:
        raise errors.UsageError(f"unknown plot kind {kind!r}", "kinds: " + ", ".join(plots.KINDS))
    x = ctx(c)
    config = _config(x)
    metric, goal = _metric_goal(config, metric)
    exps = [e for e in collect(x.ledger(), config.root, list(ids or []) or None) if ids or e.runs]
    if not exps:
        raise errors.IrqError("no experiment has fetched results to plot", "`irq fetch` brings them in")
    paths = plots.save(plots.make(kind, exps, metric, goal), out, kind)
    for p in paths:
        x.ui.print(f"wrote {p}")


@app.command()
def report(
    c: typer.Context,
    ids: list[str] | None = typer.Argument(None, metavar="[ID...]", help="Experiments (default: all)."),
    out: Path = typer.Option(Path("results/summary.md"), "-o", "--out", help="The summary (figures go beside it)."),
    metric: str | None = typer.Option(None, "--metric"),
    baseline: str | None = typer.Option(None, "--baseline"),
    criterion: list[str] | None = typer.Option(None, "--criterion"),
    threshold: float | None = typer.Option(None, "--threshold"),
) -> None:
    """The study's summary: table, verdicts, figures, and the runs behind every number."""
    from irq.results.report import write

    if criterion and not baseline:
        raise errors.UsageError("a criterion compares with a baseline", "add --baseline Q-001")
    x = ctx(c)
    config = _config(x)
    metric, goal = _metric_goal(config, metric)
    wanted = list(ids or [])
    if baseline and wanted and baseline not in wanted:
        wanted.insert(0, baseline)
    rep = write(x.ledger(), config.root, out, metric, goal, baseline, list(criterion or []), wanted or None, threshold)
    x.ui.print(f"wrote {rep.path} ({len(rep.table.rows)} experiments, {len(rep.verdicts)} verdicts, "
               f"{len(rep.figures) // 2} figures)")
    for s in rep.skipped:
        x.ui.print(f"  no figure: {s}")
