"""examples/own-script on the real loopback SLURM cluster: a project of its own (its own git
repository, pushed to a bare repository the cluster clones), run by the README's commands."""
from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from tests.test_own_script import EXAMPLE, example_train, git
from tests.test_subfolder_project import PROBE, SETTINGS

from .conftest import cluster_table, wait_states

pytestmark = pytest.mark.cluster


def for_the_cluster(c, proj, top, bare) -> None:
    """The example in `proj` (inside the git repository `top`) configured for the loopback cluster,
    committed and pushed to `bare`."""
    toml = (proj / "irq.toml").read_text().replace('backend = "local"', 'backend = "loopback"')
    (proj / "irq.toml").write_text(toml + "\n" + cluster_table(c, bare, f"{c.workdir}/own{time.time_ns()}"))
    git(top, "init", "-q")
    git(top, "add", ".")
    git(top, "commit", "-qm", "my own project, for the cluster")
    git(top, "push", "--quiet", str(bare), "HEAD:refs/heads/main")


def copy_example(dest):
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", ".irq", "results", "queue.db*"))


@pytest.fixture
def own_project(slurm_cluster, tmp_path, monkeypatch, request):
    c = slurm_cluster
    c.cancel_all()
    proj = tmp_path / "own-script"
    copy_example(proj)
    for_the_cluster(c, proj, proj, c.new_bare_repo(f"own-{time.time_ns()}"))
    monkeypatch.chdir(proj)
    yield proj
    c.cancel_all()


@pytest.fixture
def monorepo(slurm_cluster, tmp_path, monkeypatch):
    """The example in `experiments/` of a repository, with a config in `experiments/conf/` and a file
    beside the project in `shared/` (tests/test_subfolder_project.py runs the same on this machine)."""
    c = slurm_cluster
    c.cancel_all()
    top = tmp_path / "mono"
    proj = top / "experiments"
    copy_example(proj)
    (proj / "conf").mkdir()
    (proj / "conf" / "settings.json").write_text(json.dumps(SETTINGS))
    (top / "shared").mkdir()
    (top / "shared" / "words.txt").write_text("beside the project\n")
    for_the_cluster(c, proj, top, c.new_bare_repo(f"mono-{time.time_ns()}"))
    monkeypatch.chdir(proj)
    yield proj
    c.cancel_all()


def test_the_example_runs_on_slurm_at_its_commit_with_its_parameters(own_project, irq):
    assert irq("init").code == 0
    head = git(own_project, "rev-parse", "HEAD")
    assert irq("add", "lr-03", "-t", "larger", "-p", "lr=0.3", "-p", "steps=40", "--time", "5 minutes").code == 0
    assert irq("add", "lr-01", "-t", "small", "-p", "lr=0.01", "-p", "steps=40", "--seeds", "0-1",
               "--time", "5 minutes").code == 0
    for exp_id in ("lr-03", "lr-01"):  # one at a time: the array's two tasks fill the job limit of 2
        r = irq("submit", exp_id)
        assert r.code == 0 and f"{exp_id}: submitted as job" in r.out, r
        wait_states(irq, [exp_id])
        assert f"{exp_id} attempt 1: DONE" in irq("fetch").out
    train = example_train()
    rows = {x["id"]: x for x in json.loads(irq("status", "--json", "--offline").out)["experiments"]}
    assert rows["lr-03"]["state"] == rows["lr-01"]["state"] == "DONE"
    assert rows["lr-03"]["detail"].startswith("val_loss ")
    single = json.loads(irq("show", "lr-03", "--json").out)["attempts"][-1]
    expected, curve = train(0.3, 40, 0)
    assert single["git_sha"] == head and single["backend"] == "slurm:loopback"
    assert single["results"]["val_loss"] == expected["val_loss"]
    out = own_project / single["output"]
    assert [json.loads(x) for x in (out / "curve.jsonl").read_text().splitlines()] == curve
    assert json.loads((out / "params.json").read_text()) == {"lr": 0.3, "steps": 40}
    array = json.loads(irq("show", "lr-01", "--json").out)["attempts"][-1]
    assert array["git_sha"] == head
    for seed in (0, 1):
        assert array["results"][f"seed_{seed}.val_loss"] == train(0.01, 40, seed)[0]["val_loss"]
    assert subprocess.run(["git", "-C", str(own_project), "status", "--porcelain"], capture_output=True,
                          text=True, check=True).stdout.strip() == ""  # irq's files stay out of the repository


def test_a_project_in_a_subfolder_runs_from_that_folder_of_the_clone(monorepo, irq, slurm_cluster):
    assert irq("init").code == 0
    head = git(monorepo, "rev-parse", "HEAD")
    assert irq("add", "probe", "-t", "where does it run", "--command", PROBE, "--time", "5 minutes").code == 0
    check = irq("check", "probe")
    assert check.code == 0 and "experiments/irq.toml: in the commit" in check.out, check
    r = irq("submit", "probe")
    assert r.code == 0 and "probe: submitted as job" in r.out, r
    wait_states(irq, ["probe"])
    assert "probe attempt 1: DONE" in irq("fetch").out
    a = json.loads(irq("show", "probe", "--json").out)["attempts"][-1]
    assert a["git_sha"] == head and a["work_dir"] == f"{slurm_cluster.scratch}/irq-job-<job id>.<random>/experiments"
    out = monorepo / a["output"]
    cwd = (out / "cwd.txt").read_text().strip()
    assert cwd.startswith(f"{slurm_cluster.scratch}/irq-job-") and cwd.endswith("/experiments"), cwd
    assert json.loads((out / "seen.json").read_text()) == SETTINGS
    assert (out / "words.txt").read_text() == "beside the project\n"
    assert json.loads((out / "metrics.json").read_text())["steps"] == 5
