"""Helpers the command modules share: config, prompts, escaping, state colours."""
from __future__ import annotations

import sys
from typing import Any

from irq.cli.app import Ctx
from irq.ui import UI


def _dump(model: Any) -> dict:
    return model.model_dump(mode="json")


def _config(x: Ctx):
    from irq.config import load_config

    return load_config(x.config)


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


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _print_line(ui: UI, line: Any) -> None:
    ui.print(f"  {line.key}: {line.value}")
    for k, v in line.children:
        ui.print(f"    {k}: {v}")


STATE_STYLE = {"READY": "cyan", "IN_PROGRESS": "yellow", "DONE": "green", "FAILED": "red", "PROPOSED": "dim",
               "RETIRED": "dim"}
