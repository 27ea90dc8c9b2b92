"""`ssh` commands started ahead of their use, and where irq keeps its master sockets.

`irq status` spends most of its time loading irq (pydantic, the config); its refresh is one
`ssh` exec of squeue + sacct through the master. So the status command starts that exec first,
from the command line the previous status used (kept per user, beside the master sockets),
and loads the rest meanwhile. An answer is used only by a command whose whole argument list is
the very same, built afresh from the configuration (`OpenSSHSession._exec` asks `take`): a
changed irq.toml or ssh setup means another command line, the early one is killed unread.

Standard library only: importing this module must cost nothing.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
from pathlib import Path

_started: dict[tuple[str, ...], "Started"] = {}
_at_exit = False  # forget() is registered to run at exit
MEMO_KEEP = 50  # command lines remembered (ledgers x clusters)


def control_dir() -> Path:
    """irq's own directory of master sockets (mode 700): $IRQ_CONTROL_DIR or ~/.irq/cm."""
    d = Path(os.path.expanduser(os.path.expandvars(os.environ.get("IRQ_CONTROL_DIR") or "~/.irq/cm")))
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


class Started:
    """One `ssh` process started ahead; its answer (exit code, stdout, stderr) is read once and kept."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = tuple(argv)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self._answer: tuple[int, bytes, str] | None = None
        self._timed_out = False

    def answer(self, timeout: float) -> tuple[int, bytes, str]:
        """Wait for it (raises subprocess.TimeoutExpired, then and ever after, if it takes longer)."""
        if self._timed_out:
            raise subprocess.TimeoutExpired(self.argv, timeout)
        if self._answer is None:
            try:
                out, err = self.proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._timed_out = True
                self.stop()
                raise
            self._answer = (self.proc.returncode, out, err.decode("utf-8", "replace"))
        return self._answer

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def start(argv: list[str]) -> Started:
    """Start `argv` now (unless it runs already); a later exec of the same argument list takes its
    answer. What nobody takes is killed when the process exits, at the latest."""
    global _at_exit
    s = _started.get(tuple(argv))
    if s is None:
        if not _at_exit:
            _at_exit = bool(atexit.register(forget))
        s = _started[tuple(argv)] = Started(argv)
    return s


def started(argv: list[str]) -> Started | None:
    return _started.get(tuple(argv))


def take(argv: list[str]) -> Started | None:
    """The process started ahead with exactly this argument list, if any (it is used once)."""
    return _started.pop(tuple(argv), None)


def forget() -> None:
    """Kill and reap what nobody took (a changed command line, an error on the way)."""
    while _started:
        _started.popitem()[1].stop()


# ---------------------------------------------------------------------- the remembered command line
def _memo_path() -> Path:
    return control_dir() / "status-ahead.json"


def query_key(ledger: Path) -> str:
    """Where the memo keeps the query the last status of this ledger made (irq/cli/early.py)."""
    return f"{ledger.resolve()}|next"


def ssh_program() -> str | None:
    """The `ssh` irq runs: $IRQ_SSH, else `ssh`, found on the PATH."""
    return shutil.which(os.environ.get("IRQ_SSH", "ssh"))


def memo() -> dict:
    """Everything `remember` kept, from a file of this user's that nobody else may write (else
    nothing): what it holds is run before anything checks it."""
    try:
        path = _memo_path()
        st = path.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o022:
            return {}
        got = json.loads(path.read_text())
        return got if isinstance(got, dict) else {}
    except (OSError, ValueError):
        return {}


def remembered(key: str, kept: dict | None = None) -> dict | None:
    """The command line `remember` kept under key (a ledger and a backend), or None: only one that
    runs the `ssh` irq would run. kept: what memo() returned, if read already."""
    try:
        got = (memo() if kept is None else kept).get(key)
        ok = got["ssh"][0] == ssh_program() and all(isinstance(a, str) for a in got["ssh"])
        return got if ok and isinstance(got["user"], str) else None
    except (AttributeError, LookupError, TypeError):
        return None


def remember(entries: dict[str, dict]) -> None:
    """Keep these values under their keys for the next command (this user's, this machine's:
    not in the ledger)."""
    path = _memo_path()
    try:
        kept = json.loads(path.read_text())
        kept = kept if isinstance(kept, dict) else {}
    except (OSError, ValueError):
        kept = {}
    if all(kept.get(k) == v for k, v in entries.items()):
        return
    for k, v in entries.items():
        kept.pop(k, None)
        kept[k] = v
    while len(kept) > MEMO_KEEP:  # the oldest go
        kept.pop(next(iter(kept)))
    tmp = path.with_name(f"{path.name}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(kept))
        os.replace(tmp, path)
    except OSError:
        pass  # only a cache: the next status starts its refresh a little later
