"""Git facts about the code a job runs: the commit, whether the tree is dirty, config paths inside the repository."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from irq import errors
from irq.backends.target import Target
from irq.config import Config
from irq.ledger.models import Experiment


def git_sha(path: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def in_repository(path: Path) -> bool:
    """Whether `path` is inside a git work tree (with or without a commit yet)."""
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "--is-inside-work-tree"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == "true"


def git_dirty(path: Path) -> bool:
    out = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                         capture_output=True, text=True, timeout=10)
    return out.returncode == 0 and bool(out.stdout.strip())


def dirty_files(path: Path) -> list[str]:
    """Tracked files changed since the last commit (the run will not see these changes), as
    porcelain names them: relative to the repository's top."""
    try:
        out = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line[3:] for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def check_code(config: Config, target: Target, sha: str) -> str | None:
    """Whether the code to run is known: a project in git has an irq.toml; a dirty tree is a
    warning (the run uses the commit, not the changes) or, with [project] dirty = "refuse", refused."""
    root = config.root
    head = git_sha(root)
    in_git = head is not None
    if target.kind == "local" and not in_git and in_repository(root):  # `git init`, nothing committed yet
        msg = (f"the repository at {root} has no commit yet: the run uses the folder as it is, and no "
               "commit is recorded")
        if config.project.dirty == "refuse":
            raise errors.PreflightFailed(msg, "commit your code and submit again")
        return msg + " (commit your code to run committed code)"
    if target.kind == "local" and in_git and not target.repo:
        if config.path is None:
            raise errors.PreflightFailed(f"no irq.toml in the repository at {root}: irq does not know which "
                                         "project's code to run", "`irq init` at the project's top, commit irq.toml")
        return (f"{config.path.name} is not committed in the repository at {root}: the run uses the folder "
                "as it is, and no commit is recorded (commit irq.toml to run committed code)")
    every = dirty_files(root) if in_git and sha == head else []
    # irq.toml is read from the working tree by irq itself: its [project] command and settings are this run's
    toml = target.in_checkout(config.path.name) if config.path is not None else None
    files = [f for f in every if f != toml]
    said = ([f"uncommitted changes to {config.path.name} are used: irq reads it from your working tree "
             "(its [project] command and settings apply to this run; commit it to keep them with the code)"]
            if config.path is not None and len(every) > len(files) else [])
    if every and config.project.dirty == "refuse":  # irq.toml's changes too: nothing uncommitted runs
        names = ", ".join(every[:8]) + (f" and {len(every) - 8} more" if len(every) > 8 else "")
        raise errors.PreflightFailed(f"uncommitted changes (the run is commit {sha[:12]}): {names}",
                                     'commit them and submit again (or set [project] dirty = "warn")')
    if not files:
        return "; ".join(said) or None
    names = ", ".join(files[:8]) + (f" and {len(files) - 8} more" if len(files) > 8 else "")
    return "; ".join([f"uncommitted changes are not part of the run (it runs commit {sha[:12]}): {names}", *said])


def target_sha(config: Config, target: Target) -> str:
    if target.kind == "local" and not target.repo:
        return "unknown"  # runs in place: no commit pins it
    root = Path(target.code_dir) if target.kind == "local" else config.root
    sha = git_sha(root)
    if sha is None:
        if target.kind == "local":
            return "unknown"
        raise errors.PreflightFailed(f"{root} is not a git repository: jobs clone a pinned commit",
                                     "run irq from your project's git checkout")
    return sha


def config_in_repo(exp: Experiment, config: Config, target: Target) -> Experiment:
    """A config path as the job sees it: relative to the project's folder, where the job runs in
    its checkout (a folder above it, `../shared/c.json`, when the file is elsewhere in the repository)."""
    if not exp.config_path:
        return exp
    p = Path(exp.config_path)
    base = (Path(target.code_dir) if target.kind == "local" else config.root).resolve()
    top = base.parents[len(Path(target.subdir).parts) - 1] if target.subdir else base
    if p.is_absolute():
        try:
            p.resolve().relative_to(top)
        except ValueError:
            if target.kind == "local":
                return exp
            raise errors.PreflightFailed(f"{exp.id}'s config {p} is outside the repository the job clones",
                                         "keep trainer configs inside the repository") from None
        exp = exp.model_copy(update={"config_path": os.path.relpath(p.resolve(), base)})
    return exp


def missing_from_commit(root: Path, sha: str | None, module: str) -> str | None:
    """The Python file or package of a module that sits in the project folder but not in the
    commit that ran (untracked, never committed): its path relative to `root`, else None. A folder
    that is no package (wandb's run logs in ./wandb) or a path git ignores is not code left out."""
    top = module.split(".")[0]
    pkg = root / top
    found = [p for p in (root / f"{top}.py",) if p.is_file()] + (
        [pkg] if pkg.is_dir() and ((pkg / "__init__.py").is_file() or any(pkg.glob("*.py"))) else [])
    if not found or not sha or sha == "unknown":
        return None
    rel = found[0].relative_to(root).as_posix()
    try:
        ignored = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", "--", rel], capture_output=True,
                                 timeout=10).returncode == 0
        out = subprocess.run(["git", "-C", str(root), "ls-tree", "--name-only", sha, "--", rel],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return rel if not ignored and out.returncode == 0 and not out.stdout.strip() else None
