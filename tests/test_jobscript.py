"""`irq render` shows exactly the script irq submits: golden files for a single run and a
seed array, quoting of hostile values, and StrictUndefined for a template that needs a value."""
from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from irq import errors
from irq.backends.target import Target
from irq.config import ClusterConfig
from irq.formats.render import render
from irq.jobs.jobscript import build_job, run_id_for, trainer_keys, trainer_overrides
from irq.ledger.models import Experiment

GOLDEN = Path(__file__).parent / "golden"
FASRC = ClusterConfig(
    name="fasrc", host="login.example.edu", repo_url="git@github.com:me/research-repo.git",
    workdir="/n/home03/me/irq", scratch="/n/scratch/me", partition="gpu_test",
    modules=["python/3.10.13-fasrc01", "cuda/11.8.0-fasrc01"], module_init="source /etc/profile.d/lmod.sh",
    job_limit=2,
)


def q003(**kw) -> Experiment:
    base = dict(id="Q-003", seq=3, title="Adversarial Negative Mining (Gradient-Based)",
                config_path="trainer/configs/q003_adversarial.json",
                parameters={"mining": "adversarial", "rank": 20, "diffusion_steps": 10, "train_steps": 100000,
                            "batch_size": 2048, "learning_rate": 1e-4,
                            "negative_optimization": "Gradient ascent via `opt_step()`"},
                resources={"gpus": 1, "memory_mb": 16384, "time_minutes": 150, "partition": "gpu_test"})
    base.update(kw)
    return Experiment(**base)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("IRQ_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; rerun with IRQ_UPDATE_GOLDEN=1 if intended"


def test_a_single_run_script(tmp_path):
    req, skipped = build_job(q003(), token="irq-0123456789", attempt=1, target=Target.cluster(FASRC),
                             git_sha="9a691f6", run_id="q003_20260114_042054")
    check_golden("q003_slurm.sbatch", req.script)
    assert skipped == ["negative_optimization"]
    assert req.name == "Q-003.irq-0123456789" and req.array is None
    assert req.run_dir == "/n/home03/me/irq/runs/q003_20260114_042054"


def test_a_seed_array_script(tmp_path):
    exp = q003(id="Q-101", seeds=list(range(10)), title="Multi-seed baseline",
               parameters={"mining": "none"}, config_path="trainer/configs/q001_baseline.json")
    req, _ = build_job(exp, token="irq-abcdefabcd", attempt=2, target=Target.cluster(FASRC),
                       git_sha="294cd74", run_id="q101_20260121_124610")
    check_golden("q101_array.sbatch", req.script)
    assert req.array == "0-9%2" and req.log_name == "slurm-%A_%a.out"
    assert "#SBATCH --array=0-9%2" in req.script
    assert "SEED=${SEEDS[$SLURM_ARRAY_TASK_ID]}" in req.script


def test_a_project_in_a_subfolder_runs_from_that_folder_of_the_clone():
    # irq.toml in "experiments/matrix inversion" of a monorepo: the job clones the repository and
    # runs from that folder, so the command's relative paths mean what they mean in the user's tree
    req, _ = build_job(q003(config_path="configs/q003.json"), token="irq-0123456789", attempt=1,
                       target=Target.cluster(FASRC, subdir="experiments/matrix inversion"), git_sha="9a691f6",
                       run_id="q003_20260114_042054")
    check_golden("q003_subfolder.sbatch", req.script)
    assert "cd \"$CLONE\"/'experiments/matrix inversion' || { echo \"irq: folder \"'experiments/matrix inversion'" in req.script
    assert "--config configs/q003.json" in req.script


def test_the_workflow_the_seed_learned_the_hard_way():
    req, _ = build_job(q003(), token="irq-0123456789", attempt=1, target=Target.cluster(FASRC),
                       git_sha="9a691f6", run_id="r")
    s = req.script
    lines = s.splitlines()
    order = [next(i for i, line in enumerate(lines) if key in line) for key in
             ("module load python/3.10.13-fasrc01", "git clone", "checkout --quiet 9a691f6", "trap 'irq_cleanup 143",
              "-m trainer", 'irq_cleanup "$status"', "exit $status")]
    assert order == sorted(order)
    assert '    cd / && rm -rf "$CLONE"' in s  # irq_cleanup: at the end, and on TERM (cancelled, out of time)
    assert "CLONE=$(mktemp -d /n/scratch/me\"/irq-job-${CLONE_ID}.XXXXXX\")" in s
    assert "#SBATCH --gres=gpu:1" in s and "#SBATCH --mem=16G" in s and "#SBATCH --time=02:30:00" in s
    assert "#SBATCH --partition=gpu_test" in s and "#SBATCH --comment=irq-0123456789" in s


def test_hostile_values_are_quoted(tmp_path):
    evil = "/tmp/it's $(touch PWNED); rm -rf ~ `id`"
    cfg = ClusterConfig(name="x", host="h", repo_url="/srv/repo with space.git", workdir=evil,
                        scratch=evil, modules=["python/3.10; touch PWNED"])
    exp = q003(title='A title with "quotes"; $(touch PWNED) and\nnewline', config_path="cfg dir/it's.json")
    req, _ = build_job(exp, token="irq-0123456789", attempt=1, target=Target.cluster(cfg),
                       git_sha="abc", run_id="r1")
    # the shell parses every line without running anything we did not write
    script = tmp_path / "job.sh"
    script.write_text(req.script)
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"OUT={shlex.quote(evil + '/runs/r1')}" in req.script
    assert "module load 'python/3.10; touch PWNED'" in req.script
    assert "\nnewline" not in req.script  # the title sits in one comment line
    # #SBATCH lines get sbatch's quoting
    assert f'#SBATCH --output="{evil}/runs/r1/slurm-%j.out"' in req.script


def test_a_double_quote_cannot_reach_an_sbatch_line():
    cfg = ClusterConfig(name="x", host="h", repo_url="r", workdir='/tmp/a"b')
    with pytest.raises(errors.TemplateError, match="cannot appear on an #SBATCH line"):
        build_job(q003(), token="t", attempt=1, target=Target.cluster(cfg), git_sha="a", run_id="r")


def test_a_missing_template_value_is_named(tmp_path):
    (tmp_path / "job.sbatch.j2").write_text("#!/bin/bash\n#SBATCH --account={{ account }}\n")
    with pytest.raises(errors.TemplateError, match="'account' is undefined"):
        render("job.sbatch.j2", {}, tmp_path)


def test_only_trainer_keys_become_flags():
    passed, skipped = trainer_overrides(q003(parameters={"rank": 10, "faithful": False, "mining": "random",
                                                         "colour": "blue", "learning_rate": 0.0001}),
                                        trainer_keys())
    assert passed == [("rank", "10"), ("faithful", "false"), ("mining", "random"), ("learning-rate", "0.0001")]
    assert skipped == ["colour"]


def test_run_ids_look_like_the_seeds():
    from datetime import datetime

    assert run_id_for("Q-001", datetime(2026, 1, 14, 4, 20, 54)) == "q001_20260114_042054"
    taken = {"q001_20260114_042054", "q001_20260114_042054_2", "q001_20260114_042054_20"}
    assert run_id_for("q-001", datetime(2026, 1, 14, 4, 20, 54), taken.__contains__) == "q001_20260114_042054_3"


def test_trainer_keys_match_the_trainer():
    import dataclasses

    from trainer.config import TrainConfig

    assert trainer_keys() == {f.name for f in dataclasses.fields(TrainConfig)}


@pytest.mark.parametrize("text, minutes", [
    ("00:01:30", 2),  # seconds once dropped: a 90 s limit became 60 s, and the job was killed early
    ("00:00:45", 1),  # once "must be more than zero"
    ("1.5 minutes", 2), ("2.5 minutes", 3),  # rounded up, never to the nearest even number
    ("90 seconds", 2), ("45 s", 1), ("2:30", 3), ("0.1 hours", 6),
    ("2 hours", 120), ("02:30:00", 150), ("1-00:00:00", 1440), ("1 day", 1440), ("15 minutes", 15),
])
def test_a_time_limit_is_never_shorter_than_asked(text, minutes):
    from irq.fields import parse_minutes

    assert parse_minutes(text) == minutes


@pytest.mark.parametrize("text", ["00:61:00", "1:60", "a fortnight", "-5 minutes"])
def test_a_time_that_is_no_duration_is_refused(text):
    from irq.fields import FieldError, parse_minutes

    with pytest.raises(FieldError):
        parse_minutes(text)


def test_a_seed_given_as_a_parameter_reaches_the_shell_as_one_word(tmp_path):
    """`SEED={{ seed }}` was the one unquoted value: a `seed` parameter that no check had seen
    (an imported queue.md sent with --no-check) ran as shell code."""
    cfg = ClusterConfig(name="x", host="h", repo_url="r", workdir="/w")
    exp = q003(parameters={"seed": "1; touch PWNED #"}, seeds=[])
    req, _ = build_job(exp, token="irq-0123456789", attempt=1, target=Target.cluster(cfg), git_sha="a", run_id="r")
    line = next(ln for ln in req.script.splitlines() if ln.startswith("SEED="))
    assert line == "SEED='1; touch PWNED #'"
    subprocess.run(["bash", "-c", line], cwd=tmp_path, check=True)
    assert not (tmp_path / "PWNED").exists()
