"""The job an experiment would become now, without submitting it: `irq render` and `irq check`.

Both commands build the script exactly as `irq submit` would (same commit, same target, same
project templates), so what a person reads or checks is what runs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from irq import errors
from irq.backends.registry import Backends
from irq.backends.target import Target
from irq.config import Config
from irq.formats.render import project_templates
from irq.jobs.git import check_code, config_in_repo, target_sha
from irq.jobs.jobscript import build_job, run_id_for, with_command
from irq.jobs.preflight import Check, run_checks
from irq.ledger.database import Ledger
from irq.ledger.models import Experiment, utcnow
from irq.ledger.transitions import next_attempt_number

PREVIEW_TOKEN = "irq-0000000000"


@dataclass
class JobPreview:
    """One experiment's next job: where it runs, at which commit, and its script."""

    experiment: Experiment
    backend: str
    target: Target
    sha: str
    script: str
    skipped: list[str]  # parameters the trainer does not take


@dataclass
class CheckReport:
    """Preflight for one experiment: every check and whether all passed."""

    id: str
    backend: str
    sha: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_json(self) -> list[dict]:
        return [asdict(c) for c in self.checks]


def preview_job(ledger: Ledger, config: Config, backends: Backends, exp_id: str,
                backend_name: str | None = None) -> JobPreview:
    """The script `irq submit` would send for this experiment now (next attempt number)."""
    name = backends.resolve_name(backend_name)
    target = backends.target(name)
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        number = next_attempt_number(s, exp.id)
    exp = with_command(config_in_repo(exp, config, target), config.project.command)
    sha = target_sha(config, target)
    req, skipped = build_job(exp, token=PREVIEW_TOKEN, attempt=number, target=target, git_sha=sha,
                             run_id=run_id_for(exp.id, utcnow()), template_dir=project_templates(config),
                             default_command=config.project.command)
    return JobPreview(exp, name, target, sha, req.script, skipped)


def job_script(ledger: Ledger, config: Config, exp_id: str, backend_name: str | None = None) -> JobPreview:
    """`irq render`: the preview, with the backends opened (and closed) for it."""
    with Backends(config) as backends:
        return preview_job(ledger, config, backends, exp_id, backend_name)


def code_check(config: Config, p: JobPreview) -> Check:
    """The code to run, as `irq submit` checks it (irq/jobs/git.check_code): a dirty tree with
    [project] dirty = "refuse" fails here as it holds the experiment there; a warning passes, said."""
    try:
        warning = check_code(config, p.target, p.sha)
    except errors.PreflightFailed as exc:
        return Check("code", False, exc.message, exc.hint or "")
    return Check("code", True, warning or (f"commit {p.sha[:12]}" if p.sha != "unknown" else "the folder as it is"))


def check_jobs(ledger: Ledger, config: Config, ids: list[str], backend_name: str | None = None,
               prompt: Callable[..., Any] | None = None) -> list[CheckReport]:
    """`irq check`: the preflight checks on each experiment's previewed job, nothing submitted."""
    reports = []
    with Backends(config, prompt=prompt) as backends:
        for exp_id in ids:
            p = preview_job(ledger, config, backends, exp_id, backend_name)
            checks = [code_check(config, p)] + run_checks(None, p.experiment, p.target, p.sha, backends.get(p.backend),
                                                          p.script)
            reports.append(CheckReport(p.experiment.id, p.backend, p.sha, checks))
    return reports
