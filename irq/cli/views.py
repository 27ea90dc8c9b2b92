"""Commands that show the ledger: status and show."""
from __future__ import annotations

from dataclasses import asdict

import typer

from irq.cli.app import app, ctx
from irq.cli.common import STATE_STYLE, _dump, _esc, _print_line


@app.command()
def status(
    c: typer.Context,
    as_json: bool = typer.Option(False, "--json"),
    offline: bool = typer.Option(False, "--offline", help="Do not ask the backend first."),
) -> None:
    """Experiments grouped by state, with their latest attempt and job slots."""
    from rich.table import Table

    from irq.experiments.views import status_rows

    x = ctx(c)
    ledger = x.ledger()
    slots = None
    if not offline:
        from irq.jobs.sync import refresh_for_status

        slots = refresh_for_status(ledger, x.config, x.ui)
        if slots and slots.get("unreachable"):
            for name, msg in slots["unreachable"].items():
                x.ui.err.print(f"warning: {name} did not answer ({msg}); states shown as last known", markup=False)
    rows = status_rows(ledger)
    if as_json:
        refused = slots.pop("refused", None) if slots else None
        x.ui.json({"experiments": [asdict(r) for r in rows], "slots": slots})
        if refused:
            raise refused
        return
    for state in ("IN_PROGRESS", "READY", "FAILED", "DONE", "PROPOSED"):
        group = [r for r in rows if r.state == state]
        if not group:
            continue
        t = Table(title=f"{state} ({len(group)})", title_justify="left", title_style=STATE_STYLE[state])
        for col in ("id", "title", "priority", "attempts", "job", "detail"):
            t.add_column(col)
        for r in group:
            t.add_row(r.id, r.title, r.priority, str(r.attempts), r.job_id or "", r.detail)
        x.ui.print(t)
    if slots:
        if slots.get("summary"):
            x.ui.print(slots["summary"])
        x.ui.print(f"scheduler calls in the last hour: {slots['scheduler_calls_last_hour']}")
    if slots and slots.get("refused"):  # last-known states shown; a refused host key still fails the command
        raise slots.pop("refused")


@app.command()
def show(c: typer.Context, exp_id: str = typer.Argument(..., metavar="ID"),
         as_json: bool = typer.Option(False, "--json")) -> None:
    """One experiment: its definition and every attempt with error, root cause, fix and results."""
    from rich.panel import Panel

    from irq.experiments.views import show as show_
    from irq.formats.export import attempt_lines, definition_lines

    x = ctx(c)
    v = show_(x.ledger(), exp_id)
    if as_json:
        x.ui.json({
            "experiment": _dump(v.experiment),
            "attempts": [{k: val for k, val in _dump(a).items() if k != "script"} | {"has_script": bool(a.script)} for a in v.attempts],
            "events": [_dump(e) for e in v.events],
        })
        return
    e = v.experiment
    x.ui.styled(f"[bold]{_esc(e.id + ': ' + e.title)}[/]  [{STATE_STYLE.get(e.state, 'white')}]{e.state}[/]")
    if e.waiting_reason is not None and e.state == "IN_PROGRESS":
        x.ui.print(f"queued locally, waiting for a slot: {e.waiting_reason}")
    for line in definition_lines(e):
        _print_line(x.ui, line)
    for a in v.attempts:
        body = []
        for line in attempt_lines(a):
            body.append(f"{line.key}: {line.value}")
            body.extend(f"  {k}: {val}" for k, val in line.children)
        x.ui.print(Panel("\n".join(body), title=f"attempt {a.number}", title_align="left"))
