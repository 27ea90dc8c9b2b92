"""Before the verbs load: the `irq` program starts a status's refresh exec (irq/jobs/quickstatus.py).

Loading the command line (typer, rich, every verb) takes about as long as the refresh's round
trip, so when the program's arguments are plainly a status that refreshes,
`irq [--db PATH] [--config PATH] status [--json] [--state S]... [--limit N]`, the exec starts
first: the very query the last status made if nothing has written to the ledger since
(start_unchanged: the ledger is not even read), else the query about the active attempts the
ledger lists (quickstatus.start). Anything else (--offline, --help, --watch, another verb, an
option not listed) starts nothing here; a status then starts its exec itself. Either way the exec
is used only if the command line the configuration gives is the very same (quickstatus.refresh),
else killed unread.
Never raises: the command itself reports whatever is wrong.
"""
from __future__ import annotations

import sys
from pathlib import Path

BEFORE = ("--db", "--config")  # the program's options that take a value
AFTER = ("--state", "--limit")  # the status options that take a value (and change no refresh)


def plain_status(argv: list[str]) -> str | None:
    """The --db value (or "" for the default ledger) if argv is a plain refreshing status, else None."""
    opts: dict[str, str] = {}
    verb_seen = False
    i = 0
    while i < len(argv):
        a = argv[i]
        name, eq, value = a.partition("=")
        if not verb_seen and a == "status":
            verb_seen = True
        elif name in (AFTER if verb_seen else BEFORE):
            if not eq:
                if i + 1 >= len(argv):
                    return None
                i, value = i + 1, argv[i + 1]
            opts[name] = value
        elif not (verb_seen and a == "--json"):
            return None
        i += 1
    return opts.get("--db", "") if verb_seen else None


def irq_program() -> bool:
    """This process is the `irq` program (its script, or `python -m irq`), not one importing irq."""
    prog = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    return prog.name == "irq" or (prog.name == "__main__.py"
                                  and prog.resolve().parent == Path(__file__).resolve().parents[1])


def start_if_status(argv: list[str]) -> None:
    """Called once, as the `irq` program starts (irq/cli/__init__.py)."""
    if not irq_program() or (db := plain_status(argv)) is None:
        return
    try:
        from irq.ledger.location import resolve_db_path

        path = resolve_db_path(db or None)
        if start_unchanged(path):
            return
        from irq.jobs import quickstatus

        quickstatus.start(path)
    except Exception:  # noqa: BLE001 - an early start is only ever a head start
        return


def start_unchanged(path: Path) -> bool:
    """Start the query the last status of this ledger made if nothing has written to the ledger
    since: then its active attempts are the same, and so is the query. That status found nothing
    changed and kept the ledger's stamp after its own write (quickstatus.refresh); with it, this
    starts without reading the ledger (nor loading sqlite3 and the rest quickstatus.start needs).
    The command line is the remembered one, under the same rules (ahead.remembered)."""
    import shlex

    from irq.backends.slurm_command import squeue_sacct_command
    from irq.backends.ssh import ahead
    from irq.ledger.location import access_mode, stamp

    kept = ahead.memo()
    query = kept.get(ahead.query_key(path))
    if not isinstance(query, dict) or query.get("stamp") is None or query["stamp"] != stamp(path):
        return False
    args, cmd = query.get("sacct_args"), ahead.remembered(query.get("key"), kept)
    if (not cmd or not isinstance(args, list) or not all(isinstance(a, str) for a in args)
            or access_mode(path) != "rw"):
        return False
    ahead.start([*cmd["ssh"], shlex.join(squeue_sacct_command(cmd["user"], args))])
    return True
