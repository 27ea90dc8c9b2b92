"""Editing, retiring and removing experiments: edits only before the first submission, each
recorded as an event; retire keeps the history; rm only for never-submitted experiments."""
from __future__ import annotations

import json

import pytest

from irq import errors
from irq.experiments.edit import Changes, add_experiment, edit, remove, retire
from irq.ledger.database import Ledger
from irq.ledger.models import Attempt, Experiment


def _events(ledger: Ledger, exp_id: str) -> list:
    with ledger.transaction() as s:
        return [(e.kind, e.to_state, e.reason) for e in Ledger.events(s, exp_id)]


def _submitted(ledger: Ledger, exp_id: str, state: str = "FAILED") -> None:
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        Ledger.new_attempt(s, exp, job_id="7")
        att = Ledger.attempts(s, exp_id)[0]
        Ledger.set_attempt_state(s, att, "PENDING")
        Ledger.set_attempt_state(s, att, state)
        Ledger.set_state(s, exp, state if state == "FAILED" else "DONE", "test")


def test_edit_changes_fields_and_records_the_change(ledger):
    add_experiment(ledger, "Q-001", "Baseline", params={"mining": "none", "rank": 20})
    add_experiment(ledger, "Q-002", "Other")
    _, said = edit(ledger, "Q-001", Changes(title="Baseline, adversarial", params={"mining": "adversarial"},
                                              unset=["rank"], time="2 hours", partition="gpu_test",
                                              priority="high", after=["Q-002"], seeds="0-2"))
    with ledger.transaction() as s:
        e = Ledger.experiment(s, "Q-001")
    assert (e.title, e.parameters, e.priority, e.depends_on, e.seeds) == (
        "Baseline, adversarial", {"mining": "adversarial"}, "HIGH", ["Q-002"], [0, 1, 2])
    assert e.resources == {"time_minutes": 120, "partition": "gpu_test"}
    kind, state, reason = _events(ledger, "Q-001")[-1]
    assert kind == "edit" and state == "READY"
    assert "title: 'Baseline' -> 'Baseline, adversarial'" in reason and "parameters" in reason
    assert len(said) == 8  # title, priority, dependencies, seeds; two parameters and two resources, each said
    assert "parameters.mining: 'none' -> 'adversarial'" in said and "parameters.rank: 20 -> (unset)" in said
    assert "resources.time_minutes: (unset) -> 120" in said


def test_an_edit_of_one_of_many_parameters_says_that_one(ledger):
    """`irq edit T -p diagnostics=true` printed both whole dicts cut at 77 characters, before the
    changed key: the change itself was not shown."""
    params = {f"key_{i}": i for i in range(20)}
    add_experiment(ledger, "Q-001", "many", params=params, command="echo " + " ".join(f"{{{k}}}" for k in params))
    _, said = edit(ledger, "Q-001", Changes(params={"key_19": 99}))
    assert said == ["parameters.key_19: 19 -> 99"]


def test_edit_without_a_change_writes_nothing(ledger):
    add_experiment(ledger, "Q-001", "Baseline", params={"mining": "none"})
    before = _events(ledger, "Q-001")
    assert edit(ledger, "Q-001", Changes(params={"mining": "none"}))[1] == []
    assert _events(ledger, "Q-001") == before


def test_edit_refuses_what_the_trainer_refuses_and_changes_nothing(ledger):
    add_experiment(ledger, "Q-001", "Baseline", params={"mining": "none"})
    with pytest.raises(errors.UsageError, match="mining = 'adversarial; touch x'"):
        edit(ledger, "Q-001", Changes(title="new", params={"mining": "adversarial; touch x"}))
    with ledger.transaction() as s:
        assert Ledger.experiment(s, "Q-001").title == "Baseline"


def test_a_submitted_experiment_cannot_be_edited_or_removed_but_can_be_retired(ledger):
    add_experiment(ledger, "Q-001", "Ran once")
    _submitted(ledger, "Q-001")
    with pytest.raises(errors.IllegalTransition, match="was submitted") as exc:
        edit(ledger, "Q-001", Changes(title="x"))
    assert "irq retire Q-001" in exc.value.hint and "irq add" in exc.value.hint
    with pytest.raises(errors.IllegalTransition, match="was submitted"):
        remove(ledger, "Q-001")
    retire(ledger, "Q-001", "superseded by Q-002")
    with ledger.transaction() as s:
        assert Ledger.experiment(s, "Q-001").state == "RETIRED"
        assert len(Ledger.attempts(s, "Q-001")) == 1  # the history stays
    assert _events(ledger, "Q-001")[-1][2] == "retired by the user: superseded by Q-002"


def test_a_done_experiment_stays_done(ledger):
    add_experiment(ledger, "Q-001", "Ran")
    _submitted(ledger, "Q-001", "COMPLETED")
    with pytest.raises(errors.IllegalTransition, match="is DONE"):
        retire(ledger, "Q-001")
    with pytest.raises(errors.IllegalTransition, match="was submitted") as exc:  # nor offered as a way out
        remove(ledger, "Q-001")
    assert "retire" not in exc.value.hint


def test_retire_refuses_while_a_job_runs(ledger):
    add_experiment(ledger, "Q-001", "Running")
    with ledger.transaction() as s:
        Ledger.new_attempt(s, Ledger.experiment(s, "Q-001"))
    with pytest.raises(errors.IllegalTransition, match="cannot move to RETIRED") as exc:
        retire(ledger, "Q-001")
    assert "irq cancel Q-001" in exc.value.hint
    with pytest.raises(errors.IllegalTransition, match="was submitted") as exc:  # rm's way out names cancel first
        remove(ledger, "Q-001")
    assert "`irq cancel Q-001`, then `irq retire Q-001`" in exc.value.hint


def test_a_retired_experiment_is_never_submitted(ledger):
    from irq.jobs.submit import candidates

    add_experiment(ledger, "Q-001", "Set aside")
    retire(ledger, "Q-001")
    with ledger.transaction() as s:
        assert candidates(s)[0] == []


def test_rm_deletes_a_never_submitted_experiment_and_its_events(ledger):
    add_experiment(ledger, "Q-001", "Typo")
    add_experiment(ledger, "Q-002", "Keep")
    remove(ledger, "Q-001")
    with ledger.transaction() as s:
        assert [e.id for e in Ledger.experiments(s)] == ["Q-002"]
        assert Ledger.events(s, "Q-001") == []
        assert s.get(Experiment, "Q-001") is None and Ledger.attempts(s) == []


def test_rm_refuses_an_experiment_others_depend_on(ledger):
    add_experiment(ledger, "Q-001", "First")
    add_experiment(ledger, "Q-002", "Second", depends_on=["Q-001"])
    with pytest.raises(errors.IllegalTransition, match="Q-002 depends on Q-001") as exc:
        remove(ledger, "Q-001")
    assert "irq edit Q-002 --no-after" in exc.value.hint


def test_retire_names_the_experiments_still_to_run_after_it(ledger):
    add_experiment(ledger, "Q-001", "First")
    add_experiment(ledger, "Q-002", "Second", depends_on=["Q-001"])
    add_experiment(ledger, "Q-003", "Third", depends_on=["Q-001"])
    retire(ledger, "Q-003")
    exp, held = retire(ledger, "Q-001")
    assert exp.state == "RETIRED" and held == ["Q-002"]  # Q-003 is retired itself


def test_edit_drops_every_dependency_and_refuses_a_cycle(ledger):
    add_experiment(ledger, "Q-001", "First")
    add_experiment(ledger, "Q-002", "Second", depends_on=["Q-001"])
    add_experiment(ledger, "Q-003", "Third", depends_on=["Q-002"])
    with pytest.raises(errors.UsageError, match="Q-001 runs after Q-003, which runs after Q-002, which runs after Q-001"):
        edit(ledger, "Q-001", Changes(after=["Q-003"]))
    _, said = edit(ledger, "Q-002", Changes(after=[]))
    assert said == ["depends_on: ['Q-001'] -> []"]
    edit(ledger, "Q-001", Changes(after=["Q-003"]))  # no cycle left: Q-002 runs after nothing
    with ledger.transaction() as s:
        assert Ledger.experiment(s, "Q-001").depends_on == ["Q-003"]
        assert Ledger.experiment(s, "Q-002").depends_on == []


def test_retire_and_edit_no_after_from_the_command_line(irq):
    irq("init")
    irq("add", "Q-001", "--title", "First")
    irq("add", "Q-002", "--title", "Second", "--after", "Q-001")
    r = irq("retire", "Q-001")
    assert r.code == 0 and "warning: Q-002 runs after Q-001 and is held: `irq edit Q-002 --no-after`" in r.err
    rows = {r["id"]: r["detail"] for r in json.loads(irq("status", "--offline", "--json").out)["experiments"]}
    assert rows["Q-002"] == "held: dependency Q-001 RETIRED"
    assert irq("edit", "Q-002", "--no-after", "--after", "Q-001").code == 2
    assert irq("edit", "Q-002", "--no-after").code == 0
    rows = {r["id"]: r["detail"] for r in json.loads(irq("status", "--offline", "--json").out)["experiments"]}
    assert rows["Q-002"] == ""


def test_duplicate_id_hint_names_edit_and_retire(ledger):
    add_experiment(ledger, "Q-001", "First")
    with pytest.raises(errors.DuplicateId) as exc:
        add_experiment(ledger, "Q-001", "Again")
    assert "irq edit" in exc.value.hint and "irq retire" in exc.value.hint


def test_edit_retire_rm_from_the_command_line(irq, tmp_path):
    irq("init")
    irq("add", "Q-001", "--title", "Baseline", "-p", "mining=none")
    irq("add", "Q-002", "--title", "Other")
    r = irq("edit", "Q-001", "-p", "mining=random", "--gpus", "1")
    assert r.code == 0 and "mining" in r.out
    show = json.loads(irq("show", "Q-001", "--json").out)
    assert show["experiment"]["parameters"] == {"mining": "random"}
    assert show["experiment"]["resources"] == {"gpus": 1}
    edits = [e for e in show["events"] if e["kind"] == "edit"]
    assert len(edits) == 1 and "mining" in edits[0]["reason"]
    assert irq("retire", "Q-002", "--reason", "not needed").code == 0
    rows = {r["id"]: r["state"] for r in json.loads(irq("status", "--offline", "--json").out)["experiments"]}
    assert rows == {"Q-001": "READY", "Q-002": "RETIRED"}
    assert irq("rm", "Q-001").code == 0
    rows = {r["id"] for r in json.loads(irq("status", "--offline", "--json").out)["experiments"]}
    assert rows == {"Q-002"}
    with Ledger(tmp_path / "queue.db").transaction() as s:
        assert s.get(Attempt, 1) is None and Ledger.events(s, "Q-001") == []


def test_edit_changes_a_command_and_the_parameters_it_reads(ledger):
    add_experiment(ledger, "lr-01", "Small steps", params={"lr": 0.01}, command="python train.py --lr {lr}")
    _, said = edit(ledger, "lr-01", Changes(params={"lr": 0.1, "warmup": 5},
                                            command="python train.py --lr {lr} --warmup {warmup}"))
    with ledger.transaction() as s:
        e = Ledger.experiment(s, "lr-01")
    assert e.command == "python train.py --lr {lr} --warmup {warmup}"
    assert e.parameters == {"lr": 0.1, "warmup": 5}  # not bundled-trainer keys: fine for a command
    assert any(x.startswith("command:") for x in said)
    with pytest.raises(errors.UsageError, match="unknown placeholder"):
        edit(ledger, "lr-01", Changes(command="python train.py --momentum {momentum}"))
    with pytest.raises(errors.UsageError, match="unknown placeholder"):
        edit(ledger, "lr-01", Changes(unset=["warmup"]))  # the command still reads {warmup}


def test_edit_of_a_project_command_experiment_takes_any_parameter(ledger):
    add_experiment(ledger, "lr-02", "Project command", params={"lr": 0.01}, default_command="python t.py --lr {lr}")
    edit(ledger, "lr-02", Changes(params={"lr": 0.2}, default_command="python t.py --lr {lr}"))
    with ledger.transaction() as s:
        assert Ledger.experiment(s, "lr-02").parameters == {"lr": 0.2}


def test_add_without_a_title_names_it_by_what_it_sets(ledger, tmp_path):
    """docs/own-script.md's quick `irq add lr-01 -p lr=0.01 --seeds 0-2` works: the title says what
    the experiment sets, else its config file, else its id; an explicit blank title is still refused."""
    cmd = "python train.py --lr {lr} --seed {seed}"
    assert add_experiment(ledger, "lr-01", None, params={"lr": 0.01, "tag": "a b"}, command=cmd).title \
        == "lr=0.01, tag=a b"
    cfg = tmp_path / "q003_small.json"
    cfg.write_text(json.dumps({"rank": 4}))
    assert add_experiment(ledger, "Q-010", None, config=cfg).title == "q003_small"
    assert add_experiment(ledger, "plain", None, command="python train.py").title == "plain"
    assert add_experiment(ledger, "odd", None, params={"x": "a\nb"}, command="python t.py {x}").title == "odd"
    long = add_experiment(ledger, "long", None, params={f"k{i}": i for i in range(40)}, command="python t.py").title
    assert len(long) == 80 and long.endswith("…")
    with pytest.raises(errors.UsageError, match="needs a title"):
        add_experiment(ledger, "blank", " ", command="python train.py")
    with ledger.transaction() as s:
        assert Ledger.experiment(s, "lr-01").title == "lr=0.01, tag=a b"


def test_a_title_made_from_the_parameters_follows_an_edit_of_them(ledger):
    """`irq add lr-01 -p lr=0.01` is titled `lr=0.01`; after `irq edit lr-01 -p lr=0.02` the title
    said lr=0.01 still. A title the user wrote stays as written."""
    add_experiment(ledger, "lr-01", None, params={"lr": 0.01, "steps": 40})
    add_experiment(ledger, "lr-02", "small steps", params={"lr": 0.01, "steps": 40})
    edit(ledger, "lr-01", Changes(params={"lr": 0.02}))
    edit(ledger, "lr-02", Changes(params={"lr": 0.02}))
    with ledger.transaction() as s:
        assert Ledger.experiment(s, "lr-01").title == "lr=0.02, steps=40"
        assert Ledger.experiment(s, "lr-02").title == "small steps"


def test_rm_deletes_an_experiment_retired_before_it_ever_ran(ledger):
    """`irq rm` of a never-submitted experiment that was retired said "it can no longer be removed",
    though rm is for experiments never submitted; a retired one that ran keeps its history."""
    add_experiment(ledger, "Q-001", "Set aside, never ran")
    retire(ledger, "Q-001")
    remove(ledger, "Q-001")
    with ledger.transaction() as s:
        assert s.get(Experiment, "Q-001") is None and Ledger.events(s, "Q-001") == []


@pytest.mark.parametrize("verb, setup, said", [
    ("ready", ["--proposed"], "Q-001 is READY"),
    ("retire", [], "Q-001 is RETIRED"),
    ("rm", [], "removed Q-001"),
    ("cancel", [], "Q-001 was queued locally"),
])
def test_an_id_given_twice_is_acted_on_once(irq, verb, setup, said):
    """`irq ready Q-001 Q-001` made Q-001 READY, then failed on the second turn ("already READY",
    exit 1): the command had changed the ledger and said it had not."""
    irq("init")
    assert irq("add", "Q-001", "-t", "a", "-p", "lr=1", *setup).code == 0
    if verb == "cancel":
        assert irq("add", "Q-002", "-t", "b", "-p", "lr=2", "--proposed").code == 0
        assert irq("edit", "Q-001", "--after", "Q-002").code == 0
        assert irq("submit", "Q-001").code == 0  # it waits for Q-002: queued locally
    r = irq(verb, "Q-001", "Q-001")
    assert r.code == 0 and r.out.count(said) == 1 and "error" not in r.err, r


def test_submitting_a_retired_experiment_says_it_is_retired(irq):
    """It said "skipped: already submitted" (once per time it was named)."""
    irq("init")
    assert irq("add", "Q-001", "-t", "a", "-p", "lr=1").code == 0
    assert irq("retire", "Q-001").code == 0
    r = irq("submit", "Q-001", "Q-001")
    assert r.code != 0 and "Q-001 is RETIRED: it will not run" in r.err and r.err.count("error:") == 1, r


def test_show_gives_the_history_with_its_reasons(irq):
    """An edit "kept as an event (`irq show ID`)" and a retire's --reason were in --json only."""
    irq("init")
    assert irq("add", "Q-001", "-t", "a", "-p", "lr=1").code == 0
    assert irq("edit", "Q-001", "-p", "lr=2").code == 0
    assert irq("retire", "Q-001", "--reason", "superseded by Q-002").code == 0
    lines = irq("show", "Q-001").out.splitlines()
    at = lines.index("history")
    assert [ln.split("  ", 2)[-1] for ln in lines[at + 1:]] == [
        "READY: created", "edit: edited: parameters.lr: 1 -> 2", "READY -> RETIRED: retired by the user: superseded by Q-002"]


def test_edit_lists_the_priorities_and_says_unset_for_a_field_that_had_none(irq):
    irq("init")
    assert irq("add", "Q-001", "-t", "a", "-p", "lr=1").code == 0
    assert "--priority <highest|high|medium|low>" in irq("edit", "-h").out
    r = irq("edit", "Q-001", "--notes", "hello", "--priority", "high")
    assert r.out.strip() == "edited Q-001: notes: (unset) -> 'hello'; priority: 'MEDIUM' -> 'HIGH'", r


def test_a_title_made_from_parameters_writes_them_as_they_read_back(irq):
    """`-p mode=null` made the title `mode=None` (Python's word, which reads back as text)."""
    irq("init")
    r = irq("add", "a", "--command", "echo {mode} {on}", "-p", "mode=null", "-p", "on=true")
    assert r.out.strip() == "added a (READY): mode=null, on=true", r
