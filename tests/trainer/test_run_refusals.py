"""What the trainer refuses, and how a run ends when it cannot go on: one line and exit 2 for what
was asked wrongly (the run folder left as it was), exit 3 and a failed status for a run that
diverged, never "completed" with numbers the run contract refuses."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, read_json, run_trainer


def test_weights_that_stop_being_finite_fail_the_run_never_complete_it(tiny, tmp_path):
    """lr 1e30 for one step: the loss of that step was finite, the weights after it were not; the
    run once said "completed" (exit 0) with a val_mse of null, which irq's fetch refuses."""
    run = tmp_path / "run"
    code = run_trainer("--config", tiny, "--out", run, "--learning-rate", "1e30", "--train-steps", "1")
    assert code == 3
    status = read_json(run / "status.json")
    assert status["status"] == "failed" and status["exit_code"] == 3
    assert "validation MSE nan at step 1" in status["error"] or "gradient norm" in status["error"], status
    assert not (run / "metrics.json").exists()


def test_an_infinite_gradient_norm_fails_the_run_instead_of_zeroing_every_update(tiny, tmp_path, monkeypatch):
    """clip_grad_norm_ of an infinite norm multiplies every gradient by 0: training stopped, silently."""
    import torch

    real = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda params, max_norm: real(params, max_norm) * float("inf"))
    run = tmp_path / "run"
    assert run_trainer("--config", tiny, "--out", run, "--train-steps", "3") == 3
    assert "gradient norm inf at step 1" in read_json(run / "status.json")["error"]


@pytest.mark.parametrize("args, words", [
    (("--seed", "1", "--data-seed", "0"), "seed 1 draws the same matrices as the validation set"),
    (("--seed", "1234002"), "seed 1234002 draws the same matrices as the test set"),
    (("--seed", "99999999999999999999999"), "seed must be in [0, 2147483647]"),
    (("--grad-clip", "-1"), "grad_clip must be >= 0"),
    (("--learning-rate", "inf"), "learning_rate must be > 0 and finite"),
    (("--min-lr=-0.001",), "min_lr must be >= 0"),
    (("--ema-warmup", "-5"), "ema_warmup must be >= 0"),
])
def test_a_value_the_run_cannot_use_is_refused_on_one_line(tiny, tmp_path, capsys, args, words):
    """seed 1 with data_seed 0 trained on the validation matrices themselves; the others were
    accepted and did something else (a negative grad_clip turned clipping off) or crashed later."""
    assert run_trainer("--config", tiny, "--out", tmp_path / "run", *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("make, words", [
    (lambda p: p.mkdir(), "cannot read config file"),
    (lambda p: p.write_bytes(b"\xff\xfe{}"), "is not a text file"),
])
def test_a_config_file_that_cannot_be_read_is_refused_on_one_line(tmp_path, capsys, make, words):
    path = tmp_path / "c.json"
    make(path)
    assert run_trainer("--config", path, "--print-config") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err, err


def test_an_out_folder_that_cannot_be_made_is_refused_on_one_line(tiny, tmp_path, capsys):
    (tmp_path / "f").write_text("a file")
    assert run_trainer("--config", tiny, "--out", tmp_path / "f" / "run") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot make the run folder") and len(err.splitlines()) == 1, err


def test_rerunning_a_finished_run_with_another_shape_leaves_it_as_it_was(tiny, tmp_path, capsys):
    """Once a traceback, exit 1, and the finished run's status turned "failed"."""
    run = tmp_path / "run"
    assert run_trainer("--config", tiny, "--out", run, "--train-steps", "20") == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    assert run_trainer("--config", tiny, "--out", run, "--train-steps", "20", "--diffusion-steps", "6") == 2
    err = capsys.readouterr().err.strip()
    assert "cannot resume" in err and "diffusion_steps=5" in err and len(err.splitlines()) == 1, err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_rerunning_a_run_that_stopped_early_trains_no_further(tiny, tmp_path):
    run = tmp_path / "run"
    args = ("--config", tiny, "--out", run, "--mining", "none", "--learning-rate", "0.01", "--train-steps", "400",
            "--checkpoint-interval", "10", "--early-stopping-patience", "1")
    assert run_trainer(*args) == 0
    first = read_json(run / "metrics.json")
    assert first["steps"] < 400, first["steps"]  # it did stop early
    assert run_trainer(*args) == 0
    again = read_json(run / "metrics.json")
    assert again["steps"] == first["steps"] and again["val_mse"] == first["val_mse"]


def test_an_interrupted_run_keeps_the_wall_time_it_spent(tiny, tmp_path):
    """SIGTERM between checkpoints: the time since the last one was dropped, and the resumed run's
    wall_time_s came out below its train_time_s."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "trainer", "--config", str(tiny), "--train-steps", "300",
           "--checkpoint-interval", "1000", "--out", str(run)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (run / "started.json").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 143
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    m = json.loads((run / "metrics.json").read_text())
    assert m["wall_time_s"] >= m["train_time_s"], m


@pytest.mark.parametrize("ood, zero, mean", [(False, 0.0207, 0.0141), (True, 0.252, 0.212)])
def test_the_trivial_baselines_at_rank_20_are_the_references(ood, zero, mean):
    """/work/shared/docs/ired-reference.md's table. The harder set's predict-mean baseline is its own
    mean inverse, as the reference reports it (the in-distribution mean gave 0.229, not 0.212)."""
    from trainer import data as D

    fixed = D.fixed_set(20, 1024, 1234, D.OOD_OFFSET if ood else D.VAL_OFFSET, ood=ood)
    got = D.baselines(fixed.y, D.mean_inverse(20, 1234, ood=ood))
    assert got["zero"] == pytest.approx(zero, rel=0.04) and got["mean"] == pytest.approx(mean, rel=0.04), got
