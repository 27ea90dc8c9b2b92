"""The two state machines as tables: every legal move is taken (stamped, logged), every other
one refused; and no code outside irq/ledger/transitions.py assigns a state or an end time."""
from __future__ import annotations

import ast
import shutil
import sqlite3
from pathlib import Path

import pytest

from irq import errors
from irq.experiments.edit import add_experiment, promote
from irq.ledger import transitions
from irq.ledger.database import SCHEMA_VERSION, Ledger
from irq.ledger.models import Experiment
from irq.ledger.states import LEGAL, AttemptState, State
from irq.ledger.transitions import Waiting, waiting

REPO = Path(__file__).resolve().parent.parent
E = State
A = AttemptState

EXPERIMENT_TABLE = {
    E.PROPOSED: {E.READY, E.RETIRED},
    E.READY: {E.IN_PROGRESS, E.RETIRED},
    E.IN_PROGRESS: {E.DONE, E.FAILED, E.READY, E.RETIRED},
    E.FAILED: {E.READY, E.RETIRED},
    E.DONE: set(),
    E.RETIRED: set(),
}
LIVE = {A.PENDING, A.CONFIGURING, A.RUNNING, A.COMPLETING, A.REQUEUED, A.RESIZING, A.SUSPENDED, A.STOPPED,
        A.UNKNOWN}
FINAL = {A.COMPLETED, A.FAILED, A.CANCELLED, A.TIMEOUT, A.OUT_OF_MEMORY, A.NODE_FAIL, A.PREEMPTED,
         A.BOOT_FAIL, A.DEADLINE, A.REVOKED, A.LOST}
ATTEMPT_TABLE = {
    A.SUBMITTING: {A.PENDING, A.REFUSED, A.NOT_SUBMITTED},
    **{st: (LIVE | FINAL) - {st} for st in LIVE},
    **{st: set() for st in FINAL | {A.REFUSED}},
    A.NOT_SUBMITTED: {A.PENDING},  # sbatch answered after a reconcile had given it up
}
CLOSED = FINAL | {A.REFUSED, A.NOT_SUBMITTED}


def test_the_experiment_table_is_the_one_written_here():
    assert LEGAL == EXPERIMENT_TABLE  # each pair is exercised by test_ledger.py


def test_the_attempt_table_covers_every_state():
    assert set(ATTEMPT_TABLE) == set(AttemptState)


@pytest.mark.parametrize("frm", list(AttemptState))
def test_attempt_moves_from(ledger, frm):
    for n, to in enumerate(AttemptState, start=1):
        exp_id = f"Q-{n:03d}"
        with ledger.transaction() as s:
            exp = Ledger.add_experiment(s, Experiment(id=exp_id, seq=0, title="t", state="IN_PROGRESS"))
            att = Ledger.new_attempt(s, exp, state=frm.value)
            transitions.mark_unknown(s, att)
        legal = to in ATTEMPT_TABLE[frm]
        if to == frm:
            with ledger.transaction() as s:  # no move: nothing logged, the state is known again
                assert Ledger.set_attempt_state(s, Ledger.attempts(s, exp_id)[0], to, "same") is False
        elif legal:
            with ledger.transaction() as s:
                assert Ledger.set_attempt_state(s, Ledger.attempts(s, exp_id)[0], to, "test") is True
        else:
            with pytest.raises(errors.IllegalTransition), ledger.transaction() as s:
                Ledger.set_attempt_state(s, Ledger.attempts(s, exp_id)[0], to, "test")
        with ledger.transaction() as s:
            (a,) = Ledger.attempts(s, exp_id)
            events = [e for e in Ledger.events(s, exp_id) if e.kind == "attempt"]
            if legal:
                assert (a.state, events[-1].from_state, events[-1].to_state) == (to.value, frm.value, to.value)
                assert (a.ended_at is not None) == (to in CLOSED), (frm, to)
                assert a.unknown_since is None
            else:
                assert a.state == frm.value and len(events) == 1
                assert a.unknown_since is None if to == frm else a.unknown_since is not None


def test_a_move_records_its_facts_and_keeps_the_schedulers_end_time(ledger):
    from datetime import datetime, timezone

    end = datetime(2026, 1, 13, 23, 42, 37, tzinfo=timezone.utc)
    add_experiment(ledger, "Q-001", "t")
    with ledger.transaction() as s:
        att = Ledger.new_attempt(s, Ledger.experiment(s, "Q-001"))
        Ledger.set_attempt_state(s, att, "PENDING", "sbatch", job_id="42")
        Ledger.set_attempt_state(s, att, "TIMEOUT", "scheduler", ended_at=end, exit_code=0)
        with pytest.raises(TypeError):
            Ledger.set_attempt_state(s, att, "TIMEOUT", "x", state="COMPLETED")
    with ledger.transaction() as s:
        (a,) = Ledger.attempts(s, "Q-001")
        assert (a.job_id, a.state, a.exit_code) == ("42", "TIMEOUT", 0)
        assert a.ended_at.replace(tzinfo=timezone.utc) == end


def test_a_queued_experiment_with_a_job_cannot_go_back_to_ready(ledger):
    add_experiment(ledger, "Q-001", "t")
    with ledger.transaction() as s:
        Ledger.new_attempt(s, Ledger.experiment(s, "Q-001"))
    with pytest.raises(errors.IllegalTransition, match="cannot move to READY"), ledger.transaction() as s:
        Ledger.set_state(s, Ledger.experiment(s, "Q-001"), State.READY, "t")


def test_one_active_attempt_per_experiment(ledger):
    add_experiment(ledger, "Q-001", "t")
    with ledger.transaction() as s:
        Ledger.new_attempt(s, Ledger.experiment(s, "Q-001"))
    with pytest.raises(errors.IllegalTransition, match="already has attempt 1"), ledger.transaction() as s:
        Ledger.new_attempt(s, Ledger.experiment(s, "Q-001"))
    with ledger.transaction() as s:
        assert len(Ledger.attempts(s, "Q-001")) == 1


@pytest.mark.parametrize("state", ["READY", "IN_PROGRESS", "DONE", "FAILED"])
def test_ready_promotes_only_a_proposed_experiment(ledger, state):
    with ledger.transaction() as s:
        Ledger.add_experiment(s, Experiment(id="Q-010", seq=0, title="t", state=state))
    with pytest.raises(errors.IllegalTransition, match="only a PROPOSED experiment|cannot move to READY|already READY"):
        promote(ledger, "Q-010")
    with ledger.transaction() as s:
        assert Ledger.experiment(s, "Q-010").state == state


def test_queued_and_held_have_one_writer_and_one_definition(ledger):
    add_experiment(ledger, "Q-001", "a")
    add_experiment(ledger, "Q-002", "b")
    with ledger.transaction() as s:
        q1, q2 = Ledger.experiment(s, "Q-001"), Ledger.experiment(s, "Q-002")
        assert transitions.wait_locally(s, q1, "no free job slot (2 of 2 used)")
        assert transitions.wait_locally(s, q2, "preflight failed: no such partition", "use gpu_test")
    with ledger.transaction() as s:
        q1, q2 = Ledger.experiment(s, "Q-001"), Ledger.experiment(s, "Q-002")
        assert (q1.state, waiting(q1, False), q1.queued_since is not None) == ("IN_PROGRESS", Waiting.QUEUED, True)
        assert (waiting(q2, False), q2.held_fix) == (Waiting.HELD, "use gpu_test")
        assert waiting(q1, True) is None  # a job is running: not waiting, whatever the entry says
        att = Ledger.new_attempt(s, q1)  # a submission clears the entry
        assert q1.waiting_reason is None and q1.queued_since is None
        assert transitions.wait_locally(s, q1, "again") is False  # it has a job now
        Ledger.set_attempt_state(s, att, "REFUSED", "job limit")
        assert transitions.wait_locally(s, q1, "job limit") is True
        Ledger.set_state(s, q2, State.READY, "taken off the queue")
        assert (q2.waiting_reason, q2.held_fix) == (None, None)


def test_a_pending_resource_change_moves_onto_the_next_attempt(ledger):
    add_experiment(ledger, "Q-001", "t")
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, "Q-001")
        exp.pending_resource_change = "time 1 hour -> 2 hours after TIMEOUT"
        att = Ledger.new_attempt(s, exp)
    assert att.resource_change == "time 1 hour -> 2 hours after TIMEOUT"
    with ledger.transaction() as s:
        assert Ledger.experiment(s, "Q-001").pending_resource_change is None


# -- one writer ---------------------------------------------------------------------------
WRITTEN_ONLY_BY_TRANSITIONS = {"state", "ended_at", "unknown_since", "waiting_reason", "queued_since", "held_fix"}
# reading queue.md builds new rows from text: creation, not a move
ALLOWED = {"irq/ledger/transitions.py", "irq/formats/queuefile.py", "irq/formats/queue_attempts.py"}


def _assignments(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            for el in (t.elts if isinstance(t, ast.Tuple) else [t]):
                if isinstance(el, ast.Attribute) and el.attr in WRITTEN_ONLY_BY_TRANSITIONS:
                    found.append(f"{el.attr} at line {node.lineno}")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr"
                and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
                and node.args[1].value in WRITTEN_ONLY_BY_TRANSITIONS):
            found.append(f"setattr {node.args[1].value} at line {node.lineno}")
    return found


def test_only_transitions_assign_states_end_times_and_queue_entries():
    offenders = {}
    for path in sorted((REPO / "irq").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel not in ALLOWED and (found := _assignments(path)):
            offenders[rel] = found
    assert offenders == {}
    assert _assignments(REPO / "irq/ledger/transitions.py")  # the scan sees assignments at all


# -- old ledgers ----------------------------------------------------------------------------
def test_a_version_1_ledger_is_migrated(tmp_path):
    db = tmp_path / "v1.db"
    lg = Ledger(db, create=True)
    with lg.transaction() as s:
        Ledger.add_experiment(s, Experiment(id="Q-001", seq=0, title="t", state="READY",
                                            annotations={"pending_resource_change": "memory 4GB -> 8GB"}))
    lg.close()
    con = sqlite3.connect(db)
    for col in ("held_fix", "pending_resource_change"):
        con.execute(f"ALTER TABLE experiment DROP COLUMN {col}")
    con.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    con.commit()
    con.close()
    lg = Ledger(db)
    assert lg.get_meta("schema_version") == str(SCHEMA_VERSION)
    with lg.transaction() as s:
        e = Ledger.experiment(s, "Q-001")
        assert (e.pending_resource_change, e.annotations, e.held_fix) == ("memory 4GB -> 8GB", {}, None)


def test_the_repositorys_queue_db_still_opens(tmp_path):
    src = REPO / "queue.db"
    if not src.exists():
        pytest.skip("no committed queue.db")
    shutil.copy(src, tmp_path / "copy.db")
    with Ledger(tmp_path / "copy.db").transaction() as s:
        q3 = Ledger.experiment(s, "Q-003")
        assert waiting(q3, False) is Waiting.QUEUED


def test_a_held_experiment_shows_its_reason_and_fix_everywhere(tmp_path, ledger, irq):
    from irq.experiments.views import status_rows
    from irq.formats.queue_io import export_queue, import_queue

    add_experiment(ledger, "Q-004", "Pilot")
    add_experiment(ledger, "Q-003", "Queued")
    with ledger.transaction() as s:
        transitions.wait_locally(s, Ledger.experiment(s, "Q-004"), "preflight failed: python/3.9 is not a module",
                                 "use python/3.10.13-fasrc01")
        transitions.wait_locally(s, Ledger.experiment(s, "Q-003"), "no free job slot (2 of 2 used)")
    rows = {r.id: r for r in status_rows(ledger)}
    assert rows["Q-004"].detail == ("held until fixed: preflight failed: python/3.9 is not a module; "
                                    "fix: use python/3.10.13-fasrc01")
    assert rows["Q-003"].detail == "queued locally, waiting for a slot: no free job slot (2 of 2 used)"
    r = irq("show", "Q-004")
    assert "held until fixed" in r.out and "waiting for a slot" not in r.out
    text = export_queue(ledger, tmp_path / "q.md")
    assert "### Q-004: Pilot (HELD - until fixed)" in text and "- **Fix**: use python/3.10.13-fasrc01" in text
    assert "### Q-003: Queued (QUEUED - waiting for a slot)" in text
    second = Ledger(tmp_path / "two.db", create=True)
    import_queue(second, tmp_path / "q.md")
    assert export_queue(second, None) == text
    with second.transaction() as s:
        q4 = Ledger.experiment(s, "Q-004")
        assert (waiting(q4, False), q4.held_fix) == (Waiting.HELD, "use python/3.10.13-fasrc01")
