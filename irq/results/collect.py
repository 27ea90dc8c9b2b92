"""Gather each experiment's per-seed metrics from its attempts, and the curves of its fetched runs.

Where the numbers are (irq/jobs/fetch.py writes them): an attempt's ``results`` holds the flat
metrics.json of a single run, or ``seed_N.KEY`` entries for every task of an array; its ``output``
is the local folder of the fetched run directory (``seed_N/`` subfolders for arrays), relative to
the project root. The ledger is read with two plain SELECTs on the stdlib read path (no ORM, no
SQLAlchemy import): `irq results` over ten thousand experiments reads 50,000 attempts, and a
ledger the user may only read gives its results too.

Rules, so that no number appears that was not measured:
- every attempt with results contributes its seeds; when a seed was run again by a later attempt,
  the later run replaces the earlier one (the ledger keeps both; the table uses the rerun), unless
  the rerun measured nothing for that seed;
- a seed without the metric, or with a null/NaN value (the trainer writes NaN as null), is listed
  as missing with the reason, never counted as zero;
- an experiment with no results at all is a row with n = 0 and the reason.
"""
from __future__ import annotations

import gc
import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from irq.fields import finite
from irq.ledger import reader

T = TypeVar("T")

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
        return finite(v)

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
    left_out: list[Missing] = field(default_factory=list)  # metrics of runs that did not complete

    def values(self, metric: str) -> tuple[list[Run], list[Missing]]:
        """The runs that have a finite value of `metric`, and what is missing (with why)."""
        have, _vals, missing = self.measured(metric)
        return have, missing

    def measured(self, metric: str) -> tuple[list[Run], list[float], list[Missing]]:
        """values(), with the value of each run that has one (read once)."""
        have, vals, missing = [], [], []
        for r in self.runs:
            v = r.value(metric)
            if v is not None:
                have.append(r)
                vals.append(v)
            elif (key := next((k for k in (metric, *ALIASES.get(metric, ())) if k in r.metrics), None)) is not None:
                missing.append(Missing(r.attempt, r.seed, f"{metric} is not a number ({r.metrics[key]!r})"))
            else:
                missing.append(Missing(r.attempt, r.seed, f"no {metric} in the fetched metrics"))
        missing += self.left_out
        if not self.runs and not self.left_out:
            missing.append(Missing(None, None, self.no_results or "no results"))
        return have, vals, missing


def collect(src: Any, root: Path, ids: list[str] | None = None) -> list[ExperimentRuns]:
    """Every experiment (or those named), in queue order, with its runs. `src` is the ledger
    file's path or a Ledger; either way the file is read on the stdlib read path (irq/ledger/
    reader.py: one read snapshot, read-only ledgers too, no ORM)."""
    path = Path(src.path if hasattr(src, "path") else os.fspath(src))
    with reader.reading(path) as conn:
        wanted = None
        if ids:  # only the named experiments' rows are read
            wanted = known_ids(ids, {r[0] for r in conn.execute("SELECT id FROM experiment")})
        out = read(conn, root, wanted)
    return in_order(out, wanted)


def in_order(items: list[T], wanted: Sequence[str] | None) -> list[T]:
    """Rows (anything with an `id`) in the order the user named them; queue order, as read, when
    none were named."""
    if not wanted:
        return items
    order = {i: k for k, i in enumerate(wanted)}
    return sorted(items, key=lambda e: order[e.id])  # type: ignore[attr-defined]


def known_ids(ids: list[str], known: set[str]) -> list[str]:
    """The named ids as the ledger has them, once each; an unknown one is refused with the closest ids."""
    return list(dict.fromkeys(_known_id(i, known) for i in ids))


def read(conn: Any, root: Path, wanted: list[str] | None = None) -> list[ExperimentRuns]:
    """The experiments `wanted` (None: all) with their runs, in queue order, from an open read
    snapshot of the ledger (reader.reading)."""
    where, args = "", tuple(wanted or ())
    if wanted is not None:
        where = f" WHERE {{col}} IN ({','.join('?' * len(args))})"
    exps = conn.execute("SELECT id, title, state, parameters, seeds FROM experiment"
                        + where.format(col="id") + " ORDER BY seq", args).fetchall()
    atts = conn.execute("SELECT experiment_id, number, state, array, tasks, results, output, git_sha FROM attempt"
                        + where.format(col="experiment_id") + " ORDER BY experiment_id, number", args).fetchall()
    by_exp: dict[str, list[tuple]] = {}
    for a in atts:
        by_exp.setdefault(a[0], []).append(a)
    out: list[ExperimentRuns] = []
    with gc_paused():
        for eid, title, state, params, seeds in exps:
            e = ExperimentRuns(eid, title, state, _json(params, {}))
            e.runs, e.no_results, e.left_out = _runs(eid, by_exp.get(eid, []), _json(seeds, []), e.parameters, root)
            out.append(e)
    return out


@contextmanager
def gc_paused(freeze: bool = False) -> Iterator[None]:
    """No cyclic garbage collection while a table's objects are made: they hold no cycles, and at
    50,000 runs Python's collector, woken every 700 new objects, rescans the ones made so far
    (about 0.3 s of CPU for `irq results` on such a ledger, two start-ups).

    `freeze`: for a command whose process ends with the block. What it made is moved out of the
    collector's sight (gc.freeze) before collection resumes: else the first collection after, and
    the one at exit, still scan the million objects of a 10,000-row table (≈ 0.05 s, 0.3 start-ups)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        gc.enable()


def _known_id(exp_id: str, known: set[str]) -> str:
    """The id as the ledger has it; an unknown one is refused with the closest ids."""
    if exp_id.strip() in known:
        return exp_id.strip()
    raise reader.unknown_id(exp_id, sorted(known))


_SCAN = json.JSONDecoder().scan_once  # the C scanner behind json.loads, without its per-call Python layers


def _json(text: Any, default: Any) -> Any:
    if text is None or text in ("{}", "[]"):
        return default
    if not isinstance(text, str):
        return text
    try:
        value, end = _SCAN(text, 0)
        if end == len(text):
            return value
    except (StopIteration, ValueError):
        pass
    try:  # leading or trailing blanks, or not JSON: the full decoder decides
        return json.loads(text)
    except ValueError:
        return default


def _runs(eid: str, attempts: list[tuple], seeds: list[int], params: dict,
          root: Path) -> tuple[list[Run], str | None, list[Missing]]:
    """The experiment's runs (a seed's latest measurement), why it has none, and the metrics
    left out because their run did not complete (a job that wrote metrics.json, then failed):
    a number from a failed run never reaches a mean or a verdict unsaid."""
    by_seed: dict[int, Run] = {}
    unseeded: list[Run] = []
    failed: dict[int | None, Missing] = {}
    for _eid, number, state, array, tasks, results, output, sha in attempts:
        res = _json(results, {})
        if not res or type(res) is not dict:
            continue
        per_seed: dict[int, dict[str, Any]] = {}
        flat: dict[str, Any] = res
        if array or "seed_" in "".join(res):  # a key with seed_ anywhere: SEED_KEY sorts them out
            flat = {}
            for k, v in res.items():
                m = SEED_KEY.match(k)
                if m:
                    per_seed.setdefault(int(m.group(1)), {})[m.group(2)] = v
                else:
                    flat[k] = v
        if per_seed or array:
            # an array's task i ran seeds[i] (job.sbatch.j2): with --seeds 3,7 tasks 0 and 1 are seeds 3 and 7
            task_states = _json(tasks, {})
            tasks_run = [int(t) for t in task_states if str(t).isdigit()]
            expected = sorted(set(seeds) if seeds else set(tasks_run)) if array else []
            for sd in sorted(set(per_seed) | set(expected)):
                if sd in by_seed and not per_seed.get(sd):
                    continue  # a rerun that measured nothing does not hide the earlier measurement
                ended = _task_state(task_states, seeds.index(sd) if sd in seeds else sd, state)
                if ended != SUCCESS:
                    failed[sd] = Missing(number, sd, f"its task ended {ended}"
                                         + (": its metrics are left out" if per_seed.get(sd) else ", with no metrics"))
                    continue
                by_seed[sd] = Run(eid, number, sd, per_seed.get(sd, {}), sha, root,
                                  f"{output}/seed_{sd}" if output else None)
            continue
        seed = flat.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            seed = seeds[0] if len(seeds) == 1 else params.get("seed") if isinstance(params.get("seed"), int) else None
        if state != SUCCESS:
            failed[seed] = Missing(number, seed, f"its run ended {state}: its metrics are left out")
            continue
        run = Run(eid, number, seed, flat, sha or (flat.get("git_sha") if isinstance(flat.get("git_sha"), str) else None),
                  root, output)
        if seed is None:
            unseeded.append(run)
        else:
            by_seed[seed] = run
    runs = [by_seed[k] for k in sorted(by_seed)] + unseeded
    left_out = [m for sd, m in failed.items() if (sd not in by_seed if sd is not None else not unseeded)]
    if runs or left_out:
        return runs, None, left_out
    if not attempts:
        return [], "no attempt in the ledger", []
    last = attempts[-1]
    return [], f"no fetched results (latest attempt {last[1]} is {last[2]})", []


SUCCESS = "COMPLETED"  # the one attempt (or task) state whose metrics count


def _task_state(tasks: Any, index: int, attempt_state: str) -> str:
    """How an array's task ended, as the scheduler said; the attempt's state when it did not say."""
    row = tasks.get(str(index)) if isinstance(tasks, dict) else None
    st = row.get("state") if isinstance(row, dict) else None
    return st if isinstance(st, str) and st else attempt_state


def load_curve(run: Run) -> list[dict[str, Any]]:
    """The run's curve.jsonl rows with a whole-number step. A line that is not JSON is skipped, not
    the end of the curve: the trainer rewrites its curve clean when it resumes after a kill, and a
    script of the user's own may leave one bad line among good ones."""
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
            continue
        if isinstance(row, dict) and type(row.get("step")) is int:  # `true` is no step
            rows.append(row)
    return rows
