"""Commands that reach a backend: render, submit, fetch, cancel, log, check."""
from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer

from irq import errors
from irq.cli import follow, render
from irq.cli.app import app, ctx
from irq.cli.common import _config, _prompt, finite_seconds
from irq.ledger.states import is_active

BACKEND_HELP = "local, or slurm:NAME (default: irq.toml's backend)."


@app.command("render")
def render_(
    c: typer.Context,
    exp_id: str = typer.Argument(..., metavar="ID"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the script here."),
    backend: Optional[str] = typer.Option(None, "--backend", help=BACKEND_HELP),
) -> None:
    """Print the job script `irq submit` would send for an experiment, exactly.

    \b
    Examples:
      irq render Q-003
      irq render Q-003 --backend slurm:fasrc -o q003.sbatch
    """
    from irq.jobs.preview import job_script

    x = ctx(c)
    p = job_script(x.ledger(), _config(x), exp_id, backend)
    if output:
        from irq.formats.queue_io import write_atomically

        write_atomically(output, p.script, example="job.sh")
        x.ui.print(f"wrote {output}")
    else:
        sys.stdout.write(p.script)
    if p.skipped:
        x.ui.note(f"note: parameters not passed to the trainer (not trainer config keys): {', '.join(p.skipped)}")


@app.command()
def submit(
    c: typer.Context,
    ids: list[str] = typer.Argument(None, metavar="[ID...]"),
    all_ready: bool = typer.Option(False, "--all-ready", help="Every READY experiment, by priority and dependencies."),
    backend: Optional[str] = typer.Option(None, "--backend", help=BACKEND_HELP),
    no_check: bool = typer.Option(False, "--no-check", help="Skip the preflight checks."),
    as_json: bool = typer.Option(False, "--json"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Progress lines on stderr even when not on a terminal."),
) -> None:
    """Submit experiments while job slots are free; the rest wait, queued locally.

    Each outcome prints once, on stdout.

    \b
    Examples:
      irq submit Q-003
      irq submit --all-ready
    """
    from irq.jobs.actions import submit_experiments

    x = ctx(c)
    x.ui.verbose = verbose
    outs = submit_experiments(x.ledger(), _config(x), x.ui, ids or [], all_ready, backend,
                              check=not no_check, prompt=_prompt(x))
    if as_json:
        x.ui.json([asdict(o) for o in outs])
        return
    for o in outs:
        x.ui.print(render.outcome(o))
    if not outs:
        x.ui.note("nothing to submit: no READY experiment (`irq status` shows the queue)")


@app.command()
def fetch(
    c: typer.Context,
    ids: list[str] = typer.Argument(None, metavar="[ID...]"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Download results of finished attempts; mark experiments DONE or FAILED (with the cause).

    \b
    Examples:
      irq fetch
      irq fetch Q-003 --json
    """
    from irq.jobs.actions import fetch_results

    x = ctx(c)
    x.ui.verbose = False  # each fetched attempt prints once, below
    rep = fetch_results(x.ledger(), _config(x), x.ui, ids or [], prompt=_prompt(x))
    if as_json:
        x.ui.json(render.fetched_json(rep))
    else:
        for line in render.fetched(rep):
            x.ui.print(line)
    if rep.refused:  # what could be done is shown; a refused host key still fails the command
        raise rep.refused
    if (incomplete := rep.incomplete()) is not None:
        raise incomplete


@app.command()
def cancel(c: typer.Context, ids: list[str] = typer.Argument(..., metavar="ID...")) -> None:
    """Cancel a running or pending job (or take an experiment off the local queue).

    \b
    Example:
      irq cancel Q-003
    """
    from irq.jobs.actions import cancel_experiments

    x = ctx(c)
    for line in cancel_experiments(x.ledger(), _config(x), x.ui, ids, prompt=_prompt(x)):
        x.ui.print(line)


@app.command()
def log(
    c: typer.Context,
    exp_id: str = typer.Argument(..., metavar="ID"),
    lines: int = typer.Option(40, "--lines", "-n", min=0),
    follow_: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines and learning-curve rows until the run ends."),
    interval: float = typer.Option(5.0, "--interval", min=0.1, callback=finite_seconds, help="With -f: seconds between looks."),
    count: Optional[int] = typer.Option(None, "--count", min=1, help="With -f: stop after this many looks."),
) -> None:
    """The tail of the latest attempt's job output; with -f, follow it and its learning curve
    (curve.jsonl: step, loss, val_mse) until the run ends or Ctrl-C.

    \b
    Examples:
      irq log Q-003 -n 100
      irq log -f Q-003
    """
    from irq.jobs.actions import follow_log, latest_log

    if (count is not None or interval != 5.0) and not follow_:  # they were ignored without -f
        raise errors.UsageError("--count and --interval go with -f (follow)", f"e.g. irq log {exp_id} -f --interval 10")
    x = ctx(c)
    if follow_:
        return follow.follow_log(x.ui, follow_log(x.ledger(), _config(x), exp_id, interval, count, _prompt(x)), lines)
    att, text = latest_log(x.ledger(), _config(x), exp_id, lines, prompt=_prompt(x))
    x.ui.note(f"{exp_id} attempt {att.number}, job {att.job_id}:")
    for line in text.splitlines():
        x.ui.print(line)
    if not text:
        x.ui.note(f"(no output in its log yet: the job is {att.state})" if is_active(att.state)
                  else f"(no log found: the job is {att.state}; `irq fetch` keeps what it left in results/)")


@app.command()
def check(
    c: typer.Context,
    ids: list[str] = typer.Argument(..., metavar="ID..."),
    backend: Optional[str] = typer.Option(None, "--backend"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Preflight: would these experiments run? (pushed commit, files, modules, partition, scratch).

    \b
    Example:
      irq check Q-003 --backend slurm:fasrc
    """
    from irq.jobs.preview import check_jobs

    x = ctx(c)
    reports = check_jobs(x.ledger(), _config(x), ids, backend, prompt=_prompt(x))
    if as_json:
        x.ui.json({r.id: r.as_json() for r in reports})
    else:
        render.checks(x.ui, reports)
    if not all(r.ok for r in reports):
        raise typer.Exit(1)
