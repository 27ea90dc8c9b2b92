"""queue.md in and out of the ledger: import a file whole or not at all, export the ledger as text."""
from __future__ import annotations

import codecs
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from irq import errors
from irq.formats.export import Derived, export_pieces, export_text
from irq.formats.queue_layout import is_irq_export


@dataclass
class ImportReport:
    path: str
    experiments: int
    attempts: int
    repaired_lines: int
    states: dict[str, int] = field(default_factory=dict)


def import_queue(ledger: Any, path: Path) -> ImportReport:
    """Read a queue.md and write all of it, or nothing, into the ledger (the ORM is loaded here,
    not for `irq export`)."""
    from sqlmodel import select

    from irq.formats.queuefile import parse_file
    from irq.ledger.database import Ledger, new_token
    from irq.ledger.drafts import draft, insert
    from irq.ledger.models import Attempt, Event, Experiment

    with ledger.transaction() as s:
        before = Ledger.ids(s)  # what the file's dependencies may name besides its own experiments
    doc = parse_file(path, before)
    if not doc.experiments:
        raise errors.ParseError(str(path), None, "holds no experiment: nothing was imported",
                                "is it a queue.md? `irq export` shows the layout (### Q-001: title, bullets)")
    with ledger.transaction() as s:
        taken = Ledger.ids(s)  # one query, not one look-up per experiment of the file
        existing = [e.id for e in doc.experiments if e.id in taken]
        if existing:
            raise errors.DuplicateId(
                f"{path}: experiments already in the ledger: {', '.join(existing)}",
                "import into a new ledger (irq --db NEW.db init), or remove these entries from the file",
            )
        mine = {e.id for e in doc.experiments}
        if gone := sorted({d for e in doc.experiments for d in e.depends_on if d not in mine and d not in taken}):
            raise errors.UsageError(f"{path}: depends on {', '.join(gone)}, removed from the ledger meanwhile",
                                     "`irq status --all` lists what the ledger holds; correct the Dependencies")
        offset = Ledger.last_seq(s)  # after every experiment there is (some may have been removed)
        reason = f"imported from {path.name}"
        for exp in doc.experiments:
            exp.seq += offset
        for att in doc.attempts:
            att.token = new_token()
        # rows in batches, not ORM objects (irq/ledger/drafts.py): the experiments before their attempts
        insert(s, Experiment, doc.experiments)
        insert(s, Attempt, doc.attempts)
        tokens = {att.token for att in doc.attempts}
        ids = {token: aid for token, aid in s.exec(select(Attempt.token, Attempt.id)) if token in tokens}
        insert(s, Event, [draft(Event, experiment_id=exp.id, to_state=exp.state, reason=reason)
                          for exp in doc.experiments])
        insert(s, Event, [draft(Event, experiment_id=att.experiment_id, attempt_id=ids[att.token], kind="attempt",
                                to_state=att.state, reason=reason) for att in doc.attempts])
        for key, value in (("title", doc.title), ("preamble", doc.preamble),
                           ("future_heading", doc.future_heading)):
            if value and not Ledger._get_meta(s, key):
                Ledger._set_meta(s, key, value)
    states: dict[str, int] = {}
    for e in doc.experiments:
        states[e.state] = states.get(e.state, 0) + 1
    return ImportReport(str(path), len(doc.experiments), len(doc.attempts), doc.repaired_lines, states)


def derived_for(config: Any, dest: Path | None) -> Derived:
    """The project's headline metric and goal, links relative to where queue.md goes."""
    return Derived(config.project.metric, config.project.goal, dest.parent if dest is not None else None)


def export_queue(ledger: Any, path: Path | None, template_dir: Path | None = None,
                 derived: Derived | None = None) -> str:
    """queue.md as text, also written to `path` when given (daemon, tests: small ledgers)."""
    text = export_text(ledger, template_dir, derived)
    if path is not None:
        write_atomically(path, [text])
    return text


def write_export(path: Path, text: str | Iterable[str | bytes]) -> Path | None:
    """Write irq's queue.md over `path` (the configured export after every change, or `irq export
    FILE`), keeping what a person changed there: a file that is not what irq last wrote at that path
    (a digest kept in the cache folder), or, when irq never wrote there, a file that is no irq
    export (a hand-kept queue.md), is first moved to `<name>.edited-<UTC time>` beside it, never
    over an earlier copy. Check, write and digest happen under one lock: two irq commands
    exporting at once never take each other's text for a person's edit. Returns the copy kept
    (None: nothing needed keeping)."""
    import hashlib

    from irq.cache_files import ledger_file
    from irq.cache_files import write_atomically as write_cache

    record = ledger_file(path, "queue-written", ".sha256")
    digest = hashlib.sha256()

    def hashed(pieces: Iterable[str | bytes]) -> Iterator[bytes]:
        for chunk in pieces:
            data = chunk.encode("utf-8") if isinstance(chunk, str) else chunk
            digest.update(data)
            yield data

    kept: list[Path | None] = [None]

    def keep_aside() -> None:  # the new text is complete beside it: a render that fails keeps the file as it is
        kept[0] = _keep_aside(path, record)

    with _export_lock(ledger_file(path, "queue-written", ".lock")):
        write_atomically(path, hashed([text] if isinstance(text, str) else text), before_replace=keep_aside)
        if record is not None and path.is_file():
            try:
                write_cache(record, digest.hexdigest())
            except OSError:
                pass  # no record: the next write treats the file as irq's own when it is an export
    return kept[0]


@contextmanager
def _export_lock(lock: Path | None) -> Iterator[None]:
    """An exclusive lock on `lock` while held (none when the cache folder cannot hold it)."""
    import fcntl

    fh = None
    if lock is not None:
        try:
            lock.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fh = open(lock, "a")
            fcntl.flock(fh, fcntl.LOCK_EX)
        except OSError:
            if fh is not None:
                fh.close()
            fh = None
    try:
        yield
    finally:
        if fh is not None:
            fh.close()


def _stamp() -> str:
    from datetime import datetime, timezone

    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"


def _keep_aside(path: Path, record: Path | None) -> Path | None:
    """Move a file irq did not write (see write_export) to a name of its own beside it."""
    import hashlib
    import os

    try:
        current = path.read_bytes() if path.is_file() else None
        written = record.read_text(encoding="ascii").strip() if record is not None and record.is_file() else None
    except OSError:
        current, written = None, None
    if current is None or hashlib.sha256(current).hexdigest() == written:
        return None
    if written is None and is_irq_export(current.decode("utf-8", "replace")):
        return None
    base = path.with_name(f"{path.name}.edited-{_stamp()}")
    kept = next(p for n in range(1, 10_000) if not (p := base if n == 1 else base.with_name(f"{base.name}-{n}")).exists())
    if path.is_symlink():  # the link stays (the new text is written through it): its target's text is copied
        kept.write_bytes(current)
    else:
        os.replace(path, kept)
    return kept


def hand_edits_kept(path: Path, kept: Path) -> str:
    """What irq says when write_export() kept a person's changes aside."""
    return (f"{path.name} held text irq did not write there (kept by hand, or changed by hand since irq wrote it); "
            f"it is kept in {kept.name} (irq does not read queue.md back: `irq edit ID` changes an experiment, "
            "`irq add` adds one)")


def stream_export(ledger: Any, path: Path | None, template_dir: Path | None = None,
                  out: TextIO | None = None, derived: Derived | None = None) -> Path | None:
    """`irq export`: render block by block and write as it goes, to `path` or to `out`; never
    the whole text in memory (a 10,000-experiment ledger is megabytes of queue.md). The text the
    export cache kept is written as the UTF-8 bytes it is, where the target takes them. A file
    with a person's changes is kept aside first, as for the configured export: that copy, if any."""
    chunks = export_pieces(ledger, template_dir, derived)
    if path is None:
        target = out or sys.stdout
        raw = getattr(target, "buffer", None) if codecs.lookup(getattr(target, "encoding", None) or "ascii").name == "utf-8" else None
        for chunk in chunks:
            if isinstance(chunk, str):
                target.write(chunk)
            elif raw is not None:
                target.flush()
                raw.write(chunk)
            else:
                target.write(chunk.decode("utf-8"))
        return None
    return write_export(path, chunks)


SQLITE_HEADER = b"SQLite format 3\x00"


def never_over_irqs_own(path: Path, example: str = "queue.md") -> None:
    """Refuse an output onto a ledger (any SQLite database) or a project's irq.toml: named by
    mistake (`-o queue.db`, `export = "irq.toml"`), it would destroy what irq keeps there. Only a
    regular file is opened (a pipe would wait for a writer)."""
    what = "a project's irq.toml" if path.name == "irq.toml" else None
    if what is None and path.is_file():
        try:
            with open(path, "rb") as f:
                if f.read(len(SQLITE_HEADER)) == SQLITE_HEADER:
                    what = "a SQLite database (an irq ledger?)"
        except OSError:
            pass
    if what is not None:
        raise errors.UsageError(f"{path} is {what}: irq never writes over it", f"name another file, e.g. {example}")


def write_atomically(path: Path, chunks: Iterable[str | bytes] | str, example: str = "queue.md",
                     before_replace: Callable[[], None] | None = None) -> None:
    """Write a file whole or not at all: into a temporary file of its own beside it (a unique
    name: the daemon and a command may export at once), renamed over it when complete, so readers
    see the old text or the new one. A link is followed (its target is replaced, the link stays);
    a device or a pipe (`/dev/stdout`) is written in place, never replaced by a file. A missing
    folder, a folder in the way or a refused write is one UsageError, and no temporary file stays.
    `example`: the file name a hint suggests inside a folder named by mistake; `before_replace`: run
    once the new text is whole, just before it replaces the file (not for a device or pipe)."""
    import os
    import secrets
    import stat

    pieces = [chunks] if isinstance(chunks, str) else chunks

    def refused(exc: OSError, where: Path) -> errors.UsageError:
        return errors.UsageError(f"cannot write {where}: {exc.strerror or exc}",
                                 "check the path, the free space, and that you may write there")

    if path.is_dir():
        raise errors.UsageError(f"{path} is a folder", f"name a file, e.g. {path / example}")
    try:
        st: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise refused(exc, path) from None
    never_over_irqs_own(path, example)
    if st is not None and not stat.S_ISREG(st.st_mode):
        try:
            with open(path, "wb") as f:
                _write_all(f, pieces)
        except BrokenPipeError:
            raise  # `irq export /dev/stdout | head`: the reader has what it wanted (the CLI exits 0)
        except OSError as exc:
            raise refused(exc, path) from None
        return
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    if not target.parent.is_dir():
        raise errors.UsageError(f"{path.parent} does not exist", f"create it first: mkdir -p {path.parent}")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        # O_EXCL: a name of its own; mode 0o666 less the umask, as any new file (an existing one keeps its own)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            _write_all(f, pieces)
        if st is not None:
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
        if before_replace is not None:
            before_replace()
        os.replace(tmp, target)
    except OSError as exc:
        raise refused(exc, path) from None
    finally:
        tmp.unlink(missing_ok=True)


def _write_all(f: Any, pieces: Iterable[str | bytes]) -> None:
    for chunk in pieces:
        f.write(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
