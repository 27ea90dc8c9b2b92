"""From an experiment and where it runs to the exact job script (irq/formats/templates/job.sbatch.j2).

`irq render` prints what this returns and `irq submit` submits that same text, stored on the
attempt. Pure: no ledger writes, no network.
"""
from __future__ import annotations

import itertools
import json
import shlex
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from irq import errors
from irq.backends.base import JobRequest
from irq.backends.target import REPO_ROOT, Target
from irq.fields import fmt_scalar, slurm_memory, slurm_time
from irq.formats.command import param_env, render_command
from irq.formats.render import render
from irq.ledger.models import Experiment

TEMPLATE = "job.sbatch.j2"


@lru_cache(maxsize=4)
def trainer_keys(code_dir: Path = REPO_ROOT) -> frozenset[str]:
    """The config keys the bundled trainer accepts (trainer/keys.json: no torch import)."""
    try:
        return frozenset(json.loads((code_dir / "trainer" / "keys.json").read_text())["keys"])
    except (OSError, ValueError, KeyError):
        return frozenset()




def run_id_for(exp_id: str, when: datetime, taken: Callable[[str], bool] = lambda _name: False) -> str:
    """q001_20260114_042054, as the seed's queue names runs; with _2, _3, ... when a run of the
    ledger has that name already (`taken`, asked in turn). The name folds case and dashes, so two
    experiments (Q-001, q001) submitted in the same second would otherwise share a run folder."""
    base = f"{exp_id.lower().replace('-', '')}_{when:%Y%m%d_%H%M%S}"
    return next(r for k in itertools.count(1) if not taken(r := base if k == 1 else f"{base}_{k}"))


def job_name(exp_id: str, token: str) -> str:
    return f"{exp_id}.{token}"


def trainer_overrides(exp: Experiment, keys: frozenset[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """(flag, value) pairs for parameters the trainer knows; the names of the others."""
    passed, skipped = [], []
    for k, v in exp.parameters.items():
        if k in keys and k != "seed":
            passed.append((k.replace("_", "-"), "null" if v is None else
                           (json.dumps(v) if isinstance(v, bool) else fmt_scalar(v).replace(",", ""))))
        else:
            skipped.append(k)
    return passed, skipped


def _sbatch_value(v: Any) -> str:
    """A value on an #SBATCH line: sbatch splits these like a shell, so quote when needed."""
    s = str(v)
    if any(c in s for c in '"\n\r'):
        raise errors.TemplateError(f"{s!r} cannot appear on an #SBATCH line (quote or newline)")
    return f'"{s}"' if any(c.isspace() or c in "'$`\\;&|<>()*?[]#~" for c in s) else s


def shell_word(value: object) -> str:
    """A value as one shell word (the templates' `q`): a number too, which shlex.quote refuses."""
    return shlex.quote(str(value))


def build_job(exp: Experiment, *, token: str, attempt: int, target: Target, git_sha: str,
              run_id: str, template_dir: Path | None = None,
              default_command: str = "") -> tuple[JobRequest, list[str]]:
    """The JobRequest (with the rendered script) and the parameters the bundled trainer does not take."""
    res = exp.resources
    run_dir = f"{target.workdir.rstrip('/')}/runs/{run_id}"
    seeds = list(exp.seeds)
    array = f"0-{len(seeds) - 1}%{max(1, target.array_throttle)}" if len(seeds) > 1 else None
    seed = seeds[0] if len(seeds) == 1 else exp.parameters.get("seed", 0)
    command, skipped = job_command(exp, target, git_sha, default_command)
    ctx = {
        "exp_id": exp.id,
        "attempt": attempt,
        "title_comment": " ".join(exp.title.split())[:80],
        "job_name": job_name(exp.id, token),
        "token": token,
        "partition": _opt(res.get("partition") or target.partition),
        "gpus": 0 if target.kind == "local" else res.get("gpus") or 0,  # no local GPU scheduling
        "cpus": res.get("cpus"),
        "memory": slurm_memory(res["memory_mb"]) if res.get("memory_mb") else None,
        "time": slurm_time(res["time_minutes"]) if res.get("time_minutes") else None,
        "array": array, "seeds": seeds, "seed": seed, "run_dir": run_dir, "run_id": run_id,
        "modules": list(target.modules), "module_init": target.module_init,
        "clone": target.clone, "repo_url": target.repo_url, "git_sha": git_sha, "scratch": target.scratch,
        "worktree": bool(target.repo) and not target.clone, "repo": target.repo, "subdir": target.subdir,
        "worktree_root": target.worktree_root, "worktrees": target.worktrees, "code_dir": target.code_dir,
        "command": command, "env": param_env(exp.parameters),
        "params_json": json.dumps(exp.parameters, sort_keys=True),
        "needs_config": skipped is not None and not exp.config_path,  # the bundled trainer needs one
    }
    script = render(TEMPLATE, ctx, template_dir, filters={"q": shell_word, "sq": _sbatch_value})
    req = JobRequest(token=token, name=ctx["job_name"], script=script, run_dir=run_dir, array=array,
                     log_name="slurm-%A_%a.out" if array else "slurm-%j.out")
    return req, skipped or []


def with_command(exp: Experiment, default: str) -> Experiment:
    """The experiment as it runs: its own command, else the project's (else the bundled trainer)."""
    return exp if exp.command or not default else exp.model_copy(update={"command": default})


def job_command(exp: Experiment, target: Target, git_sha: str, default: str = "") -> tuple[str, list[str] | None]:
    """The shell text the job runs: the experiment's command, the project's, or the bundled
    trainer's; with the parameters the trainer does not take (None for any other command)."""
    if exp.command or default:
        return render_command(exp.command or default, exp.parameters), None
    overrides, skipped = trainer_overrides(exp, trainer_keys())
    path = f'PYTHONPATH="$PWD":{shlex.quote(target.trainer_path)}"${{PYTHONPATH:+:$PYTHONPATH}}" ' \
        if target.trainer_path else ""
    flags = "".join(f" --{k} {shlex.quote(v)}" for k, v in overrides)
    return (f"{path}{shlex.quote(target.python)} -m trainer --config {shlex.quote(exp.config_path or '')}"
            f' --seed "$IRQ_SEED" --out "$IRQ_RUN_DIR" --git-sha {shlex.quote(git_sha)}{flags}'), skipped


def _opt(v: Any) -> Any:
    return v if v not in ("", None) else None
