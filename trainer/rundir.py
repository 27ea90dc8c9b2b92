"""The run directory: the only interface between the trainer and whoever launched it (irq).

    started.json          written first: start time, pid, host, seed, config (rewritten on resume)
    train.log             human-readable log; a crash appends its traceback
    curve.jsonl           one JSON object per checkpoint interval
    checkpoints/last.pt   everything needed to resume; checkpoints/best.pt the best validation model
    metrics.json          final flat metrics
    status.json           written last: {"status", "exit_code", "error", "ended"}

An observer reads: no started.json -> not started; started.json without status.json -> running
(or killed hard); status.json -> finished, with its outcome. JSON files are written atomically.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import torch


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def finite(obj: Any) -> Any:
    """NaN and inf become null: strict JSON readers reject them, and they mean 'no number' here."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def write_json(path: Path, obj: Any) -> None:
    _atomic_write(path, (json.dumps(finite(obj), indent=2, allow_nan=False) + "\n").encode())


def resolve_git_sha(explicit: Optional[str]) -> Optional[str]:
    """--git-sha, else $IRQ_GIT_SHA, else `git rev-parse HEAD` of the trainer's checkout, else None."""
    if explicit:
        return explicit
    if os.environ.get("IRQ_GIT_SHA"):
        return os.environ["IRQ_GIT_SHA"]
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            return None
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.started = self.path / "started.json"
        self.status = self.path / "status.json"
        self.log_file = self.path / "train.log"
        self.curve = self.path / "curve.jsonl"
        self.metrics = self.path / "metrics.json"
        self.last = self.checkpoints / "last.pt"
        self.best = self.checkpoints / "best.pt"

    def create(self) -> None:
        self.checkpoints.mkdir(parents=True, exist_ok=True)

    # ---- markers --------------------------------------------------------------------------------
    def mark_started(self, config: dict, seed: int, resumed_from: Optional[int]) -> None:
        if self.status.exists():
            self.status.unlink()  # a restarted run is running again, whatever it was before
        write_json(self.started, {
            "started": utc_now(), "pid": os.getpid(), "host": socket.gethostname(), "seed": seed,
            "resumed_from_step": resumed_from, "argv": sys.argv, "config": config,
        })

    def mark_finished(self, ok: bool, exit_code: int, error: Optional[str]) -> None:
        write_json(self.status, {"status": "completed" if ok else "failed", "exit_code": exit_code,
                                 "error": error, "ended": utc_now()})

    # ---- log and curve --------------------------------------------------------------------------
    def log(self, message: str, echo: bool = True) -> None:
        line = f"{utc_now()} {message}"
        with open(self.log_file, "a") as fh:
            fh.write(line + "\n")
        if echo:
            print(message, flush=True)

    def append_curve(self, row: dict) -> None:
        with open(self.curve, "a") as fh:
            fh.write(json.dumps(finite(row), allow_nan=False) + "\n")

    def read_curve(self) -> list[dict]:
        if not self.curve.exists():
            return []
        rows = []
        for line in self.curve.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a kill: everything after it is stale too
        return rows

    def truncate_curve(self, up_to_step: int) -> None:
        """On resume: drop rows written after the checkpoint we restart from (they will be redone)."""
        rows = [r for r in self.read_curve() if r.get("step", 0) <= up_to_step]
        _atomic_write(self.curve, "".join(json.dumps(r) + "\n" for r in rows).encode())

    # ---- checkpoints and metrics ----------------------------------------------------------------
    def save_checkpoint(self, path: Path, state: dict) -> None:
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def load_checkpoint(self, path: Path) -> dict:
        return torch.load(path, map_location="cpu", weights_only=False)

    def write_metrics(self, metrics: dict) -> None:
        write_json(self.metrics, metrics)
