"""Where irq keeps what it can always compute again: files in a cache folder, one per ledger and
kind, outside the ledger (a read command never writes the ledger). A cache is data, never code;
a missing, corrupt, foreign or unwritable one is ignored by its reader, never an error."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

ENV = "IRQ_CACHE_DIR"


def cache_dir() -> Path | None:
    """$IRQ_CACHE_DIR, else $XDG_CACHE_HOME/irq, else ~/.cache/irq (None: no home to put it in)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "irq"
    try:
        return Path.home() / ".cache" / "irq"
    except (RuntimeError, KeyError):
        return None


def ledger_file(ledger: Path, kind: str, suffix: str) -> Path | None:
    """The `kind` cache file of this ledger: one per ledger file, wherever it is opened from, named
    by a digest of the ledger's resolved path (None: no cache folder, or a path that cannot resolve)."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        name = hashlib.sha256(os.fsencode(ledger.resolve())).hexdigest()[:32]
    except (OSError, RuntimeError):
        return None
    return folder / f"{kind}-{name}{suffix}"


def write_atomically(path: Path, data: str | bytes | list[bytes]) -> None:
    """A temporary file beside `path` (mode 0600, in a folder made 0700), renamed over it: readers see
    the old file or the new one, never half of one. `data` may come in pieces (not joined first)."""
    import tempfile

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, list):
                f.writelines(data)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
