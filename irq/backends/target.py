"""Where a job runs (this machine or one cluster) and what that implies for its script."""
from __future__ import annotations

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

    @classmethod
    def local(cls, config: Config, python: str) -> "Target":
        return cls(kind="local", name="local", workdir=str(config.resolve(config.local.workdir).resolve()),
                   python=config.local.python or python, code_dir=str(REPO_ROOT),
                   array_throttle=config.local.slots)

    @classmethod
    def cluster(cls, c: ClusterConfig) -> "Target":
        return cls(kind="slurm", name=f"slurm:{c.name}", workdir=c.workdir, partition=c.partition,
                   modules=tuple(c.modules), module_init=c.module_init, python=c.python, clone=True,
                   repo_url=c.repo_url, scratch=c.scratch, array_throttle=c.job_limit or 2,
                   python_imports=tuple(c.python_imports))
