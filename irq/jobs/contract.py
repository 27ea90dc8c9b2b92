"""The results contract (docs/run-contract.md), read on fetched run directories.

What any command writes in $IRQ_RUN_DIR, whatever runs it and wherever: `metrics.json`, a JSON
object whose numbers are the run's final metrics, all finite, the project's headline metric a number
(required for DONE unless `[project] require_metrics = false`); strings, booleans and null at its top
level are kept as facts of the run (device, versions), nested values are ignored;
optionally `curve.jsonl`, one JSON object per line with a `step`; optionally `status.json`
(`{"status": "failed", "error": "..."}`) for a job to give its own reason; anything else is an
artifact. A broken promise is one line that becomes the attempt's root cause.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irq.fields import finite

CONTRACT = "docs/run-contract.md"
# what the ledger keeps of one metrics.json (the file itself stays whole in results/): a job that
# wrote a 20 MB string or 200,000 keys once grew the ledger, `irq show` and queue.md by as much
MAX_ENTRIES, MAX_TEXT, MAX_NAME = 1000, 1000, 200


@dataclass
class RunFiles:
    """What one run directory says: its metrics, or the first way it broke the contract."""

    metrics: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None  # one line: why this run cannot count as DONE
    job_error: str | None = None  # status.json's own error, if the job reported failure
    curve_points: int = 0


def _kind(v: Any) -> str:
    return {str: "a string", bool: "a boolean", list: "a list", dict: "an object", type(None): "null"}.get(
        type(v), type(v).__name__)


def check_metrics(data: Any, where: str, metric: str = "") -> tuple[dict[str, Any], str | None]:
    """Its numbers (and top-level facts), or the first reason it breaks the contract."""
    if not isinstance(data, dict):
        return {}, f"{where} holds {_kind(data)}, not a JSON object of metrics"
    for k, v in data.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and finite(v) is None:
            shown = v if isinstance(v, float) else "an integer too large for a float"
            return {}, f"{where}: {k!r} is {shown}: every metric must be a finite number"
    if metric in data and (isinstance(data[metric], bool) or not isinstance(data[metric], (int, float))):
        v = data[metric]
        return {}, f"{where}: the headline metric {metric!r} is {_kind(v)} ({json.dumps(v)[:40]}), not a number"
    kept = {k: (v[:MAX_TEXT] + "…" if isinstance(v, str) and len(v) > MAX_TEXT else v) for k, v in data.items()
            if len(k) <= MAX_NAME and (v is None or isinstance(v, (int, float, str, bool)))}
    if len(kept) > MAX_ENTRIES:  # the first ones, and the headline; the whole file stays in results/
        kept = {k: kept[k] for k in [*list(kept)[:MAX_ENTRIES], *([metric] if metric in kept else [])]}
    return kept, None


def read_run(run_dir: Path, require_metrics: bool = True, metric: str = "") -> RunFiles:
    """Read metrics.json, status.json and curve.jsonl of one fetched run directory."""
    out = RunFiles()
    status = _load(run_dir / "status.json")
    if isinstance(status, dict) and status.get("status") == "failed":
        out.job_error = str(status.get("error") or "the job reported failure in status.json")
    path = run_dir / "metrics.json"
    if not path.exists():
        if require_metrics:
            out.problem = f"no metrics.json in {run_dir.name}: the command must write $IRQ_RUN_DIR/metrics.json"
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            out.problem = f"metrics.json is not valid JSON ({str(exc)[:80]})"
        else:
            out.metrics, out.problem = check_metrics(data, "metrics.json", metric)
    out.curve_points = _curve_points(run_dir / "curve.jsonl")
    return out


def _load(p: Path) -> Any:
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _curve_points(p: Path) -> int:
    """Lines of curve.jsonl that are objects with a step (the others are skipped, not fatal)."""
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return 0
    n = 0
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        n += isinstance(row, dict) and "step" in row
    return n
