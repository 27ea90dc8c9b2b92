"""Commands that show the ledger: status and show."""
from __future__ import annotations

from typing import Optional

import typer

from irq.cli import render
from irq.cli.app import app, ctx


@app.command()
def status(
    c: typer.Context,
    as_json: bool = typer.Option(False, "--json"),
    offline: bool = typer.Option(False, "--offline", help="Do not ask the backend first."),
    state: Optional[list[str]] = typer.Option(None, "--state", help="Only this state (repeatable), e.g. FAILED."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1,
                                        help="At most N experiments per state, the most recently changed."),
) -> None:
    """Experiments grouped by state, with their latest attempt and job slots.

    Without --state or --limit, DONE shows its latest 20 and counts the rest (all in --json)."""
    from irq.experiments.views import StatusQuery
    from irq.jobs.status import status_report

    x = ctx(c)
    query = StatusQuery.from_options(state, limit, done_shown=None if as_json else 20)
    report = status_report(x.db, x.config, x.ui, offline=offline, query=query)
    if as_json:
        x.ui.json(render.status_json(report) | {"folded": report.folded})
    else:
        render.status(x.ui, report)
        for line in report.folded_lines() + report.notes:
            x.ui.print(line)


@app.command()
def show(c: typer.Context, exp_id: str = typer.Argument(..., metavar="ID"),
         as_json: bool = typer.Option(False, "--json")) -> None:
    """One experiment: its definition and every attempt with error, root cause, fix and results."""
    from irq.experiments.views import show as show_

    x = ctx(c)
    v = show_(x.db, exp_id)  # the read path: no ORM, read-only ledgers too
    if as_json:
        x.ui.json(render.show_json(v))
    else:
        render.show(x.ui, v)
