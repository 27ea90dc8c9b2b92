"""`irq export` writes the packaged queue.md layout without Jinja (irq/formats/queue_layout.py),
the plain lines of each block made by SQLite (irq/formats/sql_blocks.py). It must write the
bytes the packaged template renders from the reference blocks (irq/formats/blocks.py): on the
seed queue, and on a ledger with every kind of row, those SQL formats and those it leaves to
Python (annotations, tasks, extras, retry policies, local-queue entries, odd stored times).
A project's own queue.md.j2 is still rendered by Jinja."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from importlib import resources

from irq.formats.export import REPORT_META, Derived, export_text, report_record
from irq.formats.queue_io import import_queue
from irq.formats.sql_blocks import attempt_pieces, definition_pieces
from irq.ledger.database import Ledger
from irq.ledger.models import Attempt, Experiment

T = datetime(2026, 2, 3, 4, 5, 6, tzinfo=timezone.utc)


def both(ledger, derived: Derived | None = None) -> tuple[str, str]:
    return export_text(ledger, derived=derived, jinja=True), export_text(ledger, derived=derived, jinja=False)


def test_the_seed_queue_is_written_as_the_template_writes_it(ledger, seed_queue):
    import_queue(ledger, seed_queue)
    jinja, direct = both(ledger)
    assert direct == jinja


def test_an_empty_ledger(ledger):
    jinja, direct = both(ledger)
    assert direct == jinja


def _experiments() -> list[Experiment]:
    params = {"rank": 20, "mining": "semi-hard", "train_steps": 100000, "learning_rate": 1e-05, "batch_size": 64,
              "dropout": 0.1, "use_ema": True, "note": None, "weight_DECAY": -12345, "big": 2 ** 70,
              "ratio": 1.5e+16, "größe": 3, "name": "a b", "layers": [1, 2]}
    return [
        Experiment(id="Q-001", seq=1, title="Every definition field", state="READY", hypothesis="it helps",
                   config_path="configs/a.json", command="python train.py --seed {seed}", parameters=params,
                   seeds=[0, 1, 2], resources={"gpus": 1, "cpus": 4, "memory_mb": 1536, "time_minutes": 90,
                                               "partition": "gpu_test"},
                   priority="HIGH", depends_on=["Q-002"], notes="see the pilot"),
        Experiment(id="Q-002", seq=2, title="Odd seeds and resources", state="DONE", seeds=[0, 2, 5],
                   parameters={"mining": "hard negatives"}, depends_on=["Q-003", "Q-004", "Q-005"],
                   resources={"gpus": 2, "memory_mb": 16384, "time_minutes": 61, "nodes": 3}),
        Experiment(id="Q-003", seq=3, title="No resources known", state="FAILED", resources={"nodes": 1},
                   parameters={"mining": ""}, seeds=[7], depends_on=["Q-001", "Q-002"]),
        Experiment(id="Q-004", seq=4, title="Annotated", state="IN_PROGRESS", priority="LOW",
                   parameters={"rank": 20}, annotations={"parameters.rank": "(20×20 matrices)", "priority": "(later)"},
                   retry_policy={"on": ["TIMEOUT"], "max_time_minutes": 240, "max_attempts": 3}),
        Experiment(id="Q-005", seq=5, title="Waiting for a slot", state="IN_PROGRESS", queued_since=T,
                   waiting_reason="waiting for a job slot", resources={"time_minutes": 1}),
        Experiment(id="Q-006", seq=6, title="Held", state="IN_PROGRESS", waiting_reason="script failed",
                   held_fix="fix the path", queued_since=T, queue_extras=[["Note", "by hand"]]),
        Experiment(id="Q-007", seq=7, title="Retired", state="RETIRED", notes="superseded"),
        Experiment(id="Q-008", seq=8, title="A proposal", state="PROPOSED", hypothesis="maybe",
                   parameters={"rank": 4, "mining": "random"}, resources={"time_minutes": 30}),
        Experiment(id="Q-009", seq=9, title="A checked proposal", state="PROPOSED", priority="HIGH",
                   annotations={"checked": "x"}, parameters={"rank": 8}),
        Experiment(id="Q-010", seq=10, title="A plain proposal", state="PROPOSED", priority="HIGH", notes="later"),
        Experiment(id="Q-011", seq=11, title="Done, seed mean", state="DONE"),
        Experiment(id="Q-021", seq=21, title="Text that is not one plain line", state="READY",
                   hypothesis='"quoted" first', notes="two lines\n### Q-999: not a heading",
                   command="echo `date` > {run_dir}/x", config_path=" padded.json"),
        Experiment(id="Q-022", seq=22, title="Plain Unicode", state="READY", notes="20×20 — fine",
                   command="python ünï.py"),
        Experiment(id="Q-023", seq=23, title="A NUL", state="READY", notes="cut\x00here"),
        Experiment(id="Q-024", seq=24, title="Eval on (HELD-OUT split)", state="DONE"),
        Experiment(id="Q-025", seq=25, title='"Quoted" first - ATTEMPT 2', state="READY"),
    ]


def _attempts() -> list[Attempt]:
    full = {"job_id": "4242", "run_id": "Q-001-run", "exit_code": 3, "submitted_at": T,
            "started_at": T.replace(minute=6), "ended_at": T.replace(minute=7), "git_sha": "abc1234",
            "partition": "gpu_test", "run_dir": "/runs/Q-001", "modules": ["python/3.10", "cuda/12"],
            "error": "out of patience", "root_cause": "a typo", "fix_applied": "fixed the typo", "suggested_fix": "rerun",
            "resource_change": "time 1 hour -> 2 hours", "output": "results/Q-001", "fetched_at": T.replace(minute=9),
            "cluster": "fasrc", "work_dir": "/work/Q-001"}
    results = {"val_mse": 0.0171, "steps": 100000, "loss": 1e-05, "ok": True, "tag": "best", "none": None,
               "per_seed": [0.1, 0.2], "nan": float("nan"), "exit": 0}
    return [
        Attempt(experiment_id="Q-001", number=1, token="t1", backend="slurm:fasrc", state="FAILED", **full),
        Attempt(experiment_id="Q-001", number=2, token="t2", backend="local", state="CANCELLED", ended_at=T,
                exit_code=0, modules=[""]),
        Attempt(experiment_id="Q-002", number=1, token="t3", backend="imported", state="COMPLETED",
                submitted_at=T, ended_at=T, results=results),
        Attempt(experiment_id="Q-002", number=2, token="t4", backend="local", state="COMPLETED", results={"val_mse": 2}),
        Attempt(experiment_id="Q-003", number=1, token="t5", backend="slurm:fasrc", state="TIMEOUT", array="0-2%2",
                tasks={"0": {"state": "COMPLETED", "exit_code": 0}, "1": {"state": "TIMEOUT"}}),
        Attempt(experiment_id="Q-003", number=2, token="t6", backend="local", state="FAILED",
                extras=[["Runtime", "2 hours"], ["Workflow", "retry"], ["Purpose", "pilot"]],
                annotations={"ended_label": "Died", "state": "(by hand)", "git_sha": "(dirty)"},
                ended_at=T, git_sha="def5678"),
        Attempt(experiment_id="Q-004", number=1, token="t7", backend="slurm:fasrc", state="RUNNING", job_id="99",
                submitted_at=T, started_at=T, unknown_since=T),
        Attempt(experiment_id="Q-004", number=2, token="t8", backend="slurm:fasrc", state="PENDING", ended_at=T),
        Attempt(experiment_id="Q-007", number=1, token="t9", backend="local", state="OUT_OF_MEMORY", ended_at=T),
        Attempt(experiment_id="Q-008", number=1, token="t10", backend="local", state="FAILED"),  # never shown
        Attempt(experiment_id="Q-011", number=1, token="t11", backend="local", state="COMPLETED",
                results={"val_mse_mean": 0.5, "Validation MSE": 0.25}),
        Attempt(experiment_id="Q-021", number=1, token="t12", backend="local", state="FAILED",
                error="Traceback (most recent call last):\n  File x", root_cause=" leading space", suggested_fix="ok",
                work_dir="/w/`x`", output="results/ünï"),
        Attempt(experiment_id="Q-022", number=1, token="t13", backend="local", state="FAILED", error="é — plain"),
        Attempt(experiment_id="Q-024", number=1, token="t14", backend="local", state="COMPLETED"),
    ]


def _every_kind(ledger: Ledger, tmp_path) -> None:
    with ledger.transaction() as s:
        for e in _experiments():
            Ledger.add_experiment(s, e)
        s.flush()
        for a in _attempts():
            s.add(a)
        Ledger._set_meta(s, "title", "A study")
        Ledger._set_meta(s, "preamble", "Notes before the queue.\n\nTwo paragraphs.")
        Ledger._set_meta(s, "future_heading", "Proposed next")
        summary = tmp_path / "report" / "summary.md"
        Ledger._set_meta(s, REPORT_META, report_record(summary, [tmp_path / "report" / "fig.png"], ["Q-002"]))
    conn = sqlite3.connect(ledger.path)
    with conn:  # times as other writers store them: no fraction, a fraction, an offset, a T
        conn.execute("UPDATE attempt SET submitted_at = '2026-02-03 04:05:06' WHERE token = 't1'")
        conn.execute("UPDATE attempt SET started_at = '2026-02-03 04:05:06.750000' WHERE token = 't1'")
        conn.execute("UPDATE attempt SET ended_at = '2026-02-03 05:05:06+01:00' WHERE token = 't2'")
        conn.execute("UPDATE attempt SET fetched_at = '2026-02-03T04:05:06' WHERE token = 't1'")
        conn.execute("UPDATE attempt SET results = ? WHERE token = 't4'", (json.dumps({"val_mse": 0.5, "lr": 1.0}),))
    conn.close()


def test_every_kind_of_row_is_written_as_the_template_writes_it(ledger, tmp_path):
    _every_kind(ledger, tmp_path)
    jinja, direct = both(ledger, Derived(dest_dir=tmp_path))
    assert direct == jinja
    for shown in ("## RETIRED", "## Proposed next", "- [x] **Q-009**", "(HELD - until fixed)", "**Report**",
                  "- **Headline**: val_mse 0.5 (lower is better)", "ATTEMPT 2 ✓ COMPLETED", "  - nan: nan",
                  "- **Failed**: 2026-02-03T04:07:06Z", "- **Cancelled**: 2026-02-03T04:05:06Z",
                  "- **Ended**: 2026-02-03T04:05:06Z", "- **Fetched**: 2026-02-03T04:05:06Z",
                  '- **Notes**: "two lines\\n### Q-999: not a heading"', '- **Command**: "echo `date` > {run_dir}/x"',
                  '- **Config**: " padded.json"', '- **Hypothesis**: "\\"quoted\\" first"',
                  '- **Error**: "Traceback (most recent call last):\\n  File x"', '- **Root cause**: " leading space"',
                  '- **Work dir**: "/w/`x`"', "- **Output**: `results/ünï`", "- **Notes**: 20×20 — fine",
                  "- **Command**: `python ünï.py`", "- **Error**: é — plain", '- **Notes**: "cut\\u0000here"',
                  '### Q-024: "Eval on (HELD-OUT split)" - ATTEMPT 1 ✓ COMPLETED', '### Q-024: "Eval on (HELD-OUT split)"\n',
                  '### Q-025: "\\"Quoted\\" first - ATTEMPT 2"\n'):
        assert shown in direct, shown
    assert "\n### Q-999" not in direct


def test_sql_writes_the_plain_rows_and_leaves_the_rest_to_python(ledger, tmp_path):
    """The point of the fast path: most rows never decoded in Python (and none wrongly so)."""
    _every_kind(ledger, tmp_path)
    conn = sqlite3.connect(ledger.path)
    sql = f"SELECT a.token, {attempt_pieces(False)} FROM attempt a JOIN experiment e ON e.id = a.experiment_id"
    in_sql = {token for token, first, *_ in conn.execute(sql) if first is not None}
    # t2: an offset; t5: tasks; t6: annotations; t12: text that is not one plain line; t13: Unicode;
    # t14: its experiment's title ends as a heading's mark does
    assert in_sql == {"t1", "t3", "t4", "t7", "t8", "t9", "t10", "t11"}
    sql = f"SELECT e.id, {definition_pieces(False)} FROM experiment e"
    in_sql = {exp_id for exp_id, first, *_ in conn.execute(sql) if first is not None}
    # annotated or a retry policy; text that is not one plain line; Unicode
    assert in_sql == {f"Q-{n:03d}" for n in range(1, 12)} - {"Q-004", "Q-009"}
    conn.close()


def test_a_project_template_is_still_rendered_by_jinja(tmp_path, irq, monkeypatch):
    (tmp_path / "irq.toml").write_text("")
    assert irq("init").code == 0
    assert irq("add", "Q-001", "-t", "First").code == 0
    packaged = resources.files("irq.formats").joinpath("templates", "queue.md.j2").read_text(encoding="utf-8")
    own = tmp_path / "mine"
    own.mkdir()
    (own / "queue.md.j2").write_text(packaged.replace("# {{ q.title }}", "# {{ q.title }} (site layout)"))
    monkeypatch.setenv("IRQ_TEMPLATES", str(own))
    r = irq("export")
    assert r.code == 0 and r.out.startswith("# Experiment Queue (site layout)\n") and "### Q-001: First" in r.out


def test_export_of_the_packaged_layout_does_not_import_jinja(tmp_path, seed_queue):
    probe = ("import sys\nfrom irq.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "print('JINJA', 'jinja2' in sys.modules)\n")
    for args in (["import", str(seed_queue)], ["export"]):
        r = subprocess.run([sys.executable, "-c", probe, *args], cwd=tmp_path, capture_output=True, text=True,
                           timeout=120, check=False)
    assert "### Q-003" in r.stdout and r.stdout.rstrip().endswith("JINJA False"), r.stderr[-500:]
