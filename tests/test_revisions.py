"""Each experiment's revision changes with every write to it or its attempts, whoever writes
(irq or sqlite3 by hand), and with nothing else; a ledger made before revisions gets them."""
from __future__ import annotations

import sqlite3

from irq.ledger import revisions
from irq.ledger.database import Ledger


def revs(path) -> dict[str, int]:
    with sqlite3.connect(path) as c:
        return dict(c.execute("SELECT id, rev FROM experiment"))


def make(tmp_path):
    path = tmp_path / "queue.db"
    Ledger(path, create=True).close()
    c = sqlite3.connect(path, isolation_level=None)
    for i, eid in enumerate(("Q-001", "Q-002")):
        c.execute("INSERT INTO experiment (id, seq, title, state, parameters, resources, priority, depends_on, seeds, "
                  "annotations, extras, queue_extras, retry_policy, created_at, updated_at) VALUES "
                  "(?, ?, 't', 'READY', '{}', '{}', 'MEDIUM', '[]', '[]', '{}', '[]', '[]', '{}', '2026-01-01', '2026-01-01')",
                  (eid, i))
    return path, c


def add_attempt(c, eid: str, number: int) -> int:
    return c.execute("INSERT INTO attempt (experiment_id, number, token, backend, state, tasks, modules, results, annotations, "
                     "extras, created_at, updated_at) VALUES (?, ?, ?, 'local', 'RUNNING', '{}', '[]', '{}', '{}', '[]', "
                     "'2026-01-01', '2026-01-01')", (eid, number, f"t{eid}{number}")).lastrowid


def test_a_new_experiment_gets_a_random_revision(tmp_path):
    path, _c = make(tmp_path)
    r = revs(path)
    assert 0 not in r.values() and r["Q-001"] != r["Q-002"]


def test_every_write_to_an_experiment_or_its_attempts_changes_its_revision_and_only_its(tmp_path):
    path, c = make(tmp_path)
    steps = [lambda: c.execute("UPDATE experiment SET title = 'u' WHERE id = 'Q-001'"),
             lambda: add_attempt(c, "Q-001", 1),
             lambda: c.execute("UPDATE attempt SET state = 'COMPLETED', results = '{\"val_mse\": 0.1}'"),
             lambda: c.execute("DELETE FROM attempt")]
    for step in steps:
        before = revs(path)
        step()
        after = revs(path)
        assert after["Q-001"] != before["Q-001"]
        assert after["Q-002"] == before["Q-002"]


def test_an_attempt_moved_to_another_experiment_changes_both(tmp_path):
    path, c = make(tmp_path)
    aid = add_attempt(c, "Q-001", 1)
    before = revs(path)
    c.execute("UPDATE attempt SET experiment_id = 'Q-002' WHERE id = ?", (aid,))
    after = revs(path)
    assert all(after[k] != before[k] for k in before)


def test_a_ledger_without_revisions_gets_them_when_opened_for_writing(tmp_path):
    path, c = make(tmp_path)
    for name in revisions._TRIGGERS:
        c.execute(f"DROP TRIGGER {name}")
    c.execute("ALTER TABLE experiment DROP COLUMN rev")
    assert not revisions.has_revisions(c)
    Ledger(path).close()
    assert revisions.has_revisions(c)
    assert 0 not in revs(path).values()
    before = revs(path)
    c.execute("UPDATE experiment SET title = 'u' WHERE id = 'Q-002'")
    assert revs(path)["Q-002"] != before["Q-002"]


def test_triggers_found_missing_are_made_again_and_every_revision_renewed(tmp_path):
    """A write while a trigger was missing left a revision as it was: text kept under it must
    not be taken for current, so every experiment gets a new revision when the triggers come back."""
    path, c = make(tmp_path)
    c.execute("DROP TRIGGER irq_rev_experiment_update")
    assert not revisions.has_revisions(c)
    before = revs(path)
    c.execute("UPDATE experiment SET title = 'u' WHERE id = 'Q-001'")
    assert revs(path) == before  # the write went through unseen
    Ledger(path).close()
    assert revisions.has_revisions(c)
    after = revs(path)
    assert all(after[k] != before[k] for k in before)
    Ledger(path).close()
    assert revs(path) == after  # a ledger with all its triggers keeps its revisions when opened
