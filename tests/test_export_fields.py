"""The plain (non-property) export test: every field of an attempt, set to a value of its own,
survives export -> import, or is named here as not exported on purpose. A field added to
Attempt or dropped from the export fails this test at once, without the slow round trip.
RETIRED experiments and their attempts round-trip too."""
from __future__ import annotations

from datetime import datetime, timezone

from irq.formats.queue_io import export_queue, import_queue
from irq.ledger.database import Ledger
from irq.ledger.models import Attempt, Experiment

# not in queue.md on purpose: row identity, bookkeeping of this ledger, the script (in the run dir)
NOT_EXPORTED = {"id", "token", "backend", "script", "unknown_since", "created_at", "updated_at",
                "annotations", "extras", "experiment_id"}
T = datetime(2026, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
VALUES = {
    "number": 1, "job_id": "4242", "run_id": "Q-001-run", "state": "FAILED", "exit_code": 3,
    "submitted_at": T, "started_at": T.replace(minute=6), "ended_at": T.replace(minute=7),
    "git_sha": "abc1234", "partition": "gpu_test", "run_dir": "/runs/Q-001", "modules": ["python/3.10"],
    "error": "out of patience", "root_cause": "a typo", "fix_applied": "fixed the typo",
    "suggested_fix": "rerun", "resource_change": "time 1 hour -> 2 hours", "results": {"val_mse": 0.25},
    "output": "results/Q-001", "fetched_at": T.replace(minute=9), "cluster": "fasrc", "work_dir": "/work/Q-001",
    "array": "0-1%2", "tasks": {"0": {"state": "COMPLETED", "exit_code": 0}, "1": {"state": "FAILED", "exit_code": 3}},
}


def _fill(ledger: Ledger, state: str = "FAILED") -> None:
    with ledger.transaction() as s:
        Ledger.add_experiment(s, Experiment(id="Q-001", seq=0, title="Every field", state=state))
        s.flush()
        s.add(Attempt(experiment_id="Q-001", token="irq-1", backend="slurm:fasrc", **VALUES))


def _round_trip(tmp_path, ledger: Ledger) -> tuple[Ledger, str, str]:
    text = export_queue(ledger, tmp_path / "one.md")
    other = Ledger(tmp_path / "two.db", create=True)
    import_queue(other, tmp_path / "one.md")
    return other, text, export_queue(other, None)


def test_every_attempt_field_is_exported_or_named(tmp_path, ledger):
    fields = set(Attempt.model_fields)
    assert fields == set(VALUES) | NOT_EXPORTED, "a new Attempt field: export it (and add it here) or name it"
    _fill(ledger)
    other, text1, text2 = _round_trip(tmp_path, ledger)
    assert text1 == text2
    with other.transaction() as s:
        got = Ledger.attempts(s, "Q-001")[0]
    for key, value in VALUES.items():
        mine = getattr(got, key)
        if isinstance(value, datetime) and mine is not None and mine.tzinfo is None:
            mine = mine.replace(tzinfo=timezone.utc)
        assert mine == value, key


def test_a_retired_experiment_round_trips_with_its_history(tmp_path, ledger):
    _fill(ledger, state="RETIRED")
    with ledger.transaction() as s:
        Ledger.add_experiment(s, Experiment(id="Q-002", seq=0, title="Never ran", state="RETIRED"))
    other, text1, text2 = _round_trip(tmp_path, ledger)
    assert "## RETIRED" in text1 and text1 == text2
    with other.transaction() as s:
        assert {e.id: e.state for e in Ledger.experiments(s)} == {"Q-001": "RETIRED", "Q-002": "RETIRED"}
        assert [a.job_id for a in Ledger.attempts(s, "Q-001")] == ["4242"]


def test_no_retired_section_without_a_retired_experiment(tmp_path, ledger):
    _fill(ledger)
    assert "RETIRED" not in export_queue(ledger, None)
