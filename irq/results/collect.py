"""Gather each experiment's per-seed metrics from its attempts, and the curves of its fetched runs.

Where the numbers are (irq/jobs/fetch.py writes them): an attempt's ``results`` holds the flat
metrics.json of a single run, or ``seed_N.KEY`` entries for every task of an array; its ``output``
is the local folder of the fetched run directory (``seed_N/`` subfolders for arrays), relative to
the project root. The ledger is read with two plain SELECTs (no ORM objects): `irq results` over
ten thousand experiments must stay within a few start-ups of the CLI.

Rules, so that no number appears that was not measured:
- every attempt with results contributes its seeds; when a seed was run again by a later attempt,
  the later run replaces the earlier one (the ledger keeps both; the table uses the rerun), unless
  the rerun measured nothing for that seed;
- a seed without the metric, or with a null/NaN value (the trainer writes NaN as null), is listed
  as missing with the reason, never counted as zero;
- an experiment with no results at all is a row with n = 0 and the reason.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irq.ledger.database import Ledger

SEED_KEY = re.compile(r"^seed_(\d+)\.(.+)$")
# the labels a hand-kept queue.md gives the trainer's metrics (imported attempts keep them verbatim)
ALIASES = {"val_mse": ("Validation MSE", "Val MSE"), "train_mse": ("Training MSE", "Train MSE"),
           "test_mse": ("Test MSE",), "ood_mse": ("OOD MSE",)}


@dataclass(slots=True)
class Run:
    """One seed of one attempt: its flat metrics and where its files are."""

    experiment_id: str
    attempt: int
    seed: int | None
    metrics: dict[str, Any]
    git_sha: str | None = None
    root: Path | None = None  # the project root the output folder is relative to
    output: str | None = None  # the fetched run directory (metrics.json, curve.jsonl), as stored

    @property
    def folder(self) -> Path | None:
        """Built when asked for: ten thousand experiments' tables never need it."""
        if not self.output:
            return None
        return self.root / self.output if self.root is not None else Path(self.output)

    def value(self, metric: str) -> float | None:
        v = self.metrics.get(metric)
        if type(v) is float and v - v == 0:  # the common case, fast: a finite float (inf - inf and NaN are NaN)
            return v
        if v is None and metric in ALIASES:  # results imported from a hand-kept queue.md
            v = next((self.metrics[a] for a in ALIASES[metric] if a in self.metrics), None)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return None
        return float(v)

    @property
    def label(self) -> str:
        return f"{self.experiment_id} attempt {self.attempt}" + (f" seed {self.seed}" if self.seed is not None else "")


@dataclass
class Missing:
    attempt: int | None
    seed: int | None
    reason: str

    def __str__(self) -> str:
        where = []
        if self.attempt is not None:
            where.append(f"attempt {self.attempt}")
        if self.seed is not None:
            where.append(f"seed {self.seed}")
        return (" ".join(where) + ": " if where else "") + self.reason


@dataclass
class ExperimentRuns:
    id: str
    title: str
    state: str
    parameters: dict[str, Any]
    runs: list[Run] = field(default_factory=list)
    no_results: str | None = None  # why the experiment has no runs at all

    def values(self, metric: str) -> tuple[list[Run], list[Missing]]:
        """The runs that have a finite value of `metric`, and what is missing (with why)."""
        have, missing = [], []
        for r in self.runs:
            if r.value(metric) is not None:
                have.append(r)
            elif metric in r.metrics:
                missing.append(Missing(r.attempt, r.seed, f"{metric} is not a number ({r.metrics[metric]!r})"))
            else:
                missing.append(Missing(r.attempt, r.seed, f"no {metric} in the fetched metrics"))
        if not self.runs:
            missing.append(Missing(None, None, self.no_results or "no results"))
        return have, missing


def collect(ledger: Ledger, root: Path, ids: list[str] | None = None) -> list[ExperimentRuns]:
    """Every experiment (or those named), in queue order, with its runs."""
    wanted = None
    if ids:
        with ledger.transaction() as s:
            wanted = [Ledger.experiment(s, i).id for i in ids]  # unknown id -> NotFound with suggestions
    with ledger.engine.connect() as conn:
        exps = conn.exec_driver_sql("SELECT id, title, state, parameters, seeds FROM experiment ORDER BY seq").all()
        atts = conn.exec_driver_sql(
            "SELECT experiment_id, number, state, array, tasks, results, output, git_sha "
            "FROM attempt ORDER BY experiment_id, number").all()
    by_exp: dict[str, list[tuple]] = {}
    for a in atts:
        by_exp.setdefault(a[0], []).append(a)
    out: list[ExperimentRuns] = []
    keep = set(wanted) if wanted is not None else None
    for eid, title, state, params, seeds in exps:
        if keep is not None and eid not in keep:
            continue
        e = ExperimentRuns(eid, title, state, _json(params, {}))
        e.runs, e.no_results = _runs(eid, by_exp.get(eid, []), _json(seeds, []), e.parameters, root)
        out.append(e)
    if wanted is not None:
        order = {i: k for k, i in enumerate(wanted)}
        out.sort(key=lambda e: order[e.id])
    return out


def _json(text: Any, default: Any) -> Any:
    if text is None or text in ("{}", "[]"):
        return default
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return default


def _runs(eid: str, attempts: list[tuple], seeds: list[int], params: dict, root: Path) -> tuple[list[Run], str | None]:
    by_seed: dict[int, Run] = {}
    unseeded: list[Run] = []
    for _eid, number, state, array, tasks, results, output, sha in attempts:
        res = _json(results, {})
        if not res:
            continue
        per_seed: dict[int, dict[str, Any]] = {}
        flat: dict[str, Any] = res
        if array or any(k.startswith("seed_") for k in res):
            flat = {}
            for k, v in res.items():
                m = SEED_KEY.match(k)
                if m:
                    per_seed.setdefault(int(m.group(1)), {})[m.group(2)] = v
                else:
                    flat[k] = v
        if per_seed or array:
            expected = sorted({int(t) for t in _json(tasks, {}) if str(t).isdigit()} | set(seeds)) if array else []
            for sd in sorted(set(per_seed) | set(expected)):
                if sd in by_seed and not per_seed.get(sd):
                    continue  # a rerun that measured nothing does not hide the earlier measurement
                by_seed[sd] = Run(eid, number, sd, per_seed.get(sd, {}), sha, root,
                                  f"{output}/seed_{sd}" if output else None)
            continue
        seed = flat.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            seed = seeds[0] if len(seeds) == 1 else params.get("seed") if isinstance(params.get("seed"), int) else None
        run = Run(eid, number, seed, flat, sha or (flat.get("git_sha") if isinstance(flat.get("git_sha"), str) else None),
                  root, output)
        if seed is None:
            unseeded.append(run)
        else:
            by_seed[seed] = run
    runs = [by_seed[k] for k in sorted(by_seed)] + unseeded
    if runs:
        return runs, None
    if not attempts:
        return [], "no attempt in the ledger"
    last = attempts[-1]
    return [], f"no fetched results (latest attempt {last[1]} is {last[2]})"


def load_curve(run: Run) -> list[dict[str, Any]]:
    """The run's curve.jsonl rows (a line cut short ends the curve, as the trainer reads it)."""
    if run.folder is None:
        return []
    p = run.folder / "curve.jsonl"
    try:
        text = p.read_text(encoding="utf-8")
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            break
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return rows
