"""A project in a subfolder of its repository (a monorepo: irq.toml in `repo/experiments/`): the
command runs from that folder of the checkout, on this machine (a git worktree of the commit) and on
a cluster (a clone of the commit), so its relative paths mean what they mean in the user's tree."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from irq.backends.registry import Backends
from irq.backends.target import Target, project_subdir
from irq.config import ClusterConfig, load_config
from irq.errors import PreflightFailed
from irq.jobs.git import config_in_repo
from irq.jobs.jobscript import build_job
from irq.jobs.preflight import remote_checks
from irq.ledger.models import Experiment
from irq.policy.diagnose import diagnose
from tests.test_own_script import EXAMPLE, attempt, git, run_all

# what the probe's command reads and writes, all relative to the project's folder
PROBE = ("pwd > {run_dir}/cwd.txt && cp conf/settings.json {run_dir}/seen.json && "
         "cp ../shared/words.txt {run_dir}/words.txt && python train.py --steps 5 --out {run_dir}")
SETTINGS = {"greeting": "committed"}


def cluster(**kw) -> ClusterConfig:
    return ClusterConfig(**{"name": "here", "host": "h", "repo_url": "/srv/mono.git", "workdir": "/w", **kw})


@pytest.fixture
def monorepo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with the example in `experiments/`, its config in `experiments/conf/` and a file
    beside the project in `shared/`; irq runs from `experiments/`. Returns the repository's top."""
    top = tmp_path / "mono"
    proj = top / "experiments"
    shutil.copytree(EXAMPLE, proj, ignore=shutil.ignore_patterns("__pycache__", ".irq", "results", "queue.db*"))
    (proj / "conf").mkdir()
    (proj / "conf" / "settings.json").write_text(json.dumps(SETTINGS))
    (top / "shared").mkdir()
    (top / "shared" / "words.txt").write_text("beside the project\n")
    (top / "README").write_text("a monorepo\n")
    git(top, "init", "-q")
    git(top, "add", ".")
    git(top, "commit", "-qm", "a monorepo with a project in experiments/")
    monkeypatch.chdir(proj)
    return top


def test_project_subdir_is_the_folder_of_irq_toml_inside_the_repository(monorepo, tmp_path):
    assert project_subdir(monorepo / "experiments") == "experiments"
    assert project_subdir(monorepo) == ""
    outside = tmp_path / "not-in-git"
    outside.mkdir()
    assert project_subdir(outside) == ""


def test_local_runs_use_the_project_folder_of_the_worktree(monorepo, irq):
    proj = monorepo / "experiments"
    assert irq("init").code == 0
    (proj / "conf" / "settings.json").write_text('{"greeting": "not committed"}')  # the run reads the commit
    assert irq("add", "probe", "-t", "where does it run", "--command", PROBE).code == 0
    assert irq("add", "lr-01", "-t", "the example's own command", "-p", "lr=0.1", "-p", "steps=10",
               "--seeds", "0-1").code == 0
    rows = run_all(irq)
    assert {i: r["state"] for i, r in rows.items()} == {"probe": "DONE", "lr-01": "DONE"}, rows
    a = attempt(irq, "probe")
    out = proj / a["output"]
    cwd = (out / "cwd.txt").read_text().strip()
    assert cwd.startswith(f"{proj}/.irq/worktrees/") and cwd.endswith("/experiments")
    assert json.loads((out / "seen.json").read_text()) == SETTINGS
    assert (out / "words.txt").read_text() == "beside the project\n"
    assert a["work_dir"] == f"{proj}/.irq/worktrees/{a['run_id']}/experiments" == cwd  # where it ran, exactly
    assert a["git_sha"] == git(monorepo, "rev-parse", "HEAD")
    assert all((proj / attempt(irq, "lr-01")["output"] / f"seed_{s}" / "metrics.json").exists() for s in (0, 1))


def cluster_config(proj: Path, bare: Path, scratch: Path) -> None:
    toml = proj / "irq.toml"
    toml.write_text(toml.read_text() + f"""
[clusters.here]
host = "login.example.edu"
repo_url = "{bare}"
workdir = "{scratch.parent / 'work'}"
scratch = "{scratch}"
""")


def run_script(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """The cluster's job script, run by bash on this machine as slurmd would run it (job 7)."""
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    return subprocess.run(["bash", str(path)], capture_output=True, text=True, check=False, cwd=tmp_path,
                          env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "SLURM_JOB_ID": "7"})


def test_cluster_jobs_run_from_the_same_folder_of_their_clone(monorepo, tmp_path):
    proj, bare, scratch = monorepo / "experiments", tmp_path / "mono.git", tmp_path / "scratch"
    cluster_config(proj, bare, scratch)
    git(monorepo, "commit", "-qam", "a cluster")
    subprocess.run(["git", "clone", "-q", "--bare", str(monorepo), str(bare)], check=True)
    config = load_config(proj / "irq.toml")
    target = Backends(config).target("slurm:here")
    assert target.subdir == "experiments" and target.work_dir("r") == f"{scratch}/irq-job-<job id>.<random>/experiments"
    exp = Experiment(id="probe", seq=1, title="t", command=PROBE.replace("python ", f"{sys.executable} "))
    req, _ = build_job(exp, token="irq-0", attempt=1, target=target, git_sha=git(monorepo, "rev-parse", "HEAD"),
                       run_id="r1")
    p = run_script(req.script, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    out = Path(req.run_dir)
    assert re.fullmatch(rf"{re.escape(str(scratch))}/irq-job-7\.\w{{6}}/experiments", (out / "cwd.txt").read_text().strip())
    assert json.loads((out / "seen.json").read_text()) == SETTINGS
    assert (out / "words.txt").read_text() == "beside the project\n"
    assert (out / "metrics.json").exists()
    assert not list(scratch.glob("irq-job-7*"))  # the clone is removed after the run


def test_a_project_folder_missing_from_the_commit_is_the_root_cause(monorepo, tmp_path):
    bare, scratch = tmp_path / "mono.git", tmp_path / "scratch"
    subprocess.run(["git", "clone", "-q", "--bare", str(monorepo), str(bare)], check=True)
    cfg = cluster(repo_url=str(bare), workdir=str(tmp_path / "work"), scratch=str(scratch))
    exp = Experiment(id="x-1", seq=1, title="t", command="echo hi > {run_dir}/hi.txt")
    req, _ = build_job(exp, token="irq-0", attempt=1, target=Target.cluster(cfg, subdir="new project"),
                       git_sha=git(monorepo, "rev-parse", "HEAD"), run_id="r1")
    p = run_script(req.script, tmp_path)
    assert p.returncode == 4
    assert f"irq: folder new project not found in commit {git(monorepo, 'rev-parse', 'HEAD')} of {bare}" in p.stderr
    d = diagnose("FAILED", 4, p.stdout + p.stderr)
    assert d.pattern == "project_folder_missing" and "new project" in d.root_cause and "commit, push" in d.fix
    assert not list(scratch.glob("irq-job-7*"))


class RecordingBackend:
    """Answers preflight's remote script as a cluster whose clone lacks every file but irq.toml."""

    def __init__(self) -> None:
        self.args: list[str] = []

    def run_check(self, script, args, calls=()):
        self.args = list(args)
        files = args[8 + int(args[7]):]
        lines = ["COMMIT|ok"] + [f"FILE|{f}|{'blob' if f.endswith('irq.toml') else 'missing'}" for f in files]
        return 0, "\n".join(lines) + "\n", ""


def test_preflight_looks_for_the_files_in_the_project_folder_of_the_commit():
    cfg = cluster(python_imports=[])
    exp = Experiment(id="Q-1", seq=1, title="t", config_path="conf/settings.json")
    backend = RecordingBackend()
    checks = {c.name: c for c in remote_checks(exp, Target.cluster(cfg, subdir="experiments"), "abc", backend, "python")}
    assert backend.args[-3:] == ["experiments/trainer/__main__.py", "experiments/conf/settings.json",
                                 "experiments/irq.toml"]
    assert checks["file experiments/irq.toml"].ok
    assert not checks["file experiments/conf/settings.json"].ok
    assert checks["file experiments/trainer/__main__.py"].fix.startswith("on a cluster the bundled trainer runs from your repository")


def test_a_config_path_is_relative_to_the_project_folder_the_job_runs_from(monorepo, tmp_path):
    proj = monorepo / "experiments"
    config = load_config(proj / "irq.toml")
    for target in (Target.local(config, "python"), Target.cluster(cluster(), subdir="experiments")):
        def seen(path: Path | str, target=target) -> str:
            exp = Experiment(id="Q-1", seq=1, title="t", config_path=str(path))
            return config_in_repo(exp, config, target).config_path

        assert seen(proj / "conf" / "settings.json") == "conf/settings.json"
        assert seen(monorepo / "shared" / "words.txt") == "../shared/words.txt"  # in the repository, beside
        assert seen("conf/settings.json") == "conf/settings.json"
    with pytest.raises(PreflightFailed, match="outside the repository"):
        config_in_repo(Experiment(id="Q-1", seq=1, title="t", config_path=str(tmp_path / "elsewhere.json")),
                       config, Target.cluster(cluster(), subdir="experiments"))



def test_a_leftover_folder_of_an_earlier_job_with_the_same_id_does_not_block_the_clone(monorepo, tmp_path):
    """Job ids start again at 1 after a scheduler's state is reset (and wrap at MaxJobId): the
    clone of job 7 must not land on what an earlier job 7 left in the scratch folder."""
    proj, bare, scratch = monorepo / "experiments", tmp_path / "mono.git", tmp_path / "scratch"
    cluster_config(proj, bare, scratch)
    git(monorepo, "commit", "-qam", "a cluster")
    subprocess.run(["git", "clone", "-q", "--bare", str(monorepo), str(bare)], check=True)
    (scratch / "irq-job-7").mkdir(parents=True)
    (scratch / "irq-job-7" / "left.txt").write_text("an earlier job 7's clone, killed before it cleaned up\n")
    target = Backends(load_config(proj / "irq.toml")).target("slurm:here")
    exp = Experiment(id="probe", seq=1, title="t", command=PROBE.replace("python ", f"{sys.executable} "))
    req, _ = build_job(exp, token="irq-0", attempt=1, target=target, git_sha=git(monorepo, "rev-parse", "HEAD"),
                       run_id="r1")
    p = run_script(req.script, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (Path(req.run_dir) / "metrics.json").exists()
    assert [f.name for f in scratch.iterdir()] == ["irq-job-7"]  # the leftover is not irq's to remove
    assert (scratch / "irq-job-7" / "left.txt").exists()
