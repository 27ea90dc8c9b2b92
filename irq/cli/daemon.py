"""`irq daemon run|start|stop|status`, and the demo that drives the daemon's cycle end to end."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from irq import errors
from irq.cli import render
from irq.cli.app import app, ctx
from irq.cli.common import _config, _prompt, finite_seconds

daemon_app = typer.Typer(
    name="daemon", no_args_is_help=True,
    help="Keep job slots full: refresh, fetch, submit READY experiments by priority, re-export queue.md."
         "\n\n\b\nExamples:\n  irq daemon start --interval 60\n  irq daemon status\n  irq daemon run --dry-run",
)
app.add_typer(daemon_app)
INTERVAL_HELP = "Seconds between cycles (default: irq.toml [daemon])."


@daemon_app.command("run")
def run(
    c: typer.Context,
    once: bool = typer.Option(False, "--once", help="One cycle, then exit."),
    interval: Optional[float] = typer.Option(None, "--interval", callback=finite_seconds, help=INTERVAL_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what a cycle would submit; change nothing."),
    as_json: bool = typer.Option(False, "--json", help="With --dry-run: the plan as JSON."),
) -> None:
    """Run the daemon in the foreground (Ctrl-C finishes the current step, then stops)."""
    from irq.daemon import service

    x = ctx(c)
    if as_json and not dry_run:  # a run logs its cycles as lines; --json printed nothing at all
        raise errors.UsageError("--json prints a --dry-run's plan; a running daemon logs its cycles as lines",
                                "irq daemon run --dry-run --json, or `irq daemon status --json`")
    config = _config(x)
    if not dry_run:
        service.run_foreground(x.ledger(), config, x.ui, interval, once)
        return
    plan = service.dry_run(x.ledger(), config, prompt=_prompt(x))
    if as_json:
        x.ui.json(plan.as_json())
        return
    for line in plan.lines():
        x.ui.print(line)


@daemon_app.command("start")
def start(
    c: typer.Context,
    interval: Optional[float] = typer.Option(None, "--interval", callback=finite_seconds, help=INTERVAL_HELP),
) -> None:
    """Start the daemon detached; it logs to .irq/daemon.log beside the ledger."""
    from irq.daemon import service

    x = ctx(c)
    started = service.start(x.db, x.config, interval)
    x.ui.print(f"daemon started (pid {started.pid}); log: {started.log}; `irq daemon stop` stops it")


@daemon_app.command("stop")
def stop(c: typer.Context) -> None:
    """Stop a detached daemon (it finishes its current step first)."""
    from irq.daemon import service

    x = ctx(c)
    pid = service.stop(x.db)
    x.ui.print(f"stopped the daemon (pid {pid})" if pid else "no daemon was running")


@daemon_app.command("status")
def status(c: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Whether a daemon serves this ledger, its last cycle, and scheduler calls in the last hour."""
    from irq.daemon import service

    x = ctx(c)
    info = render.daemon_info(service.status(x.ledger()))
    if as_json:
        x.ui.json(info)
    else:
        x.ui.print(render.daemon_status(info))


@app.command()
def demo(
    c: typer.Context,
    folder: Path = typer.Option(Path("irq-demo"), "--dir", help="Where the demo's ledger, runs and results go."),
    quick: bool = typer.Option(False, "--quick", help="A tiny config (under a minute) instead of the seed's pilot (minutes)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run the study's pilot end to end on this machine: queue, train, fetch, compare.

    \b
    Example:
      irq demo --quick
    """
    from irq.daemon.demo import run_demo

    x = ctx(c)
    res = run_demo(folder, x.ui, quick=quick)
    if as_json:
        x.ui.json(res.rows)
    else:
        render.demo(x.ui, res)
