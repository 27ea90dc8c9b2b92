"""Fetch finished attempts: results, metrics and logs into the ledger; DONE or FAILED with the cause."""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irq import errors, faults
from irq.backends.base import Backend
from irq.backends.registry import Backends, record_calls
from irq.config import Config
from irq.ledger.database import Ledger
from irq.ledger.models import Attempt, utcnow
from irq.ledger.states import (
    SUCCESS_STATES,
    AttemptState,
    State,
    is_active,
    is_final,
)
from irq.policy.diagnose import diagnose
from irq.ui import UI

SUMMARY_KEYS = ("val_mse", "best_val_mse", "train_mse", "ood_mse", "accuracy", "baseline_mean_mse", "baseline_zero_mse")


@dataclass
class FetchOutcome:
    id: str
    attempt: int
    state: str  # DONE | FAILED
    detail: str


def fetch(ledger: Ledger, config: Config, backends: Backends, ui: UI, ids: list[str] | None = None) -> list[FetchOutcome]:
    """Download finished attempts' run directories, read metrics into the ledger, and mark
    each experiment DONE, or FAILED with the diagnosed cause."""
    with ledger.transaction() as s:
        wanted = {Ledger.experiment(s, i).id for i in ids} if ids else None
        todo = [a for a in Ledger.attempts(s)
                if is_final(a.state) and a.fetched_at is None and a.backend != "imported"
                and (wanted is None or a.experiment_id in wanted)]
    out: list[FetchOutcome] = []
    if not todo:
        return out
    with ui.progress("fetching results", total=len(todo)) as step:
        for a in todo:
            try:
                out.append(_fetch_one(ledger, config, backends.get(a.backend), a))
            except errors.HostKeyError:
                raise  # not "not yet": nothing can be fetched until a person checks the key
            except errors.BackendError as exc:
                ui.log(f"{a.experiment_id}: cannot fetch yet: {exc.message}")
                continue
            step.advance(f"{a.experiment_id}: {out[-1].state}")
    record_calls(ledger, backends)
    return out


def still_finishing(ledger: Ledger, ids: list[str] | None = None) -> list[Attempt]:
    """Attempts a fetch cannot take yet: COMPLETING ones (the job ended, the scheduler is still
    closing it), and with `ids`, any of theirs still active."""
    with ledger.transaction() as s:
        wanted = {Ledger.experiment(s, i).id for i in ids} if ids else None
        return [a for a in Ledger.attempts(s)
                if is_active(a.state) and a.backend != "imported" and a.job_id
                and (a.state == AttemptState.COMPLETING.value if wanted is None else a.experiment_id in wanted)]


def _read_json(p: Path) -> dict | None:
    try:
        data = json.loads(p.read_text())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _flat(metrics: dict, prefix: str = "") -> dict[str, Any]:
    return {f"{prefix}{k}": v for k, v in metrics.items()
            if isinstance(v, (int, float, str, bool)) or v is None}


def _fetch_one(ledger: Ledger, config: Config, backend: Backend, a: Attempt) -> FetchOutcome:
    dest = config.resolve("results") / (a.run_id or f"{a.experiment_id}-{a.number}")
    backend.fetch(a.run_dir, dest)
    faults.point("mid_fetch")
    seeds_dirs = sorted(dest.glob("seed_*"), key=lambda p: int(p.name.split("_")[1]) if p.name.split("_")[1].isdigit() else 0)
    results: dict[str, Any] = {}
    errors_seen: list[str] = []
    if a.array:
        for d in seeds_dirs:
            m = _read_json(d / "metrics.json")
            if m:
                results.update({f"{d.name}.{k}": m[k] for k in SUMMARY_KEYS if k in m})
        for k in SUMMARY_KEYS:
            vals = [v for key, v in results.items() if key.endswith("." + k) and isinstance(v, (int, float))]
            if len(vals) >= 2:
                results[f"{k}_mean"] = statistics.fmean(vals)
                results[f"{k}_std"] = statistics.stdev(vals)
        expected = len(a.tasks) or 1
        complete = sum(1 for d in seeds_dirs if (d / "metrics.json").exists()) >= expected
    else:
        m = _read_json(dest / "metrics.json")
        if m:
            results = _flat(m)
        complete = m is not None
        st = _read_json(dest / "status.json")
        if st and st.get("status") == "failed":
            complete = False
            errors_seen.append(st.get("error") or "trainer reported failure")
    ok = a.state in SUCCESS_STATES and complete
    log = _log_tail(backend, a)
    with ledger.transaction() as s:
        att = s.get(Attempt, a.id)
        exp = Ledger.experiment(s, att.experiment_id)
        att.fetched_at = utcnow()
        att.output = str(dest.relative_to(config.root)) if dest.is_relative_to(config.root) else str(dest)
        if results:
            att.results = results
        if ok:
            s.add(att)
            if exp.state == State.IN_PROGRESS.value and _is_latest(s, att):
                Ledger.set_state(s, exp, State.DONE, f"attempt {att.number} completed", attempt=att)
            detail = ", ".join(f"{k} {results[k]:.4g}" for k in ("val_mse", "val_mse_mean") if isinstance(results.get(k), float))
            return FetchOutcome(exp.id, att.number, "DONE", detail or "completed")
        d = diagnose(att.state, att.exit_code, log, trainer_error="; ".join(errors_seen) or None)
        att.error, att.root_cause, att.suggested_fix = d.error, d.root_cause, d.fix.replace("ID", exp.id)
        s.add(att)
        if exp.state == State.IN_PROGRESS.value and _is_latest(s, att):
            Ledger.set_state(s, exp, State.FAILED, f"attempt {att.number}: {d.error}"[:200], attempt=att)
        return FetchOutcome(exp.id, att.number, "FAILED", d.error)


def _is_latest(s: Any, att: Attempt) -> bool:
    last = Ledger.latest_attempt(s, att.experiment_id)
    return last is not None and last.id == att.id


def log_paths(a: Attempt) -> list[str]:
    if not a.job_id or not a.run_dir:
        return []
    base = a.job_id.split("_")[0]
    if a.array:
        tasks = sorted(a.tasks, key=int) if a.tasks else ["0"]
        return [f"{a.run_dir}/slurm-{base}_{t}.out" for t in tasks]
    return [f"{a.run_dir}/slurm-{base}.out"]


def _log_tail(backend: Backend, a: Attempt, max_bytes: int = 16384) -> str:
    parts = []
    for p in log_paths(a):
        text = backend.read_file(p, max_bytes)
        if text:
            parts.append(text)
    return "\n".join(parts)


def log_tail(ledger: Ledger, backends: Backends, exp_id: str, lines: int = 40) -> tuple[Attempt, str]:
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        a = Ledger.latest_attempt(s, exp.id)
    if a is None or not a.job_id:
        raise errors.IrqError(f"{exp_id} has no submitted attempt yet", f"`irq submit {exp_id}`")
    if a.backend == "imported":
        raise errors.IrqError(f"{exp_id}'s attempts were imported from queue.md; irq has no log for them")
    text = _log_tail(backends.get(a.backend), a, 1 << 20)
    record_calls(ledger, backends)
    return a, "\n".join(text.splitlines()[-lines:])
