"""The ledger is a real SQLite file that the CLI and a daemon share: one writer of state,
an append-only history, WAL so that two processes can work on it at once."""
from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from irq import errors
from irq.experiments.edit import add_experiment, promote, retry
from irq.ledger import database as ledger_mod
from irq.ledger.database import Ledger
from irq.ledger.models import Experiment
from irq.ledger.states import LEGAL, State


def test_the_file_is_sqlite_in_wal_mode_with_a_schema_version(ledger):
    con = sqlite3.connect(ledger.path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(ledger_mod.SCHEMA_VERSION)
    con.close()


@pytest.mark.parametrize("frm", list(State))
@pytest.mark.parametrize("to", list(State))
def test_set_state_allows_exactly_the_legal_moves(ledger, frm, to):
    with ledger.transaction() as s:
        Ledger.add_experiment(s, Experiment(id="Q-001", seq=0, title="t", state=frm.value))
    if to in LEGAL[frm]:
        with ledger.transaction() as s:
            Ledger.set_state(s, Ledger.experiment(s, "Q-001"), to, "test")
        with ledger.transaction() as s:
            assert Ledger.experiment(s, "Q-001").state == to.value
            assert Ledger.events(s)[-1].to_state == to.value
    else:
        with pytest.raises(errors.IllegalTransition):
            with ledger.transaction() as s:
                Ledger.set_state(s, Ledger.experiment(s, "Q-001"), to, "test")
        with ledger.transaction() as s:
            assert Ledger.experiment(s, "Q-001").state == frm.value
            assert len(Ledger.events(s)) == 1


def test_retry_puts_a_failed_experiment_back_and_keeps_its_attempts(ledger):
    add_experiment(ledger, "Q-004", "Pilot")
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, "Q-004")
        Ledger.set_state(s, exp, State.IN_PROGRESS, "submitted")
        att = Ledger.new_attempt(s, exp, state="PENDING", job_id="55131103")
        Ledger.set_attempt_state(s, att, "FAILED", "python: command not found")
        Ledger.set_state(s, exp, State.FAILED, "job failed", attempt=att)
    retry(ledger, "Q-004")
    with ledger.transaction() as s:
        assert Ledger.experiment(s, "Q-004").state == "READY"
        (a,) = Ledger.attempts(s, "Q-004")
        assert (a.number, a.state, a.job_id) == (1, "FAILED", "55131103")
        history = [(e.kind, e.from_state, e.to_state) for e in Ledger.events(s, "Q-004")]
    assert history == [
        ("experiment", None, "READY"), ("experiment", "READY", "IN_PROGRESS"),
        ("attempt", None, "PENDING"), ("attempt", "PENDING", "FAILED"),
        ("experiment", "IN_PROGRESS", "FAILED"), ("experiment", "FAILED", "READY"),
    ]


def test_attempt_numbers_and_tokens_are_unique(ledger):
    add_experiment(ledger, "Q-001", "A")
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, "Q-001")
        a1 = Ledger.new_attempt(s, exp, state="PENDING")
        Ledger.set_attempt_state(s, a1, "FAILED", "ended")  # one active attempt at a time
        a2 = Ledger.new_attempt(s, exp, state="PENDING")
    assert (a1.number, a2.number) == (1, 2)
    assert a1.token != a2.token and a1.token.startswith("irq-")


def test_attempts_filters_by_state_and_by_fetch_in_sql(ledger):
    """What `irq fetch` and a daemon cycle ask for: the ended attempts not fetched yet, and the
    active ones, without loading every other attempt."""
    from irq.ledger.models import utcnow
    from irq.ledger.states import ACTIVE_STATES, FINAL_STATES

    for exp_id in ("Q-001", "Q-002", "Q-003"):
        add_experiment(ledger, exp_id, exp_id)
    with ledger.transaction() as s:
        for exp_id, end in (("Q-001", "COMPLETED"), ("Q-002", "FAILED"), ("Q-003", None)):
            a = Ledger.new_attempt(s, Ledger.experiment(s, exp_id), state="PENDING")
            if end:
                Ledger.set_attempt_state(s, a, end, "ended")
        Ledger.attempts(s, "Q-001")[0].fetched_at = utcnow()
    with ledger.transaction() as s:
        assert [a.experiment_id for a in Ledger.attempts(s, states=FINAL_STATES, unfetched=True)] == ["Q-002"]
        assert [a.experiment_id for a in Ledger.attempts(s, states=FINAL_STATES)] == ["Q-001", "Q-002"]
        assert [a.experiment_id for a in Ledger.attempts(s, states=ACTIVE_STATES)] == ["Q-003"]
        assert [a.experiment_id for a in Ledger.attempts(s, unfetched=True)] == ["Q-002", "Q-003"]


def test_promote_a_proposed_experiment(ledger):
    add_experiment(ledger, "Q-005", "OOD test", proposed=True)
    assert promote(ledger, "Q-005").state == "READY"


def test_a_failed_transaction_leaves_nothing_behind(ledger):
    with pytest.raises(RuntimeError):
        with ledger.transaction() as s:
            Ledger.add_experiment(s, Experiment(id="Q-001", seq=0, title="t"))
            raise RuntimeError("crash in the middle")
    with ledger.transaction() as s:
        assert Ledger.experiments(s) == [] and Ledger.events(s) == []


def test_an_older_schema_is_migrated(tmp_path, monkeypatch):
    db = tmp_path / "old.db"
    Ledger(db, create=True).close()
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value='0' WHERE key='schema_version'")
    con.commit()
    con.close()
    ran = []
    monkeypatch.setitem(ledger_mod.MIGRATIONS, 0, lambda s: ran.append("0->1"))
    lg = Ledger(db)
    assert ran == ["0->1"] and lg.get_meta("schema_version") == str(ledger_mod.SCHEMA_VERSION)


WRITER = """
import sys
from irq.ledger.database import Ledger
from irq.experiments.edit import add_experiment
lg = Ledger(sys.argv[1])
for i in range(int(sys.argv[2]), int(sys.argv[2]) + 25):
    add_experiment(lg, f"Q-{i:03d}", f"from process {sys.argv[2]}")
    with lg.transaction() as s:
        Ledger.experiments(s)
"""


def test_two_processes_write_one_ledger_at_once(ledger, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [subprocess.Popen([sys.executable, str(script), str(ledger.path), str(start)],
                              stderr=subprocess.PIPE, text=True) for start in (100, 200)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with ledger.transaction() as s:
        ids = [e.id for e in Ledger.experiments(s)]
        seqs = [e.seq for e in Ledger.experiments(s)]
    assert sorted(ids) == [f"Q-{i:03d}" for i in (*range(100, 125), *range(200, 225))]
    assert len(set(seqs)) == 50  # queue order stays a total order under concurrency


def test_every_new_row_gets_its_own_json_values():
    """The default factories (models.new_dict / new_list, given a signature so pydantic need not
    work one out on every call) make a new value for every row, never one shared between rows."""
    from irq.ledger.models import Attempt

    a, b = Experiment(id="Q-001", seq=1, title="a"), Experiment(id="Q-002", seq=2, title="b")
    a.parameters["rank"] = 20
    a.seeds.append(0)
    assert b.parameters == {} and b.seeds == [] and a.parameters is not b.parameters
    x, y = Attempt(experiment_id="Q-001", number=1, token="t1"), Attempt(experiment_id="Q-001", number=2, token="t2")
    x.results["val_mse"] = 0.1
    assert y.results == {} and x.modules is not y.modules and x.created_at.tzinfo is not None


def test_with_retry_policy_gives_only_the_experiments_in_that_state_that_have_one(ledger):
    """A daemon cycle reads the FAILED experiments with a policy, not every FAILED one (2,450 of
    them in the bench's ledger, each with two more queries, cost 1.4 s a cycle)."""
    policy = {"on": ["TIMEOUT"], "max_time_minutes": 90}
    with ledger.transaction() as s:
        for exp_id, state, rp in (("Q-001", "FAILED", policy), ("Q-002", "FAILED", {}), ("Q-003", "READY", policy),
                                  ("Q-004", "FAILED", policy)):
            Ledger.add_experiment(s, Experiment(id=exp_id, seq=0, title=exp_id, state=state, retry_policy=rp))
    with ledger.transaction() as s:
        assert [e.id for e in Ledger.with_retry_policy(s, "FAILED")] == ["Q-001", "Q-004"]


def test_a_writable_ledger_keeps_a_pool_of_connections_as_a_file_database_does(tmp_path):
    """The engine built from a URI (for paths that are not UTF-8) fell back to SQLAlchemy's
    one-connection-per-thread pool for "sqlite://": a transaction opened inside another shared its
    connection, and a failing inner one rolled back the outer's writes."""
    from sqlalchemy.pool import QueuePool

    assert isinstance(Ledger(tmp_path / "q.db", create=True).engine.pool, QueuePool)
