"""The export cache (irq/formats/export_cache.py): a repeated `irq export` takes the text of every
experiment unchanged since the last one from the cache and makes only the others, with the same
bytes as an export without a cache. The reference here is the packaged template rendered by
Jinja (`jinja=True`), which never uses the cache."""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from irq.formats import export_cache, queue_layout
from irq.formats.export import REPORT_META, Derived, export_text, report_record
from irq.formats.queue_io import import_queue, stream_export
from irq.ledger import revisions
from irq.ledger.database import Ledger
from tests.test_export_fast import _every_kind


def reference(ledger: Ledger, derived: Derived | None = None) -> str:
    return export_text(ledger, derived=derived, jinja=True)


def export(ledger: Ledger, derived: Derived | None = None) -> str:
    return export_text(ledger, derived=derived, jinja=False)


def cache_file(ledger: Ledger) -> Path:
    path = export_cache.cache_path(Path(ledger.path))
    assert path is not None
    return path


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[list[str] | None]:
    """The ids each export made texts for (None: all of them), one entry per part of queue.md."""
    calls: list[list[str] | None] = []
    fresh = queue_layout._fresh

    def spy(conn, part, derived, among):
        calls.append(None if among is None else json.loads(among))
        return fresh(conn, part, derived, among)

    monkeypatch.setattr(queue_layout, "_fresh", spy)
    return calls


def made_ids(calls: list[list[str] | None]) -> set[str] | None:
    """The ids an export made texts for (None: all), and forget them."""
    out: set[str] | None = set()
    for c in calls:
        out = None if c is None or out is None else out | set(c)
    calls.clear()
    return out


@pytest.fixture
def full(ledger: Ledger, tmp_path: Path) -> Ledger:
    """A ledger with every kind of row (tests/test_export_fast.py), a report, and the seed queue."""
    _every_kind(ledger, tmp_path)
    return ledger


def sql(ledger: Ledger, statement: str, *params: object) -> None:
    """A write as `sqlite3` by hand makes it: irq's code plays no part."""
    conn = sqlite3.connect(ledger.path)
    with conn:
        conn.execute(statement, params)
    conn.close()


def test_a_repeated_export_makes_nothing_and_writes_the_same_bytes(full, made):
    first = export(full)
    assert made_ids(made) is None and cache_file(full).is_file()
    kept = cache_file(full).stat()
    second = export(full)
    assert made_ids(made) == set()  # every text from the cache
    assert second == first == reference(full)
    now = cache_file(full).stat()  # nothing made: the file is not written again
    assert (now.st_ino, now.st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)


def test_the_seed_queue_warm_is_the_seed_queue_cold(ledger, seed_queue):
    import_queue(ledger, seed_queue)
    assert export(ledger) == export(ledger) == reference(ledger)


CHANGES = {
    "a field, through irq": lambda lg: _set_title(lg, "Q-003", "A new title"),
    "a new attempt": lambda lg: sql(lg, "INSERT INTO attempt (experiment_id, number, token, backend, state, tasks, "
                                        "modules, results, annotations, extras, created_at, updated_at) VALUES "
                                        "('Q-001', 3, 'tnew', 'local', 'RUNNING', '{}', '[]', '{}', '{}', '[]', "
                                        "'2026-01-01', '2026-01-01')"),
    "an attempt's state": lambda lg: sql(lg, "UPDATE attempt SET state = 'COMPLETED', results = '{\"val_mse\": 0.25}' "
                                             "WHERE token = 't5'"),
    "a deleted attempt": lambda lg: sql(lg, "DELETE FROM attempt WHERE token = 't9'"),
    "sqlite3 by hand": lambda lg: sql(lg, "UPDATE experiment SET notes = 'by hand' WHERE id = 'Q-010'"),
    "an experiment's state": lambda lg: sql(lg, "UPDATE experiment SET state = 'READY' WHERE id = 'Q-008'"),
    "a new experiment": lambda lg: sql(lg, "INSERT INTO experiment (id, seq, title, state, parameters, resources, priority, "
                                           "depends_on, seeds, annotations, extras, queue_extras, retry_policy, created_at, "
                                           "updated_at) VALUES ('Q-012', 0, 'Squeezed in', 'READY', '{}', '{}', 'MEDIUM', "
                                           "'[]', '[]', '{}', '[]', '[]', '{}', '2026-01-01', '2026-01-01')"),
    "a removed experiment": lambda lg: (sql(lg, "DELETE FROM attempt WHERE experiment_id = 'Q-002'"),
                                        sql(lg, "DELETE FROM experiment WHERE id = 'Q-002'")),
}


def _set_title(ledger: Ledger, exp_id: str, title: str) -> None:
    from irq.ledger.models import Experiment

    with ledger.transaction() as s:
        s.get(Experiment, exp_id).title = title


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_is_exported_and_only_the_changed_experiments_are_made(full, made, change):
    export(full)
    before = reference(full)
    CHANGES[change](full)
    after = reference(full)
    assert after != before
    made.clear()
    assert export(full) == after
    ids = made_ids(made)
    assert ids is not None and len(ids) <= 1  # that experiment alone (a removed one: none)
    assert export(full) == after and made_ids(made) == set()  # and kept for the next export


def test_the_export_options_are_part_of_the_key(full, tmp_path):
    """Headline metric, goal and where queue.md goes (the report links are relative to it)."""
    options = [Derived(dest_dir=tmp_path), Derived("val_mse", "max", tmp_path), Derived("loss", "min", tmp_path),
               Derived(dest_dir=tmp_path / "sub"), None, Derived(dest_dir=tmp_path)]
    texts = []
    for derived in options:
        texts.append(export(full, derived))
        assert texts[-1] == reference(full, derived)
    assert len(set(texts[:4])) == 4


def test_a_new_report_changes_the_links_of_unchanged_experiments(full, tmp_path):
    derived = Derived(dest_dir=tmp_path)
    export(full, derived)
    sql(full, "UPDATE meta SET value = ? WHERE key = ?",
        report_record(tmp_path / "elsewhere" / "summary.md", [], ["Q-002", "Q-011"]), REPORT_META)
    assert "elsewhere/summary.md#Q-011" in export(full, derived)
    assert export(full, derived) == reference(full, derived)


def test_a_stdout_export_with_a_report_follows_the_working_directory(full, tmp_path, monkeypatch):
    export(full)
    (tmp_path / "deeper").mkdir()
    monkeypatch.chdir(tmp_path / "deeper")
    assert "(../report/summary.md#Q-002)" in export(full)
    assert export(full) == reference(full)


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


DAMAGE = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "a byte of the index": lambda p: _flip(p, 100),
    "a byte of the last text": lambda p: _flip(p, p.stat().st_size - 2),
    "another format": lambda p: p.write_text(json.dumps({"format": "irq-results-cache", "version": 1, "entries": {}})),
    "another version": lambda p: _flip(p, len(export_cache.MAGIC)),
    "random bytes": lambda p: p.write_bytes(os.urandom(p.stat().st_size)),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_or_foreign_cache_file_is_ignored(full, made, damage):
    export(full)
    DAMAGE[damage](cache_file(full))
    made.clear()
    assert export(full) == reference(full)
    ids = made_ids(made)
    assert ids is None or len(ids) >= 1
    if damage == "a byte of the last text":
        assert ids == {"Q-010"}  # the last proposal, FAILED part's last text: that experiment alone is made again
    assert export(full) == reference(full) and made_ids(made) == set()  # the file was written again, whole


def test_texts_that_look_like_the_format_are_kept_as_they_are(ledger, tmp_path, made):
    """NULs, newlines and non-ASCII in what the ledger holds: the file has no separators in texts.
    (SQLite's printf ends a text at a NUL, so the fast path and the template differ there: the
    cache must give what the export made, whatever it is.)"""
    _every_kind(ledger, tmp_path)
    sql(ledger, "UPDATE experiment SET notes = ? WHERE id = 'Q-001'", "c — ✓ 日本\n")
    sql(ledger, "UPDATE attempt SET error = ? WHERE token = 't9'", "irq-export-cache\n\u00e9\u2028")
    first = export(ledger)
    made.clear()
    assert export(ledger) == first == reference(ledger) and made_ids(made) == set()
    sql(ledger, "UPDATE experiment SET notes = ?, title = ? WHERE id = 'Q-001'", "a\x00b", "\x00\x00")
    first = export(ledger)
    assert made_ids(made) == {"Q-001"}
    assert export(ledger) == first and made_ids(made) == set()


def test_an_unwritable_cache_folder_exports_as_without(full, monkeypatch, tmp_path, made):
    (tmp_path / "a-file").write_text("in the way")
    monkeypatch.setenv("IRQ_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
    assert export(full) == reference(full)
    assert export(full) == reference(full) and made_ids(made) is None  # nothing kept, all made each time


def test_a_ledger_without_revisions_uses_no_cache(full, made):
    export(full)
    conn = sqlite3.connect(full.path)
    with conn:
        conn.execute("DROP TRIGGER irq_rev_experiment_update")
        assert not revisions.has_revisions(conn)
        conn.execute("UPDATE experiment SET title = 'Changed unseen' WHERE id = 'Q-001'")  # its revision stays
    conn.close()
    made.clear()
    text = export(full)
    assert "Q-001: Changed unseen" in text and text == reference(full) and made_ids(made) is None


def test_text_kept_while_a_trigger_was_missing_is_not_reused(full):
    export(full)
    conn = sqlite3.connect(full.path)
    with conn:
        conn.execute("DROP TRIGGER irq_rev_experiment_update")
        conn.execute("UPDATE experiment SET title = 'Changed unseen' WHERE id = 'Q-001'")
    conn.close()
    Ledger(full.path).close()  # a writing command: the trigger is made again
    assert "Q-001: Changed unseen" in export(full)
    assert export(full) == reference(full)


def test_two_ledgers_keep_their_own_texts(tmp_path, seed_queue):
    """Even with the same ids and revisions (one ledger's copied into the other's), each ledger
    has its own file."""
    a, b = Ledger(tmp_path / "a.db", create=True), Ledger(tmp_path / "b.db", create=True)
    import_queue(a, seed_queue)
    import_queue(b, seed_queue)
    sql(a, "UPDATE experiment SET notes = 'only in a'")
    conn = sqlite3.connect(b.path)
    with conn:
        conn.execute("ATTACH DATABASE ? AS other", (str(a.path),))
        conn.execute("UPDATE experiment SET rev = (SELECT o.rev FROM other.experiment o WHERE o.id = experiment.id)")
    conn.close()
    assert revs(a) == revs(b)
    assert "only in a" in export(a)
    assert cache_file(a) != cache_file(b)
    assert export(b) == reference(b) and "only in a" not in export(b)
    assert export(a) == reference(a)
    a.close()
    b.close()


def revs(ledger: Ledger) -> dict[str, int]:
    conn = sqlite3.connect(ledger.path)
    out = dict(conn.execute("SELECT id, rev FROM experiment"))
    conn.close()
    return out


def test_the_same_revisions_in_another_ledger_are_not_the_same_text(tmp_path, seed_queue):
    """A ledger copied over the cached one keeps its path, not its texts: revisions are random."""
    a = Ledger(tmp_path / "a.db", create=True)
    import_queue(a, seed_queue)
    export(a)
    a.close()
    (tmp_path / "a.db").unlink()
    b = Ledger(tmp_path / "a.db", create=True)
    import_queue(b, seed_queue)
    sql(b, "UPDATE experiment SET title = title || ' (again)'")
    assert export(b) == reference(b) and "(again)" in export(b)
    b.close()


def test_the_command_writes_the_kept_bytes_to_stdout_and_to_a_file(full, tmp_path, irq):
    (tmp_path / "irq.toml").write_text("")
    expected = reference(full, Derived())
    for _ in range(2):  # cold, then warm
        r = irq("export")
        assert r.code == 0 and r.out == expected
    out = tmp_path / "out" / "queue.md"
    out.parent.mkdir()
    for _ in range(2):
        assert irq("export", str(out)).code == 0
        assert out.read_text(encoding="utf-8") == reference(full, Derived(dest_dir=out.parent))


def test_a_stream_that_takes_only_text_gets_text(full):
    import io

    export(full)
    buf = io.StringIO()
    stream_export(full, None, out=buf)
    assert buf.getvalue() == reference(full)


def test_duplicate_seqs_export_as_without_a_cache(full, made):
    sql(full, "UPDATE experiment SET seq = 3 WHERE id = 'Q-004'")
    assert export(full) == reference(full)
    assert export(full) == reference(full) and made_ids(made) is None
