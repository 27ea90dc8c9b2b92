"""Bad input gets one clear error line (file:line where it applies), a non-zero exit, and
leaves the ledger exactly as it was."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from irq import errors
from irq.experiments.edit import add_experiment
from irq.formats.queue_io import import_queue
from irq.ledger.database import Ledger

GOOD = """# Queue

## READY

### Q-001: Baseline
- **Hypothesis**: works
- **Priority**: HIGH

### Q-002: Random
- **Priority**: MEDIUM
- **Dependencies**: Run after Q-001
"""


def write(tmp_path: Path, text: str, name: str = "queue.md") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def snapshot(db: Path) -> list:
    con = sqlite3.connect(db)
    try:
        return [
            con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
            for t in ("experiment", "attempt", "event", "meta")
        ]
    finally:
        con.close()


@pytest.mark.parametrize(
    "text, line, words",
    [
        (GOOD + "- **Colour**: blue\n", 12, "unknown key 'Colour'"),
        (GOOD + "\n### 3-Q: Bad id\n", 13, "invalid experiment id '3-Q'"),
        (GOOD + "\n### Q-001: Again\n", 13, "duplicate id Q-001 (first defined at line 5)"),
        (GOOD + "\nsome loose text\n", 13, "expected a bullet"),
        (GOOD + "\n## SOMEDAY\n", 13, "unknown section 'SOMEDAY'"),
        (GOOD.replace("- **Priority**: MEDIUM", "- **Priority**: URGENT"), 10, "unknown priority 'URGENT'"),
        (GOOD + "- **Resources**: 1 GPU, lots of RAM\n", 12, "cannot read resource 'lots of RAM'"),
        (GOOD.replace("Run after Q-001", "Run after Q-009"), None, "depends on unknown experiment Q-009"),
        (GOOD + "\n## FAILED\n\n### Q-001: Baseline - ATTEMPT 1\n- **Status**: FAILED\n- **Submitted**: yesterday\n",
         17, "not a UTC time: 'yesterday'"),
        (GOOD + "\n## FAILED\n\n### Q-001: Baseline - ATTEMPT 1\n- **Status**: FAILED\n"
                "\n### Q-001: Baseline - ATTEMPT 1\n- **Status**: FAILED\n", 18, "attempt 1 appears twice (also at line 15)"),
    ],
)
def test_a_malformed_queue_is_refused_with_file_and_line_and_writes_nothing(tmp_path, ledger, irq, text, line, words):
    import_queue(ledger, write(tmp_path, "# Other\n\n## READY\n\n### Q-100: Existing\n", "existing.md"))
    before = snapshot(ledger.path)
    path = write(tmp_path, text)
    with pytest.raises(errors.ParseError) as exc:
        import_queue(ledger, path)
    assert words in str(exc.value)
    if line is not None:
        assert f"{path}:{line}:" in str(exc.value)
    assert snapshot(ledger.path) == before
    result = irq("import", str(path))
    assert result.code == 2
    assert words in result.err and "error:" in result.err
    assert snapshot(ledger.path) == before


def test_unknown_key_lists_the_known_ones(tmp_path, ledger):
    with pytest.raises(errors.ParseError) as exc:
        import_queue(ledger, write(tmp_path, GOOD + "- **Colour**: blue\n"))
    assert "Hypothesis" in exc.value.hint and "Resources" in exc.value.hint


def test_an_unreadable_or_missing_file(tmp_path, ledger, irq):
    with pytest.raises(errors.ParseError, match="cannot read"):
        import_queue(ledger, tmp_path / "nope.md")
    (tmp_path / "adir.md").mkdir()
    r = irq("import", str(tmp_path / "adir.md"))
    assert r.code == 2 and "cannot read" in r.err


def test_a_file_that_is_not_utf8(tmp_path, ledger):
    p = tmp_path / "latin1.md"
    p.write_bytes(GOOD.encode() + "- **Notes**: caf\xe9\n".encode("latin-1"))
    with pytest.raises(errors.ParseError, match=r"latin1.md:12: not UTF-8"):
        import_queue(ledger, p)


def test_importing_ids_the_ledger_already_has_writes_nothing(tmp_path, ledger):
    p = write(tmp_path, GOOD)
    import_queue(ledger, p)
    before = snapshot(ledger.path)
    with pytest.raises(errors.DuplicateId, match="Q-001, Q-002"):
        import_queue(ledger, p)
    assert snapshot(ledger.path) == before


def test_a_ledger_with_a_newer_schema_is_refused(tmp_path, irq):
    db = tmp_path / "queue.db"
    Ledger(db, create=True).close()
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(errors.SchemaTooNew):
        Ledger(db)
    r = irq("status", "--offline")
    assert r.code == 1 and "schema version 99" in r.err and "upgrade irq" in r.err


def test_a_file_that_is_not_a_ledger(tmp_path, irq):
    (tmp_path / "queue.db").write_text("hello, not a database")
    r = irq("status", "--offline")
    assert r.code == 1 and "cannot open ledger" in r.err


def test_no_ledger_yet_says_to_run_init(tmp_path, irq):
    r = irq("status", "--offline")
    assert r.code == 1 and "no ledger at queue.db" in r.err and "irq init" in r.err


def test_unknown_ids_suggest_the_closest(tmp_path, ledger, irq):
    import_queue(ledger, write(tmp_path, GOOD))
    r = irq("show", "Q-0001")
    assert r.code == 1 and "unknown experiment Q-0001" in r.err and "did you mean Q-001" in r.err
    r = irq("show", "01Q")
    assert r.code == 2 and "invalid experiment id '01Q'" in r.err


def test_impossible_transitions_are_refused(tmp_path, ledger, irq):
    import_queue(ledger, write(tmp_path, GOOD))
    before = snapshot(ledger.path)
    r = irq("retry", "Q-001")
    assert r.code == 1 and "Q-001 is READY; only a FAILED experiment can be retried" in r.err
    r = irq("ready", "Q-001")
    assert r.code == 1 and "Q-001 is already READY" in r.err
    assert snapshot(ledger.path) == before


def test_bad_ids_and_duplicates_on_add(tmp_path, ledger, irq):
    add_experiment(ledger, "Q-001", "Baseline")
    with pytest.raises(errors.DuplicateId):
        add_experiment(ledger, "Q-001", "Again")
    for bad in ("1-Q", "lr sweep", "_lr", "lr/3", "é-1", "a" * 65):
        r = irq("add", bad, "--title", "x")
        assert r.code == 2 and "invalid experiment id" in r.err, bad
    r = irq("add", "Q-002", "--title", "x", "--after", "Q-007")
    assert r.code == 1 and "unknown experiment Q-007" in r.err and "Q-001" in r.err
    r = irq("add", "Q-002", "--title", "x", "--time", "a fortnight")
    assert r.code == 2 and "not a duration" in r.err
    with ledger.transaction() as s:
        assert [e.id for e in Ledger.experiments(s)] == ["Q-001"]


def test_a_trainer_config_that_is_not_json(tmp_path, ledger, irq):
    p = write(tmp_path, '{"rank": 20,\n "mining": }', "bad.json")
    r = irq("add", "Q-001", "--title", "x", "--config-file", str(p))
    assert r.code == 2 and "bad.json:2: not valid JSON" in r.err


def test_a_folder_or_ledger_path_that_is_not_utf8_is_one_line_at_the_door(tmp_path, irq, monkeypatch):
    """A project in a folder named in Latin-1 (or IRQ_DB naming one): every command crashed with
    UnicodeEncodeError, or a submit failed half-way while recording the run folder."""
    good = tmp_path / "good"
    good.mkdir()
    monkeypatch.chdir(good)
    assert irq("init").code == 0
    bad = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9"))
    bad.mkdir()
    monkeypatch.setenv("IRQ_DB", str(bad / "queue.db"))
    r = irq("status")
    assert (r.code, r.out) == (2, "") and r.err.splitlines() == [
        f"error: $IRQ_DB is not UTF-8 text: {tmp_path}/caf\\xe9/queue.db",
        "hint: irq records paths as text: rename the folder to a UTF-8 name, or work from another one"], r
    monkeypatch.delenv("IRQ_DB")
    monkeypatch.chdir(bad)
    r = irq("add", "Q-001", "-t", "x", "--command", "echo")
    assert r.code == 2 and r.err.startswith(f"error: the current folder is not UTF-8 text: {tmp_path}/caf\\xe9\n"), r
    assert sorted(os.listdir(bad)) == []


def test_a_ledger_reached_through_a_non_utf8_link_opens(tmp_path):
    """The ledger's resolved path went into a SQLite URI as text: a link into a Latin-1 folder crashed."""
    from irq.ledger.database import Ledger

    bad = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9"))
    bad.mkdir()
    Ledger(bad / "queue.db", create=True)
    (tmp_path / "queue.db").symlink_to(bad / "queue.db")
    with Ledger(tmp_path / "queue.db").transaction() as s:
        assert Ledger.experiments(s) == []
