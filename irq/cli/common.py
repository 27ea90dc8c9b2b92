"""Helpers the command modules share: config, prompts, state colours."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from irq.cli.app import Ctx
from irq.ui import UI


def _dump(model: Any) -> dict:
    """A row as JSON-ready data; times stay datetimes so `ui.json` writes them in its one format."""
    return model.model_dump(mode="python")


def _config(x: Ctx):
    from irq.config import load_config

    return load_config(x.config)


def after_change(x: Ctx) -> None:
    """Keep the configured queue.md export (irq.toml `export`) current after a command changed
    the ledger, as submit, fetch, cancel and the daemon do. The change is made by then: a failure
    to write the file is said as a warning, not as the command's error."""
    from irq import errors
    from irq.config_files import config_data

    if not config_data(x.config)[0].get("export"):
        return  # no export configured: irq.toml is not validated for nothing
    from irq.jobs.actions import export_after_change

    try:
        export_after_change(x.ledger(), _config(x), x.ui)
    except errors.IrqError as exc:
        x.ui.note(f"warning: the change is made, but queue.md was not re-exported: {exc.message}"
                  + (f" ({exc.hint})" if exc.hint else ""))


def finite_seconds(value: float | None) -> float | None:
    """A typer callback for an option in seconds: its `min=` lets nan through, and sleep() fails
    on nan and inf."""
    import math

    import typer

    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a number of seconds (e.g. 30)")
    if value is not None and value > MAX_SECONDS:  # sleep() overflows long before inf
        raise typer.BadParameter(f"{value:g} seconds is more than a day (at most {MAX_SECONDS:,})")
    return value


MAX_SECONDS = 86_400


def whole_number(text: str | int) -> int:
    """An option's whole number, in the digits 0-9 (int() also reads '٢' as 2: a count typed in
    another script would be taken silently)."""
    import re

    import typer

    if isinstance(text, int):  # the option's default
        return text
    t = text.strip()
    if not re.fullmatch(r"-?[0-9]+", t):
        raise typer.BadParameter(f"{text!r} is not a whole number (digits 0-9)")
    return int(t)


def _echoed(prompt: str) -> str:
    """A shown answer (a user name), its prompt on stderr: input() writes its prompt to stdout."""
    sys.stderr.write(prompt)
    sys.stderr.flush()
    return sys.stdin.readline().rstrip("\n")


@contextmanager
def exported_after(x: Ctx) -> Iterator[None]:
    """after_change() once the block ends, also when a later id of several fails: the earlier
    ones were changed (each in its own transaction)."""
    try:
        yield
    finally:
        after_change(x)


def _prompt(x: Ctx):
    """Keyboard-interactive answers (password, one-time code) from a person at a terminal."""
    if not sys.stdin.isatty():
        return None
    import getpass

    def ask(title: str, instructions: str, prompts: list) -> list[str]:
        for said in (title, instructions):  # on stderr, as the prompts: stdout stays the command's (--json)
            if said:
                x.ui.note(said)
        return [getpass.getpass(p) if not echo else _echoed(p) for p, echo in prompts]

    return ask


def shown_lines(line: Any) -> list[str]:
    """A block's line as `irq show` prints it: free text as it was written (a note of several
    lines as indented lines under its key, not queue.md's JSON string), children indented."""
    if line.text is not None and "\n" in line.text:
        return [f"{line.key}:"] + [f"  {t}" if t else "" for t in line.text.split("\n")]
    value = line.text if line.text is not None else line.value
    return [f"{line.key}: {value}" if value else f"{line.key}:"] + [f"  {k}: {v}" for k, v in line.children]


def _print_line(ui: UI, line: Any) -> None:
    for text in shown_lines(line):
        ui.print("  " + text if text else "")


STATE_STYLE = {"READY": "cyan", "IN_PROGRESS": "yellow", "DONE": "green", "FAILED": "red", "PROPOSED": "dim",
               "RETIRED": "dim"}
