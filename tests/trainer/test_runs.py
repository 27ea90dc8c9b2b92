"""A researcher's story with the trainer: run, read the results, rerun, resume, crash, misconfigure.

Every run uses trainer/configs/tiny.json (rank 3, one CPU thread), shortened further where the
story allows. No timing assertions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, read_curve, read_json, run_trainer

METRIC_KEYS = {
    "train_mse", "val_mse", "best_val_mse", "best_step", "ood_mse", "accuracy", "accuracy_tol",
    "steps_to_threshold", "mse_threshold", "baseline_zero_mse", "baseline_mean_mse", "steps", "wall_time_s",
    "steps_per_s", "device", "torch_version", "git_sha", "seed", "mining", "config",
}
TIMING_KEYS = {"wall_time_s", "train_time_s", "steps_per_s"}


def results(run) -> dict:
    return {k: v for k, v in read_json(run / "metrics.json").items() if k not in TIMING_KEYS}


def test_a_tiny_adversarial_run_learns_and_leaves_a_complete_run_directory(tiny, tmp_path):
    run = tmp_path / "run"
    assert run_trainer("--config", tiny, "--seed", 3, "--out", run, "--git-sha", "abc123") == 0

    for name in ("started.json", "train.log", "curve.jsonl", "metrics.json", "status.json",
                 "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run / name).exists(), name
    status = read_json(run / "status.json")
    assert status["status"] == "completed" and status["exit_code"] == 0 and status["error"] is None
    started = read_json(run / "started.json")
    assert started["seed"] == 3 and started["pid"] == os.getpid() and started["config"]["mining"] == "adversarial"

    m = read_json(run / "metrics.json")
    assert METRIC_KEYS <= set(m)
    assert m["git_sha"] == "abc123" and m["seed"] == 3 and m["mining"] == "adversarial"
    assert m["steps"] == 200 and m["device"] == "cpu" and m["config"]["rank"] == 3
    assert isinstance(m["best_step"], int) and isinstance(m["steps"], int)
    # it learned: clearly better than predicting the mean inverse, on held-out matrices
    assert m["val_mse"] < 0.5 * m["baseline_mean_mse"] < m["baseline_zero_mse"]
    assert m["best_val_mse"] <= m["val_mse"]
    assert 0 <= m["accuracy"] <= 1 and m["steps_to_threshold"] is not None

    curve = read_curve(run)
    assert [row["step"] for row in curve] == [50, 100, 150, 200]
    for row in curve:
        assert {"loss", "loss_denoise", "loss_energy", "train_mse", "val_mse", "lr"} <= set(row)
    assert curve[-1]["val_mse"] < curve[0]["val_mse"]

    last = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    assert last["step"] == 200 and last["config"]["seed"] == 3
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=False)
    assert best["step"] == m["best_step"] and best["config"] == last["config"]
    assert "Traceback" not in (run / "train.log").read_text()


def test_the_same_seed_gives_the_same_metrics_and_diagnostics_do_not_change_training(tiny, tmp_path):
    short = ("--config", tiny, "--train-steps", 60, "--checkpoint-interval", 30, "--test-size", 32,
             "--ood-size", 32)
    assert run_trainer(*short, "--seed", 1, "--out", tmp_path / "a") == 0
    assert run_trainer(*short, "--seed", 1, "--out", tmp_path / "b") == 0
    assert run_trainer(*short, "--seed", 2, "--out", tmp_path / "c") == 0
    assert run_trainer(*short, "--seed", 1, "--out", tmp_path / "d", "--diagnostics", "true") == 0
    a, b, c, d = (results(tmp_path / x) for x in "abcd")
    assert a == b
    assert a["val_mse"] != c["val_mse"]
    d.pop("config"), a.pop("config")
    assert a == d

    row = read_curve(tmp_path / "d")[-1]
    assert row["diag_probe"] == "adversarial"
    assert len(row["diag_step_grad_norm"]) == len(row["diag_step_accept_rate"]) == 2  # mining_opt_steps
    assert len(row["diag_step_energy_gap"]) == 3  # the start, then after each step
    assert all(0 <= r <= 1 for r in row["diag_step_accept_rate"])
    assert 0 <= row["diag_false_negative_rate"] <= 1
    for key in ("diag_energy_gap", "diag_pos_cond_median", "diag_neg_cond_median", "diag_neg_smin_median",
                "diag_pos_logabsdet_median", "diag_neg_residual_median"):
        assert isinstance(row[key], float), key


def test_a_run_extended_from_its_last_checkpoint_matches_an_uninterrupted_run(tiny, tmp_path):
    short = ("--config", tiny, "--checkpoint-interval", 40, "--test-size", 32, "--ood-size", 32, "--seed", 5)
    assert run_trainer(*short, "--train-steps", 80, "--out", tmp_path / "resumed") == 0
    assert run_trainer(*short, "--train-steps", 120, "--out", tmp_path / "resumed") == 0
    assert run_trainer(*short, "--train-steps", 120, "--out", tmp_path / "straight") == 0

    resumed, straight = results(tmp_path / "resumed"), results(tmp_path / "straight")
    assert resumed == straight
    assert [r["step"] for r in read_curve(tmp_path / "resumed")] == [40, 80, 120]
    assert read_json(tmp_path / "resumed" / "started.json")["resumed_from_step"] == 80


def test_a_preempted_run_stops_cleanly_and_resumes_from_the_same_directory(tiny, tmp_path):
    """SLURM preemption: SIGTERM, then the job is requeued with the same command line."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "trainer", "--config", str(tiny), "--train-steps", "100000",
           "--checkpoint-interval", "20", "--out", str(run)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # CPU-only, as on a login node
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "curve.jsonl").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert (run / "started.json").exists() and not (run / "status.json").exists()  # visibly running
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    status = read_json(run / "status.json")
    assert status["status"] == "failed" and "SIGTERM" in status["error"]
    stopped_at = torch.load(run / "checkpoints" / "last.pt", weights_only=False)["step"]
    assert stopped_at >= 20

    done = subprocess.run(cmd[:6] + [str(stopped_at + 20)] + cmd[7:], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    m = read_json(run / "metrics.json")
    assert m["steps"] == stopped_at + 20 and m["device"] == "cpu"
    assert read_json(run / "status.json")["status"] == "completed"


def test_a_crash_leaves_a_failed_status_a_traceback_and_exit_code_1(tiny, tmp_path, monkeypatch, capsys):
    from trainer.train import Trainer

    def broken(self, a, y0):
        raise RuntimeError("simulated failure inside a training step")

    monkeypatch.setattr(Trainer, "train_step", broken)
    run = tmp_path / "run"
    assert run_trainer("--config", tiny, "--out", run) == 1
    status = read_json(run / "status.json")
    assert status["status"] == "failed" and status["exit_code"] == 1
    assert status["error"] == "RuntimeError: simulated failure inside a training step"
    assert "Traceback" in (run / "train.log").read_text()
    assert "Traceback" in capsys.readouterr().err


def test_a_nan_loss_stops_the_run_with_a_clear_message(tiny, tmp_path):
    run = tmp_path / "run"
    code = run_trainer("--config", tiny, "--out", run, "--learning-rate", "1e30", "--grad-clip", "0")
    assert code != 0
    status = read_json(run / "status.json")
    assert status["status"] == "failed" and status["exit_code"] == code
    assert "NaN loss at step" in status["error"]


@pytest.mark.parametrize("args, key", [
    (("--bogus", "1"), "bogus"),
    (("--train-stepz=3",), "train_stepz"),
])
def test_an_unknown_flag_is_refused_on_one_line_listing_the_valid_keys(args, key, capsys):
    assert run_trainer(*args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"'{key}'" in err and "valid keys:" in err and "mining_opt_steps" in err


def test_an_unknown_key_in_a_config_file_is_refused(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text('{"rank": 3, "minning": "random"}')
    assert run_trainer("--config", path, "--out", tmp_path / "run") == 2
    assert "'minning'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_flags_take_dashes_or_underscores_and_override_the_file(tiny, capsys):
    import json

    assert run_trainer("--config", tiny, "--train-steps", "7", "--mining_opt_steps=4", "--faithful", "false",
                       "--cosine-lr-start", "null", "--print-config") == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["train_steps"] == 7 and cfg["mining_opt_steps"] == 4 and cfg["faithful"] is False
    assert cfg["cosine_lr_start"] is None and cfg["rank"] == 3
    assert run_trainer("--config", tiny, "--mining", "sideways") == 2


def test_the_shipped_configs_carry_the_seeds_values():
    from trainer.config import build, load_json

    for name, mining in (("q001_baseline", "none"), ("q002_random", "random"), ("q003_adversarial", "adversarial")):
        cfg = build(load_json(ROOT / "trainer" / "configs" / f"{name}.json"))
        assert (cfg.rank, cfg.diffusion_steps, cfg.train_steps, cfg.batch_size, cfg.learning_rate, cfg.mining) == \
            (20, 10, 100_000, 2048, 1e-4, mining)
        assert (cfg.mining_opt_steps, cfg.mining_noise_scale, cfg.faithful) == (2, 3.0, True)
    pilot = build(load_json(ROOT / "trainer" / "configs" / "q004_pilot.json"))
    assert (pilot.rank, pilot.diffusion_steps, pilot.train_steps, pilot.batch_size, pilot.mining) == \
        (10, 5, 1000, 256, "none")


def test_the_trainer_never_imports_irq():
    code = "import sys, trainer.cli, trainer.train; assert not any(m == 'irq' or m.startswith('irq.') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
