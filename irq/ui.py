"""Output for people and for programs: rich tables and progress on a terminal, plain log
lines when piped, JSON on request. Nothing else in irq writes to the terminal."""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from irq.errors import IrqError


class UI:
    def __init__(self) -> None:
        self.out = Console(highlight=False)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    @property
    def interactive(self) -> bool:
        return self.out.is_terminal

    def print(self, *args: Any, **kw: Any) -> None:
        """Plain strings print as they are (no markup); rich objects render."""
        if args and all(isinstance(a, str) for a in args):
            kw.setdefault("markup", False)
            kw.setdefault("soft_wrap", True)
        self.out.print(*args, **kw)

    def styled(self, text: str) -> None:
        self.out.print(text)

    def log(self, message: str) -> None:
        """One progress line: styled on a terminal, timestamped plain text otherwise."""
        if self.interactive:
            self.err.print(f"[dim]{datetime.now():%H:%M:%S}[/dim] {message}")
        else:
            print(f"{datetime.now():%Y-%m-%d %H:%M:%S} {_plain(message)}", file=sys.stderr, flush=True)

    def json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")

    def error(self, exc: IrqError) -> None:
        self.err.print(f"[bold red]error:[/] {_escape(exc.message)}")
        if exc.hint:
            self.err.print(f"[yellow]hint:[/] {_escape(exc.hint)}")

    @contextmanager
    def progress(self, description: str, total: int | None = None) -> Iterator["Step"]:
        """Long work: a rich progress bar on a terminal, start/step/finish lines otherwise."""
        if self.interactive:
            with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                          TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                          console=self.err, transient=False) as prog:
                task = prog.add_task(description, total=total)
                yield Step(lambda msg=None: prog.update(task, advance=1, description=msg or description),
                           lambda msg: prog.console.print(msg))
        else:
            start = time.monotonic()
            self.log(f"{description}: started")
            count = [0]

            def advance(msg: str | None = None) -> None:
                count[0] += 1
                of = f"/{total}" if total else ""
                self.log(f"{description}: {count[0]}{of}" + (f" {msg}" if msg else ""))

            yield Step(advance, self.log)
            self.log(f"{description}: done in {time.monotonic() - start:.1f}s")


class Step:
    def __init__(self, advance: Any, note: Any) -> None:
        self.advance = advance
        self.note = note


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


def _plain(text: str) -> str:
    from rich.text import Text

    try:
        return Text.from_markup(text).plain
    except Exception:  # text with literal brackets, e.g. array ids 12_[0-3]
        return text
