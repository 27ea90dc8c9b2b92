"""Where `irq export FILE`, `irq render -o`, `irq report` and the configured export write: a
file is replaced whole, a link keeps pointing at its file, and a pipe or device is written into,
never replaced by a regular file (as root, `irq export /dev/full` once put a file in its place)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from irq import errors
from irq.formats.queue_io import write_atomically


def test_a_file_is_replaced_whole_and_keeps_its_mode(tmp_path):
    f = tmp_path / "queue.md"
    f.write_text("old")
    f.chmod(0o640)
    write_atomically(f, ["new ", b"text"])
    assert f.read_text() == "new text" and stat.S_IMODE(f.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["queue.md"]  # no temporary file left


def test_a_link_is_followed_and_stays_a_link(tmp_path):
    (tmp_path / "docs").mkdir()
    real = tmp_path / "docs" / "queue.md"
    real.write_text("old")
    link = tmp_path / "queue.md"
    link.symlink_to(real)
    write_atomically(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(real) and real.read_text() == "new"
    dangling = tmp_path / "later.md"
    dangling.symlink_to(tmp_path / "docs" / "later.md")
    write_atomically(dangling, "made")
    assert dangling.is_symlink() and (tmp_path / "docs" / "later.md").read_text() == "made"


def test_a_pipe_is_written_into_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader is there: opening to write does not wait
    try:
        write_atomically(fifo, ["# Experiment Queue\n", "more\n"])  # less than a pipe holds
        got = os.read(reader, 1 << 16)
    finally:
        os.close(reader)
    assert got == b"# Experiment Queue\nmore\n" and stat.S_ISFIFO(fifo.lstat().st_mode)


def test_refusals_are_one_usage_error_and_leave_nothing(tmp_path):
    with pytest.raises(errors.UsageError, match="does not exist"):
        write_atomically(tmp_path / "nodir" / "q.md", "x")
    with pytest.raises(errors.UsageError, match="is a folder"):
        write_atomically(tmp_path, "x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(errors.UsageError, match="q.md: Not a directory"):
        write_atomically(tmp_path / "file" / "q.md", "x")
    if os.path.isdir("/proc/self"):  # a folder no one may create files in, root included
        with pytest.raises(errors.UsageError, match="cannot write /proc/irq-test.md"):
            write_atomically(Path("/proc/irq-test.md"), "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_named_file_is_read_up_to_a_limit(tmp_path):
    """irq/inputs.py: what `irq import` and `irq add -c` read (a wrong path such as /dev/zero
    once read until memory ran out)."""
    from irq.inputs import read_at_most

    f = tmp_path / "queue.md"
    f.write_bytes(b"x" * 100)
    assert read_at_most(f, 100, "a queue.md", "hint") == b"x" * 100
    with pytest.raises(errors.ParseError, match="queue.md: is larger than 99 bytes: not a queue.md"):
        read_at_most(f, 99, "a queue.md", "hint")
    with pytest.raises(errors.ParseError, match="cannot read: No such file or directory"):
        read_at_most(tmp_path / "nope.md", 100, "a queue.md", "hint")
