"""irq.toml: where the ledger lives, the local backend, the clusters.

Found by walking up from the working directory; a user-level file
(``~/.config/irq/config.toml`` or ``$IRQ_USER_CONFIG``) supplies defaults that the project
file overrides. Read into pydantic dataclasses with types and ranges, strictly (``slots = "2"``
is refused, not guessed): an unknown key, a wrong type or a value out of range names the file,
the key, what is allowed, and points to docs/configuration.md. To add a key, add a field with
its type, range and default below and a line to docs/configuration.md (a test checks both).
"""
from __future__ import annotations

import os
from dataclasses import dataclass as dataclass_std
from dataclasses import field, fields
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
)
from pydantic.dataclasses import dataclass

from irq import errors
from irq.config_files import (  # noqa: F401  (find_config, user_config_path: irq.config's API)
    DEFAULT_METRIC,
    DOCS,
    FILENAME,
    config_data,
    find_config,
    user_config_path,
)

STRICT = ConfigDict(extra="forbid", frozen=True)


def _one_line(v: str) -> str:
    if "\n" in v or "\r" in v or "\x00" in v:
        raise ValueError("must be one line (no newline)")
    return v


def _sbatch_safe(v: str) -> str:
    """It lands on an `#SBATCH` line: no quotes, no newline, no spaces."""
    _one_line(v)
    if any(ch in v for ch in "\"'` \t;$\\"):
        raise ValueError("may not hold quotes, spaces, ';', '$' or backslashes (it goes on an #SBATCH line)")
    return v


def _path(v: str) -> str:
    _one_line(v)
    if not v.strip():
        raise ValueError("must be a path, not empty")
    return v


Text = Annotated[str, Strict()]
Line = Annotated[str, Strict(), AfterValidator(_one_line)]
PathStr = Annotated[str, Strict(), AfterValidator(_path)]
SbatchStr = Annotated[str, Strict(), AfterValidator(_sbatch_safe)]
Count = Annotated[int, Strict(), Field(ge=1)]
Seconds = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]  # inf: a daemon that never wakes


@dataclass(config=STRICT)
class LocalConfig:
    slots: Count = 2  # jobs run at once on this machine
    workdir: PathStr = ".irq/local"  # job scripts, logs, run dirs (relative to the project root)
    python: Line = ""  # interpreter for the trainer; empty: the one running irq


@dataclass(config=STRICT)
class ClusterConfig:
    name: SbatchStr
    host: SbatchStr  # a host name or an alias from ~/.ssh/config
    repo_url: Line  # what jobs clone (at the pinned SHA)
    workdir: PathStr  # run dirs and logs live here (remote path)
    scratch: PathStr = "/tmp"  # per-job clones: SCRATCH/irq-job-$SLURM_JOB_ID.XXXXXX
    user: SbatchStr | None = None
    port: Annotated[int, Strict(), Field(ge=1, le=65535)] | None = None
    identity_file: PathStr | None = None
    known_hosts: PathStr | None = None  # default: ~/.ssh/known_hosts
    ssh_config: PathStr | None = None  # default: ~/.ssh/config
    partition: SbatchStr | None = None
    modules: list[Line] = field(default_factory=list)  # loaded shell-quoted, one per line
    module_init: Line = ""  # e.g. "source /etc/profile.d/lmod.sh": makes `module` exist in jobs
    python: Line = "python"
    job_limit: Count | None = None  # None: read MaxSubmitJobsPerUser from sacctmgr
    poll_interval: Seconds = 60
    connect_timeout: Seconds = 15.0
    allow_keyboard_interactive: Annotated[bool, Strict()] = True  # passwords and one-time codes (two-factor)
    # preflight: the job's python must import these (the bundled trainer needs torch and numpy)
    python_imports: list[Line] = field(default_factory=lambda: ["torch", "numpy"])
    # "openssh": the user's `ssh` through one master connection (`irq login`), ~/.ssh/config as is;
    # "paramiko": irq's built-in client, one login per command or daemon cycle
    transport: Literal["openssh", "paramiko"] = "openssh"


@dataclass(config=STRICT)
class DaemonConfig:
    interval: Seconds = 60  # seconds between cycles while work waits or runs
    max_interval: Seconds = 600  # backoff ceiling while the cluster does not answer


@dataclass(config=STRICT)
class ProjectConfig:
    metric: Annotated[str, Strict(), Field(min_length=1), AfterValidator(_one_line)] = DEFAULT_METRIC  # the headline metric
    goal: Literal["min", "max"] = "min"  # "min": lower is better; "max": higher is better
    # what an experiment runs when it names no --command; "" = the bundled trainer (docs/own-script.md)
    command: Annotated[str, Strict(), AfterValidator(_one_line)] = ""
    require_metrics: Annotated[bool, Strict()] = True  # DONE only with a valid metrics.json (docs/run-contract.md)
    dirty: Literal["warn", "refuse"] = "warn"  # uncommitted changes at submit: name them, or hold the experiment
    worktrees: Literal["prune", "keep-failed", "keep"] = "prune"  # local checkouts of the recorded commit


@dataclass(config=STRICT)
class FileConfig:
    """One irq.toml (merged over the user's file), as written."""

    backend: SbatchStr = "local"
    export: PathStr | None = None
    local: LocalConfig = field(default_factory=LocalConfig)
    clusters: dict[str, ClusterConfig] = field(default_factory=dict)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    project: ProjectConfig = field(default_factory=ProjectConfig)


@dataclass_std(frozen=True)
class Config:
    path: Path | None
    root: Path
    backend: str = "local"  # "local" or a cluster name
    export: str | None = None  # queue.md re-exported after every command (and daemon cycle) that changes the ledger
    local: LocalConfig = field(default_factory=LocalConfig)
    clusters: dict[str, ClusterConfig] = field(default_factory=dict)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    project: ProjectConfig = field(default_factory=ProjectConfig)

    def cluster(self, name: str | None = None) -> ClusterConfig:
        name = name or self.backend
        if name not in self.clusters:
            known = ", ".join(self.clusters) or "none configured"
            if name == "local":  # the default backend: this machine, reached without a login
                raise errors.UsageError(
                    "the backend is local (this machine): no cluster to log in to, out of or trust",
                    f"name one of irq.toml's [clusters.NAME] tables (known: {known}); docs/clusters.md shows how to add one")
            raise errors.ConfigError(f"no cluster {name!r} in {self.path or FILENAME} (known: {known})",
                                     f"add a [clusters.{name}] table to irq.toml; see {DOCS}")
        return self.clusters[name]

    def backend_name(self, name: str | None) -> str:
        """`local`, `slurm:NAME`, or a bare cluster NAME (irq.toml's form) as `slurm:NAME`."""
        if not name:
            return "local" if self.backend == "local" else f"slurm:{self.backend}"
        if name == "slurm:":
            known = ", ".join(f"slurm:{c}" for c in self.clusters) or "none configured"
            raise errors.UsageError("--backend slurm: names no cluster", f"e.g. --backend slurm:NAME (known: {known})")
        if name == "local" or (name.startswith("slurm:") and name[6:] in self.clusters):
            return name
        if name in self.clusters:
            return f"slurm:{name}"
        known = ", ".join(["local", *(f"slurm:{c}" for c in self.clusters)])
        raise errors.UsageError(f"unknown backend {name!r}", f"use one of: {known} (clusters are [clusters.NAME] "
                                f"tables in irq.toml; see {DOCS})")

    def resolve(self, p: str) -> Path:
        q = Path(os.path.expanduser(p))
        return q if q.is_absolute() else self.root / q


TOP_KEYS = {f.name for f in fields(FileConfig)}
SECTIONS = {"local": LocalConfig, "daemon": DaemonConfig, "project": ProjectConfig, "clusters": ClusterConfig}


def load_config(explicit: Path | None = None, start: Path | None = None) -> Config:
    data, path = config_data(explicit, start)
    where = str(path or user_config_path())
    parsed = parse(data, where)
    if parsed.backend != "local" and parsed.backend not in parsed.clusters:
        raise errors.ConfigError(f"{where}: backend = {parsed.backend!r} names no [clusters.{parsed.backend}] table",
                                 f"set backend = \"local\" or add the cluster; see {DOCS}")
    return Config(path=path, root=path.parent if path else Path.cwd(), backend=parsed.backend,
                  export=parsed.export, local=parsed.local, clusters=dict(parsed.clusters),
                  daemon=parsed.daemon, project=parsed.project)


def parse(data: dict[str, Any], where: str = FILENAME) -> FileConfig:
    """A TOML document as a FileConfig; the first problem as a ConfigError in the user's words."""
    clusters = data.get("clusters")
    if isinstance(clusters, dict):  # a cluster's name is its table's name
        data = {**data, "clusters": {n: ({**c, "name": n} if isinstance(c, dict) else c)
                                     for n, c in clusters.items()}}
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise _config_error(exc.errors(), where) from None


def _config_error(errs: list[Any], where: str) -> errors.ConfigError:
    err = errs[0]
    loc = [str(p) for p in err["loc"]]
    key, section = loc[-1], loc[:-1]
    table = ".".join(section)
    head = f"{where}: [{table}] {key}" if section else f"{where}: {key}"
    kind, value = err["type"], err.get("input")
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        name = ".".join(loc)
        cls = SECTIONS.get(section[0]) if section else None
        valid = sorted(f.name for f in fields(cls or FileConfig)) if (cls or not section) else []
        valid = [v for v in valid if v != "name" or cls is not ClusterConfig]
        scope = f" in [{table}]" if section else ""
        return errors.ConfigError(f"{where}: unknown key {name!r}",
                                  f"valid keys{scope}: {', '.join(valid)}; see {DOCS}")
    if kind == "missing":
        table_name = ".".join(loc[:-1])
        missing = [str(e["loc"][-1]) for e in errs if e["type"] == "missing" and e["loc"][:-1] == err["loc"][:-1]]
        return errors.ConfigError(f"{where}: [{table_name}] needs {', '.join(missing)}",
                                  f"see {DOCS} for what each key means")
    if kind.startswith(("dataclass", "dict")):
        return errors.ConfigError(f"{where}: [{'.'.join(loc)}] must be a table",
                                  f"write it as a [{'.'.join(loc)}] table of key = value lines; see {DOCS}")
    if kind.endswith(("_type", "_parsing")):
        base = kind.removesuffix("_type").removesuffix("_parsing")
        want = WANT.get(base, base)
        return errors.ConfigError(f"{head} = {value!r} has the wrong type (expected {want})",
                                  f"see {DOCS} for its type, range and default")
    why = str(err["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")
    return errors.ConfigError(f"{head} = {value!r}: {why}", f"see {DOCS} for its type, range and default")


_ADAPTER = TypeAdapter(FileConfig)
WANT = {"string": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
        "list": "a list", "dict": "a table"}


DEFAULT_CONFIG = '''\
# irq configuration. irq reads the irq.toml in this folder or the nearest parent folder,
# on top of ~/.config/irq/config.toml. Every key is optional; shown are the defaults.
# Every key with its type, range and an example: docs/configuration.md

# Where jobs go: "local" (this machine, no cluster needed) or the name of a [clusters.NAME].
backend = "local"

# Re-export queue.md here after every command or daemon cycle that changes the ledger (omit to skip).
# export = "docs/queue.md"

[local]
# slots = 2                  # jobs run at once on this machine (>= 1)
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
# interval = 60              # seconds between cycles while work runs or waits (> 0)
# max_interval = 600         # backoff ceiling while the cluster does not answer

# A SLURM cluster reached over SSH:
# [clusters.fasrc]
# host = "login.rc.example.edu"          # or an alias from ~/.ssh/config (HostName, User, Port,
#                                        # IdentityFile and ProxyJump are honoured)
# user = "me"
# repo_url = "git@github.com:me/research-repo.git"   # jobs clone this at the pinned git SHA
# workdir = "/n/home03/me/irq"           # run directories and job logs
# scratch = "/n/scratch/me"              # per-job clones: SCRATCH/irq-job-$SLURM_JOB_ID.XXXXXX
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
