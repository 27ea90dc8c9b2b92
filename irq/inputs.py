"""Reading a file the user names (a queue.md to import, a trainer config): at most so many
bytes, so that a wrong path (`/dev/zero`, a log that never ends, a named pipe nobody writes to)
is one error line, not a process that reads until memory runs out or waits for ever."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from irq import errors

MB = 1 << 20


def read_at_most(path: Path, limit: int, what: str, hint: str) -> bytes:
    """The file's bytes; a ParseError naming the path if it cannot be read or holds more than
    `limit` bytes (`what`: what the file should be, for the message)."""
    try:
        # a named pipe nobody writes to would block open() forever: opened without waiting, then
        # read as any file (a pipe with a writer, such as bash's <(…), is read to its end)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        os.set_blocking(fd, True)
        with open(fd, "rb") as f:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
            data = f.read(limit + 1)
    except OSError as exc:
        raise errors.ParseError(str(path), None, f"cannot read: {exc.strerror or exc}", hint) from None
    if not data and not regular:
        raise errors.ParseError(str(path), None, f"is a pipe or device with nothing to read, not {what}", hint)
    if len(data) > limit:
        size = f"{limit // MB} MB" if limit >= MB else f"{limit:,} bytes"
        raise errors.ParseError(str(path), None, f"is larger than {size}: not {what}", hint)
    return data
