"""Output for people and for programs: rich tables and progress on a terminal, plain lines when
piped, JSON on request. Nothing else in irq writes to the terminal.

Every value that came from a user or a job (titles, notes, parameters, log lines, error messages)
is data, never markup: it reaches rich as `Text` or with markup off, emoji codes are off, and
control characters are shown as visible escapes (``\\x1b``) so a log line cannot drive the terminal.
"""
from __future__ import annotations

import json
import math
import re
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timezone
from typing import Any

from rich.console import Console
from rich.text import Text

from irq.errors import IrqError

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CELL_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean(text: Any, cell: bool = False) -> str:
    """A value as visible text: control characters as escapes; in a cell, tabs and newlines too
    (one row is one line when piped)."""
    s = str(text)
    if s.isprintable():  # every character either pattern escapes is unprintable: the common case
        return s
    pattern = _CELL_CONTROL if cell else _CONTROL
    return pattern.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), s)


def iso(t: datetime | date) -> str:
    """The one time format of every --json: ISO 8601 in UTC, whole seconds, `Z` (2026-01-14T04:20:54Z)."""
    if not isinstance(t, datetime):
        return t.isoformat()
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc).replace(tzinfo=None)
    return t.replace(microsecond=0).isoformat() + "Z"


def num(v: Any) -> str:
    """The one number format for people: floats to 4 significant digits, integers whole."""
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def counted(n: int, noun: str) -> str:
    """'1 experiment', '2 experiments', '1 line' (nouns whose plural adds an s)."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def jsonable(data: Any) -> Any:
    """Data ready for json.dumps: times in the one ISO format, tuples as lists, a NaN or infinity
    (in a ledger an older irq wrote) as the text irq now keeps for it ('nan'): JSON has no such number."""
    if isinstance(data, float) and not math.isfinite(data):
        return str(data)
    if isinstance(data, dict):
        return {str(k): jsonable(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [jsonable(v) for v in data]
    if isinstance(data, (datetime, date)):
        return iso(data)
    return data


def _json_default(v: Any) -> Any:
    return iso(v) if isinstance(v, (datetime, date)) else str(v)


class UI:
    def __init__(self, verbose: bool = True) -> None:
        self.out = Console(highlight=False, emoji=False)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
        # progress lines (`step`) when piped; a command whose outcomes print on stdout turns it off
        self.verbose = verbose

    @property
    def interactive(self) -> bool:
        return self.out.is_terminal

    def print(self, *args: Any, **kw: Any) -> None:
        """Plain strings print as they are (no markup, control characters visible); rich objects render."""
        if args and all(isinstance(a, str) for a in args):
            if not self.interactive:
                sys.stdout.write(" ".join(clean(a) for a in args) + "\n")
                return
            args = tuple(Text(clean(a)) for a in args)
            kw.setdefault("soft_wrap", True)
        self.out.print(*args, **kw)

    def note(self, message: str) -> None:
        """A remark for the person, on stderr, never markup."""
        self.err.print(Text(clean(message)), soft_wrap=True)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
              style: str = "", plain_prefix: Sequence[str] = ()) -> None:
        """A listing: a rich table on a terminal; piped, one tab-separated line per row (with
        `plain_prefix` first, e.g. the state), no box drawing, no wrapping."""
        if not self.interactive:
            lines = ("\t".join([*plain_prefix, *(clean(v, cell=True) for v in row)]) for row in rows)
            sys.stdout.write("".join(line + "\n" for line in lines))
            return
        from rich.table import Table

        t = Table(title=Text(title, style=style), title_justify="left")
        for col in columns:
            t.add_column(col, overflow="fold")
        for row in rows:
            t.add_row(*(Text(clean(v)) for v in row))
        self.out.print(t)

    def styled(self, *parts: tuple[str, str]) -> None:
        """One line of (text, style) pieces; the text is never parsed as markup."""
        if not self.interactive:
            sys.stdout.write("".join(clean(p) for p, _ in parts) + "\n")
            return
        self.out.print(Text.assemble(*((clean(p), s) for p, s in parts)), soft_wrap=True)

    def log(self, message: str) -> None:
        """One line worth knowing (a recovery, a warning): styled on a terminal, timestamped otherwise."""
        if self.interactive:
            self.err.print(Text.assemble((f"{datetime.now():%H:%M:%S} ", "dim"), clean(message)))
        else:
            print(f"{datetime.now():%Y-%m-%d %H:%M:%S} {clean(message)}", file=sys.stderr, flush=True)

    def step(self, message: str) -> None:
        """One progress line: on a terminal, or when piped only if verbose (the daemon's log is)."""
        if self.interactive or self.verbose:
            self.log(message)

    def json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(jsonable(data), indent=2, default=str, ensure_ascii=False) + "\n")

    def json_line(self, data: Any) -> None:
        """One JSON document on one line (JSON Lines: `--watch --json` prints one per refresh)."""
        sys.stdout.write(json.dumps(data, default=_json_default, ensure_ascii=False, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    def json_rows(self, data: dict[str, Any]) -> None:
        """A listing's JSON: an object whose lists hold one row per line. Rows are encoded
        without indentation, which lets json use its C encoder (indent= falls back to Python:
        5 times slower on 10,000 rows); times in the one ISO format."""
        def enc(v: Any) -> str:
            return json.dumps(v, default=_json_default, ensure_ascii=False)

        def field(v: Any) -> str:
            if isinstance(v, list) and v:
                return "[\n    " + ",\n    ".join(enc(r) for r in v) + "\n  ]"
            return enc(v)

        sys.stdout.write("{\n" + ",\n".join(f"  {enc(str(k))}: {field(v)}" for k, v in data.items()) + "\n}\n")

    def error(self, exc: IrqError) -> None:
        self.err.print(Text.assemble(("error:", "bold red"), " ", clean(exc.message)))
        if exc.hint:
            self.err.print(Text.assemble(("hint:", "yellow"), " ", clean(exc.hint)))

    @contextmanager
    def progress(self, description: str, total: int | None = None) -> Iterator["Step"]:
        """Long work: a rich progress bar on a terminal, start/step/finish lines otherwise."""
        if self.interactive:
            from rich.progress import (
                BarColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            with Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(),
                          TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                          console=self.err, transient=False) as prog:
                task = prog.add_task(clean(description), total=total)
                yield Step(lambda msg=None: prog.update(task, advance=1, description=clean(msg or description)),
                           lambda msg: prog.console.print(Text(clean(msg))))
        else:
            start = time.monotonic()
            self.step(f"{description}: started")
            count = [0]

            def advance(msg: str | None = None) -> None:
                count[0] += 1
                of = f"/{total}" if total else ""
                self.step(f"{description}: {count[0]}{of}" + (f" {msg}" if msg else ""))

            yield Step(advance, self.log)
            self.step(f"{description}: done in {time.monotonic() - start:.1f}s")


class Step:
    def __init__(self, advance: Any, note: Any) -> None:
        self.advance = advance
        self.note = note
