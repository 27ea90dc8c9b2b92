"""The sweep grammar, point expansion, and `irq sweep` creating linked experiments."""
from __future__ import annotations

import json
import re

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


def test_values_are_read_as_irq_add_reads_them():
    """`none`, `None`, `NULL`, `True` became JSON null and true: the study's own `mining=none` could
    not be swept, and `lr=None` put `null` into the command. Only lower-case JSON words are JSON."""
    assert parse_override("mining=none,None,NULL,True,TRUE") == ("mining", ["none", "None", "NULL", "True", "TRUE"])
    assert parse_override("x=null,true,false") == ("x", [None, True, False])


@pytest.mark.parametrize("text, values", [
    ('tag="a,b",c', ["a,b", "c"]),          # a comma inside quotes is the value's
    ("tag='x(1)',y", ["x(1)", "y"]),        # brackets inside quotes too
    ("tag=a\\,b,c", ["a,b", "c"]),          # a backslash makes the comma the value's
    ("path=C:\\data,x", ["C:\\data", "x"]),  # any other backslash is kept
    ("k=choice('a,b',c)", ["a,b", "c"]),
])
def test_quotes_and_backslashes_keep_a_comma_in_its_value(text, values):
    assert parse_override(text)[1] == values


@pytest.mark.parametrize("text, words", [
    ("lr=choice(1,2", "has a bracket that is not closed"),
    ("lr=range(1,3", "has a bracket that is not closed"),
    ('lr="a,b', "has a quote that is not closed"),
    ("lr=interval(0,1)", "cannot read 'interval(0,1)'"),   # Hydra's, not irq's
    ("lr=[1,2]", "cannot read '[1,2]'"),
    ("lr=1,2)", "has a bracket that is not closed"),
])
def test_malformed_or_foreign_override_syntax_is_refused_never_split_at_random(text, words):
    """`lr=choice(1,2` gave the points `choice(1` and `2`; `lr=interval(0,1)` gave `interval(0` and `1)`."""
    with pytest.raises(errors.UsageError, match=re.escape(words)):
        parse_override(text)


def test_a_dry_run_refuses_what_the_sweep_refuses_and_a_sweep_is_all_or_nothing(irq, base):
    """`--dry-run` said "would create" for values the trainer refuses; the real sweep then created the
    points before the bad one and stopped half-way."""
    from irq.ledger.database import Ledger

    for extra in (["--dry-run"], []):
        r = irq("sweep", "Q-003", "mining=random,greedy", *extra)
        assert r.code == 2 and "mining = 'greedy' is not one of" in r.err, r
        r = irq("sweep", "Q-003", "rank=4,0", *extra)
        assert r.code == 2 and "rank = 0" in r.err, r
    with base.transaction() as s:
        assert [e.id for e in Ledger.experiments(s)] == ["Q-003", "Q-010"]


def test_a_point_that_runs_what_an_experiment_runs_is_refused_unless_forced(irq, base):
    """`irq add` refuses a copy of an experiment; a sweep made them silently, again on every repeat."""
    assert irq("sweep", "Q-003", "mining=none,random").code == 0
    for extra in (["--dry-run"], []):  # the dry run says it too
        r = irq("sweep", "Q-003", "mining=langevin,random", *extra)
        assert r.code != 0 and "Q-012 already runs the same" in r.err, r
    r = irq("sweep", "Q-003", "mining=langevin,random")
    assert r.code != 0 and "Q-012 already runs the same command with the same parameters and seeds" in r.err, r
    r = irq("sweep", "Q-003", "mining=random", "--force")
    assert r.code == 0 and "created 1 experiment" in r.out, r


def test_the_bundled_trainers_seed_is_not_swept(irq, base):
    """`irq sweep Q-003 seed=1,2` made copies differing only in a parameter the trainer never takes
    (its --seed is the job's seed, from --seeds)."""
    r = irq("sweep", "Q-003", "seed=1,2")
    assert r.code == 2 and "{seed} is irq's own value" in r.err and "--seeds 0-9" in r.err, r


def test_irqs_own_values_are_not_swept(irq, tmp_path):
    """`seed=1,2` said "the command has no placeholder {seed}" of a command that has one."""
    (tmp_path / "irq.toml").write_text('backend = "local"\n[project]\ncommand = "python t.py {lr} {seed} {run_dir}"\n')
    irq("init")
    assert irq("add", "b", "-p", "lr=0.1").code == 0
    r = irq("sweep", "b", "seed=1,2")
    assert r.code == 2 and "{seed} is irq's own value" in r.err and "--seeds 0-9" in r.err, r
    r = irq("sweep", "b", "run_dir=x")
    assert r.code == 2 and "{run_dir} is irq's own value" in r.err, r


def test_an_edit_of_a_sweep_point_keeps_its_title_and_notes_in_step(irq, tmp_path):
    """`irq edit Q-001 -p lr=0.9` of the point `b [lr=0.5]` left that title and the notes `Sweep of b:
    lr=0.5`: results, report and queue.md named a value it no longer ran."""
    (tmp_path / "irq.toml").write_text('backend = "local"\n[project]\ncommand = "python t.py {lr} {seed}"\n')
    irq("init")
    assert irq("add", "b", "-t", "base", "-p", "lr=0.1").code == 0
    assert irq("sweep", "b", "lr=0.5", "--proposed").code == 0
    r = irq("edit", "Q-001", "-p", "lr=0.9")
    assert r.code == 0, r
    exp = json.loads(irq("show", "Q-001", "--json").out)["experiment"]
    assert (exp["title"], exp["notes"]) == ("base [lr=0.9]", "Sweep of b: lr=0.9")
    assert irq("edit", "Q-001", "-t", "mine", "-p", "lr=0.7").code == 0  # a title of the user's: kept
    exp = json.loads(irq("show", "Q-001", "--json").out)["experiment"]
    assert (exp["title"], exp["notes"]) == ("mine", "Sweep of b: lr=0.7")


@pytest.mark.parametrize("text", ["1_000", "+5", "1.", "3 apples", "1e-3", "null", "none", "0.5"])
def test_a_sweep_value_is_what_irq_add_stores_for_it(irq, tmp_path, text):
    """`1_000` was 1000 in a sweep and '1_000' for `irq add`; `irq add -p x='3 apples'` stored 3 (the
    words dropped): the same value gave different parameters, and copies escaped the duplicate check."""
    (tmp_path / "irq.toml").write_text('backend = "local"\n[project]\ncommand = "echo {x} {seed}"\n')
    irq("init")
    assert irq("add", "b", "-p", f"x={text}").code == 0
    r = irq("sweep", "b", f"x={text}", "--dry-run", "--json", "--force")  # the same as b: a copy
    stored = json.loads(irq("show", "b", "--json").out)["experiment"]["parameters"]["x"]
    assert json.loads(r.out)["points"][0]["parameters"]["x"] == stored, r
    assert stored == ("3 apples" if text == "3 apples" else stored)


def test_a_sweep_label_follows_edits_when_a_value_holds_a_comma_or_a_key_is_unset():
    """A value holding ', wd=' split the label into repeated keys, and from then on the title kept
    naming a value the point no longer ran; an unset key stayed in the label."""
    from irq.experiments.labels import relabel

    first = relabel("Base [lr=0.1, wd=1]", "Sweep of b: lr=0.1, wd=1", {"lr": 0.1, "wd": 1}, {"lr": "x, wd=1", "wd": 1})
    assert first == {"notes": "Sweep of b: lr=x, wd=1, wd=1", "title": "Base [lr=x, wd=1, wd=1]"}
    again = relabel(first["title"], first["notes"], {"lr": "x, wd=1", "wd": 1}, {"lr": "x, wd=1", "wd": 5})
    assert again == {"notes": "Sweep of b: lr=x, wd=1, wd=5", "title": "Base [lr=x, wd=1, wd=5]"}
    gone = relabel("Base [lr=0.1, wd=1]", "Sweep of b: lr=0.1, wd=1\nmine", {"lr": 0.1, "wd": 1}, {"lr": 0.1})
    assert gone == {"notes": "Sweep of b: lr=0.1\nmine", "title": "Base [lr=0.1]"}
    assert relabel("Mine", "my own notes", {"lr": 0.1}, {"lr": 0.2}) == {}
