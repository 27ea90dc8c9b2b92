"""Commands that show the ledger: status and show."""
from __future__ import annotations

from typing import Optional

import typer

from irq import errors
from irq.cli import follow, render
from irq.cli.app import app, ctx
from irq.cli.common import after_change, finite_seconds


@app.command()
def status(
    c: typer.Context,
    as_json: bool = typer.Option(False, "--json"),
    offline: bool = typer.Option(False, "--offline", help="Do not ask the backend first."),
    state: Optional[list[str]] = typer.Option(None, "--state", help="Only this state (repeatable), e.g. FAILED."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, max=1_000_000_000,
                                        help="At most N experiments per state, the most recently changed."),
    watch: Optional[float] = typer.Option(None, "--watch", "-w", metavar="SECONDS", min=0.1, callback=finite_seconds,
                                          help="Refresh every SECONDS until Ctrl-C, with each run's newest curve row."),
    count: Optional[int] = typer.Option(None, "--count", min=1, help="With --watch: stop after this many refreshes."),
    all_: bool = typer.Option(False, "--all", "-a", help="Every experiment: fold nothing into counts."),
) -> None:
    """Experiments grouped by state, with their latest attempt and job slots.

    Piped, one tab-separated line per experiment: state, id, title, priority, attempts, job, detail.
    IN_PROGRESS and READY are shown whole; without --state, --limit or --all, DONE, FAILED,
    PROPOSED and RETIRED show their 20 most recently changed and count the rest (--json too).

    \b
    Examples:
      irq status
      irq status --state FAILED --limit 20
      irq status --all --json
      irq status --offline | awk -F'\\t' '$1 == "FAILED" {print $2}'
      irq status --watch 30
    """
    from irq.experiments.views import StatusQuery
    from irq.jobs.status import status_report

    if count is not None and watch is None:  # it was ignored: one status, not the count asked for
        raise errors.UsageError("--count goes with --watch (how many refreshes)", "e.g. irq status --watch 30 --count 5")
    x = ctx(c)
    query = StatusQuery.from_options(state, limit, fold=not all_)

    def draw() -> None:
        report = status_report(x.db, x.config, x.ui, offline=offline, query=query, curves=watch is not None)
        render.status_page(x.ui, report, as_json, one_line=watch is not None)
        if report.changed:  # the refresh recorded new job states: queue.md follows, as after any change
            after_change(x)
        if report.refused:  # last-known states shown; a refused host key still fails the command
            raise report.refused

    follow.watch(x.ui, watch, count, draw, blocks=not as_json) if watch is not None else draw()


@app.command()
def show(c: typer.Context, exp_id: str = typer.Argument(..., metavar="ID"),
         as_json: bool = typer.Option(False, "--json")) -> None:
    """One experiment: its definition and every attempt with error, root cause, fix and results.

    \b
    Examples:
      irq show Q-004
      irq show Q-004 --json
    """
    from irq.config_files import read_settings
    from irq.experiments.views import show as show_

    x = ctx(c)
    v = show_(x.db, exp_id, read_settings(x.config).metric)  # the read path: no ORM or pydantic, read-only ledgers too
    if as_json:
        x.ui.json(render.show_json(v))
    else:
        render.show(x.ui, v)
