"""The sweep grammar, point expansion, and `irq sweep` creating linked experiments."""
from __future__ import annotations

import json

import pytest

from irq import errors
from irq.results.sweep import expand, parse_override, parse_value
from tests.results_fixture import add_exp


def test_values_read_like_json_scalars():
    assert [parse_value(v) for v in ("3", "0.5", "1e-3", "true", "null", "adversarial", "'7'")] == [
        3, 0.5, 0.001, True, None, "adversarial", "7"]


def test_grammar():
    assert parse_override("mining_opt_steps=1,3,5,10,20") == ("mining_opt_steps", [1, 3, 5, 10, 20])
    assert parse_override("k=range(1,5)") == ("k", [1, 2, 3, 4])  # stop excluded, as in Hydra
    assert parse_override("k=range(0,10,3)") == ("k", [0, 3, 6, 9])
    assert parse_override("k=range(3)") == ("k", [0, 1, 2])
    assert parse_override("k=range(0.1,0.5,0.1)") == ("k", [0.1, 0.2, 0.3, 0.4])
    assert parse_override("mining=choice(random,adversarial)") == ("mining", ["random", "adversarial"])
    assert parse_override("lr=0.001") == ("lr", [0.001])
    for bad in ("=1,2", "k=", "k=range(1,2,0)", "k=range(a,b)", "k=1,1"):
        with pytest.raises(errors.UsageError):
            parse_override(bad)


def test_expand_is_the_cartesian_product_first_key_slowest():
    pts = expand(["a=1,2", "b=x,y,z"])
    assert len(pts) == 6
    assert pts[:3] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"}]
    with pytest.raises(errors.UsageError):
        expand(["a=1", "a=2"])


@pytest.fixture
def base(ledger, tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "adv.json").write_text(json.dumps({"rank": 20, "mining": "adversarial",
                                                                "checkpoint_interval": 5000}))
    (tmp_path / "irq.toml").write_text('backend = "local"\n')
    add_exp(ledger, "Q-003", "Adversarial", parameters={"mining": "adversarial", "rank": 20},
            config_path="configs/adv.json", seeds=[0], priority="HIGH", resources={"gpus": 1, "time_minutes": 90})
    add_exp(ledger, "Q-010", "Other")
    return ledger


def test_dry_run_lists_and_creates_nothing(irq, base):
    r = irq("sweep", "Q-003", "mining_opt_steps=1,3,5,10,20", "--dry-run", "--json")
    assert r.code == 0, r
    out = json.loads(r.out)
    assert [p["id"] for p in out["points"]] == ["Q-011", "Q-012", "Q-013", "Q-014", "Q-015"]
    assert out["points"][0]["title"] == "Adversarial [mining_opt_steps=1]"
    with base.transaction() as s:
        from irq.ledger.database import Ledger

        assert len(Ledger.experiments(s)) == 2


def test_sweep_creates_one_array_per_point_linked_to_the_base(irq, base):
    r = irq("sweep", "Q-003", "mining_noise_scale=0.5,2.0", "mining_opt_steps=range(1,3)", "--seeds", "0-9",
            "--proposed")
    assert r.code == 0, r
    assert "created 4 experiments from Q-003 (PROPOSED)" in r.out
    from irq.ledger.database import Ledger

    with base.transaction() as s:
        made = [e for e in Ledger.experiments(s) if e.id not in ("Q-003", "Q-010")]
    assert [e.id for e in made] == ["Q-011", "Q-012", "Q-013", "Q-014"]
    e = made[1]
    assert e.parameters == {"mining": "adversarial", "rank": 20, "mining_noise_scale": 0.5, "mining_opt_steps": 2}
    assert e.seeds == list(range(10)) and e.state == "PROPOSED"
    assert e.notes == "Sweep of Q-003: mining_noise_scale=0.5, mining_opt_steps=2"
    assert e.config_path.endswith("configs/adv.json")
    assert (e.priority, e.resources["gpus"], e.resources["time_minutes"]) == ("HIGH", 1, 90)


def test_unknown_trainer_key_is_refused(irq, base):
    r = irq("sweep", "Q-003", "mining_ascent_lr=0.1,0.5")
    assert r.code == 2 and "no config key mining_ascent_lr" in r.err


def test_unknown_base(irq, base):
    r = irq("sweep", "Q-030", "mining_opt_steps=1")
    assert r.code != 0 and "Q-030" in r.err


def test_points_follow_the_highest_q_number_whatever_other_ids_the_ledger_holds(irq, base):
    """Ids of the user's own form (docs/own-script.md: `irq add lr-01 ...`) stopped every sweep
    with a traceback (the points' numbers were read from every id's second dash-part)."""
    for exp_id in ("lr-sweep-3", "lr-01", "A1", "Q-x", "Q-2.5"):
        add_exp(base, exp_id, exp_id)
    r = irq("sweep", "Q-003", "mining_opt_steps=1,3", "--dry-run", "--json")
    assert r.code == 0, r
    assert [p["id"] for p in json.loads(r.out)["points"]] == ["Q-011", "Q-012"]


def test_a_sweep_of_your_own_command_sweeps_its_placeholders_and_runs_it(irq, tmp_path):
    """docs/own-script.md's project: the sweep's keys are the command's placeholders (not the
    bundled trainer's keys, which refused `lr`), and every point runs the base's command."""
    (tmp_path / "irq.toml").write_text('backend = "local"\n[project]\n'
                                       'command = "python train.py --lr {lr} --steps {steps} --seed {seed}"\n')
    irq("init")
    assert irq("add", "lr-03", "-t", "larger", "-p", "lr=0.3", "-p", "steps=40").code == 0
    assert irq("add", "own", "-t", "own", "--command", "python other.py --depth {depth} --out {run_dir}",
               "-p", "depth=2").code == 0
    r = irq("sweep", "lr-03", "lr=0.1,0.5", "--json")
    assert r.code == 0, r
    assert [p["parameters"] for p in json.loads(r.out)["points"]] == [{"lr": 0.1, "steps": 40}, {"lr": 0.5, "steps": 40}]
    r = irq("sweep", "own", "depth=4")
    assert r.code == 0, r
    render = irq("render", "Q-003")
    assert "python other.py --depth 4 --out" in render.out, render
    assert "python train.py --lr 0.5 --steps 40" in irq("render", "Q-002").out
    r = irq("sweep", "lr-03", "depth=1,2")
    assert r.code == 2 and "has no placeholder {depth}" in r.err and "hint: sweep keys are its placeholders: lr, steps" in r.err
    r = irq("sweep", "own", "lr=1")
    assert r.code == 2 and "sweep keys are its placeholders: depth" in r.err


def test_points_of_a_base_titled_by_its_parameters_are_titled_by_theirs(irq, tmp_path):
    """`irq add lr-03 -p lr=0.3` titles it `lr=0.3, steps=40`; a point with lr=0.1 is `lr=0.1, steps=40`,
    not `lr=0.3, steps=40 [lr=0.1]`. A title of the user's own is kept, with the point's values after it."""
    (tmp_path / "irq.toml").write_text('backend = "local"\n[project]\n'
                                       'command = "python train.py --lr {lr} --steps {steps} --seed {seed}"\n')
    irq("init")
    assert irq("add", "lr-03", "-p", "lr=0.3", "-p", "steps=40").code == 0
    assert irq("add", "mine", "-t", "larger", "-p", "lr=0.5", "-p", "steps=40").code == 0
    r = irq("sweep", "lr-03", "lr=0.1,0.2", "--json")
    assert [p["title"] for p in json.loads(r.out)["points"]] == ["lr=0.1, steps=40", "lr=0.2, steps=40"], r
    r = irq("sweep", "mine", "steps=80", "--json")
    assert [p["title"] for p in json.loads(r.out)["points"]] == ["larger [steps=80]"], r
