"""Gathering per-seed values: arrays, repeated runs, NaN and missing metrics, experiments with no results."""
from __future__ import annotations

import json

import pytest

from irq.results.collect import collect, load_curve
from irq.results.table import build, to_csv, to_json, to_latex, to_markdown
from tests.results_fixture import (
    FINAL,
    add_array_attempt,
    add_exp,
    add_single_attempt,
    study,
)


def by_id(exps):
    return {e.id: e for e in exps}


def test_array_seeds_become_runs_with_their_folders(ledger, tmp_path):
    study(ledger, tmp_path)
    exps = by_id(collect(ledger, tmp_path))
    e = exps["Q-003"]
    have, missing = e.values("val_mse")
    assert [r.seed for r in have] == [0, 1, 2] and not missing
    assert [r.value("val_mse") for r in have] == [FINAL["Q-003"][s] for s in (0, 1, 2)]
    assert load_curve(have[1])[-1]["val_mse"] == FINAL["Q-003"][1]
    assert have[0].git_sha.startswith("0123456789ab")


def test_nan_and_missing_metric_are_listed_as_missing_never_zero(ledger, tmp_path):
    add_exp(ledger, "Q-001", "base", seeds=[0, 1, 2, 3])
    add_array_attempt(ledger, tmp_path, "Q-001", {0: 0.04, 1: None, 2: 0.05})  # seed 1: NaN written as null
    with ledger.transaction() as s:  # seed 3 of the array never wrote metrics
        from irq.ledger.database import Ledger

        a = Ledger.latest_attempt(s, "Q-001")
        a.tasks = {**a.tasks, "3": {"state": "FAILED"}}
        s.add(a)
    (e,) = collect(ledger, tmp_path)
    have, missing = e.values("val_mse")
    assert [r.seed for r in have] == [0, 2]
    reasons = {m.seed: m.reason for m in missing}
    assert "not a number" in reasons[1] and reasons[3] == "its task ended FAILED, with no metrics"
    t = build([e], "val_mse")
    row = t.rows[0]
    assert row.summary.n == 2 and row.summary.mean == pytest.approx(0.045)  # not (0.04 + 0 + 0.05 + 0) / 4
    md = to_markdown(t)
    assert "Q-001: missing attempt 1 seed 1" in md and "seed 3" in md
    assert e.values("ood_mse")[0] == []  # a metric no run has: all missing
    assert all("no ood_mse" in m.reason for m in e.values("ood_mse")[1] if m.seed != 3)


def test_rerun_of_a_seed_replaces_the_earlier_one_and_single_runs_add_seeds(ledger, tmp_path):
    add_exp(ledger, "Q-001", "base", seeds=[0, 1])
    add_array_attempt(ledger, tmp_path, "Q-001", {0: 0.04, 1: 0.09})
    add_single_attempt(ledger, "Q-001", {"val_mse": 0.05, "seed": 1})  # seed 1 run again
    add_single_attempt(ledger, "Q-001", {"val_mse": 0.06, "seed": 4})  # a further repeated run
    add_single_attempt(ledger, "Q-001", {"val_mse": 0.07})  # seed unknown: its own sample
    (e,) = collect(ledger, tmp_path)
    have, _ = e.values("val_mse")
    assert [(r.attempt, r.seed, r.value("val_mse")) for r in have] == [
        (1, 0, 0.04), (2, 1, 0.05), (3, 4, 0.06), (4, None, 0.07)]


def test_experiment_without_results_is_a_row_with_n_0_and_the_reason(ledger, tmp_path):
    add_exp(ledger, "Q-001", "never ran")
    add_exp(ledger, "Q-002", "failed")
    with ledger.transaction() as s:
        from irq.ledger.database import Ledger

        Ledger.new_attempt(s, Ledger.experiment(s, "Q-002"), state="FAILED")
    t = build(collect(ledger, tmp_path), "val_mse")
    assert [r.summary.n for r in t.rows] == [0, 0]
    assert t.rows[0].missing == ["no attempt in the ledger"]
    assert "latest attempt 1 is FAILED" in t.rows[1].missing[0]
    assert "| Q-001 | 0 | – |" in to_markdown(t)


def test_renderings_carry_the_same_numbers(ledger, tmp_path):
    study(ledger, tmp_path)
    t = build(collect(ledger, tmp_path, ["Q-003", "Q-001"]), "val_mse", baseline="Q-001")
    assert [r.id for r in t.rows] == ["Q-003", "Q-001"]  # the order asked for
    csv_rows = to_csv(t).splitlines()
    assert csv_rows[0].startswith("id,n,mean,std")
    assert csv_rows[1].startswith("Q-003,3,0.03,")
    assert "\\begin{tabular}" in to_latex(t) and "Q-003 & 3 & 0.03" in to_latex(t)
    data = json.loads(json.dumps(to_json(t)))
    q3 = data["rows"][0]
    assert q3["comparison"]["rel_diff"] == pytest.approx(0.03 / 0.04 - 1)
    assert q3["trivial"] == {"predict-mean": pytest.approx(0.0341), "predict-zero": pytest.approx(0.0582)}
    assert {v["seed"] for v in q3["values"]} == {0, 1, 2}


def test_unknown_id_is_refused_with_a_suggestion(ledger, tmp_path):
    from irq import errors

    study(ledger, tmp_path)
    with pytest.raises(errors.NotFound):
        collect(ledger, tmp_path, ["Q-009"])


def test_plain_text_table_for_long_outputs(ledger, tmp_path):
    from irq.results.table import to_text

    study(ledger, tmp_path)
    add_exp(ledger, "Q-004", "never ran")
    lines = to_text(build(collect(ledger, tmp_path), "val_mse")).splitlines()
    assert lines[0].split()[:4] == ["id", "n", "mean", "std"]
    assert set(lines[1]) <= {"-", " "}
    assert len({len(line) for line in lines[2:5]}) == 1  # aligned columns
    assert lines[2].split()[:3] == ["Q-001", "3", "0.04"]
    assert lines[-1] == "no attempt yet (n = 0): Q-004"


def test_long_tables_print_as_text_from_the_cli(irq, ledger, tmp_path, monkeypatch):
    import irq.cli.results_render as cli_results

    (tmp_path / "irq.toml").write_text('backend = "local"\n')
    study(ledger, tmp_path)
    add_exp(ledger, "Q-004", "never ran")
    r = irq("results")  # piped, as every listing: a tab-separated line per row, notes on stderr
    assert r.code == 0, r
    lines = [line.split("\t") for line in r.out.splitlines()]
    assert lines[0][:3] == ["id", "n", "mean"] and [row[0] for row in lines[1:]] == ["Q-001", "Q-002", "Q-003", "Q-004"]
    assert {len(row) for row in lines} == {len(lines[0])}
    assert "no attempt yet (n = 0): Q-004" in r.err
    monkeypatch.setattr(cli_results, "RICH_ROWS", 2)
    monkeypatch.setattr("irq.ui.UI.interactive", property(lambda self: True))
    r = irq("results")  # a terminal, and more rows than rich lays out: aligned text
    assert r.code == 0, r
    assert r.out.splitlines()[0].startswith("id ") and "┃" not in r.out and "\t" not in r.out


def test_results_imported_from_a_hand_kept_queue_use_its_labels(ledger, tmp_path):
    add_exp(ledger, "Q-004", "pilot")
    add_single_attempt(ledger, "Q-004", {"Training MSE": 0.0706, "Validation MSE": 0.0688, "Output": "results/x"})
    (e,) = collect(ledger, tmp_path)
    (run,) = e.values("val_mse")[0]
    assert (run.value("val_mse"), run.value("train_mse"), run.seed) == (0.0688, 0.0706, None)
    add_exp(ledger, "Q-005", "diverged")  # a hand-kept queue's `Validation MSE: nan` is text: not a number, said so
    add_single_attempt(ledger, "Q-005", {"Validation MSE": "nan"})
    e5 = next(e for e in collect(ledger, tmp_path) if e.id == "Q-005")
    (m,) = e5.values("val_mse")[1]
    assert m.reason == "val_mse is not a number ('nan')"


def test_an_integer_past_floats_range_is_no_value_never_an_overflow():
    """10**400 is valid JSON: a ledger holding one (fetched before fetch refused it) once made every
    `irq results`, `report` and `plot` end with OverflowError."""
    from irq.results.collect import Run

    r = Run("Q-001", 1, 0, {"val_mse": 10**400, "loss": -(10**400), "ok": 10**3}, None, None, None)
    assert r.value("val_mse") is None and r.value("loss") is None and r.value("ok") == 1000.0


def test_every_format_says_what_is_missing_and_why_an_interval_is_absent(ledger, tmp_path):
    """csv and latex once printed the rows only: a missing seed or an n = 1 row said nothing."""
    import csv
    import io

    add_exp(ledger, "one", "a single seed", seeds=[0])
    add_array_attempt(ledger, tmp_path, "one", {0: 0.8})
    add_exp(ledger, "never", "not run")
    t = build(collect(ledger, tmp_path), "val_mse", baseline="one")
    rows = {r["id"]: r["notes"] for r in csv.DictReader(io.StringIO(to_csv(t)))}
    assert rows["one"].startswith("n = 1: no spread, so no interval")
    assert "rank consistency: " in rows["one"]  # the table's own note goes with the baseline's row
    assert rows["never"] == "missing no attempt in the ledger; vs one: no values"
    tex = to_latex(t)
    assert "never: missing no attempt in the ledger" in tex and "one: n = 1: no spread" in tex
    from irq.results.table import _tex

    assert _tex("a_{b}$^~%") == r"a\_\{b\}\$\textasciicircum{}\textasciitilde{}\%"  # text, never a command or math


def test_an_array_of_seeds_not_from_zero_has_no_phantom_missing_seeds(ledger, tmp_path):
    """--seeds 3,7 runs as array tasks 0 and 1: those once counted as seeds 0 and 1, missing."""
    from irq.ledger.database import Ledger

    add_exp(ledger, "s", "seeds 3 and 7", seeds=[3, 7])
    with ledger.transaction() as s:
        Ledger.new_attempt(s, Ledger.experiment(s, "s"), backend="local", array="0-1%2", state="COMPLETED",
                           tasks={"0": {"state": "COMPLETED"}, "1": {"state": "COMPLETED"}},
                           results={"seed_3.val_mse": 0.3, "seed_7.val_mse": 0.7}, output="results/s_1")
    (e,) = collect(ledger, tmp_path)
    have, missing = e.values("val_mse")
    assert [(r.seed, r.value("val_mse"), r.output) for r in have] == [(3, 0.3, "results/s_1/seed_3"),
                                                                      (7, 0.7, "results/s_1/seed_7")]
    assert missing == []


def test_following_an_array_reads_the_folders_of_its_seeds():
    from irq.jobs.follow import _folders
    from irq.ledger.models import Attempt

    a = Attempt(experiment_id="s", number=1, token="t", array="0-1%2", tasks={"1": {}, "0": {}})
    assert _folders(a, [3, 7]) == ["seed_3", "seed_7"]
    assert _folders(Attempt(experiment_id="s", number=1, token="t", array="0-2", tasks={}), [5, 6, 9]) == \
        ["seed_5", "seed_6", "seed_9"]
    assert _folders(Attempt(experiment_id="s", number=1, token="t"), [3]) == [""]


def test_steps_to_a_threshold_tell_runs_without_a_curve_from_runs_that_never_reached_it(ledger, tmp_path):
    """Runs without curve.jsonl once counted as '0/2' reached: as if they never got there."""
    add_exp(ledger, "Q-001", "no curves", seeds=[0, 1])
    out = add_array_attempt(ledger, tmp_path, "Q-001", {0: 0.5, 1: 0.6})
    for f in out.rglob("curve.jsonl"):
        f.unlink()
    add_exp(ledger, "Q-002", "one curve", seeds=[0, 1])
    out = add_array_attempt(ledger, tmp_path, "Q-002", {0: 0.5, 1: 0.6})
    (out / "seed_1" / "curve.jsonl").unlink()
    rows = {r.id: r for r in build(collect(ledger, tmp_path), "val_mse", threshold=100.0).rows}
    assert rows["Q-001"].reached == "no curve" and rows["Q-001"].steps_to_threshold is None
    assert rows["Q-002"].reached == "1/1 (1 without a curve)"


def test_latex_keeps_double_hyphens_and_angle_brackets_as_typed():
    """An id such as `a.b--c` (valid) was typeset with an en dash, `<` and `>` as ¡ and ¿."""
    from irq.results.collect import ExperimentRuns, Run

    exps = [ExperimentRuns("a.b--c", "x<y>", "DONE", {}, [Run("a.b--c", 1, 0, {"val_mse": 0.5})])]
    tex = to_latex(build(exps, "val_mse", resamples=100))
    assert "a.b-{}-c & 1" in tex and "--c" not in tex.replace("-{}-c", "")
    from irq.results.table import _tex

    assert _tex("x<y>---") == "x\\textless{}y\\textgreater{}-{}-{}-"


def test_metrics_of_a_run_that_did_not_complete_are_left_out_and_said(ledger, tmp_path):
    """A job that wrote metrics.json and then failed (exit 1) was counted in the mean, the
    intervals and the verdicts like any other, with nothing shown but the experiment's state."""
    add_exp(ledger, "Q-001", "single runs", seeds=[0])
    add_single_attempt(ledger, "Q-001", {"val_mse": 0.5, "seed": 0}, state="FAILED")
    add_exp(ledger, "Q-002", "an array with one crashed task", seeds=[0, 1, 2])
    add_array_attempt(ledger, tmp_path, "Q-002", {0: 0.04, 1: 0.9, 2: 0.05}, state="FAILED")
    with ledger.transaction() as s:
        from irq.ledger.database import Ledger

        a = Ledger.latest_attempt(s, "Q-002")
        a.tasks = {"0": {"state": "COMPLETED"}, "1": {"state": "FAILED"}, "2": {"state": "COMPLETED"}}
        s.add(a)
    exps = by_id(collect(ledger, tmp_path))
    have, missing = exps["Q-001"].values("val_mse")
    assert have == [] and [str(m) for m in missing] == ["attempt 1 seed 0: its run ended FAILED: its metrics are left out"]
    have, missing = exps["Q-002"].values("val_mse")
    assert [r.seed for r in have] == [0, 2]
    assert [str(m) for m in missing] == ["attempt 1 seed 1: its task ended FAILED: its metrics are left out"]
    t = build([exps["Q-001"], exps["Q-002"]], "val_mse")
    assert [r.summary.n for r in t.rows] == [0, 2] and t.rows[1].summary.mean == pytest.approx(0.045)
    assert "Q-002: missing attempt 1 seed 1: its task ended FAILED" in to_markdown(t)
    add_single_attempt(ledger, "Q-001", {"val_mse": 0.25, "seed": 0})  # run again, completed: no note left
    have, missing = by_id(collect(ledger, tmp_path))["Q-001"].values("val_mse")
    assert [r.value("val_mse") for r in have] == [0.25] and missing == []


def test_experiments_that_never_ran_are_one_note_and_a_metric_without_baselines_has_no_baseline_columns(ledger, tmp_path):
    """A study's proposed experiments added a note each ("missing no attempt in the ledger"),
    burying the ones that matter; with an own script's val_loss, the trainer's predict-mean and
    predict-zero stood as two columns of dashes."""
    from irq.results.table import columns, notes

    add_exp(ledger, "Q-001", "measured", seeds=[0])
    add_single_attempt(ledger, "Q-001", {"val_loss": 0.5, "seed": 0})
    for k in range(2, 16):
        add_exp(ledger, f"Q-{k:03d}", "proposed")
    t = build(collect(ledger, tmp_path), "val_loss")
    said = notes(t)
    assert said[-1] == ("no attempt yet (n = 0): " + ", ".join(f"Q-{k:03d}" for k in range(2, 14)) + " and 2 more")
    assert not any("missing no attempt" in n for n in said)
    assert "predict-mean" not in columns(t) and len(to_csv(t).splitlines()[0].split(",")) == 11  # ten, and notes


def test_a_bad_line_in_a_curve_is_skipped_and_a_step_must_be_a_whole_number(ledger, tmp_path):
    """One line that was not JSON cut off the rest of the curve (steps to a threshold then read
    "1, reached 1/2"), and `"step": true` was read as step 1."""
    from irq.results.collect import Run

    d = tmp_path / "run"
    d.mkdir()
    (d / "curve.jsonl").write_text('{"step": 10, "val_loss": 0.9}\ngarbage\n{"step": true, "val_loss": 0.1}\n'
                                   '{"step": 20, "val_loss": 0.5}\n{"step": 30, "val_loss": 0.2}\n')
    rows = load_curve(Run("X-1", 1, 0, {}, root=tmp_path, output="run"))
    assert [r["step"] for r in rows] == [10, 20, 30]
