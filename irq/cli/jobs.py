"""Commands that reach a backend: render, submit, fetch, cancel, log, check."""
from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer

from irq import errors
from irq.cli.app import app, ctx
from irq.cli.common import _after_change, _config, _prompt
from irq.ledger.database import Ledger


@app.command("render")
def render_(
    c: typer.Context,
    exp_id: str = typer.Argument(..., metavar="ID"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the script here."),
    backend: Optional[str] = typer.Option(None, "--backend", help="local, or slurm:NAME (default: irq.toml's backend)."),
) -> None:
    """Print the job script `irq submit` would send for an experiment, exactly."""
    from irq.jobs.submit import render_for

    x = ctx(c)
    script, skipped = render_for(x.ledger(), _config(x), exp_id, backend)
    if output:
        output.write_text(script)
        x.ui.print(f"wrote {output}")
    else:
        sys.stdout.write(script)
    if skipped:
        x.ui.err.print(f"note: parameters not passed to the trainer (not trainer config keys): {', '.join(skipped)}",
                       markup=False)


@app.command()
def submit(
    c: typer.Context,
    ids: list[str] = typer.Argument(None, metavar="[ID...]"),
    all_ready: bool = typer.Option(False, "--all-ready", help="Every READY experiment, by priority and dependencies."),
    backend: Optional[str] = typer.Option(None, "--backend", help="local, or slurm:NAME (default: irq.toml's backend)."),
    no_check: bool = typer.Option(False, "--no-check", help="Skip the preflight checks."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Submit experiments while job slots are free; the rest wait, queued locally."""
    from irq.backends.registry import Backends
    from irq.jobs.submit import submit as submit_

    x = ctx(c)
    if not ids and not all_ready:
        raise errors.UsageError("name experiments to submit, or pass --all-ready", "e.g. `irq submit Q-003`")
    config = _config(x)
    preflight = None
    if not no_check:
        from irq.jobs.preflight import preflight_hook

        preflight = preflight_hook(config, x.ledger())
    with Backends(config, prompt=_prompt(x)) as backends:
        outs = submit_(x.ledger(), config, backends, x.ui, ids or None, all_ready, preflight, backend)
    _after_change(x, config)
    if as_json:
        x.ui.json([asdict(o) for o in outs])
        return
    for o in outs:
        x.ui.print(f"{o.id}: {o.status}" + (f" as job {o.job_id}" if o.job_id else "") + (f" ({o.message})" if o.message else ""))


@app.command()
def fetch(
    c: typer.Context,
    ids: list[str] = typer.Argument(None, metavar="[ID...]"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Download results of finished attempts; mark experiments DONE or FAILED (with the cause)."""
    from irq.backends.registry import Backends
    from irq.jobs.fetch import fetch as fetch_
    from irq.jobs.sync import refresh

    x = ctx(c)
    config = _config(x)
    with Backends(config, prompt=_prompt(x)) as backends:
        refreshed = refresh(x.ledger(), backends, x.ui)
        outs = fetch_(x.ledger(), config, backends, x.ui, ids or None)
    _after_change(x, config)
    if as_json:
        x.ui.json([asdict(o) for o in outs])
        return
    if not outs:
        x.ui.print("nothing to fetch: no attempt has finished since the last fetch")
    for o in outs:
        x.ui.print(f"{o.id} attempt {o.attempt}: {o.state} ({o.detail})")
    if refreshed.refused:
        raise next(iter(refreshed.refused.values()))


@app.command()
def cancel(c: typer.Context, ids: list[str] = typer.Argument(..., metavar="ID...")) -> None:
    """Cancel a running or pending job (or take an experiment off the local queue)."""
    from irq.backends.registry import Backends
    from irq.jobs.cancel import cancel as cancel_

    x = ctx(c)
    config = _config(x)
    with Backends(config, prompt=_prompt(x)) as backends:
        for i in ids:
            x.ui.print(cancel_(x.ledger(), backends, x.ui, i))
    _after_change(x, config)


@app.command()
def log(
    c: typer.Context,
    exp_id: str = typer.Argument(..., metavar="ID"),
    lines: int = typer.Option(40, "--lines", "-n"),
) -> None:
    """The tail of the latest attempt's job output."""
    from irq.backends.registry import Backends
    from irq.jobs.fetch import log_tail

    x = ctx(c)
    with Backends(_config(x), prompt=_prompt(x)) as backends:
        att, text = log_tail(x.ledger(), backends, exp_id, lines)
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
    from irq.backends.registry import Backends
    from irq.jobs.git import config_in_repo, target_sha
    from irq.jobs.jobscript import build_job, run_id_for
    from irq.jobs.preflight import run_checks
    from irq.ledger.models import utcnow

    x = ctx(c)
    config = _config(x)
    ledger = x.ledger()
    failed = False
    report = {}
    with Backends(config, prompt=_prompt(x)) as backends:
        name = backend or backends.default_name()
        target = backends.target(name)
        for i in ids:
            with ledger.transaction() as s:
                exp = Ledger.experiment(s, i)
            exp = config_in_repo(exp, config, target)
            sha = target_sha(config, target)
            req, _ = build_job(exp, token="irq-0000000000", attempt=0, target=target, git_sha=sha,
                               run_id=run_id_for(exp.id, utcnow()))
            checks = run_checks(None, exp, target, sha, backends.get(name), req.script)
            report[exp.id] = [asdict(ch) for ch in checks]
            failed |= not all(ch.ok for ch in checks)
            if not as_json:
                x.ui.print(f"{exp.id} on {name} at {sha[:12]}:")
                for ch in checks:
                    x.ui.print("  " + ch.line())
    if as_json:
        x.ui.json(report)
    if failed:
        raise typer.Exit(1)
