"""The `irq` command line. Each command parses its flags, calls into irq's core, and prints
the result (a rich table, or JSON with --json). Errors become one line plus a hint."""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import typer
from typer.exceptions import TyperException

from . import errors
from .ledger import Ledger, resolve_db_path
from .ui import UI

app = typer.Typer(
    name="irq",
    help="An experiment queue and ledger for ML studies on SLURM clusters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@dataclass
class Ctx:
    db: Path
    config: Optional[Path]
    ui: UI

    def ledger(self) -> Ledger:
        return Ledger(self.db)


def ctx(c: typer.Context) -> Ctx:
    return c.obj


@app.callback()
def _root(
    c: typer.Context,
    db: Optional[Path] = typer.Option(None, "--db", help="Ledger file (default: $IRQ_DB or ./queue.db)."),
    config: Optional[Path] = typer.Option(None, "--config", help="irq.toml to use instead of the one found from here."),
) -> None:
    c.obj = Ctx(resolve_db_path(db), config, UI())


def _dump(model: Any) -> dict:
    return model.model_dump(mode="json")


# -- ledger ------------------------------------------------------------------------------
@app.command()
def init(c: typer.Context) -> None:
    """Create the ledger (queue.db) and a commented irq.toml here."""
    from .config import write_default_config

    x = ctx(c)
    existed = x.db.exists()
    Ledger(x.db, create=True).close()
    cfg = write_default_config(Path.cwd() / "irq.toml")
    x.ui.print(f"{'ledger already at' if existed else 'created ledger'} {x.db}")
    if cfg:
        x.ui.print(f"wrote {cfg} (commented; add a [clusters.NAME] table to submit to SLURM)")


@app.command("import")
def import_(c: typer.Context, path: Path = typer.Argument(..., help="A queue.md to read.")) -> None:
    """Read a queue.md (the hand-kept layout or irq's export) into the ledger: all of it or nothing."""
    from .experiments import import_queue

    x = ctx(c)
    if not x.db.exists():
        Ledger(x.db, create=True).close()
    rep = import_queue(x.ledger(), path)
    if rep.repaired_lines:
        x.ui.print(f"repaired double-encoded UTF-8 (mojibake such as 'â€”' for '—') on {rep.repaired_lines} lines")
    states = ", ".join(f"{n} {s}" for s, n in rep.states.items())
    x.ui.print(f"imported {rep.experiments} experiments ({states}) and {rep.attempts} attempts from {path}")


@app.command()
def export(c: typer.Context, path: Optional[Path] = typer.Argument(None, help="Write here instead of stdout.")) -> None:
    """Render queue.md from the ledger (templates/queue.md.j2)."""
    from .experiments import export_queue

    x = ctx(c)
    text = export_queue(x.ledger(), path)
    if path is None:
        sys.stdout.write(text)
    else:
        x.ui.print(f"wrote {path}")


@app.command()
def add(
    c: typer.Context,
    exp_id: str = typer.Argument(..., metavar="ID", help="Like Q-011."),
    title: Optional[str] = typer.Option(None, "--title", "-t"),
    config: Optional[Path] = typer.Option(None, "--config-file", "-c", help="Trainer config JSON; its rank, steps, mining... become parameters."),
    hypothesis: Optional[str] = typer.Option(None, "--hypothesis"),
    param: list[str] = typer.Option([], "--param", "-p", help="KEY=VALUE, repeatable (overrides the config file)."),
    priority: str = typer.Option("MEDIUM", "--priority", help="HIGHEST, HIGH, MEDIUM or LOW."),
    after: list[str] = typer.Option([], "--after", help="Run after this experiment (repeatable)."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="'0-9' or '0,1,2': a seed array."),
    gpus: Optional[int] = typer.Option(None, "--gpus"),
    cpus: Optional[int] = typer.Option(None, "--cpus"),
    memory: Optional[str] = typer.Option(None, "--mem", help="e.g. 16GB"),
    time: Optional[str] = typer.Option(None, "--time", help="e.g. '2 hours' or 02:00:00"),
    partition: Optional[str] = typer.Option(None, "--partition"),
    notes: Optional[str] = typer.Option(None, "--notes"),
    proposed: bool = typer.Option(False, "--proposed", help="A future extension: never submitted until `irq ready`."),
    retry_on: list[str] = typer.Option([], "--retry-on", help="TIMEOUT or OUT_OF_MEMORY: resubmit with more time/memory (repeatable)."),
    retry_max_time: Optional[str] = typer.Option(None, "--retry-max-time", help="Cap for --retry-on TIMEOUT, e.g. '8 hours'."),
    retry_max_mem: Optional[str] = typer.Option(None, "--retry-max-mem", help="Cap for --retry-on OUT_OF_MEMORY, e.g. 64GB."),
    retry_max_attempts: int = typer.Option(3, "--retry-max-attempts"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Add an experiment (READY, or PROPOSED with --proposed)."""
    from .experiments import add_experiment
    from .fields import parse_scalar

    x = ctx(c)
    params: dict[str, Any] = {}
    for p in param:
        key, sep, value = p.partition("=")
        if not sep or not key.strip():
            raise errors.UsageError(f"--param wants KEY=VALUE, got {p!r}")
        params[key.strip()] = parse_scalar(value)[0]
    exp = add_experiment(
        x.ledger(), exp_id, title, config=config, hypothesis=hypothesis, params=params,
        priority=priority, depends_on=after, seeds=seeds, gpus=gpus, cpus=cpus, memory=memory,
        time=time, partition=partition, notes=notes, proposed=proposed,
        retry=_retry_policy(retry_on, retry_max_time, retry_max_mem, retry_max_attempts),
    )
    if as_json:
        x.ui.json(_dump(exp))
    else:
        x.ui.print(f"added {exp.id} ({exp.state}): {exp.title}")


def _retry_policy(on: list[str], max_time: Optional[str], max_mem: Optional[str], attempts: int) -> dict:
    from .fields import FieldError, parse_memory, parse_minutes

    if not on:
        return {}
    bad = [o for o in on if o.upper() not in ("TIMEOUT", "OUT_OF_MEMORY")]
    if bad:
        raise errors.UsageError(f"--retry-on takes TIMEOUT or OUT_OF_MEMORY, not {bad[0]!r}")
    pol: dict = {"on": [o.upper() for o in on], "max_attempts": attempts}
    try:
        if max_time:
            pol["max_time_minutes"] = parse_minutes(max_time)
        if max_mem:
            pol["max_memory_mb"] = parse_memory(max_mem)
    except FieldError as exc:
        raise errors.UsageError(str(exc)) from None
    return pol


@app.command()
def ready(c: typer.Context, ids: list[str] = typer.Argument(..., metavar="ID...")) -> None:
    """Promote proposed experiments (Future Extensions) to READY."""
    from .experiments import promote

    x = ctx(c)
    for i in ids:
        e = promote(x.ledger(), i)
        x.ui.print(f"{e.id} is READY")


@app.command()
def retry(c: typer.Context, ids: list[str] = typer.Argument(..., metavar="ID...")) -> None:
    """Put FAILED experiments back to READY; earlier attempts are kept."""
    from .experiments import retry as retry_

    x = ctx(c)
    for i in ids:
        e = retry_(x.ledger(), i)
        x.ui.print(f"{e.id} is READY again (its earlier attempts stay in the ledger)")


STATE_STYLE = {"READY": "cyan", "IN_PROGRESS": "yellow", "DONE": "green", "FAILED": "red", "PROPOSED": "dim"}


@app.command()
def status(
    c: typer.Context,
    as_json: bool = typer.Option(False, "--json"),
    offline: bool = typer.Option(False, "--offline", help="Do not ask the backend first."),
) -> None:
    """Experiments grouped by state, with their latest attempt and job slots."""
    from rich.table import Table

    from .experiments import status_rows

    x = ctx(c)
    ledger = x.ledger()
    slots = None
    if not offline:
        from .runner import refresh_for_status

        slots = refresh_for_status(ledger, x.config, x.ui)
        if slots and slots.get("unreachable"):
            for name, msg in slots["unreachable"].items():
                x.ui.err.print(f"warning: {name} did not answer ({msg}); states shown as last known", markup=False)
    rows = status_rows(ledger)
    if as_json:
        x.ui.json({"experiments": [asdict(r) for r in rows], "slots": slots})
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


@app.command()
def show(c: typer.Context, exp_id: str = typer.Argument(..., metavar="ID"),
         as_json: bool = typer.Option(False, "--json")) -> None:
    """One experiment: its definition and every attempt with error, root cause, fix and results."""
    from rich.panel import Panel

    from .export import attempt_lines, definition_lines
    from .experiments import show as show_

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


def _config(x: Ctx):
    from .config import load_config

    return load_config(x.config)


@app.command("render")
def render_(
    c: typer.Context,
    exp_id: str = typer.Argument(..., metavar="ID"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the script here."),
    backend: Optional[str] = typer.Option(None, "--backend", help="local, or slurm:NAME (default: irq.toml's backend)."),
) -> None:
    """Print the job script `irq submit` would send for an experiment, exactly."""
    from .runner import render_for

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
    from .runner import Backends, submit as submit_

    x = ctx(c)
    if not ids and not all_ready:
        raise errors.UsageError("name experiments to submit, or pass --all-ready", "e.g. `irq submit Q-003`")
    config = _config(x)
    preflight = None
    if not no_check:
        from .preflight import preflight_hook

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
    from .runner import Backends, fetch as fetch_, refresh

    x = ctx(c)
    config = _config(x)
    with Backends(config, prompt=_prompt(x)) as backends:
        refresh(x.ledger(), backends, x.ui)
        outs = fetch_(x.ledger(), config, backends, x.ui, ids or None)
    _after_change(x, config)
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
    from .runner import Backends, cancel as cancel_

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
    from .runner import Backends, log_tail

    x = ctx(c)
    with Backends(_config(x), prompt=_prompt(x)) as backends:
        att, text = log_tail(x.ledger(), backends, exp_id, lines)
    x.ui.err.print(f"{exp_id} attempt {att.number}, job {att.job_id}:", markup=False)
    sys.stdout.write(text + ("\n" if text and not text.endswith("\n") else ""))


@app.command()
def trust(
    c: typer.Context,
    cluster: Optional[str] = typer.Argument(None, help="A [clusters.NAME] from irq.toml (default: the configured backend)."),
    yes: bool = typer.Option(False, "--yes", help="Trust without asking (only after checking the fingerprint)."),
) -> None:
    """Show a cluster's SSH host key fingerprint and, once you confirm it, add it to known_hosts."""
    from .backends.ssh import fetch_host_key, trust_host

    x = ctx(c)
    config = _config(x)
    cfg = config.cluster(cluster)
    key_type, fp, key = fetch_host_key(cfg)
    x.ui.print(f"{cfg.name} ({cfg.host}) presents a {key_type} host key with fingerprint {fp}")
    if not yes:
        if not sys.stdin.isatty():
            raise errors.UsageError("not trusting a host key without confirmation",
                                    "compare the fingerprint with your admins', then rerun with --yes")
        if input("Is this the fingerprint your cluster's admins publish? [y/N] ").strip().lower() not in ("y", "yes"):
            raise errors.HostKeyError("host key not trusted", "nothing was written")
    path = trust_host(cfg, key)
    x.ui.print(f"added to {path}" if path else "that key was already trusted")


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
    from . import daemon as d
    from .runner import Backends

    x = ctx(c)
    config = _config(x)
    if action == "status":
        info = d.status_detached(x.ledger())
        if as_json:
            x.ui.json(info)
        else:
            x.ui.print(f"daemon {'running (pid ' + str(info['pid']) + ')' if info['running'] else 'not running'}; "
                       f"last cycle {info['last_cycle'] or 'never'}; scheduler calls in the last hour: "
                       f"{info['scheduler_calls_last_hour']}")
        return
    if action == "stop":
        pid = d.stop_detached(x.db)
        x.ui.print(f"stopped the daemon (pid {pid})" if pid else "no daemon was running")
        return
    if action == "start":
        extra = [f"--interval={interval}"] if interval else []
        log_path = x.db.parent / ".irq" / "daemon.log"
        pid = d.start_detached(x.db, x.config, log_path, extra)
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
    from .preflight import preflight_hook

    d.run(ledger, config, x.ui, interval=interval, once=once, preflight=preflight_hook(config, ledger))


@app.command()
def check(
    c: typer.Context,
    ids: list[str] = typer.Argument(..., metavar="ID..."),
    backend: Optional[str] = typer.Option(None, "--backend"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Preflight: would these experiments run? (pushed commit, files, modules, partition, scratch)."""
    from .jobscript import build_job, run_id_for
    from .models import utcnow
    from .preflight import run_checks
    from .runner import Backends, config_in_repo, target_sha

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


def _prompt(x: Ctx):
    """Keyboard-interactive answers (password, one-time code) from a person at a terminal."""
    if not sys.stdin.isatty():
        return None
    import getpass

    def ask(title: str, instructions: str, prompts: list) -> list[str]:
        if instructions:
            x.ui.err.print(instructions, markup=False)
        return [getpass.getpass(p) if not echo else input(p) for p, echo in prompts]

    return ask


def _after_change(x: Ctx, config) -> None:
    """Keep the configured queue.md export current after a command changed the ledger."""
    if config.export:
        from .experiments import export_queue

        export_queue(x.ledger(), config.resolve(config.export))


@app.command()
def demo(
    c: typer.Context,
    folder: Path = typer.Option(Path("irq-demo"), "--dir", help="Where the demo's ledger, runs and results go."),
    quick: bool = typer.Option(False, "--quick", help="A tiny config (seconds) instead of the seed's pilot (minutes)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run the study's pilot end to end on this machine: queue, train, fetch, compare."""
    from rich.table import Table

    from .demo import run_demo

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


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _print_line(ui: UI, line: Any) -> None:
    ui.print(f"  {line.key}: {line.value}")
    for k, v in line.children:
        ui.print(f"    {k}: {v}")


def main(argv: list[str] | None = None) -> None:
    ui = UI()
    try:
        rv = app(args=argv, standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except errors.IrqError as exc:
        ui.error(exc)
        code = exc.exit_code
    except typer.Exit as exc:
        code = exc.exit_code
    except TyperException as exc:
        show = getattr(exc, "show", None)
        if show:
            show()
        else:
            ui.err.print(f"error: {exc.format_message()}")
        code = exc.exit_code
    except typer.Abort:
        ui.err.print("aborted")
        code = 130
    except KeyboardInterrupt:
        ui.err.print("interrupted")
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
