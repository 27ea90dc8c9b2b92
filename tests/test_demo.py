"""The README's first command ends in `irq demo`: the pilot of the study, end to end, on the
local backend. --quick runs it on the tiny config so the test takes seconds."""
from __future__ import annotations

import json


def test_the_demo_runs_the_pilot_for_each_strategy_and_compares_to_the_baselines(tmp_path, irq):
    r = irq("demo", "--quick", "--dir", "demo", "--json")
    assert r.code == 0, r
    rows = {row["id"]: row for row in json.loads(r.out)}
    assert {i: row["mining"] for i, row in rows.items()} == {"Q-041": "none", "Q-042": "random",
                                                             "Q-043": "adversarial"}
    for row in rows.values():
        assert row["state"] == "DONE", row
        assert 0 < row["val_mse"] < row["baseline_mean_mse"] < row["baseline_zero_mse"]
    queue = (tmp_path / "demo" / "queue.md").read_text()
    assert queue.count("✓ COMPLETED") == 3
    again = irq("--db", "demo/queue.db", "status", "--json")
    assert {e["state"] for e in json.loads(again.out)["experiments"]} == {"DONE"}


def test_without_torch_the_demo_says_how_to_get_it_and_queues_nothing(tmp_path, irq):
    """A plain `pip install irq` has no torch (the trainer is the `train` extra): the demo once
    queued the pilot and ran three jobs that all failed on `import torch`."""
    (tmp_path / "demo").mkdir()
    python = tmp_path / "python-without-torch"  # an interpreter whose find_spec('torch') is None
    python.write_text("#!/bin/sh\nexit 1\n")
    python.chmod(0o755)
    (tmp_path / "demo" / "irq.toml").write_text(f'[local]\npython = "{python}"\n')
    r = irq("demo", "--quick", "--dir", "demo")
    assert r.code == 1 and "needs torch" in r.err and "pip install 'irq[train]'" in r.err
    assert not (tmp_path / "demo" / "queue.db").exists()


def test_the_demo_never_runs_a_projects_own_queue_nor_passes_one_kind_off_as_the_other(tmp_path, irq, monkeypatch):
    """`irq demo --dir .` in a project found its queue.db and submitted the project's own
    experiments; `irq demo` after `irq demo --quick` showed the tiny runs as the pilot's."""
    import sqlite3

    proj = tmp_path / "proj"
    proj.mkdir()
    monkeypatch.chdir(proj)
    assert irq("init").code == 0
    assert irq("add", "Q-001", "-t", "mine", "-p", "lr=1").code == 0
    before = "\n".join(sqlite3.connect(proj / "queue.db").iterdump())
    r = irq("demo", "--quick", "--dir", ".")
    assert r.code != 0 and "already holds a ledger that irq demo did not make" in r.err, r
    assert "\n".join(sqlite3.connect(proj / "queue.db").iterdump()) == before
    from irq.daemon.demo import DEMO_META
    from irq.ledger.database import Ledger

    demo = tmp_path / "demo"
    demo.mkdir()
    lg = Ledger(demo / "queue.db", create=True)
    lg.set_meta(DEMO_META, "quick")
    lg.close()
    r = irq("demo", "--dir", str(demo))
    assert r.code != 0 and "holds the quick demo's runs, not the pilot one's" in r.err, r
