"""The trainer computes the reference algorithm: schedule, energy gradient, loss, mining, sampling.

The trainer's fast paths (FiLM table, shared A-projection, hand-written grad_y E, fused passes,
reused energies in descent) are checked against tests/trainer/naive.py, which does each thing the
slow, obvious way, in float64 so that only real differences show.
"""

from __future__ import annotations

import math

import naive
import pytest
import torch
from problem import B, N, T, as_double

from trainer.config import TrainConfig
from trainer.diffusion import Energy, Schedule, StepRecord, clamp_bound, descend, sample
from trainer.mining import mine
from trainer.model import EnergyMLP
from trainer.objective import training_loss
from trainer.train import detached



def energy_of(model, a, t) -> Energy:
    return Energy(model, model.context(a), model.film(t), model.weights())


def test_cosine_schedule_matches_the_published_values_for_ten_steps():
    s = Schedule.cosine(10)
    expected = [.986, .948, .887, .805, .703, .584, .451, .307, .155, .005]
    assert [round(v, 3) for v in s.sqrt_abar.tolist()] == expected
    abar = s.sqrt_abar.double() ** 2
    assert torch.allclose(s.step_size.double(), s.betas.double() / (1 - abar).sqrt(), rtol=1e-5)
    assert s.betas.max() <= 0.999


def test_q_sample_mixes_signal_and_noise_by_the_schedule():
    s = Schedule.cosine(10)
    y0, eps = torch.ones(2, 4), torch.full((2, 4), 2.0)
    t = torch.tensor([0, 9])
    y = s.q_sample(y0, t, eps)
    for row, step in enumerate(t.tolist()):
        assert torch.allclose(y[row], s.sqrt_abar[step] + 2 * s.sqrt_one_minus_abar[step])


def test_hand_written_gradient_equals_autograd(setup):
    model, _, a, y0, t = setup
    e_ref, g_ref = naive.energy_and_grad(model, a, y0.clone(), t, create_graph=False)
    e, g = energy_of(model, a, t).energy_and_grad(y0)
    assert torch.allclose(e, e_ref, atol=1e-12) and torch.allclose(g, g_ref, atol=1e-12)


@pytest.mark.parametrize("mining", ["none", "random", "adversarial"])
def test_training_loss_and_its_parameter_gradients_equal_the_naive_double_backward(setup, mining):
    model, sched, a, y0, t = setup
    noise, contrast = torch.randn_like(y0), torch.randn_like(y0)
    ref = naive.training_loss(model, sched, a, y0, t, noise, contrast, mining)
    ref_grads = torch.autograd.grad(ref, list(model.parameters()))
    cfg = TrainConfig(rank=N, diffusion_steps=T, mining=mining)
    f = energy_of(model, a, t)
    negatives = mine(cfg, detached(f), sched, y0, t, contrast)
    parts = training_loss(f, sched, y0, t, noise, negatives, contrast if mining != "none" else None, 0.5)
    grads = torch.autograd.grad(parts.loss, list(model.parameters()))
    assert torch.allclose(parts.loss, ref, atol=1e-12)
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, atol=1e-12)


def test_sampling_equals_the_naive_reverse_diffusion_with_inner_descent(setup):
    model, sched, a, _, _ = setup
    init = torch.randn(B, N * N, dtype=torch.float64)
    ours = sample(model, sched, a, inner_steps=5, faithful=True, init=init)
    ref = naive.sample(model, sched, a, 5, init)
    assert torch.allclose(ours, ref, atol=1e-10)


def test_faithful_sampling_returns_a_level_zero_scaled_answer_and_clean_mode_does_not(setup):
    model, sched, a, _, _ = setup
    init = torch.randn(B, N * N, dtype=torch.float64)
    faithful = sample(model, sched, a, 0, faithful=True, init=init)
    clean = sample(model, sched, a, 0, faithful=False, init=init)
    assert torch.allclose(faithful, sched.sqrt_abar[0] * clean)


def test_adversarial_negatives_never_end_with_higher_energy_than_their_start(setup):
    model, sched, _, y0, t = setup
    torch.manual_seed(1)
    a = 3 * torch.randn(B, N * N, dtype=torch.float64)  # a rough landscape and huge steps (to the clamp): some get rejected
    f = energy_of(model, a, t)
    start = sched.q_sample(y0, t, 3.0 * torch.randn_like(y0))
    records: list[StepRecord] = []
    with torch.no_grad():
        bound = clamp_bound(sched, t, faithful=True)
        end, e_end = descend(f, start, 1e4 * sched.step_size[t][:, None], bound, steps=6, record=records.append)
        # the start's energy as descend measures it (energy_and_grad): the forward-only energy()
        # rounds differently in the last bits, and a sample whose every step was rejected keeps
        # exactly the former (a run with other BLAS threads found e_end above energy() by 1 ulp)
        e_start = f.energy_and_grad(start)[0]
    assert torch.all(e_end <= e_start)
    assert torch.allclose(e_start, f.energy(start))
    assert torch.allclose(e_end, f.energy(end))
    accepted = torch.stack([r.accepted for r in records])
    assert accepted.any() and not accepted.all(), "the reject rule should have fired on some samples"
    assert torch.allclose(end, naive.opt_step(model, sched, a, start, t, 6, step_scale=1e4))


class Quadratic:
    """E(y) = |y|^2: every step is accepted and the iterates are easy to write down."""

    def energy(self, y):
        return y.pow(2).sum(-1)

    def energy_and_grad(self, y):
        return self.energy(y), 2 * y


def test_faithful_descent_doubles_the_step_after_the_first_and_clean_descent_does_not():
    y = torch.ones(1, 4)
    lam = torch.tensor([[0.1]])
    faithful, _ = descend(Quadratic(), y, lam, 100.0, steps=2, faithful=True)
    clean, _ = descend(Quadratic(), y, lam, 100.0, steps=2, faithful=False)
    assert torch.allclose(faithful, y * (1 - 0.2) * (1 - 0.4))
    assert torch.allclose(clean, y * (1 - 0.2) * (1 - 0.2))


def test_faithful_mining_clamps_the_whole_batch_by_the_first_samples_level():
    sched = Schedule.cosine(10)
    t = torch.tensor([9, 0])  # the first sample sits at the noisiest level: bound 2 * 0.005
    cfg_f = TrainConfig(rank=2, mining="adversarial", mining_opt_steps=1, mining_noise_scale=0.0)
    cfg_c = TrainConfig(rank=2, mining="adversarial", mining_opt_steps=1, mining_noise_scale=0.0, faithful=False)

    class Slope:  # E = sum(y): descent moves every entry down, and clamping towards 0 lowers E too
        def energy(self, y):
            return y.sum(-1)

        def energy_and_grad(self, y):
            return self.energy(y), torch.ones_like(y)

    y0 = torch.full((2, 4), 0.5)
    neg_f = mine(cfg_f, Slope(), sched, y0, t, torch.zeros_like(y0))
    neg_c = mine(cfg_c, Slope(), sched, y0, t, torch.zeros_like(y0))
    bound_first = 2 * sched.sqrt_abar[9]
    assert torch.allclose(neg_f[1], torch.full((4,), float(bound_first / sched.sqrt_abar[0])))
    assert torch.all(neg_c[1] > neg_f[1])  # clean mode clamps sample 1 by its own, wider level


def test_none_computes_no_negatives_and_random_does_no_descent(setup):
    model, sched, a, y0, t = setup
    calls = {"n": 0}

    class Counting(Energy):
        def energy_and_grad(self, y):
            calls["n"] += 1
            return super().energy_and_grad(y)

        def energy(self, y):
            calls["n"] += 1
            return super().energy(y)

    f = Counting(model, model.context(a).detach(), model.film(t), model.weights())
    eps = torch.randn_like(y0)
    assert mine(TrainConfig(mining="none"), f, sched, y0, t, eps) is None
    neg = mine(TrainConfig(mining="random"), f, sched, y0, t, eps)
    assert calls["n"] == 0
    start = sched.q_sample(y0, t, 3.0 * eps)
    assert torch.allclose(neg, (start / sched.sqrt_abar[t][:, None]).clamp(-2, 2))
    uniform = mine(TrainConfig(mining="random", random_negative="uniform"), f, sched, y0, t, eps)
    assert uniform.shape == y0.shape and uniform.abs().max() <= 1 and calls["n"] == 0
    mine(TrainConfig(mining="adversarial"), f, sched, y0, t, eps)
    assert calls["n"] == 3  # grad at the start, grad at step 1's candidate, energy at step 2's


def test_ema_follows_the_reference_ramp():
    from trainer.ema import EMA

    online = torch.nn.Linear(1, 1, bias=False)
    ema = EMA(online, decay=0.995, update_every=10, warmup=100)
    for step in range(1, 112):
        with torch.no_grad():
            online.weight.fill_(float(step))
        before = ema.model.weight.item()
        ema.update(online)
        if step <= 101:  # the copy phase (updates at steps 1, 11, ..., 101)
            if (step - 1) % 10 == 0:
                assert ema.model.weight.item() == step
        elif step == 111:
            decay = 1 - (1 + 10) ** (-2 / 3)
            assert math.isclose(ema.model.weight.item(), decay * before + (1 - decay) * step, rel_tol=1e-6)


def test_the_learning_rate_is_constant_then_follows_a_cosine_from_its_start_step():
    from trainer.train import lr_at

    cfg = TrainConfig(learning_rate=1e-4, min_lr=1e-6, cosine_lr_start=30_000, train_steps=100_000)
    assert lr_at(cfg, 0) == lr_at(cfg, 29_999) == 1e-4
    assert math.isclose(lr_at(cfg, 65_000), (1e-4 + 1e-6) / 2)
    assert math.isclose(lr_at(cfg, 100_000), 1e-6)
    assert lr_at(TrainConfig(learning_rate=3e-4), 99_999) == 3e-4


def test_early_stopping_waits_for_patience_steps_after_the_best_validation_score():
    from trainer.train import should_stop

    assert not should_stop(5000, 1000, None)
    assert not should_stop(10_999, 1000, 10_000)
    assert should_stop(11_000, 1000, 10_000)
