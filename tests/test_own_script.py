"""examples/own-script end to end on the local backend, as a newcomer runs it from its README:
the example copied into a git repository of its own, experiments added with parameters, run in
a clean checkout of the recorded commit, results and curves fetched."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from irq.ui import num

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "own-script"


def git(path: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(path), "-c", "user.name=irq tests", "-c", "user.email=tests@irq", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def example_train():
    spec = importlib.util.spec_from_file_location("own_train", EXAMPLE / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.train


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example as a user has it: copied into a folder of its own, `git init`, committed."""
    proj = tmp_path / "own-script"
    shutil.copytree(EXAMPLE, proj, ignore=shutil.ignore_patterns("__pycache__", ".irq", "results", "queue.db*"))
    git(proj, "init", "-q")
    git(proj, "add", ".")
    git(proj, "commit", "-qm", "my own project")
    monkeypatch.chdir(proj)
    return proj


def run_all(irq, timeout: float = 120) -> dict:
    """Submit what is ready, wait, fetch, until nothing is left to run; the status rows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        irq("submit", "--all-ready")
        rows = {r["id"]: r for r in json.loads(irq("status", "--json").out)["experiments"]}
        if all(r["state"] in ("DONE", "FAILED") for r in rows.values()):
            return rows
        irq("fetch")
        time.sleep(0.5)
    raise AssertionError(f"not finished: {rows}")


def attempt(irq, exp_id: str) -> dict:
    return json.loads(irq("show", exp_id, "--json").out)["attempts"][-1]


def test_the_readme_flow_runs_the_committed_script_with_its_parameters(project, irq):
    assert irq("init").code == 0
    head = git(project, "rev-parse", "HEAD")
    assert irq("add", "lr-01", "-t", "small steps", "-p", "lr=0.01", "-p", "steps=40", "--seeds", "0-1").code == 0
    assert irq("add", "lr-03", "-t", "larger steps", "-p", "lr=0.3", "-p", "steps=40").code == 0
    rows = run_all(irq)
    assert {i: r["state"] for i, r in rows.items()} == {"lr-01": "DONE", "lr-03": "DONE"}
    train = example_train()
    single = attempt(irq, "lr-03")
    expected, curve = train(0.3, 40, 0)
    assert single["git_sha"] == head
    assert single["results"]["val_loss"] == expected["val_loss"]  # the parameters reached the script
    assert single["results"]["lr"] == 0.3 and single["results"]["steps"] == 40
    assert rows["lr-03"]["detail"] == f"val_loss {num(expected['val_loss'])}"  # the project's headline metric
    out = project / single["output"]
    assert [json.loads(x) for x in (out / "curve.jsonl").read_text().splitlines()] == curve
    assert (out / "model.txt").exists()  # any other file is an artifact
    assert json.loads((out / "params.json").read_text()) == {"lr": 0.3, "steps": 40}
    array = attempt(irq, "lr-01")
    assert array["git_sha"] == head
    for seed in (0, 1):
        assert array["results"][f"seed_{seed}.val_loss"] == train(0.01, 40, seed)[0]["val_loss"]
        assert (project / array["output"] / f"seed_{seed}" / "curve.jsonl").exists()
    assert "val_loss_mean" in array["results"]
    assert f"ran commit {head}" in irq("show", "lr-03").out
    # each task ran in a checkout of the commit, pruned after the run: none left behind
    assert git(project, "worktree", "list").count("\n") == 0
    assert not any((project / ".irq" / "worktrees").glob("*"))


def test_a_change_after_the_commit_is_not_what_runs(project, irq):
    irq("init")
    head = git(project, "rev-parse", "HEAD")
    train_py = project / "train.py"
    train_py.write_text(train_py.read_text().replace('"val_loss": mse(w, b, val_set)', '"val_loss": 999.0'))
    irq("add", "lr-02", "-t", "t", "-p", "lr=0.2", "-p", "steps=20")
    r = irq("submit", "lr-02")
    assert "warning: uncommitted changes are not part of the run" in r.out + r.err and "train.py" in r.out + r.err
    run_all(irq)
    a = attempt(irq, "lr-02")
    assert a["git_sha"] == head and a["results"]["val_loss"] == example_train()(0.2, 20, 0)[0]["val_loss"]
    assert "999" in train_py.read_text()  # the working tree is left as it was


def test_a_dirty_tree_is_refused_when_the_project_says_so(project, irq):
    irq("init")
    toml = project / "irq.toml"
    toml.write_text(toml.read_text().replace('goal = "min"', 'goal = "min"\ndirty = "refuse"'))
    irq("add", "lr-02", "-t", "t", "-p", "lr=0.2", "-p", "steps=20")
    r = irq("check", "lr-02")  # says what submit will do (it once passed every line, then submit held it)
    assert r.code == 1 and "FAIL code: uncommitted changes (the run is commit " in r.out and "irq.toml" in r.out, r
    r = irq("submit", "lr-02")
    assert "held" in r.out and "irq.toml" in r.out and "commit them" in r.out
    assert attempt_count(irq, "lr-02") == 0


def test_a_repository_without_a_commit_is_said_and_refused_when_the_project_says_so(tmp_path, irq, monkeypatch):
    """`git init` and nothing committed: the run used the folder as it was, silently, even with
    dirty = "refuse"."""
    git(tmp_path, "init", "-q")
    monkeypatch.chdir(tmp_path)
    irq("init")
    write = "echo '{{\"val_loss\": 1}}' > {run_dir}/metrics.json"
    assert irq("add", "x", "-t", "t", "--command", write).code == 0
    r = irq("check", "x")
    assert r.code == 0 and "ok   code: the repository at" in r.out and "has no commit yet" in r.out, r
    toml = tmp_path / "irq.toml"
    toml.write_text(toml.read_text().replace('# dirty = "warn"', 'dirty = "refuse"  #'))
    assert irq("check", "x").code == 1
    r = irq("submit", "x")
    assert "x: held: the repository at" in r.out and "no commit yet" in r.out, r
    assert attempt_count(irq, "x") == 0


def attempt_count(irq, exp_id: str) -> int:
    return len(json.loads(irq("show", exp_id, "--json").out)["attempts"])


@pytest.mark.parametrize("command, cause", [
    ("echo '[1, 2]' > {run_dir}/metrics.json", "metrics.json holds a list, not a JSON object"),
    ("echo '{{\"val_loss\": NaN}}' > {run_dir}/metrics.json", "'val_loss' is nan: every metric must be a finite number"),
    ("echo '{{\"val_loss\": \"low\"}}' > {run_dir}/metrics.json", "the headline metric 'val_loss' is a string"),
    # valid JSON, and no float: once stored as such, every `irq results` ended with an OverflowError
    ("printf '{{\"val_loss\": 1%0400d}}' 0 > {run_dir}/metrics.json",
     "'val_loss' is an integer too large for a float: every metric must be a finite number"),
    ("echo '{{\"val_loss\": 0.1' > {run_dir}/metrics.json", "metrics.json is not valid JSON"),
    ("echo done", "no metrics.json in"),
    ("rm -rf {run_dir}", "is gone: the job deleted it"),
])
def test_a_broken_results_contract_is_one_root_cause(project, irq, command, cause):
    irq("init")
    assert irq("add", "bad-1", "-t", "t", "--command", command).code == 0
    rows = run_all(irq)
    assert rows["bad-1"]["state"] == "FAILED"
    a = attempt(irq, "bad-1")
    assert cause in a["root_cause"] and a["exit_code"] == 0, a
    assert "run-contract.md" in a["suggested_fix"]


def test_a_job_that_says_why_in_status_json_and_exits_0_has_its_words_as_the_cause(project, irq):
    """With no metrics.json, the contract's "no metrics.json" hid the reason the job gave."""
    irq("init")
    cmd = "echo '{{\"status\": \"failed\", \"error\": \"dataset shard 7 is corrupt\"}}' > {run_dir}/status.json"
    assert irq("add", "said-1", "-t", "t", "--command", cmd).code == 0
    assert run_all(irq)["said-1"]["state"] == "FAILED"
    a = attempt(irq, "said-1")
    assert a["root_cause"] == "the job reported: dataset shard 7 is corrupt", a
    assert "no metrics.json" in a["error"] and a["exit_code"] == 0


def test_metrics_are_optional_when_the_project_says_so(project, irq):
    irq("init")
    toml = project / "irq.toml"
    toml.write_text(toml.read_text().replace('goal = "min"', 'goal = "min"\nrequire_metrics = false'))
    git(project, "commit", "-qam", "no metrics needed")
    irq("add", "plain", "-t", "t", "--command", "echo hello > {run_dir}/out.txt")
    assert run_all(irq)["plain"]["state"] == "DONE"


def test_a_repository_without_irq_toml_is_held_with_the_reason(project, irq):
    irq("init")
    git(project, "rm", "-q", "irq.toml")
    git(project, "commit", "-qm", "no config")
    irq("add", "x-1", "-t", "t", "--command", "python train.py --out {run_dir}")
    r = irq("submit", "x-1")
    assert "held" in r.out and "no irq.toml in the repository" in r.out


def test_a_commit_that_does_not_exist_is_the_root_cause(project, irq, tmp_path):
    from irq.backends.target import Target
    from irq.config import load_config
    from irq.jobs.jobscript import build_job
    from irq.ledger.models import Experiment
    from irq.policy.diagnose import diagnose

    target = Target.local(load_config(project / "irq.toml"), "python")
    exp = Experiment(id="x-1", seq=1, title="t", command="python train.py --out {run_dir}", parameters={})
    req, _ = build_job(exp, token="irq-0", attempt=1, target=target, git_sha="0" * 40, run_id="r")
    p = subprocess.run(["bash", "-c", req.script], capture_output=True, text=True, check=False,
                       env={"PATH": "/usr/bin:/bin", "SLURM_JOB_ID": "7"})
    assert p.returncode == 4 and f"irq: commit {'0' * 40} not found in {project}" in p.stderr
    assert diagnose("FAILED", 4, p.stderr).pattern == "commit_missing"


def test_an_uncommitted_irq_toml_runs_in_place_and_says_so(tmp_path, irq, monkeypatch):
    """A folder inside some repository (the demo in a clone of irq) is not that repository's project."""
    outer = tmp_path / "outer"
    outer.mkdir()
    git(outer, "init", "-q")
    (outer / "README").write_text("x\n")
    git(outer, "add", ".")
    git(outer, "commit", "-qm", "someone else's repository")
    proj = outer / "scratch"
    shutil.copytree(EXAMPLE, proj)
    monkeypatch.chdir(proj)
    irq("init")
    irq("add", "lr-02", "-t", "t", "-p", "lr=0.2", "-p", "steps=20")
    r = irq("submit", "lr-02")
    assert "irq.toml is not committed" in r.out + r.err
    assert run_all(irq)["lr-02"]["state"] == "DONE"
    assert attempt(irq, "lr-02")["git_sha"] == "unknown"


def test_check_of_an_own_command_checks_its_placeholders_not_the_trainer(project, irq):
    """`irq check` of an experiment that runs the project's command said "trainer config: accepted by
    the trainer's schema"; it checks that every {placeholder} has a value."""
    assert irq("init").code == 0
    assert irq("add", "lr-01", "-p", "lr=0.1", "-p", "steps=20").code == 0
    r = irq("check", "lr-01")
    assert r.code == 0 and "command: every {placeholder} has a value" in r.out and "trainer" not in r.out, r


def test_an_experiment_whose_script_cannot_be_made_is_held_and_the_others_run(project, irq):
    """The project's command gained a {depth} that an experiment added before has no value for:
    `irq submit --all-ready` (and so every daemon cycle) stopped at it with an error, and nothing
    else was submitted. It is held with the reason; the others go; an edit that gives the value
    releases it."""
    assert irq("init").code == 0
    assert irq("add", "lr-01", "-p", "lr=0.1", "-p", "steps=20").code == 0
    assert irq("add", "own-1", "--command", "python train.py --lr 0.1 --steps 5 --seed {seed} --out {run_dir}").code == 0
    toml = project / "irq.toml"
    toml.write_text(toml.read_text().replace("--steps {steps}", "--steps {steps} --depth {depth}"))
    git(project, "commit", "-qam", "a new flag")
    r = irq("check", "lr-01")
    assert r.code == 2 and "unknown placeholder {depth}" in r.err, r
    r = irq("submit", "--all-ready")
    assert r.code == 0, r
    assert "lr-01: held: its job script cannot be made: unknown placeholder {depth}" in r.out, r
    assert "own-1: submitted" in r.out, r
    rows = {x["id"]: x for x in json.loads(irq("status", "--json").out)["experiments"]}
    assert rows["lr-01"]["attempts"] == 0 and "held until fixed" in rows["lr-01"]["detail"]
    assert irq("edit", "lr-01", "-p", "depth=3").code == 0
    r = irq("submit", "lr-01")
    assert "lr-01: submitted" in r.out, r


def test_a_dangling_link_or_a_pipe_in_a_run_folder_is_left_out_of_the_fetch(project, irq):
    """A link into the pruned checkout, or a named pipe, once ended every `irq fetch` (and the
    daemon) with FileNotFoundError, and the experiments after it were never fetched."""
    irq("init")
    write = "echo '{{\"val_loss\": 1}}' > {run_dir}/metrics.json"
    assert irq("add", "odd-1", "-t", "t", "--command",
               f"ln -s \"$PWD/gone.txt\" {{run_dir}}/cfg && mkfifo {{run_dir}}/pipe && {write}").code == 0
    assert irq("add", "odd-2", "-t", "t", "--command", write).code == 0
    rows = run_all(irq)
    assert rows["odd-1"]["state"] == "DONE" and rows["odd-2"]["state"] == "DONE", rows
    out = project / attempt(irq, "odd-1")["output"]
    assert (out / "metrics.json").is_file()  # files only, as a cluster's fetch copies
    assert not (out / "cfg").is_symlink() and not (out / "pipe").exists()


def test_uncommitted_changes_to_irq_toml_are_said_to_apply_to_the_run(project, irq):
    """irq reads irq.toml from the working tree, so its [project] command applies to the run: the
    warning once said its changes were "not part of the run" while the job ran the edited command."""
    irq("init")
    toml = project / "irq.toml"
    toml.write_text(toml.read_text().replace('goal = "min"', 'goal = "min"\nrequire_metrics = true'))
    (project / "train.py").write_text((project / "train.py").read_text() + "\n# edited\n")
    irq("add", "lr-03", "-t", "t", "-p", "lr=0.2", "-p", "steps=20")
    r = irq("submit", "lr-03")
    assert "submitted as job" in r.out, r
    assert "uncommitted changes are not part of the run" in r.err and "train.py" in r.err, r
    assert "uncommitted changes to irq.toml are used: irq reads it from your working tree" in r.err, r
    assert "train.py" not in r.err.split("are used")[1] and "irq.toml" not in r.err.split("):")[1].split(";")[0]


def test_a_cancelled_job_leaves_no_checkout_behind(project, irq):
    """The checkout was removed only when the command returned: a cancel (or a time limit: TERM,
    then KILL) left it in .irq/worktrees, and in `git worktree list`, for ever."""
    irq("init")
    assert irq("add", "slow-1", "-t", "t", "--command", "sleep 60").code == 0
    assert "submitted as job" in irq("submit", "slow-1").out
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(git(project, "worktree", "list").splitlines()) < 2:
        time.sleep(0.2)
    assert len(git(project, "worktree", "list").splitlines()) == 2  # the job's checkout, beside the project
    time.sleep(0.5)  # the trap is set once the checkout is made
    assert irq("cancel", "slow-1").code == 0
    while time.monotonic() < deadline and len(git(project, "worktree", "list").splitlines()) > 1:
        time.sleep(0.2)
    assert git(project, "worktree", "list").splitlines() == [git(project, "worktree", "list").splitlines()[0]]
    folder = project / ".irq" / "worktrees"
    assert not folder.exists() or not any(folder.iterdir())


def test_a_module_left_out_of_the_commit_is_diagnosed_as_the_code_not_the_environment(project, irq):
    """train.py imports helper.py, which was never committed: the run (a checkout of the commit)
    fails with ModuleNotFoundError, and irq said "an environment problem: pip install helper into the
    cluster's python (no commit needed)", on this machine, of a file sitting in the project."""
    irq("init")
    (project / "irq.toml").write_text('[project]\ncommand = "python uses_helper.py"\nrequire_metrics = false\n')
    (project / "uses_helper.py").write_text("import helper\n")
    git(project, "add", "irq.toml", "uses_helper.py")
    git(project, "commit", "-qm", "uses a helper")
    (project / "helper.py").write_text("X = 1\n")  # beside it, never added
    assert irq("add", "u1", "-t", "helper").code == 0
    rows = run_all(irq)
    assert rows["u1"]["state"] == "FAILED", rows
    a = attempt(irq, "u1")
    assert a["error"] == "ModuleNotFoundError: No module named 'helper'", a
    assert a["root_cause"].startswith("`helper.py` is in the project folder but not in commit "), a
    assert a["suggested_fix"] == "`git add helper.py && git commit`, then `irq retry u1`", a


def test_a_package_folder_git_ignores_or_a_folder_of_logs_is_not_code_left_out(tmp_path):
    """wandb writes ./wandb/ (ignored) into the project: "No module named 'wandb'" (not installed)
    was blamed on that folder, "git add wandb", instead of the environment."""
    from irq.jobs.git import missing_from_commit

    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("wandb/\nignored.py\n")
    (tmp_path / "train.py").write_text("import helper\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "a")
    sha = git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "wandb").mkdir()
    (tmp_path / "wandb" / "__init__.py").write_text("")  # a package, but ignored
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "run.txt").write_text("x")  # a folder that is no package
    (tmp_path / "ignored.py").write_text("")
    (tmp_path / "helper.py").write_text("X = 1\n")
    assert [missing_from_commit(tmp_path, sha, m) for m in ("wandb", "logs", "ignored", "train", "helper.sub")] == [
        None, None, None, None, "helper.py"]
