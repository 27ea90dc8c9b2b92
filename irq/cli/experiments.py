"""Commands on the ledger: init, import, export, add, edit, ready, retry, retire, rm."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from irq import errors
from irq.cli.app import Ctx, app, ctx
from irq.cli.common import _config, _dump, after_change, exported_after, whole_number
from irq.ledger.states import Priority
from irq.ui import counted


@app.command()
def init(c: typer.Context) -> None:
    """Create the ledger (queue.db) and a commented irq.toml here.

    \b
    Example:
      irq init
    """
    from irq.experiments.project import init_project

    x = ctx(c)
    done = init_project(x.here_db, Path.cwd())  # here, even inside another project
    x.ui.print(f"{'ledger already at' if done.existed else 'created ledger'} {done.db}")
    if done.config:
        x.ui.print(f"wrote {done.config} (commented; add a [clusters.NAME] table to submit to SLURM)")


@app.command("import")
def import_(c: typer.Context, path: Path = typer.Argument(..., help="A queue.md to read.")) -> None:
    """Read a queue.md (the hand-kept layout or irq's export) into the ledger: all of it or nothing.

    \b
    Example:
      irq import queue.md
    """
    from irq.experiments.project import import_file

    x = ctx(c)
    rep = import_file(x.db, path)
    after_change(x)
    if rep.repaired_lines:
        x.ui.print(f"repaired double-encoded UTF-8 (mojibake such as 'â€”' for '—') on {counted(rep.repaired_lines, 'line')}")
    states = ", ".join(f"{n} {s}" for s, n in rep.states.items())
    x.ui.print(f"imported {counted(rep.experiments, 'experiment')} ({states}) and {counted(rep.attempts, 'attempt')} "
               f"from {path}")


@app.command()
def export(c: typer.Context, path: Optional[Path] = typer.Argument(None, help="Write here instead of stdout.")) -> None:
    """Render queue.md from the ledger (template queue.md.j2; a project templates/ folder overrides it).

    \b
    Examples:
      irq export queue.md
      irq export | less
    """
    from irq.config_files import read_settings
    from irq.formats.export import Derived
    from irq.formats.queue_io import hand_edits_kept, stream_export
    from irq.formats.render import templates_beside

    x = ctx(c)
    s = read_settings(x.config)  # the read path (no ORM, no pydantic): read-only ledgers too
    derived = Derived(s.metric, s.goal, path.parent if path is not None else None)
    if kept := stream_export(x.db, path, templates_beside(s.file), derived=derived):
        x.ui.note(f"warning: {hand_edits_kept(path, kept)}")
    if path is not None:
        x.ui.print(f"wrote {path}")


@app.command()
def add(
    c: typer.Context,
    exp_id: str = typer.Argument(..., metavar="ID", help="Like Q-011 or lr-sweep-3."),
    title: Optional[str] = typer.Option(None, "--title", "-t", help="What it tests (default: its -p parameters, else the config file's name, else the id)."),
    config: Optional[Path] = typer.Option(None, "--config-file", "-c", help="Trainer config JSON; its rank, steps, mining... become parameters."),
    hypothesis: Optional[str] = typer.Option(None, "--hypothesis"),
    param: list[str] = typer.Option([], "--param", "-p", help="KEY=VALUE, repeatable (overrides the config file)."),
    priority: Priority = typer.Option(Priority.MEDIUM, "--priority", case_sensitive=False, help="Which READY work goes first."),
    after: list[str] = typer.Option([], "--after", help="Run after this experiment (repeatable)."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="'0-9' or '0,1,2': a seed array."),
    gpus: Optional[int] = typer.Option(None, "--gpus", parser=whole_number, metavar="N"),
    cpus: Optional[int] = typer.Option(None, "--cpus", parser=whole_number, metavar="N"),
    memory: Optional[str] = typer.Option(None, "--mem", help="e.g. 16GB"),
    time: Optional[str] = typer.Option(None, "--time", help="e.g. '2 hours' or 02:00:00"),
    partition: Optional[str] = typer.Option(None, "--partition"),
    notes: Optional[str] = typer.Option(None, "--notes"),
    proposed: bool = typer.Option(False, "--proposed", help="A future extension: never submitted until `irq ready`."),
    retry_on: list[str] = typer.Option([], "--retry-on", help="TIMEOUT or OUT_OF_MEMORY: resubmit with more time/memory (repeatable)."),
    retry_max_time: Optional[str] = typer.Option(None, "--retry-max-time", help="Cap for --retry-on TIMEOUT, e.g. '8 hours'."),
    retry_max_mem: Optional[str] = typer.Option(None, "--retry-max-mem", help="Cap for --retry-on OUT_OF_MEMORY, e.g. 64GB."),
    retry_max_attempts: int = typer.Option(3, "--retry-max-attempts", parser=whole_number, metavar="N"),
    command: Optional[str] = typer.Option(None, "--command", help="What it runs, e.g. 'python train.py --lr {lr} --seed {seed}' (default: [project] command, else the bundled trainer)."),
    force: bool = typer.Option(False, "--force", help="Add it even if an experiment runs the same command, parameters and seeds."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Add an experiment (READY, or PROPOSED with --proposed).

    \b
    Examples:
      irq add Q-001 --title Baseline -c configs/q001.json --priority high
      irq add Q-002 -t 'Random mining' -c configs/q001.json -p mining=random --after Q-001 --seeds 0-4
    """
    from irq.experiments.edit import add_experiment

    x = ctx(c)
    exp = add_experiment(
        x.ledger(), exp_id, title, config=config, hypothesis=hypothesis, params=_params(param),
        priority=priority.value, depends_on=after, seeds=seeds, gpus=gpus, cpus=cpus, memory=memory,
        time=time, partition=partition, notes=notes, proposed=proposed,
        retry=_retry_policy(retry_on, retry_max_time, retry_max_mem, retry_max_attempts),
        command=command, default_command=_config(x).project.command, refuse_same_run=not force,
    )
    after_change(x)
    if as_json:
        x.ui.json(_dump(exp))
    else:
        x.ui.print(f"added {exp.id} ({exp.state}): {exp.title}")
    if not (exp.config_path or exp.command or _config(x).project.command):  # preflight holds it (no trainer config)
        x.ui.note(f"note: {exp.id} has no trainer config, so it is held when submitted until it has one: "
                  f"`irq edit {exp.id} -c FILE`")


def _retry_policy(on: list[str], max_time: Optional[str], max_mem: Optional[str], attempts: int) -> dict:
    from irq.fields import FieldError
    from irq.policy.retry import RetryPolicy

    try:
        pol = RetryPolicy.from_options(on, max_time, max_mem, attempts)
    except FieldError as exc:
        raise errors.UsageError(str(exc), "e.g. --retry-on TIMEOUT --retry-max-time '8 hours'") from None
    return pol.to_dict() if pol else {}


@app.command()
def ready(c: typer.Context, ids: list[str] = typer.Argument(..., metavar="ID...")) -> None:
    """Promote proposed experiments (Future Extensions) to READY.

    \b
    Example:
      irq ready Q-005 Q-006
    """
    from irq.experiments.edit import promote

    x = ctx(c)
    ids = _known(x, ids)  # every id first: a typo in the last one changes nothing
    with exported_after(x):
        for i in ids:
            e = promote(x.ledger(), i)
            x.ui.print(f"{e.id} is READY")


@app.command()
def retry(c: typer.Context, ids: list[str] = typer.Argument(..., metavar="ID...")) -> None:
    """Put FAILED experiments back to READY; earlier attempts are kept.

    \b
    Example:
      irq retry Q-003
    """
    from irq.experiments.edit import retry as retry_

    x = ctx(c)
    ids = _known(x, ids)  # every id first: a typo in the last one changes nothing
    with exported_after(x):
        for i in ids:
            e = retry_(x.ledger(), i)
            x.ui.print(f"{e.id} is READY again (its earlier attempts stay in the ledger)")


@app.command()
def record(
    c: typer.Context,
    exp_id: str = typer.Argument(..., metavar="ID"),
    ending: str = typer.Argument(..., metavar="HOW", help="completed, failed or cancelled."),
    result: Optional[list[str]] = typer.Option(None, "--result", "-r", metavar="KEY=VALUE",
                                               help="A result of a completed run, e.g. val_mse=0.0097 (repeatable)."),
    ended: Optional[str] = typer.Option(None, "--ended", metavar="TIME", help="When it ended (UTC), e.g. 2026-01-14T06:30:00Z; default: now."),
    note: Optional[str] = typer.Option(None, "--note", help="Why, or where the results come from; kept in its history."),
) -> None:
    """Record how a job irq cannot follow ended: one imported from queue.md as RUNNING or PENDING
    (irq never submitted it), or one on a cluster irq.toml no longer names.

    \b
    Example:
      irq record Q-001 completed --result val_mse=0.0096761 --ended 2026-01-14T06:31:00Z
    """
    from irq.fields import FieldError, parse_time
    from irq.jobs.record import Ending, parse_results, record_end

    try:
        how = Ending(ending.strip().lower())
    except ValueError:
        raise errors.UsageError(f"{ending!r} is not how a job ends", "give completed, failed or cancelled") from None
    try:
        when = parse_time(ended) if ended is not None else None
    except FieldError as exc:
        raise errors.UsageError(f"--ended: {exc}", "e.g. --ended 2026-01-14T06:30:00Z") from None
    results = parse_results(list(result or []))
    x = ctx(c)
    with exported_after(x):
        x.ui.print(record_end(x.ledger(), _config(x), exp_id, how, results, when, note))


@app.command()
def edit(
    c: typer.Context,
    exp_id: str = typer.Argument(..., metavar="ID"),
    title: Optional[str] = typer.Option(None, "--title", "-t"),
    config: Optional[Path] = typer.Option(None, "--config-file", "-c", help="Trainer config JSON; its keys become parameters."),
    hypothesis: Optional[str] = typer.Option(None, "--hypothesis"),
    param: list[str] = typer.Option([], "--param", "-p", help="KEY=VALUE, repeatable."),
    unset: list[str] = typer.Option([], "--unset", help="Drop parameter KEY (repeatable)."),
    priority: Optional[Priority] = typer.Option(None, "--priority", case_sensitive=False, help="Which READY work goes first."),
    after: Optional[list[str]] = typer.Option(None, "--after", help="Replace the dependencies (repeatable)."),
    no_after: bool = typer.Option(False, "--no-after", help="Drop every dependency: it runs after nothing."),
    seeds: Optional[str] = typer.Option(None, "--seeds"),
    gpus: Optional[int] = typer.Option(None, "--gpus", parser=whole_number, metavar="N"),
    cpus: Optional[int] = typer.Option(None, "--cpus", parser=whole_number, metavar="N"),
    memory: Optional[str] = typer.Option(None, "--mem"),
    time: Optional[str] = typer.Option(None, "--time"),
    partition: Optional[str] = typer.Option(None, "--partition"),
    notes: Optional[str] = typer.Option(None, "--notes"),
    command: Optional[str] = typer.Option(None, "--command", help="A new command; {name} placeholders as in `irq add`."),
) -> None:
    """Change an experiment that was never submitted; the change is kept as an event.

    Example: irq edit Q-011 -p mining=random --time '4 hours'
    """
    from irq.experiments.edit import Changes
    from irq.experiments.edit import edit as edit_

    x = ctx(c)
    if no_after and after:
        raise errors.UsageError("--no-after drops every dependency; --after names new ones",
                                "give one of them: `--no-after`, or `--after ID` (repeatable)")
    changes = Changes(title=title, hypothesis=hypothesis, notes=notes, priority=priority.value if priority else None,
                      config=config,
                      params=_params(param), unset=unset, seeds=seeds, gpus=gpus, cpus=cpus, memory=memory,
                      time=time, partition=partition, after=[] if no_after else after, command=command,
                      default_command=_config(x).project.command or "")
    exp, said = edit_(x.ledger(), exp_id, changes)
    after_change(x)
    x.ui.print(f"edited {exp.id}: " + "; ".join(said) if said else f"{exp.id}: nothing to change")


@app.command()
def retire(c: typer.Context, ids: list[str] = typer.Argument(..., metavar="ID..."),
           reason: Optional[str] = typer.Option(None, "--reason", help="Why; kept in its history.")) -> None:
    """Set aside experiments that will never run (again); their history stays.

    Example: irq retire Q-014 --reason 'superseded by Q-020'
    """
    from irq.experiments.edit import retire as retire_

    x = ctx(c)
    ids = _known(x, ids)  # every id first: a typo in the last one changes nothing
    with exported_after(x):
        for i in ids:
            e, held = retire_(x.ledger(), i, reason)
            x.ui.print(f"{e.id} is RETIRED (its history stays; `irq show {e.id}`)")
            if held:
                x.ui.note(f"warning: {', '.join(held)} {'runs' if len(held) == 1 else 'run'} after {e.id} and "
                          f"{'is' if len(held) == 1 else 'are'} held: `irq edit {held[0]} --no-after` "
                          f"(or --after its others), or retire {'it' if len(held) == 1 else 'them'} too")


def _known(x: Ctx, ids: list[str]) -> list[str]:
    """The ids, each once, in order; refused, before anything changes, when the ledger does not
    hold one (one read). An id given twice (`irq ready Q-001 Q-001`) changed the experiment, then
    failed on its second turn."""
    from irq.ledger.database import Ledger
    from irq.ledger.reader import unknown_id

    with x.ledger().transaction() as s:
        held = Ledger.ids(s)
    for i in ids:
        if i.strip() not in held:
            raise unknown_id(i, sorted(held))
    return list(dict.fromkeys(i.strip() for i in ids))


@app.command("rm")
def rm(c: typer.Context, ids: list[str] = typer.Argument(..., metavar="ID...")) -> None:
    """Remove experiments that were never submitted (a submitted one can only be retired).

    Example: irq rm Q-015
    """
    from irq.experiments.edit import remove

    x = ctx(c)
    ids = _known(x, ids)  # every id first: a typo in the last one changes nothing
    with exported_after(x):
        for i in ids:
            e = remove(x.ledger(), i)
            x.ui.print(f"removed {e.id}: {e.title}")


def _params(pairs: list[str]) -> dict[str, Any]:
    """--param KEY=VALUE pairs, values read as numbers, booleans or text (as irq sweep reads them)."""
    from irq.fields import parse_scalar

    params: dict[str, Any] = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key.strip():
            raise errors.UsageError(f"--param wants KEY=VALUE, got {p!r}", "e.g. -p mining=random -p rank=20")
        parsed, rest = parse_scalar(value)
        params[key.strip()] = parsed if rest is None else value.strip()  # `3 apples` is text, never 3
    return params
