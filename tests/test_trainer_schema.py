"""trainer/keys.json is the trainer's own schema, generated from trainer/config.py, and irq's
check at the door agrees with the trainer: what irq refuses the trainer refuses, and the
reverse. A hostile value that gets past the door anyway (an imported ledger) reaches the job
script as one shell word."""
from __future__ import annotations

import json
import shlex

import pytest

from irq.backends.target import REPO_ROOT, Target
from irq.experiments.trainer_schema import problem, schema
from irq.jobs import jobscript
from irq.ledger.models import Experiment
from trainer import schema as gen
from trainer.config import ConfigError, TrainConfig, build

HOSTILE = "adversarial; touch x"


def test_keys_json_is_generated_from_the_trainer():
    assert (REPO_ROOT / "trainer" / "keys.json").read_text(encoding="utf-8") == gen.render(), \
        "run `python -m trainer.schema`"
    assert set(schema()) == {f for f in TrainConfig.__dataclass_fields__}


def _probes(rule: dict) -> list:
    out: list = [None, "text", True]
    for bound in ("min", "max", "gt", "lt"):
        if bound in rule:
            out += [rule[bound] - 1, rule[bound], rule[bound] + 1, rule[bound] - 0.5, rule[bound] + 0.5]
    out += list(rule.get("choices", [])) + ["bogus", HOSTILE, "cuda:1", "tpu", 3, 2.0, 0.3, 1e5]
    return out


def test_every_choice_key_of_the_trainer_has_its_choices():
    for key, rule in schema().items():
        if rule["type"] == "str" and key not in gen.CROSS_FIELD:
            assert "choices" in rule or "pattern" in rule, f"add {key}'s allowed values to trainer/schema.py LIMITS"


@pytest.mark.parametrize("key", sorted(gen.LIMITS) + ["faithful", "seed", "mse_threshold"])
def test_irq_and_the_trainer_agree_on_every_value(key):
    if key not in schema() or key in gen.CROSS_FIELD:
        pytest.skip(f"{key}: not a key of this trainer, or checked by the trainer alone")
    rule = schema()[key]
    for value in _probes(rule):
        try:
            build(overrides={key: value})
            trainer_ok = True
        except ConfigError:
            trainer_ok = False
        irq_ok = problem(key, value, rule) is None
        if isinstance(value, str) and rule["type"] != "str":
            continue  # the trainer's command line reads "3" as 3; irq takes typed values (-p parses them)
        if isinstance(value, bool) and rule["type"] in ("int", "float"):
            continue  # the trainer refuses these too, through coerce; irq says "is not an int"
        assert irq_ok == trainer_ok, (key, value, problem(key, value, rule))


def test_the_hostile_mining_value_is_refused_at_the_door(irq):
    irq("init")
    r = irq("add", "Q-001", "--title", "x", "-p", f"mining={HOSTILE}")
    assert r.code == 2 and "mining = 'adversarial; touch x' is not one of none, random, adversarial" in r.err
    assert json.loads(irq("status", "--offline", "--json").out)["experiments"] == []


@pytest.mark.parametrize("key", ["mining", "run_note"])
def test_a_value_past_the_door_reaches_the_job_as_one_shell_word(monkeypatch, tmp_path, key):
    """`run_note` stands for a trainer key that takes free strings."""
    monkeypatch.setattr(jobscript, "trainer_keys", lambda *a: frozenset({"mining", "run_note"}))
    exp = Experiment(id="Q-001", seq=1, title="imported", parameters={key: HOSTILE})
    target = Target(kind="local", name="local", workdir=str(tmp_path), code_dir=str(REPO_ROOT), python="python3")
    req, _ = jobscript.build_job(exp, token="irq-1", attempt=1, target=target, git_sha="abc", run_id="r1")
    line = next(ln for ln in req.script.splitlines() if "-m trainer" in ln)
    words = shlex.split(line)
    flag = "--" + key.replace("_", "-")
    assert words[words.index(flag) + 1] == HOSTILE
    assert f"{flag} 'adversarial; touch x'" in line
