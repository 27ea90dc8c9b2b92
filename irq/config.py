"""irq.toml: where the ledger lives, the local backend, the clusters.

Found by walking up from the working directory; a user-level file
(``~/.config/irq/config.toml`` or ``$IRQ_USER_CONFIG``) supplies defaults that the project
file overrides. Validated on load: an unknown key or a wrong type names the file, the key and
the valid keys.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from irq import errors

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FILENAME = "irq.toml"


@dataclass(frozen=True)
class LocalConfig:
    slots: int = 2  # jobs run at once on this machine
    workdir: str = ".irq/local"  # job scripts, logs, run dirs (relative to the project root)
    python: str = ""  # interpreter for the trainer; empty: the one running irq


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    host: str  # a host name or an alias from ~/.ssh/config
    repo_url: str  # what jobs clone (at the pinned SHA)
    workdir: str  # run dirs and logs live here (remote path)
    scratch: str = "/tmp"  # per-job clones: SCRATCH/irq-job-$SLURM_JOB_ID
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    known_hosts: str | None = None  # default: ~/.ssh/known_hosts
    ssh_config: str | None = None  # default: ~/.ssh/config
    partition: str | None = None
    modules: list[str] = field(default_factory=list)
    module_init: str = ""  # e.g. "source /etc/profile.d/lmod.sh": makes `module` exist in jobs
    python: str = "python"
    job_limit: int | None = None  # None: read MaxSubmitJobsPerUser from sacctmgr
    poll_interval: int = 60
    connect_timeout: float = 15.0
    allow_keyboard_interactive: bool = True  # passwords and one-time codes (two-factor)


@dataclass(frozen=True)
class DaemonConfig:
    interval: int = 60  # seconds between cycles (the minimum; backoff stretches it)
    max_interval: int = 600  # backoff ceiling while nothing changes or the cluster is down


@dataclass(frozen=True)
class ProjectConfig:
    metric: str = "val_mse"  # the headline metric: status, show, fetch, export, results, report
    goal: str = "min"  # "min": lower is better; "max": higher is better
    command: str = ""  # what an experiment runs when it names no --command; "" = the bundled trainer
    require_metrics: bool = True  # an attempt is DONE only with a valid metrics.json (docs/run-contract.md)
    dirty: str = "warn"  # uncommitted changes at submit: "warn" (name them) or "refuse"
    worktrees: str = "prune"  # local checkouts: "prune" after the run, "keep-failed", or "keep"


CHOICES = {"goal": ("min", "max"), "dirty": ("warn", "refuse"), "worktrees": ("prune", "keep-failed", "keep")}


@dataclass(frozen=True)
class Config:
    path: Path | None
    root: Path
    backend: str = "local"  # "local" or a cluster name
    export: str | None = None  # queue.md re-exported after every daemon change
    local: LocalConfig = field(default_factory=LocalConfig)
    clusters: dict[str, ClusterConfig] = field(default_factory=dict)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    project: ProjectConfig = field(default_factory=ProjectConfig)

    def cluster(self, name: str | None = None) -> ClusterConfig:
        name = name or self.backend
        if name not in self.clusters:
            known = ", ".join(self.clusters) or "none configured"
            raise errors.ConfigError(f"no cluster {name!r} in {self.path or FILENAME} (known: {known})")
        return self.clusters[name]

    def resolve(self, p: str) -> Path:
        q = Path(os.path.expanduser(p))
        return q if q.is_absolute() else self.root / q


TOP_KEYS = {"backend", "export", "local", "clusters", "daemon", "project"}


def find_config(start: Path | None = None) -> Path | None:
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / FILENAME).is_file():
            return d / FILENAME
    return None


def user_config_path() -> Path:
    return Path(os.environ.get("IRQ_USER_CONFIG") or Path.home() / ".config" / "irq" / "config.toml")


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise errors.ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise errors.ConfigError(f"{path}: not valid TOML: {exc}") from None


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(explicit: Path | None = None, start: Path | None = None) -> Config:
    data: dict[str, Any] = {}
    user = user_config_path()
    sources: list[Path] = []
    if user.is_file():
        data = _read(user)
        sources.append(user)
    path = explicit or find_config(start)
    if explicit is not None and not explicit.is_file():
        raise errors.ConfigError(f"{explicit}: no such config file")
    if path is not None:
        data = _merge(data, _read(path))
        sources.append(path)
    where = str(path or user)
    _check_keys(data, TOP_KEYS, where, "")
    local = _build(LocalConfig, data.get("local", {}), where, "local")
    daemon = _build(DaemonConfig, data.get("daemon", {}), where, "daemon")
    project = _build(ProjectConfig, data.get("project", {}), where, "project")
    for key, allowed in CHOICES.items():
        if getattr(project, key) not in allowed:
            raise errors.ConfigError(f"{where}: [project] {key} = {getattr(project, key)!r} must be "
                                     + " or ".join(f'"{a}"' for a in allowed))
    clusters: dict[str, ClusterConfig] = {}
    raw_clusters = data.get("clusters", {})
    if not isinstance(raw_clusters, dict):
        raise errors.ConfigError(f"{where}: 'clusters' must be a table of [clusters.NAME] tables")
    for name, raw in raw_clusters.items():
        clusters[name] = _build(ClusterConfig, {**raw, "name": name}, where, f"clusters.{name}")
    backend = data.get("backend", "local")
    if backend != "local" and backend not in clusters:
        raise errors.ConfigError(f"{where}: backend = {backend!r} names no [clusters.{backend}] table",
                                 "set backend = \"local\" or add the cluster")
    root = path.parent if path else Path.cwd()
    return Config(path=path, root=root, backend=backend, export=data.get("export"),
                  local=local, clusters=clusters, daemon=daemon, project=project)


def _check_keys(data: dict, valid: set[str], where: str, section: str) -> None:
    for k in data:
        if k not in valid:
            name = f"{section}.{k}" if section else k
            raise errors.ConfigError(
                f"{where}: unknown key {name!r}", "valid keys" + (f" in [{section}]" if section else "") +
                ": " + ", ".join(sorted(valid)),
            )


def _build(cls: type, raw: Any, where: str, section: str) -> Any:
    if not isinstance(raw, dict):
        raise errors.ConfigError(f"{where}: [{section}] must be a table")
    valid = {f.name for f in fields(cls)} - ({"name"} if section.startswith("clusters.") else set())
    _check_keys({k: v for k, v in raw.items() if k != "name"}, valid, where, section)
    kwargs = {}
    for f in fields(cls):
        if f.name not in raw:
            continue
        v = raw[f.name]
        want = str(f.type)
        ok = (
            ("int" in want and isinstance(v, int) and not isinstance(v, bool))
            or ("float" in want and isinstance(v, (int, float)) and not isinstance(v, bool))
            or ("bool" in want and isinstance(v, bool))
            or ("str" in want and "list" not in want and isinstance(v, str))
            or ("list" in want and isinstance(v, list) and all(isinstance(i, str) for i in v))
            or (v is None and "None" in want)
        )
        if not ok:
            raise errors.ConfigError(f"{where}: [{section}] {f.name} = {v!r} has the wrong type (expected {want})")
        kwargs[f.name] = v
    missing = [f.name for f in fields(cls) if f.name not in kwargs and f.default is f.default_factory is _MISSING]
    if missing:
        raise errors.ConfigError(f"{where}: [{section}] needs {', '.join(missing)}")
    return cls(**kwargs)


from dataclasses import MISSING as _MISSING  # noqa: E402

DEFAULT_CONFIG = '''\
# irq configuration. irq reads the irq.toml in this folder or the nearest parent folder,
# on top of ~/.config/irq/config.toml. Every key is optional; shown are the defaults.

# Where jobs go: "local" (this machine, no cluster needed) or the name of a [clusters.NAME].
backend = "local"

# Re-export queue.md here after every change the daemon makes (omit to skip).
# export = "docs/queue.md"

[local]
# slots = 2                  # jobs run at once on this machine
# workdir = ".irq/local"     # job scripts, logs and run directories
# python = ""                # interpreter for the trainer ("" = the one running irq)

[project]
# command = "python train.py --lr {lr} --seed {seed} --out {run_dir}"   # "" = the bundled trainer
# metric = "val_mse"         # the headline metric: status, show, fetch, export, results, report
# goal = "min"               # "min": lower is better, "max": higher is better
# require_metrics = true     # DONE needs a valid metrics.json (docs/run-contract.md)
# dirty = "warn"             # uncommitted changes at submit: "warn" (name them) or "refuse"
# worktrees = "prune"        # local checkouts of the commit: "prune", "keep-failed" or "keep"

[daemon]
# interval = 60              # seconds between cycles: the least it waits
# max_interval = 600         # backoff ceiling while nothing changes

# A SLURM cluster reached over SSH:
# [clusters.fasrc]
# host = "login.rc.example.edu"          # or an alias from ~/.ssh/config (HostName, User, Port,
#                                        # IdentityFile and ProxyJump are honoured)
# user = "me"
# repo_url = "git@github.com:me/research-repo.git"   # jobs clone this at the pinned git SHA
# workdir = "/n/home03/me/irq"           # run directories and job logs
# scratch = "/n/scratch/me"              # per-job clones: SCRATCH/irq-job-$SLURM_JOB_ID
# partition = "gpu_test"
# modules = ["python/3.10.13-fasrc01", "cuda/11.8.0-fasrc01"]
# module_init = "source /etc/profile.d/lmod.sh"      # if batch shells lack `module`
# python = "python"
# job_limit = 2                          # omit: read MaxSubmitJobsPerUser from sacctmgr
# poll_interval = 60
'''


def write_default_config(path: Path) -> Path | None:
    if path.exists():
        return None
    path.write_text(DEFAULT_CONFIG, encoding="utf-8")
    return path
