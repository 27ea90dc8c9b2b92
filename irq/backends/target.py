"""Where a job runs (this machine or one cluster) and what that implies for its script."""
from __future__ import annotations

import posixpath
import subprocess
from dataclasses import dataclass
from pathlib import Path

from irq.config import ClusterConfig, Config

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Target:
    """Where a job runs: the local machine or one cluster, with what that implies."""

    kind: str  # "local" | "slurm"
    name: str  # backend name recorded on attempts: "local" or "slurm:NAME"
    workdir: str  # absolute: runs/<run_id> live below it
    partition: str | None = None
    modules: tuple[str, ...] = ()
    module_init: str = ""
    python: str = "python"
    clone: bool = False
    repo_url: str = ""
    scratch: str = "/tmp"
    code_dir: str = ""
    array_throttle: int = 2
    python_imports: tuple[str, ...] = ()  # what the job's python must import (preflight checks it)
    # local runs of a project in git: each task runs in `git worktree add --detach` of the commit
    repo: str = ""  # the git repository's top folder ("" when the project is not in git)
    # the project's folder (irq.toml) inside its repository, e.g. "experiments" in a monorepo ("" at
    # the top): both backends run the command from this folder of the checkout or clone
    subdir: str = ""
    worktrees: str = "prune"  # [project] worktrees: "prune", "keep-failed" or "keep"
    trainer_path: str = ""  # where the bundled trainer is importable from when the code lacks it

    @classmethod
    def local(cls, config: Config, python: str) -> "Target":
        """Jobs run the project's committed code (a worktree per task) when its irq.toml is
        committed in a git repository; otherwise they run in the project's folder as it is."""
        root = config.root.resolve()
        top = git_toplevel(root) if config.path is not None and committed(root, config.path.name) else None
        return cls(kind="local", name="local", workdir=str(config.resolve(config.local.workdir).resolve()),
                   python=config.local.python or python, code_dir=str(root), array_throttle=config.local.slots,
                   repo=str(top or ""), subdir=subdir_of(root, top) if top else "",
                   worktrees=config.project.worktrees, trainer_path=str(REPO_ROOT))

    @property
    def worktree_root(self) -> str:
        """Where local checkouts of recorded commits go: the project's .irq/worktrees."""
        return f"{self.code_dir}/.irq/worktrees"

    def work_dir(self, run_id: str, array: bool = False) -> str:
        """Where the command runs, as the attempt records it: the clone or checkout of the commit
        (its `subdir` when irq.toml is below the repository's top), or the project's folder itself.
        A local checkout is named by the run (one per task of an array), as the job script makes it."""
        top = (f"{self.scratch}/irq-job-<job id>.<random>" if self.clone else
               f"{self.worktree_root}/{run_id}" + ("_<task>" if array else "") if self.repo else "")
        if not top:
            return self.code_dir
        return f"{top}/{self.subdir}" if self.subdir else top

    @classmethod
    def cluster(cls, c: ClusterConfig, subdir: str = "") -> "Target":
        """Jobs clone repo_url at the commit and run from `subdir` of the clone (project_subdir)."""
        return cls(kind="slurm", name=f"slurm:{c.name}", workdir=c.workdir, partition=c.partition,
                   modules=tuple(c.modules), module_init=c.module_init, python=c.python, clone=True,
                   repo_url=c.repo_url, scratch=c.scratch, array_throttle=c.job_limit or 2,
                   python_imports=tuple(c.python_imports), subdir=subdir)

    def in_checkout(self, path: str) -> str:
        """Where `path` (relative to the project's folder) is in the job's checkout or clone: the
        top of the repository is where a clone starts, and the project may be a folder below it."""
        return posixpath.normpath(f"{self.subdir}/{path}") if self.subdir else path


def subdir_of(root: Path, top: Path) -> str:
    """`root` relative to the repository's top `top`, as a POSIX path; "" when they are the same."""
    rel = root.relative_to(top).as_posix()
    return "" if rel == "." else rel


def project_subdir(root: Path) -> str:
    """The project's folder (the one holding irq.toml) inside its git repository: "" at the top of
    the repository, or when the folder is not in git at all."""
    root = root.resolve()
    top = git_toplevel(root)
    return subdir_of(root, top) if top is not None else ""


def git_toplevel(path: Path) -> Path | None:
    """The top folder of the git repository holding `path`, or None outside git."""
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return Path(out.stdout.strip()).resolve() if out.returncode == 0 and out.stdout.strip() else None


def committed(folder: Path, name: str) -> bool:
    """Whether `folder/name` is part of the commit checked out at `folder` (HEAD)."""
    try:
        out = subprocess.run(["git", "-C", str(folder), "rev-parse", "--verify", "-q", f"HEAD:./{name}"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0
