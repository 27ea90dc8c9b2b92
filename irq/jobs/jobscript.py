"""From an experiment and where it runs to the exact job script (irq/formats/templates/job.sbatch.j2).

`irq render` prints what this returns and `irq submit` submits that same text, stored on the
attempt. Pure: no ledger writes, no network.
"""
from __future__ import annotations

import json
import shlex
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from irq import errors
from irq.backends.base import JobRequest
from irq.backends.target import REPO_ROOT, Target
from irq.fields import fmt_scalar, slurm_memory, slurm_time
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




def run_id_for(exp_id: str, when: datetime) -> str:
    """q001_20260114_042054, as the seed's queue names runs."""
    return f"{exp_id.lower().replace('-', '')}_{when:%Y%m%d_%H%M%S}"


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


def build_job(exp: Experiment, *, token: str, attempt: int, target: Target, git_sha: str,
              run_id: str, template_dir: Path | None = None) -> tuple[JobRequest, list[str]]:
    """The JobRequest (with the rendered script) and the parameters not passed to the trainer."""
    res = exp.resources
    run_dir = f"{target.workdir.rstrip('/')}/runs/{run_id}"
    overrides, skipped = trainer_overrides(exp, trainer_keys())
    seeds = list(exp.seeds)
    array = f"0-{len(seeds) - 1}%{max(1, target.array_throttle)}" if len(seeds) > 1 else None
    seed = seeds[0] if len(seeds) == 1 else exp.parameters.get("seed", 0)
    ctx = {
        "exp_id": exp.id,
        "attempt": attempt,
        "title_comment": " ".join(exp.title.split())[:80],
        "job_name": job_name(exp.id, token),
        "token": token,
        "partition": _opt(res.get("partition") or target.partition),
        "gpus": res.get("gpus") or 0,
        "cpus": res.get("cpus"),
        "memory": slurm_memory(res["memory_mb"]) if res.get("memory_mb") else None,
        "time": slurm_time(res["time_minutes"]) if res.get("time_minutes") else None,
        "array": array,
        "seeds": seeds,
        "seed": seed,
        "run_dir": run_dir,
        "modules": list(target.modules),
        "module_init": target.module_init,
        "clone": target.clone,
        "repo_url": target.repo_url,
        "git_sha": git_sha,
        "scratch": target.scratch,
        "code_dir": target.code_dir,
        "python": target.python,
        "config": exp.config_path or "",
        "overrides": overrides,
    }
    if target.kind == "local":
        ctx["gpus"] = 0  # the local backend has no GPU scheduling
    script = render(TEMPLATE, ctx, template_dir, filters={"q": shlex.quote, "sq": _sbatch_value})
    # #SBATCH lines take sbatch quoting
    req = JobRequest(token=token, name=ctx["job_name"], script=script, run_dir=run_dir, array=array,
                     log_name="slurm-%A_%a.out" if array else "slurm-%j.out")
    return req, skipped


def _opt(v: Any) -> Any:
    return v if v not in ("", None) else None
