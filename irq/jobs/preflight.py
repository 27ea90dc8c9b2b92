"""Checks before a job spends a slot and an hour in the queue.

Each check is one of the seed's failed pilots (000, Q-004 attempts 1-5) caught in seconds:
the commit is on the repository the cluster clones ("pushed?") and holds the config and the
trainer as files (not a gitlink); every module exists (clusters use versioned names); python
is found once they are loaded; the partition exists and the resources fit it; scratch and the
work dir are writable; no module load is commented out. All remote checks run in one SSH
round trip, and a passing result is cached per cluster, commit and inputs.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from irq import errors
from irq.backends.base import Backend
from irq.backends.target import Target
from irq.config import Config
from irq.experiments.trainer_schema import BUNDLED_CONFIGS, check_parameters
from irq.experiments.validate import read_trainer_config
from irq.fields import fmt_memory, fmt_minutes, parse_minutes
from irq.formats.command import check_command
from irq.ledger.database import Ledger
from irq.ledger.models import Experiment

ENTRY_POINT = "trainer/__main__.py"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}" + ("" if self.ok or not self.fix else f" -> {self.fix}")


REMOTE = r'''
repo=$1; sha=$2; scratch=$3; workdir=$4; part=$5; py=$6; imports=$7; nmod=$8; shift 8
mods=""; i=0
while [ $i -lt "$nmod" ]; do mods="$mods $1"; shift; i=$((i+1)); done
tmp=$(mktemp -d 2>/dev/null || echo "/tmp/irq-check-$$")
if git clone --quiet --bare --filter=blob:none "$repo" "$tmp/r" >/dev/null 2>"$tmp/err" \
   || git clone --quiet --bare "$repo" "$tmp/r" >/dev/null 2>"$tmp/err"; then
  if git -C "$tmp/r" cat-file -e "$sha^{commit}" 2>/dev/null; then
    echo "COMMIT|ok"
    for f in "$@"; do
      t=$(git -C "$tmp/r" ls-tree "$sha" -- "$f" | awk '{print $2}')
      if [ -z "$t" ]; then  # inside a gitlink (a submodule entry), the files are not in the commit
        d=$(dirname -- "$f")
        while [ "$d" != "." ] && [ "$d" != "/" ]; do
          [ "$(git -C "$tmp/r" ls-tree "$sha" -- "$d" | awk '{print $2}')" = commit ] && { t=gitlink; break; }
          d=$(dirname -- "$d")
        done
      fi
      echo "FILE|$f|${t:-missing}"
    done
  else
    echo "COMMIT|missing"
  fi
else
  echo "CLONE|fail|$(head -c 300 "$tmp/err" | tr '\n' ' ')"
fi
rm -rf "$tmp"
if ! type module >/dev/null 2>&1; then
  . /etc/profile.d/lmod.sh >/dev/null 2>&1 || . /usr/share/lmod/lmod/init/bash >/dev/null 2>&1 || . /etc/profile.d/modules.sh >/dev/null 2>&1
fi
if [ "$nmod" -gt 0 ]; then
  if type module >/dev/null 2>&1; then
    for m in $mods; do
      if module is-avail "$m" >/dev/null 2>&1; then echo "MODULE|$m|ok"; else echo "MODULE|$m|missing"; fi
    done
  else
    echo "MODULES|unavailable"
  fi
fi
p=$( (for m in $mods; do module load "$m" >/dev/null 2>&1; done; command -v "$py") 2>/dev/null )
echo "PYTHON|${p:-missing}"
if [ -n "$p" ] && [ -n "$imports" ]; then  # the job's python, after the same module loads, imports what the run needs
  r=$( (for m in $mods; do module load "$m" >/dev/null 2>&1; done; "$py" -c '
import importlib, sys
bad = []
for name in sys.argv[1].split(","):
    try:
        importlib.import_module(name)
    except Exception as exc:
        bad.append(f"{name} ({type(exc).__name__})")
print("IMPORTS|" + ",".join(bad))' "$imports") 2>/dev/null | grep "^IMPORTS|" | tail -n 1)
  echo "${r:-IMPORTS|?python did not run}"
fi
if [ -n "$part" ]; then
  if s=$(sinfo -h -p "$part" -o '%P|%l|%m|%c|%G|%a' 2>&1); then
    s=$(printf '%s\n' "$s" | head -n 1); echo "PARTITION|${s:-missing}"
  else  # the controller did not answer: not a missing partition
    echo "PARTITION|?$(printf '%s' "$s" | head -n 1 | tr '|' ' ')"
  fi
fi
for d in "$scratch" "$workdir"; do
  if mkdir -p -- "$d" 2>/dev/null && [ -w "$d" ]; then echo "WRITABLE|$d|ok"; else echo "WRITABLE|$d|no"; fi
done
'''


def _slurm_limit_minutes(text: str) -> int | None:
    if text in ("infinite", "UNLIMITED", "n/a", ""):
        return None
    try:
        return parse_minutes(text if text.count(":") != 1 else f"0:{text}")
    except Exception:
        return None


def commented_module_loads(script: str) -> list[str]:
    return [line.strip() for line in script.splitlines() if re.match(r"^\s*#+\s*module\s+(load|add)\b", line)]


def remote_checks(exp: Experiment, target: Target, sha: str, backend: Backend, python: str) -> list[Check]:
    # the bundled trainer (no command) needs trainer/ in the repository; any other command, its own files
    # (paths in the commit: below the project's folder when irq.toml is not at the repository's top)
    files = ([] if exp.command else [ENTRY_POINT]) + ([exp.config_path] if exp.config_path else [])
    files = [target.in_checkout(f) for f in files] + ([target.in_checkout("irq.toml")] if target.subdir else [])
    part = exp.resources.get("partition") or target.partition or ""
    args = [target.repo_url, sha, target.scratch, target.workdir, part, python, ",".join(target.python_imports),
            str(len(target.modules)),
            *target.modules, *files]
    rc, out, err = backend.run_check(REMOTE, args, calls=("git", "module", "sinfo"))
    checks: list[Check] = []
    for line in out.splitlines():
        kind, _, rest = line.partition("|")
        f = rest.split("|")
        if kind == "CLONE":
            checks.append(Check("repository", False, f"the cluster cannot clone {target.repo_url}: {f[1] if len(f) > 1 else ''}",
                                "check repo_url in irq.toml and the cluster's access to it (deploy key?)"))
        elif kind == "COMMIT":
            checks.append(Check("commit pushed", f[0] == "ok",
                                f"{sha[:12]} is on {target.repo_url}" if f[0] == "ok" else
                                f"commit {sha[:12]} is not on {target.repo_url}: pushed?", "git push, then submit again"))
        elif kind == "FILE":
            path, typ = f[0], f[1]
            if typ == "blob":
                checks.append(Check(f"file {path}", True, "in the commit"))
            elif typ in ("commit", "gitlink"):
                checks.append(Check(f"file {path}", False, f"{path} is inside a gitlink (submodule), not files, in {sha[:12]}",
                                    "git rm --cached DIR && git add DIR/ && git commit && git push"))
            else:
                checks.append(Check(f"file {path}", False, f"{path} does not exist in commit {sha[:12]}",
                                    "git add it, commit, push" if path != target.in_checkout(ENTRY_POINT) else
                                    "on a cluster the bundled trainer runs from your repository: commit a copy of "
                                    "irq's trainer/ folder there (docs/clusters.md), or run your own script with --command"))
        elif kind == "MODULE":
            checks.append(Check(f"module {f[0]}", f[1] == "ok",
                                "available" if f[1] == "ok" else f"module {f[0]} does not exist on the cluster",
                                "list the versioned names with `module -t avail`, fix modules in irq.toml"))
        elif kind == "MODULES":
            checks.append(Check("modules", False, "no `module` command (Lmod / Environment Modules) on the cluster",
                                "set module_init in irq.toml, or remove modules"))
        elif kind == "PYTHON":
            ok = f[0] != "missing"
            checks.append(Check("python", ok, f"{python} is {f[0]}" if ok else
                                f"`{python}` is not found after loading {', '.join(target.modules) or 'no modules'}",
                                "load the module that provides python (irq.toml modules); is a module load commented out?"))
        elif kind == "IMPORTS":
            bad = rest.strip()
            checks.append(Check("python imports", not bad, f"{python} imports {', '.join(target.python_imports)}"
                                if not bad else f"{python} (after the module loads) cannot import: {bad.lstrip('?')}",
                                "install them in the cluster's job python (a venv or conda env: `pip install "
                                f"{' '.join(target.python_imports)}`) and point `python` in irq.toml at it"))
        elif kind == "PARTITION":
            checks.extend(_partition_checks(exp, part, f))
        elif kind == "WRITABLE":
            checks.append(Check(f"writable {f[0]}", f[1] == "ok", "writable" if f[1] == "ok" else f"{f[0]} is not writable",
                                "fix scratch / workdir in irq.toml"))
    if rc != 0 and not checks:
        raise errors.BackendError(f"preflight on {target.name} failed: {err.strip()[:300]}")
    return checks


def _partition_checks(exp: Experiment, part: str, f: list[str]) -> list[Check]:
    if f[0].startswith("?"):  # an infrastructure fault: nothing is held for it, the next run asks again
        raise errors.BackendError(f"sinfo did not answer about partition {part}: {f[0][1:].strip()[:300] or 'no reason given'}",
                                  "the SLURM controller is not answering; try again later (nothing was changed)")
    if f[0] == "missing":
        return [Check(f"partition {part}", False, f"partition {part} does not exist",
                      "`sinfo -s` lists the partitions; fix partition in the experiment or irq.toml")]
    _, limit, mem, cpus, gres = (f + ["", "", "", "", ""])[:5]
    out = [Check(f"partition {part}", True, f"exists (time limit {limit})")]
    res = exp.resources
    lim = _slurm_limit_minutes(limit)
    if res.get("time_minutes") and lim is not None and res["time_minutes"] > lim:
        out.append(Check("time fits", False, f"{fmt_minutes(res['time_minutes'])} is over {part}'s limit {fmt_minutes(lim)}",
                         "ask for less time, or use another partition"))
    mem_mb = int(re.sub(r"\D.*", "", mem) or 0)
    if res.get("memory_mb") and mem_mb and res["memory_mb"] > mem_mb:
        out.append(Check("memory fits", False, f"{fmt_memory(res['memory_mb'])} is more than a {part} node has ({fmt_memory(mem_mb)})",
                         "ask for less memory"))
    ncpu = int(re.sub(r"\D.*", "", cpus) or 0)
    if res.get("cpus") and ncpu and res["cpus"] > ncpu:
        out.append(Check("cpus fit", False, f"{res['cpus']} CPUs is more than a {part} node has ({ncpu})", "ask for fewer CPUs"))
    if res.get("gpus"):
        m = re.search(r"gpu(?::[\w-]+)?:(\d+)", gres or "")
        have = int(m.group(1)) if m else 0
        if have < res["gpus"]:
            out.append(Check("gpus fit", False, f"{res['gpus']} GPU(s) asked; {part} nodes have {have}",
                             "use a GPU partition, or gpus = 0"))
    return out


def local_checks(exp: Experiment, target: Target) -> list[Check]:
    checks = []
    if exp.config_path:
        p = Path(exp.config_path)
        p = p if p.is_absolute() else Path(target.code_dir) / p
        checks.append(Check(f"file {exp.config_path}", p.is_file(), "exists" if p.is_file() else f"{p} does not exist",
                            "fix the experiment's config path"))
    if exp.command:  # a command of the user's own: the python it names, as the job's PATH finds it
        return checks + _command_python(exp.command)
    exe = shutil.which(target.python)
    checks.append(Check("python", exe is not None, f"{target.python} is {exe}" if exe else f"`{target.python}` is not found",
                        "fix [local] python in irq.toml"))
    return checks


def _command_python(command: str) -> list[Check]:
    """Which interpreter a local command's `python`/`python3` is (PATH as the job has it, with
    irq's own folder last: localrun.with_own_bin); nothing for any other program."""
    import os
    import shlex

    from irq.backends.localrun import with_own_bin

    try:
        prog = shlex.split(command)[0] if command.strip() else ""
    except ValueError:
        return []
    if not re.fullmatch(r"python[0-9.]*", prog):
        return []
    exe = shutil.which(prog, path=with_own_bin(os.environ.get("PATH", "")))
    return [Check("python", exe is not None, f"the command's {prog} is {exe}" if exe else f"`{prog}` is not on this machine's PATH",
                  "install it, or write the interpreter's full path in the command")]


def config_check(exp: Experiment, target: Target) -> Check:
    """A runnable config: for the bundled trainer, parameters (and, here, the config file) it
    accepts; for a command of the user's own, a value for every placeholder. An experiment that
    fails it is held, never submitted, until `irq edit` fixes it."""
    if exp.command:  # the experiment's own, or the project's default (jobscript.with_command)
        try:
            check_command(exp.command, exp.parameters)
        except errors.IrqError as exc:
            return Check("command", False, exc.message, f"`irq edit {exp.id}` with -p NAME=VALUE for it")
        return Check("command", True, "every {placeholder} has a value")
    if not exp.config_path:  # the job script refuses to start the trainer without one (exit 2)
        return Check("trainer config", False, f"{exp.id} has no trainer config: the bundled trainer runs from one",
                     f"`irq edit {exp.id} -c FILE` (the bundled trainer's own configs are in {BUNDLED_CONFIGS}), "
                     f"or `irq edit {exp.id} --command '...'` to run a script of your own")
    try:
        check_parameters(exp.parameters)
        path = Path(exp.config_path)
        path = path if path.is_absolute() else Path(target.code_dir) / path
        if target.kind == "local" and not path.is_file():
            raise errors.PreflightFailed(f"{exp.id}'s trainer config {exp.config_path} is not in {target.code_dir}")
        if target.kind == "local":
            read_trainer_config(path)
    except errors.IrqError as exc:
        return Check("trainer config", False, exc.message, f"`irq edit {exp.id}` with a value the trainer accepts")
    return Check("trainer config", True, "accepted by the trainer's schema")


def run_checks(ledger: Ledger | None, exp: Experiment, target: Target, sha: str, backend: Backend | None,
               script: str | None = None) -> list[Check]:
    """All checks for one experiment on one target, using the cache for passing results."""
    checks: list[Check] = []
    if script is not None:
        bad = commented_module_loads(script)
        checks.append(Check("module loads", not bad, "none commented out" if not bad else
                            f"commented out: {'; '.join(bad)}", "uncomment them (seed 000, attempt 1)"))
    checks.append(config_check(exp, target))
    if target.kind == "local":
        return checks + local_checks(exp, target)
    key = "preflight:" + hashlib.sha256(json.dumps(
        [target.name, sha, target.modules, target.repo_url, target.scratch, target.workdir, target.python,
         exp.config_path, exp.resources, exp.command, target.python_imports, target.subdir], sort_keys=True,
        default=str).encode()).hexdigest()[:24]
    if ledger is not None and (cached := ledger.get_meta(key)):
        return checks + [Check(**c) for c in json.loads(cached)]
    if backend is None:
        raise ValueError(f"checks on {target.name} need its backend")
    remote = remote_checks(exp, target, sha, backend, target.python)
    if ledger is not None and all(c.ok for c in remote):
        ledger.set_meta(key, json.dumps([asdict(c) for c in remote]))
    return checks + remote


def preflight_hook(config: Config, ledger: Ledger | None = None,
                   backend_for: Callable[[str], Any] | None = None) -> Callable[[Experiment, Target, str], None]:
    """What `irq submit` and the daemon call before each submission."""

    def check(exp: Experiment, target: Target, sha: str, backend: Backend | None = None,
              script: str | None = None) -> None:
        if target.kind != "local" and backend is None:
            return
        checks = run_checks(ledger, exp, target, sha, backend, script)
        bad = [c for c in checks if not c.ok]
        if bad:
            raise errors.PreflightFailed("; ".join(f"{c.name}: {c.detail}" for c in bad),
                                         "; ".join(dict.fromkeys(c.fix for c in bad if c.fix)) or None)

    return check
