"""Following a run from the command line: `irq log -f` and `irq status --watch`."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from irq.ui import UI, num

INTERRUPTED = 130  # docs/errors.md: the exit code of an interrupted command

CURVE_KEYS = ("loss", "val_mse", "best_val_mse")  # the bundled trainer's, shown first when a row has them
SHOWN = 4  # numbers of a row shown beside its step


def curve_text(row: dict[str, Any]) -> str:
    """One learning-curve row in words: its step, then the bundled trainer's loss and validation
    metrics, then the row's other numbers in its own order (a script's `train_loss`, `val_loss`:
    the run contract names no keys), at most SHOWN of them; diagnostics (diag_*) left out."""
    others = [k for k in row if k not in CURVE_KEYS and k != "step" and not k.startswith("diag_")]
    keys = [k for k in (*CURVE_KEYS, *others)
            if k in row and isinstance(row[k], (int, float)) and not isinstance(row[k], bool)][:SHOWN]
    return "  ".join(f"{k} {num(row[k])}" for k in (["step"] if "step" in row else []) + keys)


def new_text(shown: str, now: str) -> str:
    """What `now` (a log's tail) adds to what was already `shown`."""
    if now.startswith(shown):
        return now[len(shown):]
    lines = shown.splitlines()
    if lines:  # the tail's window moved: continue after the last line already shown
        cut = now.rfind(lines[-1] + "\n")
        if cut >= 0:
            return now[cut + len(lines[-1]) + 1:]
    return now


class LogFollower:
    """Prints each look's new log lines and new curve rows, once."""

    def __init__(self, ui: UI, lines: int) -> None:
        self.ui, self.lines = ui, lines
        self.shown: dict[str, str] | None = None  # each log's text as last shown (an array: one per task)
        self.attempt: int | None = None
        self.steps: dict[str, int] = {}

    def show(self, look: Any) -> None:
        if look.attempt != self.attempt:  # first look, or a newer attempt started
            self.ui.note(f"{look.exp_id} attempt {look.attempt}, job {look.job_id}:")
            self.attempt, self.shown, self.steps = look.attempt, None, {}
        first, shown = self.shown is None, self.shown or {}
        for name, text in look.logs.items():  # each log followed on its own: tasks write at once
            if first:
                tail = text.splitlines()[-self.lines:] if self.lines > 0 else []  # -n 0: only what comes next
                add = "\n".join(tail) + ("\n" if tail else "")
            else:
                add = new_text(shown.get(name, ""), text)
            for line in add.splitlines():
                self.ui.print(f"{name}: {line}" if len(look.logs) > 1 else line)
        self.shown = dict(look.logs)
        for sub, rows in look.curve.items():
            for row in rows:
                if row["step"] > self.steps.get(sub, -1):
                    self.ui.print(f"curve {sub + ' ' if sub else ''}{curve_text(row)}")
                    self.steps[sub] = row["step"]
        if look.finished:
            self.ui.note(f"{look.exp_id} attempt {look.attempt} has finished; `irq fetch {look.exp_id}`")


def follow_log(ui: UI, looks: Iterable[Any], lines: int) -> None:
    follower = LogFollower(ui, lines)
    try:
        for look in looks:
            follower.show(look)
    except KeyboardInterrupt:  # Ctrl-C ends following, quietly, as an interrupted command exits (130)
        raise SystemExit(INTERRUPTED) from None


def watch(ui: UI, every: float, count: int | None, draw: Callable[[], None],
          sleep: Callable[[float], None] = time.sleep, blocks: bool = True) -> None:
    """Redraw every `every` seconds until Ctrl-C (or `count` draws): a live view on a terminal,
    one block per refresh, separated by an empty line, when piped; `blocks=False` (JSON Lines):
    each draw is one line of its own, nothing cleared or between them."""
    n = 0
    try:
        while True:
            if blocks and ui.interactive:
                ui.out.clear()
            elif blocks and n:
                ui.print("")
            draw()
            n += 1
            if count is not None and n >= count:
                return
            sleep(every)
    except KeyboardInterrupt:  # the way a watch ends: quietly, with the exit code of an interrupted command
        raise SystemExit(INTERRUPTED) from None
