"""Following a run while it trains: the tail of its job log and its learning curve.

The trainer appends one JSON object per checkpoint interval to `curve.jsonl` in its run directory
(`seed_N/` inside it for a seed array) and writes `status.json` last. Both are read through the
backend (`read_file`: the local file, or a tail over SSH). A command that writes no status.json
(the run contract does not ask for one) ends when the scheduler says so: following asks it at
most every ASK_EVERY seconds (one query, its cost counted), and at once on the first look.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from irq import errors
from irq.backends.base import Backend
from irq.backends.registry import Backends
from irq.jobs.fetch import log_paths
from irq.jobs.record import no_log
from irq.ledger.database import Ledger
from irq.ledger.models import Attempt, utcnow
from irq.ledger.states import ACTIVE_STATES, is_active


@dataclass
class Look:
    """One look at the latest attempt of an experiment."""

    exp_id: str
    attempt: int
    job_id: str | None
    logs: dict[str, str]  # each log's tail as read now ("" for a single run, seed_N per array task)
    curve: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # run folder ("" or seed_N) -> rows
    finished: bool = False  # status.json written everywhere, or the ledger says the attempt ended


def curve_rows(text: str | None) -> list[dict[str, Any]]:
    """The rows of a curve.jsonl; a line cut short (still being written, or a tail's first line) is skipped."""
    rows = []
    for line in (text or "").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
    return rows


def _folders(a: Attempt, seeds: list[int]) -> list[str]:
    """The run folders of an attempt: one, or an array's seed_<seed> per task (task i runs
    seeds[i], job.sbatch.j2: with --seeds 3,7 they are seed_3 and seed_7)."""
    if not a.array:
        return [""]
    tasks = sorted(int(t) for t in a.tasks if str(t).isdigit()) if a.tasks else list(range(len(seeds) or 1))
    return [f"seed_{seeds[t] if t < len(seeds) else t}" for t in tasks]


def look(backend: Backend, a: Attempt, seeds: list[int], with_log: bool = True) -> Look:
    """Read the log tail, the curves and whether the trainer wrote status.json, now (`seeds`:
    the experiment's, which its array's tasks ran in order)."""
    folders, paths = _folders(a, seeds), log_paths(a)
    names = folders if len(folders) == len(paths) else [p.rsplit("/", 1)[-1] for p in paths]
    logs = {n: t for n, p in zip(names, paths) if with_log and (t := backend.read_file(p, 1 << 20))}
    out = Look(a.experiment_id, a.number, a.job_id, logs)
    done = []
    for sub in folders:
        base = f"{a.run_dir}/{sub}" if sub else a.run_dir
        out.curve[sub] = curve_rows(backend.read_file(f"{base}/curve.jsonl", 1 << 18))
        done.append(backend.read_file(f"{base}/status.json", 4096) is not None)
    out.finished = all(done) or not is_active(a.state)
    return out


def latest(ledger: Ledger, exp_id: str) -> tuple[Attempt, list[int]]:
    """The experiment's latest attempt, and the experiment's seeds."""
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        a = Ledger.latest_attempt(s, exp.id)
        seeds = list(exp.seeds or [])
    if a is None or not a.job_id or not a.run_dir:
        raise errors.IrqError(f"{exp_id} has no submitted attempt yet", f"`irq submit {exp_id}`")
    if a.backend == "imported":
        raise no_log(exp_id)
    return a, seeds


ASK_EVERY = 30.0  # seconds between scheduler queries while a followed run writes no status.json


def ended(backend: Backend, a: Attempt) -> bool:
    """Whether the scheduler lists the attempt's job (every task of it) as ended."""
    rows = backend.query([a.job_id], a.submitted_at or utcnow()).get((a.job_id or "").split("_")[0])
    return bool(rows) and not any(is_active(r.state) for r in rows)


def follow(ledger: Ledger, backends: Backends, exp_id: str, interval: float, count: int | None = None,
           sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> Iterator[Look]:
    """Look at the latest attempt every `interval` seconds until it finishes (the last look says
    so) or `count` looks were made. The ledger is re-read each time: a newer attempt is followed.
    The scheduler is asked before a look (a job that ended has written all it will), so the
    last look reads the whole log."""
    n, asked = 0, float("-inf")
    while True:
        a, seeds = latest(ledger, exp_id)
        backend = backends.get(a.backend)
        over = False
        if is_active(a.state) and a.job_id and clock() - asked >= ASK_EVERY:
            asked, over = clock(), ended(backend, a)
        seen = look(backend, a, seeds)
        seen.finished = seen.finished or over
        n += 1
        yield seen
        if seen.finished or (count is not None and n >= count):
            return
        sleep(interval)


def curve_heads(ledger: Ledger, backends: Backends) -> dict[str, dict[str, Any]]:
    """The newest curve row of every active attempt (for `irq status --watch`), by experiment."""
    with ledger.transaction() as s:
        active = [a for a in Ledger.attempts(s, states=ACTIVE_STATES) if a.run_dir and a.backend != "imported"]
        seeds = {a.experiment_id: list(Ledger.experiment(s, a.experiment_id).seeds or []) for a in active}
    heads: dict[str, dict[str, Any]] = {}
    for a in active:
        try:
            seen = look(backends.get(a.backend), a, seeds[a.experiment_id], with_log=False)
        except errors.BackendError:
            continue
        rows = [r for rs in seen.curve.values() for r in rs[-1:]]
        if rows:
            heads[a.experiment_id] = max(rows, key=lambda r: r.get("step", 0))
    return heads
