"""The daemon and the demo that runs it end to end."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from irq import errors
from irq.cli.app import app, ctx
from irq.cli.common import _config, _prompt


@app.command()
def daemon(
    c: typer.Context,
    action: str = typer.Argument("run", help="run (foreground, the default), start (detached), stop, status."),
    once: bool = typer.Option(False, "--once", help="One cycle, then exit."),
    interval: Optional[float] = typer.Option(None, "--interval", help="Seconds between cycles (default: irq.toml [daemon])."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what a cycle would submit; change nothing."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Keep job slots full: refresh, fetch, submit READY experiments by priority, re-export queue.md."""
    from irq.backends.registry import Backends
    from irq.daemon import detached
    from irq.daemon import loop as d

    x = ctx(c)
    config = _config(x)
    if action == "status":
        info = detached.status_detached(x.ledger())
        if as_json:
            x.ui.json(info)
        else:
            x.ui.print(f"daemon {'running (pid ' + str(info['pid']) + ')' if info['running'] else 'not running'}; "
                       f"last cycle {info['last_cycle'] or 'never'}; scheduler calls in the last hour: "
                       f"{info['scheduler_calls_last_hour']}" + (f"; {info['needs_login']}" if info["needs_login"] else ""))
        return
    if action == "stop":
        pid = detached.stop_detached(x.db)
        x.ui.print(f"stopped the daemon (pid {pid})" if pid else "no daemon was running")
        return
    if action == "start":
        extra = [f"--interval={interval}"] if interval else []
        log_path = x.db.parent / ".irq" / "daemon.log"
        pid = detached.start_detached(x.db, x.config, log_path, extra)
        x.ui.print(f"daemon started (pid {pid}); log: {log_path}; `irq daemon stop` stops it")
        return
    if action != "run":
        raise errors.UsageError(f"unknown daemon action {action!r}", "use run, start, stop or status")
    ledger = x.ledger()
    if dry_run:
        with Backends(config, prompt=_prompt(x)) as backends:
            p, slots = d.dry_run_plan(ledger, config, backends)
        if as_json:
            x.ui.json({"slots": slots.summary(), "submit": p.submit, "wait": p.wait, "hold": p.hold})
            return
        x.ui.print(slots.summary())
        for line in p.describe() or ["nothing to submit"]:
            x.ui.print(line)
        return
    from irq.jobs.preflight import preflight_hook

    d.run(ledger, config, x.ui, interval=interval, once=once, preflight=preflight_hook(config, ledger))


@app.command()
def demo(
    c: typer.Context,
    folder: Path = typer.Option(Path("irq-demo"), "--dir", help="Where the demo's ledger, runs and results go."),
    quick: bool = typer.Option(False, "--quick", help="A tiny config (seconds) instead of the seed's pilot (minutes)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run the study's pilot end to end on this machine: queue, train, fetch, compare."""
    from rich.table import Table

    from irq.daemon.demo import run_demo

    x = ctx(c)
    res = run_demo(folder, x.ui, quick=quick)
    if as_json:
        x.ui.json(res.rows)
        return
    t = Table(title="pilot results (validation MSE; lower is better)", title_justify="left")
    for col in ("id", "mining", "state", "val_mse", "predict mean", "predict zero", "steps/s"):
        t.add_column(col)
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))  # noqa: E731
    for r in res.rows:
        t.add_row(r["id"], str(r["mining"]), r["state"], fmt(r["val_mse"]), fmt(r["baseline_mean_mse"]),
                  fmt(r["baseline_zero_mse"]), fmt(r["steps_per_s"]) if r["steps_per_s"] else "")
    x.ui.print(t)
    x.ui.print(f"ledger: {folder / 'queue.db'}  queue: {folder / 'queue.md'}  results: {folder / 'results'}")
    x.ui.print(f"next: `irq --db {folder / 'queue.db'} status`, `irq --db {folder / 'queue.db'} show Q-043`")
