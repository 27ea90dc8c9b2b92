"""Rows kept between runs of `irq results` (irq/results/rows.py): a warm run prints what a cold one
prints in every format, reads only (id, rev) of the experiments that did not change, and shows
every change to the ledger (irq's ORM or sqlite3 by hand), to a curve file, or to an option in the
next run; a ledger without revisions is read whole every time.

The conftest points IRQ_CACHE_DIR at the test's own folder.
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from irq.ledger import revisions
from irq.ledger.database import Ledger
from irq.results import cache as rc
from irq.results import rows
from tests.results_fixture import add_exp, add_single_attempt, curve_rows, study

FORMATS = ("rich", "md", "csv", "json", "latex")  # rich: piped, so the aligned text table
ALL = [f"Q-00{i}" for i in range(1, 6)]  # read by id: fewer misses than rows.READ_ALL


def fill(ledger: Ledger, root: Path) -> Path:
    """The study (three arrays of three seeds, with curves) and two experiments of single runs."""
    study(ledger, root)
    add_exp(ledger, "Q-004", "Five single runs", state="DONE")
    for seed, v in enumerate((0.031, 0.0335, 0.029, 0.0302, 0.0318)):
        add_single_attempt(ledger, "Q-004", {"val_mse": v, "seed": seed, "baseline_zero_mse": 0.05})
    add_exp(ledger, "Q-005", "Nothing yet", state="READY")
    ledger.close()
    return root / "queue.db"


def clear_cache() -> None:
    folder = Path(os.environ["IRQ_CACHE_DIR"])
    for f in folder.glob("results-*.json") if folder.is_dir() else ():
        f.unlink()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list:
    """Which experiments each run collects from the ledger (None: all of them)."""
    seen: list = []
    real = rows.read

    def spy(conn, root, wanted=None):
        out = real(conn, root, wanted)
        seen.append(None if wanted is None else sorted(wanted))
        return out

    monkeypatch.setattr(rows, "read", spy)
    return seen


def cold_and_warm(irq, *args: str) -> tuple[str, str]:
    clear_cache()
    cold = irq("results", *args)
    warm = irq("results", *args)
    assert cold.code == 0 and warm.code == 0, (cold, warm)
    return cold.out, warm.out


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_warm_run_prints_the_cold_runs_output_in_every_format(ledger, tmp_path: Path, irq, reads, fmt: str) -> None:
    fill(ledger, tmp_path)
    for extra in ((), ("--baseline", "Q-001"), ("--threshold", "0.05"), ("Q-003", "Q-001", "--baseline", "Q-001"),
                  ("--baseline", "Q-001", "--criterion", "val_mse -20%")):
        reads.clear()
        cold, warm = cold_and_warm(irq, "--format", fmt, *extra)
        assert warm == cold, extra
        assert reads[1:] == [], (extra, reads)  # the warm run collected nothing: every row a hit
    assert "Q-004" in warm and "Q-005" in warm


def test_a_warm_run_reads_only_the_experiments_that_changed(ledger, tmp_path: Path, irq, reads) -> None:
    db = fill(ledger, tmp_path)
    first = irq("results", "--format", "csv").out
    lg = Ledger(db)
    add_single_attempt(lg, "Q-004", {"val_mse": 0.5, "seed": 7})  # through the ORM
    lg.close()
    reads.clear()
    after = irq("results", "--format", "csv").out
    assert reads == [["Q-004"]]
    assert after != first and after.splitlines()[4].startswith("Q-004,6,")
    assert [line for line in after.splitlines() if not line.startswith("Q-004")] == \
        [line for line in first.splitlines() if not line.startswith("Q-004")]
    clear_cache()
    assert irq("results", "--format", "csv").out == after


def test_a_change_by_hand_shows_in_the_next_run(ledger, tmp_path: Path, irq) -> None:
    db = fill(ledger, tmp_path)
    assert irq("results", "--format", "md").code == 0
    with sqlite3.connect(db) as c:  # sqlite3 by hand: the triggers still change the revision
        c.execute("UPDATE attempt SET results = ? WHERE experiment_id = 'Q-004' AND number = 1",
                  (json.dumps({"val_mse": 0.9, "seed": 0}),))
        c.execute("UPDATE experiment SET title = 'Renamed', state = 'FAILED' WHERE id = 'Q-002'")
    warm = irq("results", "--format", "json").out
    clear_cache()
    assert warm == irq("results", "--format", "json").out
    table = {r["id"]: r for r in json.loads(warm)["table"]["rows"]}
    assert table["Q-002"]["title"] == "Renamed" and table["Q-002"]["state"] == "FAILED"
    assert table["Q-004"]["values"][0] == {"attempt": 1, "seed": 0, "value": 0.9, "commit": None}
    with sqlite3.connect(db) as c:
        c.execute("DELETE FROM attempt WHERE experiment_id = 'Q-004'")
    assert "Q-004,0," in irq("results", "--format", "csv").out


def test_a_changed_curve_file_shows_in_the_next_run(ledger, tmp_path: Path, irq) -> None:
    """Curves stay outside the kept rows: --threshold reads them from the run folders every time."""
    fill(ledger, tmp_path)
    args = ("results", "--format", "csv", "--threshold", "0.05")
    before = irq(*args).out
    curve = tmp_path / "results" / "q001_1" / "seed_0" / "curve.jsonl"
    assert curve.is_file()
    slow = [dict(r, step=r["step"] * 10) for r in curve_rows(0.04, 0, False)]
    curve.write_text("".join(json.dumps(r) + "\n" for r in slow))
    (curve.parent / "metrics.json").write_text(json.dumps({"val_mse": 0.5}))  # fetch keeps its numbers in the ledger
    after = irq(*args).out
    assert after != before
    clear_cache()
    assert irq(*args).out == after


def test_another_metric_is_another_set_of_rows(ledger, tmp_path: Path, irq, reads) -> None:
    fill(ledger, tmp_path)
    val = irq("results", "--format", "csv").out
    reads.clear()
    zero = irq("results", "--format", "csv", "--metric", "baseline_zero_mse").out
    assert reads == [ALL] and zero != val  # collected again, for this metric
    assert "Q-004,5," in zero and "Q-001,3," in zero
    (tmp_path / "irq.toml").write_text('[project]\nmetric = "baseline_zero_mse"\n')
    reads.clear()
    assert irq("results", "--format", "csv").out == zero and reads == []  # the metric from irq.toml: the same rows
    (tmp_path / "irq.toml").unlink()
    assert irq("results", "--format", "csv").out == val and reads == []  # both kept
    clear_cache()
    assert irq("results", "--format", "csv", "--metric", "baseline_zero_mse").out == zero


def test_other_code_is_another_set_of_rows(ledger, tmp_path: Path, irq, reads, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(ledger, tmp_path)
    assert irq("results", "--format", "csv").code == 0
    monkeypatch.setattr(rows, "VERSION", rows.VERSION + 1)
    reads.clear()
    assert irq("results", "--format", "csv").code == 0 and reads == [ALL]


def test_a_ledger_without_revisions_is_read_whole_every_time(ledger, tmp_path: Path, irq, reads) -> None:
    db = fill(ledger, tmp_path)
    with sqlite3.connect(db) as c:
        for name in revisions._TRIGGERS:  # as a ledger only ever read since revisions came
            c.execute(f"DROP TRIGGER {name}")
    first = irq("results", "--format", "csv").out
    with sqlite3.connect(db) as c:  # no trigger: the revision stays as it was
        c.execute("UPDATE attempt SET results = ? WHERE experiment_id = 'Q-004' AND number = 1",
                  (json.dumps({"val_mse": 0.9, "seed": 0}),))
    reads.clear()
    after = irq("results", "--format", "csv").out
    assert reads == [None] and after != first
    clear_cache()
    assert irq("results", "--format", "csv").out == after
    assert not any(n.startswith("rows-") for f in Path(os.environ["IRQ_CACHE_DIR"]).glob("results-*.json")
                   for n in rc.load(f))


def test_kept_rows_are_what_collecting_gives(ledger, tmp_path: Path) -> None:
    """to_entry() and from_entries() give back the row as collected, to the bit."""
    db = fill(ledger, tmp_path)
    cache = rc.ResultsCache.open(db)
    fresh = rows.collect_rows(db, tmp_path, None, "val_mse", cache)
    assert cache.fresh == 5
    cache.save()
    again = rc.ResultsCache.open(db)
    kept = rows.collect_rows(db, tmp_path, ["Q-004", "Q-001"], "val_mse", again)
    assert again.fresh == 0 and [c.id for c in kept] == ["Q-004", "Q-001"]
    assert kept == [c for i in ("Q-004", "Q-001") for c in fresh if c.id == i]
    assert [c.outputs for c in kept][1] == [f"results/q001_1/seed_{s}" for s in range(3)]
