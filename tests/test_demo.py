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
