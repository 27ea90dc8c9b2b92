"""Commands that reach a backend: render, submit, fetch, cancel, log, check."""
from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer

from irq.cli import render
from irq.cli.app import app, ctx
from irq.cli.common import _config, _prompt

BACKEND_HELP = "local, or slurm:NAME (default: irq.toml's backend)."


@app.command("render")
def render_(
    c: typer.Context,
    exp_id: str = typer.Argument(..., metavar="ID"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the script here."),
    backend: Optional[str] = typer.Option(None, "--backend", help=BACKEND_HELP),
) -> None:
    """Print the job script `irq submit` would send for an experiment, exactly."""
    from irq.jobs.preview import job_script

    x = ctx(c)
    p = job_script(x.ledger(), _config(x), exp_id, backend)
    if output:
        from irq.formats.queue_io import write_atomically

        write_atomically(output, p.script)
        x.ui.print(f"wrote {output}")
    else:
        sys.stdout.write(p.script)
    if p.skipped:
        x.ui.err.print(f"note: parameters not passed to the trainer (not trainer config keys): {', '.join(p.skipped)}",
                       markup=False)


@app.command()
def submit(
    c: typer.Context,
    ids: list[str] = typer.Argument(None, metavar="[ID...]"),
    all_ready: bool = typer.Option(False, "--all-ready", help="Every READY experiment, by priority and dependencies."),
    backend: Optional[str] = typer.Option(None, "--backend", help=BACKEND_HELP),
    no_check: bool = typer.Option(False, "--no-check", help="Skip the preflight checks."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Submit experiments while job slots are free; the rest wait, queued locally."""
    from irq.jobs.actions import submit_experiments

    x = ctx(c)
    outs = submit_experiments(x.ledger(), _config(x), x.ui, ids or [], all_ready, backend,
                              check=not no_check, prompt=_prompt(x))
    if as_json:
        x.ui.json([asdict(o) for o in outs])
        return
    for o in outs:
        x.ui.print(render.outcome(o))


@app.command()
def fetch(
    c: typer.Context,
    ids: list[str] = typer.Argument(None, metavar="[ID...]"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Download results of finished attempts; mark experiments DONE or FAILED (with the cause)."""
    from irq.jobs.actions import fetch_results

    x = ctx(c)
    outs = fetch_results(x.ledger(), _config(x), x.ui, ids or [], prompt=_prompt(x))
    if as_json:
        x.ui.json([asdict(o) for o in outs])
        return
    if not outs:
        x.ui.print("nothing to fetch: no attempt has finished since the last fetch")
    for o in outs:
        x.ui.print(f"{o.id} attempt {o.attempt}: {o.state} ({o.detail})")


@app.command()
def cancel(c: typer.Context, ids: list[str] = typer.Argument(..., metavar="ID...")) -> None:
    """Cancel a running or pending job (or take an experiment off the local queue)."""
    from irq.jobs.actions import cancel_experiments

    x = ctx(c)
    for line in cancel_experiments(x.ledger(), _config(x), x.ui, ids, prompt=_prompt(x)):
        x.ui.print(line)


@app.command()
def log(
    c: typer.Context,
    exp_id: str = typer.Argument(..., metavar="ID"),
    lines: int = typer.Option(40, "--lines", "-n"),
) -> None:
    """The tail of the latest attempt's job output."""
    from irq.jobs.actions import latest_log

    x = ctx(c)
    att, text = latest_log(x.ledger(), _config(x), exp_id, lines, prompt=_prompt(x))
    x.ui.err.print(f"{exp_id} attempt {att.number}, job {att.job_id}:", markup=False)
    sys.stdout.write(text + ("\n" if text and not text.endswith("\n") else ""))


@app.command()
def check(
    c: typer.Context,
    ids: list[str] = typer.Argument(..., metavar="ID..."),
    backend: Optional[str] = typer.Option(None, "--backend"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Preflight: would these experiments run? (pushed commit, files, modules, partition, scratch)."""
    from irq.jobs.preview import check_jobs

    x = ctx(c)
    reports = check_jobs(x.ledger(), _config(x), ids, backend, prompt=_prompt(x))
    if as_json:
        x.ui.json({r.id: r.as_json() for r in reports})
    else:
        render.checks(x.ui, reports)
    if not all(r.ok for r in reports):
        raise typer.Exit(1)
