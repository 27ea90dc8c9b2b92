"""Drafts (irq/ledger/drafts.py): rows built as plain objects and written in one INSERT must be
the rows the ORM would write, defaults included, on a real SQLite ledger."""
from __future__ import annotations

import sqlite3

from irq.ledger.database import Ledger
from irq.ledger.drafts import draft, insert
from irq.ledger.models import Attempt, Event, Experiment

SKIP = {"created_at", "updated_at", "at", "id", "rev"}  # times of the moment, ids of the database


def rows(path, table: str, key: str) -> dict:
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    got = {r[key]: {k: r[k] for k in r.keys() if k not in SKIP} for r in con.execute(f"SELECT * FROM {table}")}
    con.close()
    return got


def test_a_draft_has_the_models_defaults_and_rows_of_its_own(ledger):
    e1, e2 = draft(Experiment, id="Q-001", seq=1, title="one"), draft(Experiment, id="Q-002", seq=2, title="two")
    orm = Experiment(id="Q-001", seq=1, title="one")
    assert {k: v for k, v in vars(e1).items() if k not in SKIP} == \
           {k: getattr(orm, k) for k in Experiment.model_fields if k not in SKIP}
    e1.parameters["rank"] = 4  # each row its own dict, as the constructor gives
    assert e2.parameters == {} and e1.created_at.tzinfo is not None


def test_inserted_drafts_are_the_rows_the_orm_writes(tmp_path):
    by_orm, by_draft = Ledger(tmp_path / "orm.db", create=True), Ledger(tmp_path / "draft.db", create=True)
    exp = dict(id="Q-001", seq=1, title="one", state="DONE", parameters={"lr": 0.1, "tag": "a\nb"}, seeds=[0, 1],
               notes="two\nlines")
    att = dict(experiment_id="Q-001", number=1, token="tok-1", backend="imported", state="COMPLETED",
               results={"val_mse": 0.5, "x\ny": "100"}, extras=[["Runtime", "2 hours"]])
    with by_orm.transaction() as s:
        s.add(Experiment(**exp))
        s.flush()
        s.add(Attempt(**att))
        s.flush()
        s.add(Event(experiment_id="Q-001", to_state="DONE", reason="imported"))
    with by_draft.transaction() as s:
        insert(s, Experiment, [draft(Experiment, **exp)])
        insert(s, Attempt, [draft(Attempt, **att)])
        insert(s, Event, [draft(Event, experiment_id="Q-001", to_state="DONE", reason="imported")])
        insert(s, Event, [])  # nothing to write: no statement
    for table, key in (("experiment", "id"), ("attempt", "token"), ("event", "experiment_id")):
        assert rows(by_draft.path, table, key) == rows(by_orm.path, table, key), table
    con = sqlite3.connect(by_draft.path)
    assert con.execute("SELECT rev IS NOT NULL FROM experiment").fetchone() == (1,)  # the triggers fired
    con.close()
