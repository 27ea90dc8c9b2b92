"""`irq demo`: the study's pilot (seed 000, Q-004) end to end on the local backend.

Queues the pilot once per mining strategy, runs them with the bundled trainer two at a time,
fetches the results and prints status and a comparison with the trivial baselines. No
cluster needed; everything lands in a folder of its own.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from irq.backends.registry import Backends
from irq.backends.target import REPO_ROOT
from irq.config import load_config, write_default_config
from irq.experiments.edit import add_experiment
from irq.formats.queue_io import export_queue
from irq.jobs.fetch import fetch
from irq.jobs.submit import submit
from irq.jobs.sync import refresh
from irq.ledger.database import Ledger
from irq.ledger.states import is_active
from irq.ui import UI

STRATEGIES = (("Q-041", "none", "Pilot: no negative mining (baseline)"),
              ("Q-042", "random", "Pilot: random negatives"),
              ("Q-043", "adversarial", "Pilot: adversarial negatives"))


@dataclass
class DemoResult:
    folder: Path
    rows: list[dict]


def run_demo(folder: Path, ui: UI, quick: bool = False, poll: float = 2.0) -> DemoResult:
    folder.mkdir(parents=True, exist_ok=True)
    write_default_config(folder / "irq.toml")
    db = folder / "queue.db"
    fresh = not db.exists()
    ledger = Ledger(db, create=True)
    config = load_config(folder / "irq.toml")
    cfg = REPO_ROOT / "trainer" / "configs" / ("tiny.json" if quick else "q004_pilot.json")
    if fresh:
        for exp_id, mining, title in STRATEGIES:
            add_experiment(ledger, exp_id, title, config=cfg, params={"mining": mining},
                           priority="HIGHEST" if mining == "none" else "HIGH", time="15 minutes",
                           hypothesis="all three strategies run end to end at pilot scale",
                           notes="irq demo: " + ("tiny config" if quick else "the seed's pilot config"))
        ui.log(f"queued {len(STRATEGIES)} pilot experiments in {db}")
    with Backends(config) as backends:
        submit(ledger, config, backends, ui, all_ready=True, queue_waiting=False)
        with ui.progress("pilot runs", total=len(STRATEGIES)) as step:
            done = set()
            while True:
                refresh(ledger, backends, ui)
                for o in fetch(ledger, config, backends, ui):
                    done.add(o.id)
                    step.advance(f"{o.id}: {o.state} {o.detail}")
                with ledger.transaction() as s:
                    active = [a for a in Ledger.attempts(s) if is_active(a.state)]
                    ready = [e for e in Ledger.experiments(s) if e.state == "READY"]
                if ready:
                    outs = submit(ledger, config, backends, ui, all_ready=True, queue_waiting=False)
                    if any(o.status == "submitted" for o in outs):
                        continue
                if not active:
                    break
                time.sleep(poll)  # never spin: the trainers need the cores
    export_queue(ledger, folder / "queue.md")
    rows = []
    with ledger.transaction() as s:
        for e in Ledger.experiments(s):
            a = Ledger.latest_attempt(s, e.id)
            r = a.results if a else {}
            rows.append({"id": e.id, "mining": e.parameters.get("mining"), "state": e.state,
                         "val_mse": r.get("val_mse"), "baseline_mean_mse": r.get("baseline_mean_mse"),
                         "baseline_zero_mse": r.get("baseline_zero_mse"), "steps_per_s": r.get("steps_per_s"),
                         "error": a.error if a else None})
    return DemoResult(folder, rows)
