"""Checks before a job spends a slot and an hour in the queue (seed 000: five failed pilots).

This module is filled in by the preflight work; until then the hook checks what needs no
cluster: the trainer config the job will run exists in the repository.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from . import errors
from .config import Config
from .jobscript import Target
from .models import Experiment


def preflight_hook(config: Config) -> Callable[[Experiment, Target, str], None]:
    def check(exp: Experiment, target: Target, sha: str) -> None:
        if target.kind == "local" and exp.config_path:
            p = Path(exp.config_path)
            if not p.is_absolute():
                p = Path(target.code_dir) / p
            if not p.is_file():
                raise errors.PreflightFailed(f"{exp.id}: config file {exp.config_path} does not exist")
    return check
