"""queue.md in and out of the ledger: import a file whole or not at all, export the ledger as text."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from irq import errors
from irq.formats.export import export_text
from irq.formats.queuefile import parse_file
from irq.ledger.database import Ledger, new_token
from irq.ledger.models import Event, Experiment


@dataclass
class ImportReport:
    path: str
    experiments: int
    attempts: int
    repaired_lines: int
    states: dict[str, int] = field(default_factory=dict)


def import_queue(ledger: Ledger, path: Path) -> ImportReport:
    """Read a queue.md and write all of it, or nothing, into the ledger."""
    doc = parse_file(path)
    with ledger.transaction() as s:
        existing = [e.id for e in doc.experiments if s.get(Experiment, e.id) is not None]
        if existing:
            raise errors.DuplicateId(
                f"{path}: experiments already in the ledger: {', '.join(existing)}",
                "import into a new ledger (irq --db NEW.db init), or remove these entries from the file",
            )
        offset = len(Ledger.experiments(s))
        reason = f"imported from {path.name}"
        for exp in doc.experiments:
            exp.seq += offset
            s.add(exp)
            s.add(Event(experiment_id=exp.id, to_state=exp.state, reason=reason))
        s.flush()
        for att in doc.attempts:
            att.token = new_token()
            s.add(att)
            s.flush()
            s.add(Event(experiment_id=att.experiment_id, attempt_id=att.id, kind="attempt",
                        to_state=att.state, reason=reason))
        for key, value in (("title", doc.title), ("preamble", doc.preamble),
                           ("future_heading", doc.future_heading)):
            if value and not Ledger._get_meta(s, key):
                Ledger._set_meta(s, key, value)
    states: dict[str, int] = {}
    for e in doc.experiments:
        states[e.state] = states.get(e.state, 0) + 1
    return ImportReport(str(path), len(doc.experiments), len(doc.attempts), doc.repaired_lines, states)


def export_queue(ledger: Ledger, path: Path | None, template_dir: Path | None = None) -> str:
    text = export_text(ledger, template_dir)
    if path is not None:
        write_atomically(path, text)
    return text


def write_atomically(path: Path, text: str) -> None:
    """Write via PATH.tmp and a rename (readers never see half a file); a missing folder, a
    folder in the way or a refused write is one UsageError, and no .tmp is left behind."""
    if path.is_dir():
        raise errors.UsageError(f"{path} is a folder", f"name a file, e.g. {path / 'queue.md'}")
    if not path.parent.is_dir():
        raise errors.UsageError(f"{path.parent} does not exist", f"create it first: mkdir -p {path.parent}")
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise errors.UsageError(f"cannot write {path}: {exc.strerror or exc}",
                                "check the folder exists and you may write there") from None
    finally:
        tmp.unlink(missing_ok=True)
