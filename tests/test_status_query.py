"""`irq status` at scale (issue 10, finding 3): the latest attempt per experiment found in SQL,
state filters and limits in SQL, DONE beyond the latest 20 folded into a count, export
streamed; checked against the ORM's full load as the oracle, on a ledger built in bulk like
bench/bench_scale.py builds its 10,000-experiment one (here 120 experiments)."""
from __future__ import annotations

import importlib.util
import io
import json
import sqlite3
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_scale", REPO / "bench" / "bench_scale.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def big(tmp_path: Path) -> Path:
    """120 experiments (DONE, FAILED, READY, PROPOSED in turn, the first 8 IN_PROGRESS), 3
    attempts each, the latest one deciding the shown state."""
    from irq.ledger.database import Ledger

    Ledger(tmp_path / "queue.db", create=True).close()
    bench_module().fill_ledger(tmp_path / "queue.db", 120, 3, 8)
    return tmp_path / "queue.db"


def oracle(db: Path) -> dict[str, tuple[int, str | None, str | None]]:
    """id -> (attempts, latest job id, latest attempt state), from every ORM object."""
    from irq.ledger.database import Ledger

    lg = Ledger(db)
    with lg.transaction() as s:
        out = {e.id: (0, None, None) for e in Ledger.experiments(s)}
        for a in Ledger.attempts(s):  # ordered by experiment, then number: the last one wins
            out[a.experiment_id] = (out[a.experiment_id][0] + 1, a.job_id, a.state)
    lg.close()
    return out


def test_rows_carry_the_latest_attempt(big: Path) -> None:
    from irq.experiments.views import status_rows

    rows = status_rows(big)
    assert [r.id for r in rows] == sorted(r.id for r in rows) and len(rows) == 120
    assert {r.id: (r.attempts, r.job_id, r.scheduler_state) for r in rows} == oracle(big)


def test_state_filter_and_limit_run_in_sql(big: Path, irq) -> None:
    r = irq("status", "--offline", "--json", "--state", "FAILED", "--limit", "4")
    data = json.loads(r.out)
    ids = [e["id"] for e in data["experiments"]]
    conn = sqlite3.connect(big)
    newest = [i for (i,) in conn.execute(
        "SELECT id FROM experiment WHERE state = 'FAILED' ORDER BY updated_at DESC, seq DESC LIMIT 4")]
    total = conn.execute("SELECT COUNT(*) FROM experiment WHERE state = 'FAILED'").fetchone()[0]
    assert sorted(ids) == sorted(newest) and {e["state"] for e in data["experiments"]} == {"FAILED"}
    assert data["folded"] == {"FAILED": total - 4}


def test_done_beyond_the_latest_20_is_folded(big: Path, irq) -> None:
    done = sqlite3.connect(big).execute("SELECT COUNT(*) FROM experiment WHERE state = 'DONE'").fetchone()[0]
    assert done > 20
    text = irq("status", "--offline")
    assert text.code == 0
    assert f"… and {done - 20:,} more DONE: irq status --state DONE" in text.err  # piped: beside the rows, not among them
    assert all(line.count("\t") >= 5 for line in text.out.splitlines()), text.out[-300:]
    every = irq("status", "--offline", "--state", "done", "--json")
    assert len(json.loads(every.out)["experiments"]) == done
    assert len(json.loads(irq("status", "--offline", "--json", "--all").out)["experiments"]) == 120
    folded = json.loads(irq("status", "--offline", "--json").out)  # the text view's rows and counts
    assert len(folded["experiments"]) + sum(folded["folded"].values()) == 120
    assert folded["folded"]["DONE"] == done - 20


def test_growing_states_fold_and_the_queue_never_does(tmp_path: Path, irq) -> None:
    """FAILED, PROPOSED and RETIRED fold at 20 like DONE; IN_PROGRESS and READY never fold."""
    from irq.ledger.database import Ledger

    Ledger(tmp_path / "queue.db", create=True).close()
    bench_module().fill_ledger(tmp_path / "queue.db", 400, 2, 30)
    conn = sqlite3.connect(tmp_path / "queue.db")
    counts = dict(conn.execute("SELECT state, COUNT(*) FROM experiment GROUP BY state").fetchall())
    data = json.loads(irq("status", "--offline", "--json").out)
    shown: dict[str, int] = {}
    for e in data["experiments"]:
        shown[e["state"]] = shown.get(e["state"], 0) + 1
    assert shown["IN_PROGRESS"] == counts["IN_PROGRESS"] == 30 and shown["READY"] == counts["READY"] > 20
    for st in ("DONE", "FAILED", "PROPOSED"):
        assert shown[st] == 20 and data["folded"][st] == counts[st] - 20, st
    text = irq("status", "--offline").err
    assert f"… and {counts['FAILED'] - 20:,} more FAILED: irq status --state FAILED" in text
    assert len(json.loads(irq("status", "--offline", "--json", "-a").out)["experiments"]) == 400


def test_unknown_state_is_refused(big: Path, irq) -> None:
    r = irq("status", "--offline", "--state", "FINISHED")
    assert r.code != 0 and "unknown state" in r.err and "DONE" in r.err


def test_reads_never_select_the_job_script(big: Path, monkeypatch) -> None:
    """The read path selects the columns it shows: status and export never read `script`."""
    from irq.experiments.views import status_rows
    from irq.formats.export import export_text
    from irq.ledger import reader

    seen: list[str] = []
    real = reader._open

    def traced(*a, **kw):
        conn = real(*a, **kw)
        conn.set_trace_callback(seen.append)
        return conn

    monkeypatch.setattr(reader, "_open", traced)
    status_rows(big)
    export_text(big)
    assert seen and not [q for q in seen if "script" in q or "SELECT * FROM attempt" in q or "a.*" in q]


def test_export_streams_the_same_text(big: Path) -> None:
    from irq.formats.queue_io import export_queue, stream_export

    out = io.StringIO()
    stream_export(big, None, None, out)
    text = export_queue(big, None)
    shown = sqlite3.connect(big).execute(  # a PROPOSED experiment's attempts are not exported
        "SELECT COUNT(*) FROM attempt JOIN experiment e ON e.id = experiment_id WHERE e.state != 'PROPOSED'")
    assert out.getvalue() == text and text.count("- ATTEMPT ") == shown.fetchone()[0] > 0


def test_bench_builder_matches_the_schema(tmp_path: Path) -> None:
    """bench/bench_scale.py's bulk ledger reads back through the ORM (all columns valid)."""
    from irq.ledger.database import Ledger

    Ledger(tmp_path / "b.db", create=True).close()
    bench_module().fill_ledger(tmp_path / "b.db", 10, 2, 2)
    assert sum(n for n, _, _ in oracle(tmp_path / "b.db").values()) == 20


@pytest.mark.parametrize("cmd", [["--help"], ["status", "--offline"], ["status", "--json"], ["show", "Q-00005"],
                                 ["export"], ["status", "--help"]])
def test_read_commands_import_no_orm(big: Path, cmd: list[str]) -> None:
    """sqlmodel/SQLAlchemy cost more CPU than all of `irq --help`: the read path never loads them
    (`status` online with nothing active included), nor paramiko."""
    import subprocess
    import sys

    code = ("import sys\nfrom irq.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    code = e.code\nheavy = [m for m in ('sqlalchemy', 'sqlmodel', 'paramiko') if m in sys.modules]\n"
            "print('HEAVY', heavy, code, file=sys.stderr)")
    conn = sqlite3.connect(big)
    conn.execute("UPDATE attempt SET state = 'FAILED' WHERE state = 'RUNNING'")  # nothing active
    conn.commit()
    conn.close()
    r = subprocess.run([sys.executable, "-c", code, *cmd], cwd=big.parent, capture_output=True, text=True, check=False,
                       env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert "HEAVY [] 0" in r.stderr, r.stderr[-800:]
