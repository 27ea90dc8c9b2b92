"""The export cache: each experiment's queue.md text remembered between runs of `irq export`,
outside the ledger (a read command never writes the ledger).

An experiment's text in the packaged layout (``queue_layout.PARTS``: its definition, its attempts
in IN_PROGRESS, DONE and FAILED, its local-queue entry) is a function of its own row, its attempts'
rows, and things every experiment shares: the export's options (headline metric and goal, where
`irq report` wrote its summary and where queue.md goes, for the links), irq's formatting code, the
SQLite and Python that format it. The ledger's revisions (irq/ledger/revisions.py) change with
every write to an experiment or its attempts, so a text kept under (id, revision) and the digest
of the shared things (the namespace) is the text a new export would make. A repeated export reads
only (id, seq, rev) of the experiment table for the texts it has, and runs the full SQL for
the others only.

The file is data, never code: one per ledger (irq/cache_files.py), in a binary layout read in one
go, with nothing parsed per experiment:

    MAGIC, version, namespace (32 bytes), n, CRC of the index, size of the ids, CRC of the texts
    index: n revisions (int64), n CRCs (one per experiment, over its parts in turn), then for each
           of PARTS the n experiments' byte sizes in it; all little-endian
    ids: the n ids, UTF-8, each ended by a newline (an id with a newline is not kept)
    texts: for each of PARTS, the n experiments' texts in it, UTF-8, in ledger order

so a part of queue.md is, between the experiments that changed, a slice of the file, written as
it is. A file that is missing, of another version or namespace, of the wrong size, or whose index
fails its CRC is ignored whole; when the texts fail theirs, each experiment's text is checked
against its own CRC, and only the damaged ones are made again. The file is written whole to a
temporary file renamed over the old one, and only when some text was made; any failure to read
or write it is silent: the export is then what it would be without a cache.
"""
from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import sqlite3
import struct
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from irq.cache_files import ledger_file, write_atomically
from irq.formats import export as x
from irq.formats import queue_layout as layout
from irq.ledger import reader
from irq.ledger.revisions import has_revisions
from irq.ledger.states import State

MAGIC = b"irq-export-cache"
VERSION = 1  # bump whenever the file's layout changes
_HEAD = struct.Struct(f"<{len(MAGIC)}sI32sIIII")
_NPARTS = len(layout.PARTS)
# the modules whose code decides an experiment's text: a change to any of them is a new namespace
SOURCES = ("irq.formats.export", "irq.formats.queue_layout", "irq.formats.blocks", "irq.formats.sql_blocks",
           "irq.formats.sql_fields", "irq.formats.export_cache", "irq.fields", "irq.ui", "irq.policy.retry",
           "irq.ledger.states", "irq.ledger.reader")
Row = tuple[str, int, int]  # an experiment's id, seq, rev


def cache_path(ledger: Path) -> Path | None:
    """The export cache file of this ledger (irq/cache_files.py)."""
    return ledger_file(ledger, "export", ".bin")


def namespace(conn: sqlite3.Connection, derived: x.Derived) -> bytes | None:
    """The digest of everything an experiment's text depends on besides its own rows (None: the
    code's source cannot be read, so no text is kept)."""
    h = hashlib.sha256()
    for name in SOURCES:
        try:
            with open(importlib.import_module(name).__file__ or "", "rb") as f:
                h.update(name.encode() + b"\0" + f.read() + b"\0")
        except (OSError, ImportError, TypeError):
            return None
    report = reader.meta(conn, x.REPORT_META)
    # the links to the report are relative to where queue.md goes; without a report, nothing is
    base = str((derived.dest_dir or Path.cwd()).resolve()) if report else ""
    options = [VERSION, sys.version, sqlite3.sqlite_version, derived.metric, derived.goal, report, base]
    h.update(json.dumps(options).encode())
    return h.digest()


@dataclass
class Stored:
    """A cache file as read: its index unpacked, its texts bytes in place."""

    data: bytes
    ids: list[str]
    revs: tuple[int, ...]
    crcs: tuple[int, ...]
    sizes: tuple[int, ...]  # experiment i's text in part k is sizes[k * n + i] bytes long
    starts: list[list[int]]  # and is data[starts[k][i]:starts[k][i + 1]]
    intact: bool  # the texts passed their CRC

    def find(self, rows: Sequence[Row]) -> list[int | None]:
        """For each row, the number of its experiment's entry when kept at that revision and intact."""
        ids, revs = self.ids, self.revs
        if len(ids) == len(rows) and all(a == r[0] for a, r in zip(ids, rows)):  # as a rule, the same order
            found: list[int | None] = [i if revs[i] == r[2] else None for i, r in enumerate(rows)]
        else:
            position = {e: i for i, e in enumerate(ids)}
            found = [position.get(r[0]) for r in rows]
            found = [i if i is not None and revs[i] == r[2] else None for i, r in zip(found, rows)]
        if not self.intact:
            found = [i if i is not None and self.entry_intact(i) else None for i in found]
        return found

    def entry_intact(self, i: int) -> bool:
        view, crc = memoryview(self.data), 0
        for s in self.starts:
            crc = zlib.crc32(view[s[i]:s[i + 1]], crc)
        return crc == self.crcs[i]


def load(path: Path, ns: bytes) -> Stored | None:
    """The cache file at `path` if it is one of this version and namespace, whole; else None."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        magic, version, file_ns, n, index_crc, ids_size, texts_crc = _HEAD.unpack_from(data)
    except (OSError, struct.error):
        return None
    if magic != MAGIC or version != VERSION or file_ns != ns:
        return None
    at = _HEAD.size
    index_end = at + (12 + 4 * _NPARTS) * n + ids_size
    if index_end > len(data) or zlib.crc32(memoryview(data)[at:index_end]) != index_crc:
        return None
    try:
        revs = struct.unpack_from(f"<{n}q", data, at)
        crcs = struct.unpack_from(f"<{n}I", data, at + 8 * n)
        sizes = struct.unpack_from(f"<{n * _NPARTS}I", data, at + 12 * n)
        ids = data[index_end - ids_size:index_end].decode("utf-8").split("\n")
    except (struct.error, UnicodeDecodeError):
        return None
    if len(ids) != n + 1 or ids.pop() != "":
        return None
    starts, start = [], index_end
    for k in range(_NPARTS):
        starts.append(list(itertools.accumulate(sizes[k * n:(k + 1) * n], initial=start)))
        start = starts[-1][-1]
    if start != len(data):
        return None
    return Stored(data, ids, revs, crcs, sizes, starts, zlib.crc32(memoryview(data)[index_end:]) == texts_crc)


def save(path: Path, ns: bytes, rows: Sequence[Row], runs: list[tuple[int, int] | int], stored: Stored | None,
         new: dict[int, list[bytes]]) -> None:
    """Write the cache file for these rows: `runs` (see _runs) of entries kept as they are in
    `stored`, and the texts made for the other rows (`new`, by seq). A failure (no such folder
    allowed, a full disk, a read-only home) leaves the cache as it was."""
    if any("\n" in r[0] for r in rows):
        return  # ids are kept one a line
    crcs: list[int] = []
    sizes: list[list[int]] = [[] for _ in range(_NPARTS)]
    texts: list[list[bytes | memoryview]] = [[] for _ in range(_NPARTS)]
    none = [b""] * _NPARTS
    view, m = memoryview(stored.data if stored is not None else b""), len(stored.ids) if stored is not None else 0
    for seg in _segments(runs):
        if isinstance(seg, tuple):
            assert stored is not None
            first, end = seg
            crcs.extend(stored.crcs[first:end])
            for k in range(_NPARTS):
                sizes[k].extend(stored.sizes[k * m + first:k * m + end])
                texts[k].append(view[stored.starts[k][first]:stored.starts[k][end]])
        else:  # experiments made now, side by side: a column at a time
            made = [new.get(rows[j][1], none) for j in seg]
            crcs.extend([zlib.crc32(b"".join(p)) for p in made])  # the CRC of its parts in turn
            for k, column in enumerate(zip(*made)):
                sizes[k].extend(map(len, column))
                texts[k].extend(column)
    n = len(rows)
    index = b"".join([struct.pack(f"<{n}q", *(r[2] for r in rows)), struct.pack(f"<{n}I", *crcs),
                      *(struct.pack(f"<{n}I", *sizes[k]) for k in range(_NPARTS)),
                      "".join([r[0] + "\n" for r in rows]).encode("utf-8")])
    body = b"".join([t for part in texts for t in part])
    head = _HEAD.pack(MAGIC, VERSION, ns, n, zlib.crc32(index), len(index) - (12 + 4 * _NPARTS) * n, zlib.crc32(body))
    try:
        write_atomically(path, [head, index, body])
    except (OSError, ValueError):
        pass


def encoded(made: layout.Made) -> dict[int, list[bytes]] | None:
    """The texts made, as UTF-8 (None: one that is not text UTF-8 can hold, e.g. a lone surrogate
    from a JSON escape: such an export is written as without a cache)."""
    try:
        return {seq: [t.encode("utf-8") for t in texts] for seq, texts in made.texts.items()}
    except UnicodeEncodeError:
        return None


def layout_chunks(conn: sqlite3.Connection, derived: x.Derived, path: Path | None) -> Iterator[str | bytes]:
    """``queue_layout.layout_chunks`` with the texts of experiments unchanged since the last export
    taken from the cache file at `path` (as the UTF-8 bytes kept there: they are written as they
    are); the file rewritten when any text had to be made."""
    if path is None or not has_revisions(conn):
        yield from layout.layout_chunks(conn, derived)
        return
    rows: list[Row] = conn.execute("SELECT id, seq, rev FROM experiment ORDER BY seq").fetchall()
    seqs = [r[1] for r in rows]
    ns = namespace(conn, derived) if len(set(seqs)) == len(seqs) else None  # made texts are found by seq
    if ns is None:
        yield from layout.layout_chunks(conn, derived)
        return
    stored = load(path, ns)
    found = stored.find(rows) if stored is not None else [None] * len(rows)
    missing = [r[0] for r, i in zip(rows, found) if i is None]
    if stored is None or len(missing) == len(rows):
        made = layout.Made()
        yield from layout.layout_chunks(conn, derived, made)
        stored, new, found = None, encoded(made), [None] * len(rows)
    else:
        new = encoded(layout.made_for(conn, derived, missing)) if missing else {}
        if new is None:
            yield from layout.layout_chunks(conn, derived)
            return
        yield layout.head(conn, (r[0] for r in rows))
        retired = conn.execute("SELECT 1 FROM experiment WHERE state = ? LIMIT 1", (State.RETIRED.value,)).fetchone()
        yield from layout.sections(conn, retired is not None, _kept_parts(stored, found, seqs, new))
    if missing and new is not None:
        save(path, ns, rows, _runs(found), stored, new)


def _kept_parts(stored: Stored, found: list[int | None], seqs: list[int],
                new: dict[int, list[bytes]]) -> Callable[[int], Iterator[bytes]]:
    """How a part is written from the cache: slices of the file between the experiments that
    changed, and their new texts."""
    runs = _runs(found)
    none = [b""] * _NPARTS

    def part(k: int) -> Iterator[bytes]:
        starts, view = stored.starts[k], memoryview(stored.data)
        pieces = [view[starts[r[0]]:starts[r[1]]] if isinstance(r, tuple) else new.get(seqs[r], none)[k] for r in runs]
        for i in range(0, len(pieces), layout.CHUNK):
            if chunk := b"".join(pieces[i:i + layout.CHUNK]):
                yield chunk

    return part


def _segments(runs: list[tuple[int, int] | int]) -> Iterator[tuple[int, int] | list[int]]:
    """The runs, with consecutive missing experiments grouped in lists."""
    batch: list[int] = []
    for run in runs:
        if isinstance(run, int):
            batch.append(run)
            continue
        if batch:
            yield batch
            batch = []
        yield run
    if batch:
        yield batch


def _runs(found: list[int | None]) -> list[tuple[int, int] | int]:
    """The ledger's experiments as runs of consecutive kept entries (first, last + 1), and the
    positions of the missing ones between them."""
    if found == list(range(len(found))):  # nothing changed, nothing added or removed
        return [(0, len(found))] if found else []
    out: list[tuple[int, int] | int] = []
    first = last = -1
    for j, i in enumerate(found):
        if i is not None and i == last:
            last += 1
            continue
        if first >= 0:
            out.append((first, last))
            first = last = -1
        if i is None:
            out.append(j)
        else:
            first, last = i, i + 1
    if first >= 0:
        out.append((first, last))
    return out
