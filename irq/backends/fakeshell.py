"""A login node for tests: a Remote whose sbatch, squeue, sacct, sacctmgr, scontrol and scancel
replay recorded output, so the real SlurmBackend runs without a cluster.

Commands run in a real local ``sh`` (the backend's own scripts, quoting and marker lines),
with stub programs first on the PATH. Each stub appends its argv to a log and prints the reply
a test recorded for it with ``reply(command, stdout, stderr, rc, when=WORD)``: a reply recorded
``when`` an argument equals WORD (``sacctmgr ... show qos`` -> when="qos") beats the plain one.
Replies stay until replaced. ``drop_during("sbatch")`` makes the next exec that runs sbatch lose
the link, before or after the command ran (after: sbatch took the job, its id never came back).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from irq import errors
from irq.backends.base import CallCounter

STUBS = ("sbatch", "squeue", "sacct", "sacctmgr", "scontrol", "scancel")

STUB = r'''#!/bin/sh
# {name}: replays a recorded reply (irq/backends/fakeshell.py)
r="$IRQ_FAKE_REPLIES/{name}"
for a in "$@"; do
  if [ -f "$IRQ_FAKE_REPLIES/{name}.$a.rc" ]; then r="$IRQ_FAKE_REPLIES/{name}.$a"; break; fi
done
# one write to the log, whole: a refresh runs squeue and sacct at once
{{ printf '%s\0' {name} "$@"; printf '\n'; }} > "$IRQ_FAKE_LOG.$$"
cat "$IRQ_FAKE_LOG.$$" >> "$IRQ_FAKE_LOG"
rm -f "$IRQ_FAKE_LOG.$$"
if [ ! -f "$r.rc" ]; then echo "{name}: no recorded reply" >&2; exit 99; fi
cat "$r.out"
cat "$r.err" >&2
exit "$(cat "$r.rc")"
'''


class FakeShell:
    """Remote protocol (base.py) on this machine, with recorded scheduler replies."""

    def __init__(self, root: Path, user: str = "irqtest", host: str = "login.example.org:22") -> None:
        self.root = Path(root)
        self.counter = CallCounter()
        self._user = user
        self._host = host
        self._replies = self.root / "replies"
        self._log = self.root / "calls.log"
        self._bin = self.root / "bin"
        self._drop: tuple[str, bool] | None = None  # (command, after it ran)
        self.closed = 0
        self._replies.mkdir(parents=True, exist_ok=True)
        self._bin.mkdir(parents=True, exist_ok=True)
        for name in STUBS:
            stub = self._bin / name
            stub.write_text(STUB.format(name=name))
            stub.chmod(0o755)

    # ------------------------------------------------------------------ recording
    def reply(self, command: str, stdout: str = "", stderr: str = "", rc: int = 0, when: str | None = None) -> None:
        if command not in STUBS:
            raise ValueError(f"no stub for {command}")
        base = self._replies / (command if when is None else f"{command}.{when}")
        base.with_name(base.name + ".out").write_text(stdout)
        base.with_name(base.name + ".err").write_text(stderr)
        base.with_name(base.name + ".rc").write_text(str(rc))

    def drop_during(self, command: str, after: bool = True) -> None:
        self._drop = (command, after)

    def calls(self, command: str | None = None) -> list[list[str]]:
        """The argv of every stub run so far (optionally of one command), oldest first."""
        if not self._log.exists():
            return []
        runs = [entry.split("\0") for entry in self._log.read_text().split("\0\n") if entry]
        return [r for r in runs if command is None or r[0] == command]

    # ------------------------------------------------------------------ Remote
    @property
    def user(self) -> str:
        return self._user

    @property
    def where(self) -> str:
        return f"{self._user}@{self._host}"

    def _lost(self, what: str) -> errors.BackendError:
        self._drop = None
        return errors.BackendError(f"the connection to {self._host} dropped during {what}",
                                   "irq keeps every experiment as it was; the next command reconnects")

    def run(self, cmd: Sequence[str] | str, *, stdin: str | bytes | None = None,
            timeout: float | None = None, calls: Sequence[str] | None = None) -> tuple[int, str, str]:
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        if calls is None:
            calls = () if isinstance(cmd, str) else (os.path.basename(argv[0]),)
        what = ", ".join(calls) or argv[0]
        self.counter.add(*calls, round_trips=1)
        drop = self._drop if self._drop is not None and self._drop[0] in calls else None
        if drop is not None and not drop[1]:
            raise self._lost(what)
        data = stdin.encode() if isinstance(stdin, str) else (stdin or b"")
        env = {**os.environ, "PATH": f"{self._bin}{os.pathsep}{os.environ.get('PATH', '')}",
               "IRQ_FAKE_REPLIES": str(self._replies), "IRQ_FAKE_LOG": str(self._log)}
        try:
            p = subprocess.run(argv, input=data, capture_output=True, env=env, timeout=timeout or 30, check=False)
        except subprocess.TimeoutExpired:
            raise errors.BackendError(f"no answer from {self._host} within {timeout or 30:g}s during {what}") from None
        if drop is not None:
            raise self._lost(what)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    def put_text(self, path: str, text: str, mode: int = 0o644) -> None:
        self.counter.add(round_trips=1)
        Path(path).write_text(text)
        os.chmod(path, mode)

    def read_tail(self, path: str, max_bytes: int = 65536) -> str | None:
        self.counter.add(round_trips=1)
        p = Path(path)
        if not p.is_file():
            return None
        return p.read_bytes()[-max_bytes:].decode("utf-8", "replace")

    def get_tree(self, remote_dir: str, local_dir: Path, exclude: Sequence[str] = ()) -> list[Path]:
        self.counter.add(round_trips=1)
        src = Path(remote_dir)
        if not src.is_dir():
            return []
        copied = []
        for p in sorted(src.rglob("*")):
            rel = p.relative_to(src)
            if p.is_file() and not any(part in exclude for part in rel.parts[:-1]):
                (Path(local_dir) / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(p, Path(local_dir) / rel)
                copied.append(Path(local_dir) / rel)
        return copied

    def close(self) -> None:
        self.closed += 1
