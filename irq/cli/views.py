"""Commands that show the ledger: status and show."""
from __future__ import annotations

import typer

from irq.cli import render
from irq.cli.app import app, ctx
from irq.cli.common import _config


@app.command()
def status(
    c: typer.Context,
    as_json: bool = typer.Option(False, "--json"),
    offline: bool = typer.Option(False, "--offline", help="Do not ask the backend first."),
) -> None:
    """Experiments grouped by state, with their latest attempt and job slots."""
    from irq.jobs.status import status_report

    x = ctx(c)
    report = status_report(x.ledger(), x.config, x.ui, offline=offline)
    if as_json:
        x.ui.json(render.status_json(report))
    else:
        render.status(x.ui, report)


@app.command()
def show(c: typer.Context, exp_id: str = typer.Argument(..., metavar="ID"),
         as_json: bool = typer.Option(False, "--json")) -> None:
    """One experiment: its definition and every attempt with error, root cause, fix and results."""
    from irq.experiments.views import show as show_

    x = ctx(c)
    v = show_(x.ledger(), exp_id, _config(x).project.metric)
    if as_json:
        x.ui.json(render.show_json(v))
    else:
        render.show(x.ui, v)
