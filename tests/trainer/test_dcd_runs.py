"""Seed 004's trainer end to end: the ablation configs, their pilots learning, runs that repeat and
resume bit for bit with the replay buffer, checkpoints scored with the EMA model, and the code rules.

Pilots run at the tiny size (rank 3, T 5, batch 64, one thread); no timing assertions.
"""

from __future__ import annotations

import ast
import json
import math
import signal

import pytest
import torch

from conftest import ROOT, read_curve, read_json, run_trainer

CONFIGS = ROOT / "trainer" / "configs"
ABLATION = ("q201_dcd_baseline", "q202_dcd_cdloss", "q203_dcd_replay", "q204_dcd_full")
TINY = ("--rank", 3, "--diffusion-steps", 5, "--batch-size", 64, "--learning-rate", 1e-3, "--inner-steps", 2,
        "--val-size", 128, "--test-size", 0, "--ood-size", 0, "--num-threads", 1, "--log-interval", 1000)
TIMING = {"wall_time_s", "train_time_s", "steps_per_s", "git_sha"}
NEGATIVE_KEYS = {"energy_pos", "energy_neg", "energy_gap", "energy_weight", "neg_residual_p10", "neg_residual_p50",
                 "neg_residual_p90"}


def results(run) -> dict:
    return {k: v for k, v in read_json(run / "metrics.json").items() if k not in TIMING}


def curve(run) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in read_curve(run)]


def test_the_ablation_configs_carry_seed_004s_table():
    from trainer.config import build, load_json

    rows = {}
    for name in ABLATION:
        cfg = build(load_json(CONFIGS / f"{name}.json"))
        assert (cfg.rank, cfg.batch_size, cfg.train_steps, cfg.diffusion_steps, cfg.learning_rate) == \
            (20, 2048, 100_000, 10, 1e-4)
        assert (cfg.mining_noise_scale, cfg.mining_opt_steps) == (1.5, 10)
        if cfg.mining == "langevin":
            assert (cfg.langevin_init_scale, cfg.langevin_steps) == (1.5, 10)
        schedule = cfg.energy_warmup_frac > 0 or cfg.energy_t_min > 0 or cfg.energy_t_max < 1
        rows[name] = (cfg.energy_loss == "cd", cfg.replay_size > 0, cfg.residual_filter != "off", schedule)
        pilot = build(load_json(CONFIGS / f"{name}_pilot.json"))
        assert (pilot.rank, pilot.diffusion_steps, pilot.train_steps, pilot.batch_size) == (10, 5, 1000, 256)
        same = {k for k in cfg.to_dict() if k not in ("rank", "diffusion_steps", "train_steps", "batch_size",
                                                      "checkpoint_interval", "mse_threshold")}
        assert {k: getattr(pilot, k) for k in same} == {k: getattr(cfg, k) for k in same}
    assert list(rows.values()) == [(False, False, False, False), (True, False, False, False),
                                   (True, True, False, False), (True, True, True, True)]
    full = build(load_json(CONFIGS / "q204_dcd_full.json"))
    assert (full.energy_loss_weight, full.energy_warmup_frac, full.energy_t_min, full.energy_t_max) == (0.1, 0.2, 0.2, 0.8)
    assert (full.replay_size, full.replay_prob) == (10_000, 0.95)


@pytest.mark.parametrize("name", ABLATION)
def test_a_pilot_of_each_ablation_config_learns_below_half_the_predict_mean_baseline(name, tmp_path):
    run = tmp_path / name
    assert run_trainer("--config", CONFIGS / f"{name}_pilot.json", *TINY, "--train-steps", 300,
                       "--checkpoint-interval", 150, "--out", run) == 0
    m = read_json(run / "metrics.json")
    assert m["val_mse"] < 0.5 * m["baseline_mean_mse"], (m["val_mse"], m["baseline_mean_mse"])
    row = read_curve(run)[-1]
    assert NEGATIVE_KEYS <= set(row) and NEGATIVE_KEYS <= set(m)
    assert math.isclose(row["energy_gap"], row["energy_pos"] - row["energy_neg"], rel_tol=1e-9, abs_tol=1e-9)
    assert row["neg_residual_p10"] <= row["neg_residual_p50"] <= row["neg_residual_p90"]
    cfg = m["config"]
    if cfg["replay_size"]:
        assert row["buffer_age"] > 0 and 0 < row["buffer_fill"] <= 1 and 0 < row["replay_frac"] <= 1
    else:
        assert "buffer_age" not in row
    if cfg["residual_filter"] != "off":
        assert 0 < row["filtered_frac"] < 1 and m["filtered_frac"] == row["filtered_frac"]
    else:
        assert "filtered_frac" not in row


def test_a_mixed_langevin_run_with_a_buffer_repeats_bit_for_bit_per_seed(tmp_path):
    args = ("--config", CONFIGS / "q203_dcd_replay_pilot.json", *TINY, "--train-steps", 40, "--checkpoint-interval", 20,
            "--mining", "mixed", "--mixed-strategy", "random:0.4,langevin:0.6", "--random-negative", "uniform",
            "--replay-size", 100, "--langevin-steps", 3)
    for out, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert run_trainer(*args, "--seed", seed, "--out", tmp_path / out) == 0
    assert results(tmp_path / "a") == results(tmp_path / "b") and curve(tmp_path / "a") == curve(tmp_path / "b")
    assert results(tmp_path / "a")["val_mse"] != results(tmp_path / "c")["val_mse"]


def test_a_preempted_full_run_resumes_to_the_same_results_as_an_uninterrupted_one(tmp_path, monkeypatch):
    from trainer.train import Trainer

    args = ("--config", CONFIGS / "q204_dcd_full_pilot.json", *TINY, "--train-steps", 80, "--checkpoint-interval", 20,
            "--replay-size", 200, "--seed", 3)
    assert run_trainer(*args, "--out", tmp_path / "straight") == 0
    step = Trainer.train_step

    def preempted_after_step_50(self, a, y0):
        out = step(self, a, y0)
        if self.progress.step == 49:  # the step in flight is the 50th: SIGTERM arrives during it
            self._signal = signal.SIGTERM
        return out

    monkeypatch.setattr(Trainer, "train_step", preempted_after_step_50)
    assert run_trainer(*args, "--out", tmp_path / "resumed") == 128 + signal.SIGTERM
    monkeypatch.undo()
    saved = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=False)
    assert saved["step"] == 50
    counts, capacity = saved["sampler"]["buffer"]["count"], saved["sampler"]["buffer"]["data"].shape[1]
    assert max(counts) > capacity, "the buffer should have wrapped around before the interruption"
    assert run_trainer(*args, "--out", tmp_path / "resumed") == 0
    assert results(tmp_path / "resumed") == results(tmp_path / "straight")
    assert curve(tmp_path / "resumed") == curve(tmp_path / "straight")


def test_checkpoints_are_scored_and_chosen_with_the_ema_model_as_the_final_evaluation(tiny, tmp_path):
    from trainer.data import VAL_OFFSET, fixed_set
    from trainer.diffusion import Schedule
    from trainer.evaluate import score
    from trainer.model import EnergyMLP

    run = tmp_path / "run"
    assert run_trainer("--config", tiny, "--train-steps", 150, "--checkpoint-interval", 50, "--test-size", 0,
                       "--ood-size", 0, "--early-stopping-patience", 100, "--out", run) == 0
    cfg, rows, m = read_json(run / "metrics.json")["config"], read_curve(run), read_json(run / "metrics.json")
    val = fixed_set(cfg["rank"], cfg["val_size"], cfg["data_seed"], VAL_OFFSET)

    def val_mse(state: dict) -> float:
        model = EnergyMLP(cfg["rank"] ** 2, cfg["diffusion_steps"])
        model.load_state_dict(state)
        return score(model, Schedule.cosine(cfg["diffusion_steps"]), val, cfg["inner_steps"], cfg["faithful"],
                     cfg["eval_batch_size"], cfg["accuracy_tol"]).mse

    last = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    ema_score, online_score = val_mse(last["ema"]["model"]), val_mse(last["model"])
    assert not math.isclose(ema_score, online_score, rel_tol=1e-3), "EMA and online weights should differ here"
    assert math.isclose(rows[-1]["val_mse"], ema_score, rel_tol=1e-6)
    assert math.isclose(m["val_mse"], ema_score, rel_tol=1e-6)
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=False)
    best_row = min(rows, key=lambda r: r["val_mse"])
    assert best["step"] == m["best_step"] == best_row["step"]
    assert math.isclose(val_mse(best["ema"]["model"]), best_row["val_mse"], rel_tol=1e-6)
    assert math.isclose(m["best_val_mse"], best_row["val_mse"], rel_tol=1e-6)


def test_keys_json_lists_exactly_the_config_keys():
    from trainer.config import KEYS

    assert json.loads((ROOT / "trainer" / "keys.json").read_text())["keys"] == list(KEYS)


def test_no_function_in_the_trainer_is_longer_than_60_lines():
    long = []
    for path in sorted((ROOT / "trainer").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    long.append(f"{path.name}:{node.name} ({length} lines)")
    assert not long, long
