"""Experiment ids are slugs (lr-sweep-3, ablation.v2); queue.md import and export keep them."""
from __future__ import annotations

import pytest

from irq import errors
from irq.experiments.edit import add_experiment
from irq.formats.queue_io import export_queue, import_queue
from irq.ledger.database import Ledger, validate_id


@pytest.mark.parametrize("good", ["Q-003", "lr-sweep-3", "ablation.v2", "run_1", "a", "A" * 64])
def test_slugs_are_ids(good):
    assert validate_id(good) == good


@pytest.mark.parametrize("bad", ["3-lr", "-lr", "lr sweep", "lr/3", "é", "a" * 65, "", "lr:3"])
def test_other_text_is_refused(bad):
    with pytest.raises(errors.InvalidId):
        validate_id(bad)


def test_queue_md_round_trips_slug_ids_and_their_dependencies(tmp_path, ledger):
    add_experiment(ledger, "lr-01", "Small learning rate", params={"lr": 0.01}, seeds="0-2")
    add_experiment(ledger, "lr.02", "Larger", params={"lr": 0.1})
    add_experiment(ledger, "Q-003", "Both before", depends_on=["lr-01", "lr.02"], command="python t.py --lr {lr}",
                   params={"lr": 1})
    first = export_queue(ledger, tmp_path / "a.md")
    other = Ledger(tmp_path / "b.db", create=True)
    import_queue(other, tmp_path / "a.md")
    assert export_queue(other, tmp_path / "b.md") == first
    with other.transaction() as s:
        exps = {e.id: e for e in Ledger.experiments(s)}
    assert list(exps) == ["lr-01", "lr.02", "Q-003"]
    assert exps["Q-003"].depends_on == ["lr-01", "lr.02"]
    assert exps["Q-003"].command == "python t.py --lr {lr}"
    assert exps["lr-01"].seeds == [0, 1, 2]


def test_irq_add_refuses_the_same_run_twice_unless_forced(tmp_path, irq):
    irq("init")
    cmd = "python train.py --lr {lr} --seed {seed}"
    assert irq("add", "lr-01", "-t", "a", "--command", cmd, "-p", "lr=0.01", "--seeds", "0-2").code == 0
    r = irq("add", "lr-01b", "-t", "again", "--command", cmd, "-p", "lr=0.01", "--seeds", "0-2")
    assert r.code == 1 and "lr-01 already runs the same command" in r.err and "--force" in r.err
    assert irq("add", "lr-02", "-t", "other lr", "--command", cmd, "-p", "lr=0.02", "--seeds", "0-2").code == 0
    assert irq("add", "lr-01c", "-t", "other seeds", "--command", cmd, "-p", "lr=0.01", "--seeds", "3").code == 0
    assert irq("add", "lr-01b", "-t", "again", "--command", cmd, "-p", "lr=0.01", "--seeds", "0-2", "--force").code == 0
    with Ledger(tmp_path / "queue.db").transaction() as s:
        assert [e.id for e in Ledger.experiments(s)] == ["lr-01", "lr-02", "lr-01c", "lr-01b"]


@pytest.mark.parametrize("cmd, words", [
    ("python t.py --lr {lr} --bs {batch}", "unknown placeholder {batch}"),
    ("python t.py {0}", "not a plain {name}"),
    ("python t.py {lr:.3f}", "not a plain {name}"),
    ("python t.py {lr", "write a literal brace"),
    ("   ", "the command is empty"),
])
def test_a_bad_command_is_refused_at_add_and_nothing_is_recorded(tmp_path, irq, cmd, words):
    irq("init")
    r = irq("add", "x-1", "-t", "t", "--command", cmd, "-p", "lr=0.1")
    assert r.code == 2 and words in r.err + r.out, r
    if "unknown" in words:
        assert "known names: lr, seed, run_dir, experiment, attempt" in r.err
    assert "x-1" not in irq("status", "--offline").out


def test_a_command_that_is_not_a_string_is_refused(ledger):
    with pytest.raises(errors.UsageError, match="a command is a string"):
        add_experiment(ledger, "x-1", "t", command=["python", "t.py"])


def test_the_project_default_command_is_checked_at_add(tmp_path, irq):
    irq("init")
    (tmp_path / "irq.toml").write_text('[project]\ncommand = "python t.py --depth {depth}"\n')
    r = irq("add", "d-1", "-t", "t")
    assert r.code == 2 and "unknown placeholder {depth}" in r.err
    assert irq("add", "d-1", "-t", "t", "-p", "depth=3").code == 0


def test_a_command_renders_parameters_shell_quoted_and_irq_values_from_the_environment(tmp_path):
    import subprocess

    from irq.formats.command import param_env, render_command

    params = {"name": "a b; touch PWNED", "lr": 0.01, "deep": True, "layers": [1, 2]}
    text = render_command("printf '%s|' {name} {lr} {deep} {layers} {seed} {run_dir} {experiment} {attempt}", params)
    env = {"IRQ_SEED": "3", "IRQ_RUN_DIR": str(tmp_path / "run dir"), "IRQ_EXPERIMENT": "lr-01", "IRQ_ATTEMPT": "2",
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run(["bash", "-c", text], capture_output=True, text=True, env=env, cwd=tmp_path, check=True).stdout
    assert out == f"a b; touch PWNED|0.01|true|[1, 2]|3|{tmp_path / 'run dir'}|lr-01|2|"
    assert not (tmp_path / "PWNED").exists()
    assert param_env({"learning-rate": 0.1, "mining": "none"}) == [("IRQ_PARAM_LEARNING_RATE", "0.1"),
                                                                   ("IRQ_PARAM_MINING", "none")]
