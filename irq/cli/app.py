"""The app, its context object and the one error boundary: every error is one line and a hint."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from typer.exceptions import TyperException

from irq import errors
from irq.ui import UI

if TYPE_CHECKING:
    from irq.ledger.database import Ledger

app = typer.Typer(
    name="irq",
    help="An experiment queue and ledger for ML studies on SLURM clusters.\n\n"
         "\b\nExamples:\n  irq init\n  irq add Q-001 --title Baseline -c q001.json\n"
         "  irq submit --all-ready\n  irq status --watch 30",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    rich_markup_mode=None,  # help texts are shown as written: `[clusters.NAME]` stays
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("irq")
        except PackageNotFoundError:  # pragma: no cover - running from a checkout without install
            v = "unknown"
        sys.stdout.write(f"irq {v}\n")
        raise typer.Exit()


@dataclass
class Ctx:
    db: Path  # the ledger: --db, $IRQ_DB, else the project's (found upwards, as irq.toml is)
    config: Optional[Path]
    ui: UI
    here_db: Path = Path("queue.db")  # where `irq init` makes one: --db, $IRQ_DB, else ./queue.db

    def ledger(self) -> "Ledger":
        from irq.ledger.database import Ledger

        return Ledger(self.db)


def ctx(c: typer.Context) -> Ctx:
    return c.obj


@app.callback()
def _root(
    c: typer.Context,
    db: Optional[Path] = typer.Option(None, "--db", help="Ledger file (default: $IRQ_DB, else the project's queue.db: in the nearest folder from here up holding one or an irq.toml). Its project's irq.toml (from its folder up) applies, else the one found from here."),
    config: Optional[Path] = typer.Option(None, "--config", help="irq.toml to use instead of the one found from the ledger or from here."),
    _v: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print irq's version."),
) -> None:
    from irq.ledger.location import DEFAULT_DB, given_db, project_db  # stdlib only: no ORM here

    given = given_db(db)
    if given is not None and config is None:  # a ledger named from elsewhere: its own project's irq.toml
        from irq.config_files import find_config

        config = find_config(given.absolute().parent)
    c.obj = Ctx(given or project_db(), config, UI(), given or Path(DEFAULT_DB))


DEBUG_ENV = "IRQ_DEBUG"  # set (to anything): an unexpected exception is raised with its traceback
EX_SOFTWARE = 70  # sysexits.h: an internal software error


def main(argv: list[str] | None = None) -> None:
    ui = UI()
    try:
        code = _run(ui, argv)
        sys.stdout.flush()
    except BrokenPipeError:  # `irq status | head -1`: the reader has all it wanted
        code = _closed_pipe()
    except SystemExit:
        # typer turns a closed pipe (EPIPE) into exit 1 after wrapping stdout; it is not an error
        if type(sys.stdout).__name__ != "PacifyFlushWrapper":
            raise
        code = _closed_pipe()
    except Exception as exc:  # noqa: BLE001 - the last boundary: see _crashed
        if os.environ.get(DEBUG_ENV):
            raise
        code = _crashed(ui, exc)
    sys.exit(code)


def _crashed(ui: UI, exc: Exception) -> int:
    """An exception no part of irq expected is a bug in irq: one `error:` line and a `hint:` saying
    where its traceback was kept, for the report, instead of the traceback itself. Every write is a
    transaction, so the ledger is as it was before the command (or after its last whole step)."""
    import traceback
    from datetime import datetime, timezone

    from irq.cache_files import cache_dir

    text = "".join(traceback.format_exception(exc))
    kept = None
    folder = cache_dir()
    if folder is not None:
        path = folder / f"crash-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{os.getpid()}.txt"
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            # backslashreplace: an argument that is not UTF-8 must not fail the report of a failure
            path.write_text(f"irq {' '.join(sys.argv[1:])}\n\n{text}", encoding="utf-8", errors="backslashreplace")
            kept = path
        except OSError:
            pass
    where = f"its traceback is in {kept}" if kept else f"run it again with {DEBUG_ENV}=1 to see the traceback"
    ui.error(errors.IrqError(f"irq failed unexpectedly: {type(exc).__name__}: {exc}"[:500],
                             f"this is a bug in irq; {where}; please report it with the command you ran"))
    return EX_SOFTWARE


def _closed_pipe() -> int:
    _quiet_stdout()
    return 0


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.__stdout__.fileno())
    except (OSError, ValueError, AttributeError):  # pragma: no cover - stdout replaced by a test harness
        pass


def shown_if_not_utf8(value: str) -> str | None:
    """A value whose bytes are not UTF-8 (Python holds them as surrogates), shown with those bytes
    escaped (`caf\\xe9`); None for UTF-8 text."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(value).decode("utf-8", "backslashreplace")
    return None


def not_utf8(args: list[str]) -> errors.UsageError | None:
    """An argument that is not UTF-8: no text irq keeps (the ledger, queue.md, a job script) can
    hold it, so it is refused at the door."""
    for arg in args:
        if (shown := shown_if_not_utf8(arg)) is not None:
            return errors.UsageError(f"an argument is not UTF-8 text: {shown}",
                                     "type it again as UTF-8 (or rename the file to a UTF-8 name)")
    return None


def not_utf8_place() -> errors.UsageError | None:
    """A working folder or an IRQ_* variable whose path is not UTF-8: irq records the project's
    paths as text (run folders, job scripts), so it is refused at the door, not half-way through
    a submit."""
    try:
        places = [("the current folder", os.getcwd())]
    except OSError:
        places = []
    places += [(f"${k}", v) for k, v in sorted(os.environ.items()) if k.startswith("IRQ_")]
    for what, value in places:
        if (shown := shown_if_not_utf8(value)) is not None:
            return errors.UsageError(f"{what} is not UTF-8 text: {shown}",
                                     "irq records paths as text: rename the folder to a UTF-8 name, or work from another one")
    return None


def _run(ui: UI, argv: list[str] | None) -> int:
    if (refused := not_utf8(sys.argv[1:] if argv is None else argv) or not_utf8_place()) is not None:
        ui.error(refused)
        return refused.exit_code
    try:
        rv = app(args=argv, prog_name="irq", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except errors.IrqError as exc:
        ui.error(exc)
        code = exc.exit_code
    except typer.Exit as exc:
        code = exc.exit_code
    except TyperException as exc:  # click's own usage errors read like irq's: one error, one hint
        if type(exc).__name__ == "NoArgsIsHelpError":  # `irq` or `irq daemon` alone: the help asked for, on stdout
            ui.print(exc.format_message())
            return 0
        where = getattr(getattr(exc, "ctx", None), "command_path", None) or "irq"
        ui.error(errors.UsageError(exc.format_message(), f"see `{where} -h` for its arguments and options"))
        code = exc.exit_code
    except typer.Abort:
        ui.err.print("aborted")
        code = 130
    except KeyboardInterrupt:
        ui.err.print("interrupted")
        code = 130
    return code
