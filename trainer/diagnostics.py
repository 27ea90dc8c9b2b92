"""Instrumentation for the questions of seed 001, phase 2: what do the negatives look like?

At each checkpoint (with diagnostics on), the current online model mines negatives for the first
`diag_size` samples of the training batch, exactly as training does, while recording every descent
step. With mining `none` the adversarial miner is run as a probe of the energy landscape
(`diag_probe` says which). Every value is a plain float or a list of floats, one per descent step,
so the dictionary can be merged into a curve.jsonl line.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainer.config import TrainConfig
from trainer.diffusion import Energy, Schedule, StepRecord
from trainer.mining import MiningKeys, mine


def _median(x: Tensor) -> float:
    return float(x.float().median())


def conditioning(y: Tensor, n: int) -> dict[str, Tensor]:
    """Singular-value summary of flattened n x n matrices (float64: ill-conditioned is the point)."""
    s = torch.linalg.svdvals(y.double().reshape(-1, n, n))
    smin, smax = s[:, -1], s[:, 0]
    sign = torch.linalg.det(y.double().reshape(-1, n, n)).sign()
    return {"smin": smin, "cond": smax / smin.clamp_min(1e-300), "logabsdet": s.log().sum(-1), "det_sign": sign}


@torch.no_grad()
def mining_diagnostics(cfg: TrainConfig, f: Energy, schedule: Schedule, a: Tensor, y0: Tensor, t: Tensor,
                       noise: Tensor, generator: torch.Generator | None = None) -> dict:
    """f: an Energy on exactly these rows (detached online model)."""
    n = cfg.rank
    strategy = cfg.mining if cfg.mining in ("random", "adversarial") else "adversarial"
    steps: list[StepRecord] = []
    start = schedule.q_sample(y0, t, cfg.mining_noise_scale * noise)
    negatives = mine(MiningKeys.of(cfg), f, schedule, y0, t, noise, generator, strategy=strategy, record=steps.append)
    assert negatives is not None
    pos = schedule.q_sample(y0, t, noise)
    neg = schedule.q_sample(negatives, t, noise)
    e_pos, e_neg, e_start = f.energy(pos), f.energy(neg), f.energy(start)
    gap = e_pos - e_neg

    out: dict = {
        "diag_probe": strategy,
        "diag_energy_pos": float(e_pos.mean()),
        "diag_energy_neg": float(e_neg.mean()),
        "diag_energy_gap": float(gap.mean()),  # E(pos) - E(neg): negative when the model ranks them right
        "diag_energy_gap_std": float(gap.std()),
        "diag_pos_below_neg": float((gap < 0).float().mean()),
        # per mining step k = 0 (start) .. K: E(y+) - E(x_k) at level t
        "diag_step_energy_gap": [float((e_pos - e_start).mean())] + [float((e_pos - r.energy).mean()) for r in steps],
        "diag_step_grad_norm": [float(r.grad_norm.mean()) for r in steps],
        "diag_step_accept_rate": [float(r.accepted.float().mean()) for r in steps],
        "diag_step_distance": [float(r.moved.mean()) for r in steps],  # RMS move between consecutive negatives
    }
    err = (negatives - y0).pow(2).mean(-1)
    out["diag_neg_mse_to_pos"] = float(err.mean())
    out["diag_false_negative_rate"] = float((err < cfg.false_negative_threshold).float().mean())
    eye = torch.eye(n, dtype=torch.float64, device=a.device)
    residual = lambda y: (a.double().reshape(-1, n, n) @ y.double().reshape(-1, n, n) - eye).flatten(1).norm(dim=-1)  # noqa: E731
    out["diag_neg_residual_median"] = _median(residual(negatives))  # ||A Y- - I||_F (0 for the true inverse)
    for name, y in (("pos", y0), ("neg", negatives)):
        c = conditioning(y, n)
        out[f"diag_{name}_cond_median"] = _median(c["cond"])
        out[f"diag_{name}_smin_median"] = _median(c["smin"])
        out[f"diag_{name}_logabsdet_median"] = _median(c["logabsdet"])
        out[f"diag_{name}_det_negative_frac"] = float((c["det_sign"] < 0).float().mean())
    return out
