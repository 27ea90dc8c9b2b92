"""`irq results` and `irq report` end to end on fixture runs of three strategies with three seeds each."""
from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.results_fixture import FINAL, add_exp, study


@pytest.fixture
def project(ledger, tmp_path):
    (tmp_path / "irq.toml").write_text('backend = "local"\n')
    study(ledger, tmp_path)
    add_exp(ledger, "Q-004", "Not run yet")
    return tmp_path


def test_results_table_rich(irq, project, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # a wide terminal: every column in full
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich draws its table only on a terminal
    r = irq("results")
    assert r.code == 0, r
    for e in ("Q-001", "Q-002", "Q-003"):
        assert e in r.out
    assert "no attempt yet (n = 0): Q-004" in r.out
    assert "predict-mean" in r.out


def test_results_json_numbers_match_independent_computation(irq, project):
    r = irq("results", "--baseline", "Q-001", "--format", "json")
    assert r.code == 0, r
    rows = {row["id"]: row for row in json.loads(r.out)["table"]["rows"]}
    for e, vals in FINAL.items():
        v = np.array(list(vals.values()))
        s = rows[e]["summary"]
        assert (s["n"], s["mean"], s["std"]) == (3, pytest.approx(v.mean()), pytest.approx(v.std(ddof=1)))
    c = rows["Q-003"]["comparison"]
    b = np.array(list(FINAL["Q-001"].values()))
    x = np.array(list(FINAL["Q-003"].values()))
    assert c["rel_diff"] == pytest.approx(x.mean() / b.mean() - 1)
    assert rows["Q-003"]["first_in"] == 3 and rows["Q-001"]["first_in"] == 0  # Q-003 is best on every seed
    assert rows["Q-004"]["summary"]["n"] == 0 and rows["Q-004"]["comparison"]["note"] == "no values"
    assert irq("results", "--baseline", "Q-001", "--json").out == r.out  # --json, as every listing has
    assert irq("results", "--json", "--format", "csv").code == 2


def test_results_csv_with_threshold_and_metric_from_config(irq, project):
    (project / "irq.toml").write_text('backend = "local"\n[project]\nmetric = "val_mse"\ngoal = "min"\n')
    r = irq("results", "Q-001", "Q-003", "--format", "csv", "--threshold", "0.05")
    assert r.code == 0, r
    rows = list(csv.DictReader(io.StringIO(r.out)))
    assert [row["id"] for row in rows] == ["Q-001", "Q-003"]
    # the fixture curves: final * (1 + 4 e^-k) at steps 100..500; Q-003 (0.03) reaches 0.05 at k = 2 (step 300)
    assert rows[1]["steps to 0.05"] == "300" and rows[1]["reached"] == "3/3"


def test_results_criterion_verdict_sentences(irq, project):
    r = irq("results", "--baseline", "Q-001", "--criterion", "val_mse -20%", "--format", "md")
    assert r.code == 0, r
    assert "- Q-003 vs Q-001: −25.0 % (95 % CI" in r.out
    assert "n = 3 each)" in r.out
    q2 = next(line for line in r.out.splitlines() if line.startswith("- Q-002 vs Q-001"))
    assert "criterion is not met" in q2 or "undecided" in q2


def test_results_usage_errors(irq, project):
    assert irq("results", "--criterion", "val_mse -20%").code == 2
    assert irq("results", "--format", "xml").code == 2
    r = irq("results", "Q-099")
    assert r.code != 0 and "Q-099" in r.err


def test_config_project_table(tmp_path):
    from irq import errors
    from irq.config import load_config

    (tmp_path / "irq.toml").write_text('[project]\nmetric = "ood_mse"\ngoal = "max"\n')
    cfg = load_config(start=tmp_path)
    assert (cfg.project.metric, cfg.project.goal) == ("ood_mse", "max")
    (tmp_path / "irq.toml").write_text('[project]\ngoal = "lowest"\n')
    with pytest.raises(errors.ConfigError):
        load_config(start=tmp_path)
    (tmp_path / "irq.toml").write_text("")
    assert load_config(start=tmp_path).project.metric == "val_mse"


def test_report_end_to_end(irq, project):
    r = irq("report", "-o", "results/summary.md", "--baseline", "Q-001", "--criterion", "val_mse -20%")
    assert r.code == 0, r
    text = (project / "results" / "summary.md").read_text()
    assert "| Q-003 | 3 | 0.03 |" in text
    assert "## Verdicts" in text and "Q-003 vs Q-001: −25.0 %" in text
    for kind in ("curves", "final", "conditioning", "energy"):
        assert f"![{kind}](figures/{kind}.png)" in text
        assert (project / "results" / "figures" / f"{kind}.pdf").exists()
    # provenance: every value with its attempt, seed and commit
    assert '<a id="Q-003"></a>' in text
    assert "| 1 | 2 | 0.031 | 0123456789ab |" in text
    assert "Q-004" in text and "missing: no attempt in the ledger" in text


def test_report_figures_draw_the_baseline_and_the_best_when_there_are_more_than_a_figure_holds(irq, project,
                                                                                                monkeypatch):
    from irq.results import plots

    monkeypatch.setattr(plots, "MAX_SHOWN", 2)
    drawn = {}
    make = plots.make

    def make_and_keep(kind, exps, *args, **kw):
        drawn[kind] = [e.id for e in exps]
        return make(kind, exps, *args, **kw)

    monkeypatch.setattr(plots, "make", make_and_keep)
    r = irq("report", "--baseline", "Q-002")  # Q-002 has the worst mean; Q-003 the best
    assert r.code == 0, r
    assert drawn == {kind: ["Q-002", "Q-003"] for kind in plots.KINDS}
    text = (project / "results" / "summary.md").read_text()
    assert "2 of 4 experiments drawn (the baseline Q-002 and the 1 with the best mean val\\_mse)" in text  # markdown: the metric name escaped
    assert "figures: 2 of 4 experiments drawn" in r.out
    assert "| Q-001 | 3 |" in text  # the table and the provenance keep every experiment
    assert '<a id="Q-001"></a>' in text


def test_report_without_diagnostics_says_which_figures_are_absent(irq, ledger, tmp_path):
    (tmp_path / "irq.toml").write_text('backend = "local"\n')
    study(ledger, tmp_path, diagnostics=False)
    r = irq("report")
    assert r.code == 0, r
    text = (tmp_path / "results" / "summary.md").read_text()
    assert "no figure: conditioning" in text and "--diagnostics true" in text
    assert "![curves](figures/curves.png)" in text


def test_help_imports_neither_scipy_nor_matplotlib(tmp_path):
    probe = ("import sys\nfrom irq.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "print('HEAVY:', sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'matplotlib')))")
    for args in (["--help"], ["results", "--help"], ["sweep", "--help"]):
        r = subprocess.run([sys.executable, "-c", probe, *args], check=False, cwd=tmp_path, capture_output=True, text=True,
                           timeout=120)
        assert "HEAVY: []" in r.stdout, (args, r.stdout[-300:], r.stderr[-300:])


def test_queue_md_done_entries_carry_the_headline_and_link_the_report(irq, project):
    """queue.md's DONE entries: the project's headline metric (its goal in words) and links to the
    report's anchor and figures, relative to where queue.md is written; import skips both lines."""
    (project / "irq.toml").write_text('backend = "local"\n[project]\nmetric = "val_mse"\ngoal = "min"\n')
    (project / "docs").mkdir()
    before = irq("export", "docs/queue.md")
    assert before.code == 0, before
    text = (project / "docs" / "queue.md").read_text()
    assert "**Report**" not in text  # no report yet
    assert irq("report", "-o", "results/summary.md").code == 0
    assert irq("export", "docs/queue.md").code == 0
    text = (project / "docs" / "queue.md").read_text()
    for e in ("Q-001", "Q-002", "Q-003"):  # the anchor is the id as it is: c1 and C1 are two
        assert f"- **Report**: [../results/summary.md#{e}](../results/summary.md#{e}); figures: " in text
    links = set(re.findall(r"\]\((\.\./results/[^)#]+)", text))
    assert "../results/figures/curves.png" in links and all((project / "docs" / link).is_file() for link in links)
    assert '<a id="Q-003"></a>' in (project / "results" / "summary.md").read_text()
    # read back: the derived lines are skipped, and a fresh ledger exports the same entries
    assert irq("--db", "copy.db", "import", "docs/queue.md").code == 0
    assert irq("--db", "copy.db", "export", "docs/copy.md").code == 0
    copy = (project / "docs" / "copy.md").read_text()
    assert copy == "\n".join(x for x in text.split("\n") if "**Report**" not in x)


def test_queue_md_headline_follows_the_project_metric_and_goal(irq, ledger, tmp_path):
    from tests.results_fixture import add_single_attempt

    (tmp_path / "irq.toml").write_text('[project]\nmetric = "accuracy"\ngoal = "max"\n')
    add_exp(ledger, "Q-001", "Classifier", state="DONE")
    add_single_attempt(ledger, "Q-001", {"accuracy": 0.91, "val_mse": 0.2})
    add_exp(ledger, "Q-002", "No metrics", state="DONE")
    add_single_attempt(ledger, "Q-002", {"loss": 1.5})
    r = irq("export")
    assert r.code == 0, r
    assert "- **Headline**: accuracy 0.91 (higher is better)" in r.out
    assert r.out.count("**Headline**") == 1  # Q-002 has no accuracy: no line, never a zero
    (tmp_path / "queue.md").write_text(r.out)
    assert irq("--db", "copy.db", "import", "queue.md").code == 0  # the Headline line is read past
    assert irq("--db", "copy.db", "export").out == r.out


def test_titles_and_metric_names_are_text_in_the_report_never_markup(irq, project):
    """A title `[link](http://x) <b>x</b> | y` went into the report's markdown as is: a link, HTML,
    a broken table. Every character markdown would read as markup is escaped."""
    from irq.results.table import md_code, md_text

    assert irq("edit", "Q-004", "--title", "see [link](http://x) <b>bold</b> | *y*").code == 0
    assert irq("report", "-o", "results/summary.md").code == 0
    text = (project / "results" / "summary.md").read_text()
    assert "### Q-004: see \\[link\\](http://x) \\<b\\>bold\\</b\\> \\| \\*y\\*" in text, text[-400:]
    assert "<b>" not in text

    title = "pipe | in <b>bold</b> [link](http://x) `tick` *star* _u_ $x$ # & \\ end\nsecond"
    got = md_text(title)
    assert "\n" not in got and "&amp;" in got
    for ch in "|<>[]`*_$#\\":
        assert f"\\{ch}" in got, ch
    unescaped = re.sub(r"\\(.)", r"\1", got).replace("&amp;", "&")
    assert unescaped == title.replace("\n", " ")
    assert md_code("val_mse") == "`val_mse`" and md_code("a`b") == "a\\`b"


def test_a_report_that_cannot_be_written_writes_nothing_beside_it(irq, project):
    """-o onto a folder once drew every figure into ./figures first, then failed with a hint to
    name `out/queue.md` (which would have written the report over the queue); an unknown id left
    an empty figures folder."""
    (project / "out").mkdir()
    r = irq("report", "-o", "out")
    assert r.code == 2 and "error: out is a folder: -o names the summary file" in r.err, r
    assert "e.g. -o out/summary.md" in r.err and "queue.md" not in r.err
    r = irq("report", "Q-404", "-o", "new/summary.md")
    assert r.code != 0 and "unknown experiment Q-404" in r.err, r
    assert not (project / "figures").exists() and not (project / "new").exists()
    assert list((project / "out").iterdir()) == []
    assert "name a file, e.g. out/job.sh" in irq("render", "Q-001", "-o", "out").err


def test_report_paths_and_ids_stay_links_and_text(irq, project):
    """A report folder with a space or parentheses made no link in CommonMark; an id like
    x._y_.z was emphasis in the table and the heading."""
    assert irq("report", "-o", "my report (v1)/summary.md").code == 0
    text = irq("export").out
    enc = "my%20report%20%28v1%29"
    assert f"- **Report**: [my report (v1)/summary.md#Q-001]({enc}/summary.md#Q-001); figures: " \
           f"[curves]({enc}/figures/curves.png)" in text
    from irq.ledger.database import Ledger
    from tests.results_fixture import add_array_attempt, add_exp

    ledger = Ledger(project / "queue.db")
    add_exp(ledger, "x._y_.z", "plain", seeds=[0, 1])
    add_array_attempt(ledger, project, "x._y_.z", {0: 0.04, 1: 0.05})
    md = irq("results", "x._y_.z", "--format", "md").out
    assert "| x.\\_y\\_.z | 2 |" in md
    assert irq("report", "x._y_.z", "-o", "r/summary.md").code == 0
    summary = (project / "r" / "summary.md").read_text()
    assert '<a id="x._y_.z"></a>' in summary and "### x.\\_y\\_.z: plain" in summary


def test_csv_with_verdicts_stays_one_table_the_verdicts_on_stderr(irq, project):
    """`--format csv --criterion ...` appended a blank line and the verdict sentences to the file:
    a CSV reader met rows of 0 and 1 fields."""
    r = irq("results", "--baseline", "Q-001", "--criterion", "val_mse -20%", "--format", "csv")
    assert r.code == 0, r
    rows = list(csv.reader(io.StringIO(r.out)))
    assert len({len(row) for row in rows}) == 1 and len(rows) == 5, rows  # the header and four experiments
    assert "Q-003 vs Q-001: −25.0 % (95 % CI" in r.err


def test_goal_says_which_way_a_metric_is_better(irq, project):
    """`--metric accuracy` was judged as lower-is-better (the project's val_mse goal), with no way to
    say otherwise: P(better) and "first in" rewarded the worse runs."""
    lo = json.loads(irq("results", "--baseline", "Q-001", "--format", "json").out)["table"]
    hi = json.loads(irq("results", "--baseline", "Q-001", "--goal", "max", "--format", "json").out)["table"]
    assert (lo["goal"], hi["goal"]) == ("min", "max")
    p = {t["goal"]: next(r for r in t["rows"] if r["id"] == "Q-003")["comparison"]["prob_improvement"] for t in (lo, hi)}
    assert p["min"] == pytest.approx(1 - p["max"])
    r = irq("results", "--goal", "up")
    assert r.code == 2 and "'up' is not one of 'min', 'max'" in r.err, r
    assert "--goal <min|max>" in irq("results", "-h").out


def test_the_trainers_trivial_baselines_go_only_beside_an_mse():
    """predict-mean and predict-zero (MSEs of the trainer's trivial predictors) were shown beside
    any metric, accuracy too."""
    from irq.results.collect import ExperimentRuns, Run
    from irq.results.table import build

    runs = [Run("A", 1, s, {"val_mse": 0.1, "accuracy": 0.9, "baseline_mean_mse": 0.3, "baseline_zero_mse": 0.5})
            for s in range(2)]
    exps = [ExperimentRuns("A", "a", "DONE", {}, runs)]
    assert build(exps, "val_mse", resamples=100).rows[0].runs.trivial == {"predict-mean": 0.3, "predict-zero": 0.5}
    assert build(exps, "accuracy", resamples=100).rows[0].runs.trivial == {}


def test_report_and_plot_write_into_the_projects_results_from_any_subfolder(irq, project, monkeypatch):
    """From a subfolder (or with --db from elsewhere) they made a results/ folder there, while
    `irq fetch` keeps runs in the project's results/."""
    sub = project / "notebooks" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert irq("report", "--baseline", "Q-001").code == 0
    assert irq("plot", "final").code == 0
    assert (project / "results" / "summary.md").is_file() and (project / "results" / "figures" / "final.png").is_file()
    assert not (sub / "results").exists()


def test_a_second_report_in_the_same_folder_keeps_its_figures_apart(irq, project):
    """`irq report -o results/h.md` drew its final.png over summary.md's: the summary then showed
    another report's figure."""
    assert irq("report", "--baseline", "Q-001").code == 0
    before = (project / "results" / "figures" / "final.png").read_bytes()
    assert irq("report", "Q-002", "Q-003", "-o", "results/h.md").code == 0
    assert (project / "results" / "figures" / "final.png").read_bytes() == before
    assert (project / "results" / "h-figures" / "final.png").is_file()
    assert "h-figures/final.png" in (project / "results" / "h.md").read_text()


def test_the_report_stamps_its_time_as_every_irq_time_is_written(irq, project):
    assert irq("report").code == 0
    text = (project / "results" / "summary.md").read_text()
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text) and "+00:00" not in text
