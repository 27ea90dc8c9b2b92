"""Reading a file the user names (a queue.md to import, a trainer config): at most so many
bytes, so that a wrong path (`/dev/zero`, a log that never ends) is one error line, not a
process that reads until memory runs out."""
from __future__ import annotations

from pathlib import Path

from irq import errors

MB = 1 << 20


def read_at_most(path: Path, limit: int, what: str, hint: str) -> bytes:
    """The file's bytes; a ParseError naming the path if it cannot be read or holds more than
    `limit` bytes (`what`: what the file should be, for the message)."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise errors.ParseError(str(path), None, f"cannot read: {exc.strerror or exc}", hint) from None
    if len(data) > limit:
        size = f"{limit // MB} MB" if limit >= MB else f"{limit:,} bytes"
        raise errors.ParseError(str(path), None, f"is larger than {size}: not {what}", hint)
    return data
