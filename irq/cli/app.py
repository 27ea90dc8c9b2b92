"""The app, its context object and the one error boundary: every error is one line and a hint."""
from __future__ import annotations

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

    def ledger(self) -> "Ledger":
        from irq.ledger.database import Ledger

        return Ledger(self.db)


def ctx(c: typer.Context) -> Ctx:
    return c.obj


@app.callback()
def _root(
    c: typer.Context,
    db: Optional[Path] = typer.Option(None, "--db", help="Ledger file (default: $IRQ_DB or ./queue.db)."),
    config: Optional[Path] = typer.Option(None, "--config", help="irq.toml to use instead of the one found from here."),
) -> None:
    from irq.ledger.reader import resolve_db_path  # stdlib only: no ORM here

    c.obj = Ctx(resolve_db_path(db), config, UI())


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
