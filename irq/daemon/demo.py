"""`irq demo`: the study's pilot (seed 000, Q-004) end to end on the local backend.

Queues the pilot once per mining strategy, then runs the daemon's own cycle (refresh, fetch,
retry, submit, export) until the queue is empty, the bundled trainer running two at a time.
No cluster needed; everything lands in a folder of its own.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from irq import errors
from irq.backends.registry import Backends
from irq.backends.target import REPO_ROOT
from irq.config import Config, load_config, write_default_config
from irq.daemon.loop import DaemonLock, cycle, queue_empty
from irq.experiments.edit import add_experiment
from irq.formats.export import Derived
from irq.formats.queue_io import export_queue
from irq.ledger.database import Ledger
from irq.ui import UI

STRATEGIES = (("Q-041", "none", "Pilot: no negative mining (baseline)"),
              ("Q-042", "random", "Pilot: random negatives"),
              ("Q-043", "adversarial", "Pilot: adversarial negatives"))
DEMO_META = "irq_demo"  # which demo made the ledger: "quick" (the tiny config) or "pilot"
RESULT_KEYS = ("val_mse", "baseline_mean_mse", "baseline_zero_mse", "steps_per_s")


@dataclass
class DemoResult:
    folder: Path
    rows: list[dict]


def run_demo(folder: Path, ui: UI, quick: bool = False, poll: float = 2.0) -> DemoResult:
    """Queue the pilot (first time only), drive daemon cycles until it is done, export queue.md."""
    folder.mkdir(parents=True, exist_ok=True)
    write_default_config(folder / "irq.toml")
    config = load_config(folder / "irq.toml")
    _check_trainer_python(config.local.python or sys.executable)  # before the ledger: nothing queued to fail
    db = folder / "queue.db"
    fresh = not db.exists()
    kind = "quick" if quick else "pilot"
    ledger = Ledger(db, create=True)
    if fresh:
        _queue_pilot(ledger, quick)
        ledger.set_meta(DEMO_META, kind)
        ui.log(f"queued {len(STRATEGIES)} pilot experiments in {db}")
    else:
        _same_demo(ledger, folder, kind)
    lock = DaemonLock(db)
    lock.acquire()  # a daemon on this ledger would run the same cycle: one at a time
    try:
        _drive(ledger, config, ui, poll)
    finally:
        lock.release()
    export_queue(ledger, folder / "queue.md", derived=Derived(dest_dir=folder))
    return DemoResult(folder, _rows(ledger))


def _same_demo(ledger: Ledger, folder: Path, kind: str) -> None:
    """A ledger there is this demo's, from an earlier run (it goes on where that stopped): not a
    project's own (the demo would run its queue), nor the other kind's (its results would be shown
    as these)."""
    was = ledger.get_meta(DEMO_META)
    if was is None and _only_the_pilot(ledger):  # made by an irq that did not yet say which demo
        return
    if was is None:
        raise errors.UsageError(f"{folder} already holds a ledger that irq demo did not make: the demo would run its queue",
                                "run the demo in a folder of its own: `irq demo` (it makes irq-demo/), or --dir NEW_FOLDER")
    if was != kind:
        other = "--quick " if kind == "quick" else ""
        raise errors.UsageError(f"{folder} holds the {was} demo's runs, not the {kind} one's",
                                f"`irq demo {other}--dir {folder}-{kind}`, or delete {folder} to start over")


def _only_the_pilot(ledger: Ledger) -> bool:
    with ledger.transaction() as s:
        ids = Ledger.ids(s)
    return bool(ids) and set(ids) <= {e for e, _, _ in STRATEGIES}


def _check_trainer_python(python: str) -> None:
    """The bundled trainer needs torch in the interpreter the jobs run (a plain `pip install irq`
    has none: the trainer is the `train` extra). Asked of that interpreter without importing torch."""
    import subprocess

    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"
    try:
        ok = subprocess.run([python, "-c", probe], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        raise errors.IrqError(f"the demo trains with the bundled trainer, which needs torch, and {python} cannot import it",
                              "install irq with its trainer: pip install 'irq[train]' (from a checkout: "
                              "pip install '.[train]'), or set [local] python to an interpreter that has torch")


def _queue_pilot(ledger: Ledger, quick: bool) -> None:
    cfg = REPO_ROOT / "trainer" / "configs" / ("tiny.json" if quick else "q004_pilot.json")
    for exp_id, mining, title in STRATEGIES:
        add_experiment(ledger, exp_id, title, config=cfg, params={"mining": mining},
                       priority="HIGHEST" if mining == "none" else "HIGH", time="15 minutes",
                       hypothesis="all three strategies run end to end at pilot scale",
                       notes="irq demo: " + ("tiny config" if quick else "the seed's pilot config"))


def _drive(ledger: Ledger, config: Config, ui: UI, poll: float) -> None:
    """Daemon cycles until every experiment is DONE or FAILED; sleep between idle cycles."""
    with Backends(config) as backends, ui.progress("pilot runs", total=len(STRATEGIES)) as step:
        while True:
            rep = cycle(ledger, config, ui, backends)
            for line in rep.fetched:
                step.advance(line)
            if rep.needs_person or rep.unreachable:
                raise errors.BackendError(f"the local backend did not answer: {rep.needs_person or rep.unreachable}")
            if queue_empty(ledger):
                return
            if not rep.submitted:
                time.sleep(poll)  # never spin: the trainers need the cores


def _rows(ledger: Ledger) -> list[dict]:
    rows = []
    with ledger.transaction() as s:
        for e in Ledger.experiments(s):
            a = Ledger.latest_attempt(s, e.id)
            r = a.results if a else {}
            rows.append({"id": e.id, "mining": e.parameters.get("mining"), "state": e.state,
                         **{k: r.get(k) for k in RESULT_KEYS}, "error": a.error if a else None})
    return rows
