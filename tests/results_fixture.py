"""Fixture runs for the results tests: a ledger and fetched run directories, as irq fetch leaves them.

Three strategies (Q-001 none, Q-002 random, Q-003 adversarial), each an array of three seeds whose
seed_N/ folders hold metrics.json and curve.jsonl with the trainer's diagnostics keys.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from irq.ledger.database import Ledger
from irq.ledger.models import Experiment

# final val_mse per strategy and seed: known numbers the tests recompute independently
FINAL = {
    "Q-001": {0: 0.0400, 1: 0.0420, 2: 0.0380},
    "Q-002": {0: 0.0410, 1: 0.0395, 2: 0.0430},
    "Q-003": {0: 0.0300, 1: 0.0290, 2: 0.0310},
}
MINING = {"Q-001": "none", "Q-002": "random", "Q-003": "adversarial"}
STEPS = (100, 200, 300, 400, 500)
SHA = "0123456789abcdef0123456789abcdef01234567"


def curve_rows(final: float, seed: int, diagnostics: bool = True) -> list[dict]:
    rows = []
    for k, step in enumerate(STEPS):
        v = final * (1 + 4 * math.exp(-k)) if k < len(STEPS) - 1 else final
        row = {"step": step, "train_mse": v * 0.9, "val_mse": v, "loss": v * 2, "lr": 1e-4}
        if diagnostics:
            row.update({
                "diag_energy_gap": -0.1 * (k + 1) - 0.01 * seed, "diag_step_grad_norm": [1.0 + 0.1 * seed, 0.5 + 0.1 * k],
                "diag_pos_cond_median": 38.0 + k, "diag_neg_cond_median": 25.0 + seed,
                "diag_pos_smin_median": 0.049 + 0.001 * k, "diag_neg_smin_median": 0.16,
                "diag_pos_logabsdet_median": 3.0, "diag_neg_logabsdet_median": 2.0 + 0.1 * k,
            })
        rows.append(row)
    return rows


def add_exp(ledger: Ledger, exp_id: str, title: str, **kw) -> None:
    with ledger.transaction() as s:
        Ledger.add_experiment(s, Experiment(id=exp_id, seq=0, title=title, **kw))


def add_array_attempt(ledger: Ledger, root: Path, exp_id: str, values: dict[int, float | None],
                      diagnostics: bool = True, state: str = "COMPLETED", write_files: bool = True) -> Path:
    """An array attempt whose fetched output holds seed_N/metrics.json and curve.jsonl."""
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        n = len(Ledger.attempts(s, exp_id)) + 1
    out = Path("results") / f"{exp_id.lower().replace('-', '')}_{n}"
    results = {}
    for seed, v in values.items():
        m = {"val_mse": v, "baseline_mean_mse": 0.0341, "baseline_zero_mse": 0.0582, "seed": seed,
             "mining": MINING.get(exp_id, "none"), "git_sha": SHA}
        for k in ("val_mse", "baseline_mean_mse", "baseline_zero_mse"):
            results[f"seed_{seed}.{k}"] = m[k]
        if write_files:
            d = root / out / f"seed_{seed}"
            d.mkdir(parents=True, exist_ok=True)
            (d / "metrics.json").write_text(json.dumps(m))
            if v is not None:
                (d / "curve.jsonl").write_text("".join(json.dumps(r) + "\n" for r in curve_rows(v, seed, diagnostics)))
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        Ledger.new_attempt(s, exp, backend="local", array=f"0-{max(values)}", state=state, git_sha=SHA,
                           tasks={str(k): {"state": state} for k in values}, results=results, output=str(out))
    return root / out


def add_single_attempt(ledger: Ledger, exp_id: str, metrics: dict, output: str | None = None,
                       state: str = "COMPLETED") -> None:
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        Ledger.new_attempt(s, exp, backend="local", state=state, results=metrics, output=output)


def study(ledger: Ledger, root: Path, diagnostics: bool = True) -> None:
    """The three strategies with three seeds each, fetched."""
    for eid, title in (("Q-001", "Baseline (no mining)"), ("Q-002", "Random negatives"),
                       ("Q-003", "Adversarial negatives")):
        add_exp(ledger, eid, title, state="DONE", parameters={"mining": MINING[eid]}, seeds=[0, 1, 2])
        add_array_attempt(ledger, root, eid, FINAL[eid], diagnostics)
