"""Each plot kind rendered from fixture runs; the figures are opened and what they show is checked."""
from __future__ import annotations

import numpy as np
import pytest

from irq.results import plots
from irq.results.collect import collect
from tests.results_fixture import FINAL, STEPS, add_array_attempt, add_exp, study


@pytest.fixture
def exps(ledger, tmp_path):
    study(ledger, tmp_path)
    return collect(ledger, tmp_path)


def gids(ax, kind):
    items = {"lines": ax.lines, "collections": ax.collections, "patches": ax.patches}[kind]
    return {a.get_gid() for a in items if a.get_gid()}


def test_curves_one_mean_and_band_per_strategy_best_and_final_marked(exps):
    fig = plots.curves(exps)
    (ax,) = fig.get_axes()
    assert gids(ax, "lines") >= {f"{k}:{e}" for k in ("mean", "best", "final") for e in FINAL}
    assert gids(ax, "collections") == {f"band:{e}" for e in FINAL}
    mean3 = next(line for line in ax.lines if line.get_gid() == "mean:Q-003")
    assert list(mean3.get_xdata()) == list(STEPS)
    assert mean3.get_ydata()[-1] == pytest.approx(np.mean(list(FINAL["Q-003"].values())))
    final3 = next(line for line in ax.lines if line.get_gid() == "final:Q-003")
    assert final3.get_xdata()[0] == STEPS[-1]
    assert ax.get_xlabel() == "training step" and ax.get_ylabel() == "val_mse (MSE)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"{e} (n = 3)" for e in FINAL]


def test_band_is_the_t_interval_over_seeds(exps):
    from tests import stats_reference as ref

    fig = plots.curves(exps, log_y=False)
    band = next(c for c in fig.get_axes()[0].collections if c.get_gid() == "band:Q-001")
    ys = band.get_paths()[0].vertices[:, 1]
    v = np.array(list(FINAL["Q-001"].values()))
    lo, hi = ref.t_interval(v)
    assert np.isclose(ys, lo).any() and np.isclose(ys, hi).any()


def test_single_seed_has_no_band(ledger, tmp_path):
    add_exp(ledger, "Q-001", "one seed", seeds=[0])
    add_array_attempt(ledger, tmp_path, "Q-001", {0: 0.04})
    ax = plots.curves(collect(ledger, tmp_path)).get_axes()[0]
    assert "mean:Q-001" in gids(ax, "lines") and not gids(ax, "collections")


def test_final_strip_plot_dots_per_seed_and_interval(exps):
    fig = plots.final(exps)
    (ax,) = fig.get_axes()
    for e, vals in FINAL.items():
        dots = next(line for line in ax.lines if line.get_gid() == f"seeds:{e}")
        assert sorted(dots.get_ydata()) == pytest.approx(sorted(vals.values()))
    bars = {c.lines[0].get_gid(): c for c in ax.containers}
    for e, vals in FINAL.items():
        (seg,) = bars[f"ci:{e}"].lines[2][0].get_segments()
        lo, hi = sorted(seg[:, 1])
        v = np.array(list(vals.values()))
        assert v.min() - 1e-12 <= lo < v.mean() < hi <= v.max() + 1e-12  # a bootstrap interval of the mean of these seeds
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"{e}\nn = 3" for e in FINAL]
    assert ax.get_ylabel() == "val_mse (MSE)"


def test_conditioning_histograms_positives_vs_negatives(exps):
    fig = plots.conditioning(exps)
    axes = fig.get_axes()
    assert len(axes) == 9  # 3 experiments x (cond, sigma_min, log|det|)
    ax = axes[0]
    assert ax.get_xlabel().startswith("condition number") and ax.get_xscale() == "log"
    assert "pos:Q-001:cond_median" in gids(ax, "patches") and "neg:Q-001:cond_median" in gids(ax, "patches")
    counts = sum(p.get_height() for p in ax.patches if p.get_gid() == "pos:Q-001:cond_median")
    assert counts == 3 * len(STEPS)  # one median per checkpoint and seed
    assert axes[1].get_xlabel().startswith("σ_min")
    assert ax.get_ylabel() == "checkpoints × seeds (count)"


def test_energy_gap_and_gradient_norms(exps):
    fig = plots.energy(exps)
    ax, bx = fig.get_axes()
    assert {f"mean:{e}" for e in FINAL} <= gids(ax, "lines")
    assert {f"band:{e}" for e in FINAL} == gids(ax, "collections")
    assert ax.get_ylabel() == "E(pos) − E(neg) (energy units)"
    labels = [t.get_text() for t in bx.get_xticklabels()]
    assert labels[:2] == ["Q-001\nstep 1", "Q-001\nstep 2"] and len(labels) == 6
    assert bx.get_ylabel().startswith("‖∇_y E‖")


def test_save_writes_png_and_pdf(exps, tmp_path):
    paths = plots.save(plots.curves(exps), tmp_path / "figs", "curves")
    assert [p.name for p in paths] == ["curves.png", "curves.pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"


def test_plot_command(irq, ledger, tmp_path):
    study(ledger, tmp_path)
    r = irq("plot", "final", "Q-001", "Q-003", "-o", "figs")
    assert r.code == 0, r
    assert (tmp_path / "figs" / "final.pdf").exists()
    assert irq("plot", "violin").code == 2


def _runs(exp_id: str, values: list[float]):
    from irq.results.collect import ExperimentRuns, Run

    return ExperimentRuns(exp_id, exp_id, "DONE", {}, [Run(exp_id, 1, k, {"val_mse": v}, None, None, None)
                                                     for k, v in enumerate(values)])


@pytest.mark.parametrize("means, goal, baseline, limit, drawn, note", [
    # as many as the limit: every one, nothing said
    ([0.3, 0.1, 0.2], "min", None, 3, ["E0", "E1", "E2"], ""),
    # lower is better: the two lowest means, in queue order
    ([0.3, 0.1, 0.2, 0.4], "min", None, 2, ["E1", "E2"], "2 of 4 experiments drawn (the 2 with the best mean val_mse)"),
    # higher is better
    ([0.3, 0.1, 0.2, 0.4], "max", None, 2, ["E0", "E3"], "2 of 4 experiments drawn (the 2 with the best mean val_mse)"),
    # the baseline is drawn however it ranks
    ([0.3, 0.1, 0.2, 0.4], "min", "E3", 2, ["E1", "E3"], "2 of 4 experiments drawn (the baseline E3 and the 1 with"),
    # no value ranks after every value, and is said so
    ([None, 0.1, None, 0.4], "min", None, 3, ["E0", "E1", "E3"], "(the 2 with the best mean val_mse and 1 without one)"),
])
def test_a_figure_draws_at_most_the_limit_the_baseline_and_the_best_in_queue_order(means, goal, baseline, limit,
                                                                                   drawn, note):
    exps = [_runs(f"E{i}", [] if m is None else [m - 0.01, m + 0.01]) for i, m in enumerate(means)]
    picked, said = plots.choose(exps, "val_mse", goal, baseline, limit)
    assert [exps[i].id for i in picked] == drawn
    assert note in said and (said == "") == (note == "")


def test_a_figure_of_many_experiments_stays_bounded(irq, ledger, tmp_path):
    """Every figure of 10,000 experiments once had a tick, a legend entry or a row of axes for each
    (`irq report` ran out of memory); now a figure draws at most MAX_SHOWN of them, and says so."""
    study(ledger, tmp_path)
    for k in range(plots.MAX_SHOWN):
        add_exp(ledger, f"Q-{100 + k}", f"point {k}")
        add_array_attempt(ledger, tmp_path, f"Q-{100 + k}", {0: 0.05 + 0.001 * k, 1: 0.051 + 0.001 * k},
                          write_files=False)
    r = irq("plot", "final", "-o", "figs")
    assert r.code == 0, r
    assert f"{plots.MAX_SHOWN} of {plots.MAX_SHOWN + 3} experiments drawn" in r.out
    exps = collect(ledger, tmp_path)
    picked, _ = plots.choose(exps, "val_mse")
    fig = plots.make("final", [exps[i] for i in picked])
    (ax,) = fig.get_axes()
    drawn = {g.split(":")[1] for g in gids(ax, "lines") if g.startswith("seeds:")}
    # the three strategies (means 0.03-0.041) and the best of the points; the worst points are left out
    assert drawn == {"Q-001", "Q-002", "Q-003"} | {f"Q-{100 + k}" for k in range(plots.MAX_SHOWN - 3)}
    assert fig.get_size_inches()[0] <= 1.4 * plots.MAX_SHOWN + 2
    many = [f"Q-{100 + k}" for k in range(plots.MAX_SHOWN)] + ["Q-001"]
    r = irq("plot", "final", *many, "-o", "figs")
    assert r.code != 0 and f"at most {plots.MAX_SHOWN} experiments" in r.err and "hint:" in r.err
    assert "Traceback" not in r.err


def test_a_plot_with_nothing_to_draw_says_so_and_writes_no_file(irq, ledger, tmp_path):
    study(ledger, tmp_path, diagnostics=False)
    r = irq("plot", "final", "--metric", "accuracy", "-o", "figs")
    assert r.code == 1 and "nothing to draw: no fetched run of these experiments has accuracy" in r.err
    r = irq("plot", "energy", "-o", "figs")
    assert r.code == 1 and "has the trainer's diagnostics" in r.err and "--diagnostics true" in r.err
    assert not (tmp_path / "figs").exists()
    r = irq("plot", "final", "-o", "figs/x")
    assert r.code == 0 and (tmp_path / "figs" / "x" / "final.png").exists()
    (tmp_path / "file").write_text("x")
    r = irq("plot", "final", "-o", "file/sub")
    assert r.code == 2 and "cannot make the folder file/sub" in r.err and "Traceback" not in r.err


def _curve_files(tmp_path, out: str, curves: dict[int, list[float]], metric: str = "val_mse") -> None:
    """Replace the fixture's curves: seed -> values at steps 0, 100, 200, ..."""
    for seed, values in curves.items():
        (tmp_path / out / f"seed_{seed}" / "curve.jsonl").write_text(
            "".join(f'{{"step": {100 * k}, "{metric}": {v}}}\n' for k, v in enumerate(values)))


def test_a_seed_that_stopped_early_leaves_the_others_steps_drawn(ledger, tmp_path):
    """Curves once ended at the shortest seed's last step (one early-stopped seed hid the rest)."""
    add_exp(ledger, "Q-001", "ragged", seeds=[0, 1])
    out = add_array_attempt(ledger, tmp_path, "Q-001", {0: 0.5, 1: 0.6})
    _curve_files(tmp_path, out.relative_to(tmp_path), {0: [5.0, 4.0, 3.0, 2.0, 1.0], 1: [6.0, 5.0]})
    ax = plots.curves(collect(ledger, tmp_path)).get_axes()[0]
    mean = next(line for line in ax.lines if line.get_gid() == "mean:Q-001")
    assert list(mean.get_xdata()) == [0, 100, 200, 300, 400]
    assert list(mean.get_ydata()) == pytest.approx([5.5, 4.5, 3.0, 2.0, 1.0])  # the steps seed 0 alone reached
    final = next(line for line in ax.lines if line.get_gid() == "final:Q-001")
    assert list(final.get_xdata()) == [400]
    band = next(c for c in ax.collections if c.get_gid() == "band:Q-001")
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() < 4.5 and ys.max() > 5.5  # a band where two seeds have the step


def test_a_metric_with_values_at_or_below_zero_is_drawn_on_a_linear_axis(ledger, tmp_path):
    """A log axis hid a log-likelihood's curve entirely (the figure held only its legend)."""
    add_exp(ledger, "Q-001", "loglik", seeds=[0, 1])
    out = add_array_attempt(ledger, tmp_path, "Q-001", {0: 0.5, 1: 0.6})
    _curve_files(tmp_path, out.relative_to(tmp_path), {0: [-900.0, -400.0], 1: [-1000.0, -500.0]})
    ax = plots.curves(collect(ledger, tmp_path)).get_axes()[0]
    assert ax.get_yscale() == "linear"
    lo, hi = ax.get_ylim()
    assert lo <= -1000 and hi >= -400


def test_runs_without_a_curve_are_told_apart_from_runs_without_the_metric(irq, ledger, tmp_path):
    add_exp(ledger, "Q-001", "no curves", seeds=[0, 1])
    out = add_array_attempt(ledger, tmp_path, "Q-001", {0: 0.5, 1: 0.6})
    for f in out.rglob("curve.jsonl"):
        f.unlink()
    r = irq("plot", "curves", "-o", "figs")
    assert r.code == 1 and "have val_mse but no learning curve of it (curve.jsonl)" in r.err, r
    assert "irq plot final" in r.err


def test_a_metric_named_in_dollars_is_drawn_as_the_text_it_is(exps, tmp_path):
    """matplotlib read `$...$` in a metric's name as math: `$\\foo{x}$` crashed `irq plot` and `irq
    report` (ParseFatalException), and `$\\alpha$` was drawn as α. Its dollars are escaped; the
    axes keep math for their own ticks (turning math off everywhere wrote log ticks as
    `$\\mathdefault{10^{-2}}$`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    for name in (r"$\foo{x}$", r"$\alpha$"):
        fig = plots.final(exps, metric=name)
        ax = fig.get_axes()[0]
        assert ax.get_ylabel() == name.replace("$", r"\$")
        plots.save(fig, tmp_path / "figs", "final")
        assert (tmp_path / "figs" / "final.png").stat().st_size > 0
    fig = plots.curves(exps)  # a log y axis
    FigureCanvasAgg(fig).draw()
    ticks = [t.get_text() for t in fig.get_axes()[0].get_yticklabels() if t.get_text()]
    assert ticks and all(t._parse_math is not False for t in fig.get_axes()[0].get_yticklabels())
