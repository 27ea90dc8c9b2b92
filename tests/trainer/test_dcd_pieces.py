"""Seed 004's pieces against the plain-loop oracles of naive_dcd.py (float64), one piece at a time:
the Langevin step and its noise, the replay buffer's FIFO order and sampling, the CD loss and its
stopped gradient, the residual and its percentile mask, the energy schedule, the mixed strategy.
"""

from __future__ import annotations

import math

import naive_dcd
import pytest
import torch
from problem import B, N, T, as_double
from test_algorithm import energy_of

from trainer.config import ConfigError, TrainConfig, build
from trainer.diffusion import Schedule
from trainer.energy_schedule import schedule_from
from trainer.langevin import LangevinKeys, run_chains
from trainer.mining import MiningKeys, mine
from trainer.model import EnergyMLP
from trainer.negatives import NegativeSampler, SamplerKeys, rows
from trainer.objective import training_loss
from trainer.replay import ReplayBuffer
from trainer.residual import FilterKeys, filter_weights, residuals
from trainer.train import detached


def seeded(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


# ---- Langevin ------------------------------------------------------------------------------------
def test_langevin_chains_equal_the_per_sample_autograd_loop(setup):
    model, sched, a, y0, t = setup
    x = sched.q_sample(y0, t, 1.5 * torch.randn_like(y0))
    keys = LangevinKeys(steps=4, step_scale=0.7, noise_mult=0.5)
    ours = run_chains(energy_of(model, a, t), sched, x, t, keys, seeded(7))
    g = seeded(7)
    xis = [torch.randn(x.shape, generator=g, dtype=torch.float64) for _ in range(4)]
    ref = naive_dcd.langevin_chain(model, sched, a, x, t, 4, 0.7, 0.5, xis)
    assert torch.allclose(ours, ref, atol=1e-10)
    assert not torch.allclose(ours, x)


class Flat:
    def grad(self, y):
        return torch.zeros_like(y)


class Quadratic:
    def grad(self, y):
        return 2 * y


def test_langevin_noise_has_standard_deviation_sqrt_2_eta_times_the_multiplier():
    sched = Schedule.cosine(10)
    t = torch.full((4000,), 3)
    eta = 0.1 * float(sched.step_size[3])  # sigma ~ 0.24, far inside the clamp at 2 sqrt(abar_3) = 1.6
    for mult in (1.0, 0.5):
        keys = LangevinKeys(steps=1, step_scale=0.1, noise_mult=mult)
        x = run_chains(Flat(), sched, torch.zeros(4000, 16), t, keys, seeded(1))
        assert math.isclose(float(x.std()), mult * math.sqrt(2 * eta), rel_tol=0.03)
        assert abs(float(x.mean())) < 0.01


def test_a_langevin_step_may_go_uphill_while_descent_would_reject_it():
    sched = Schedule.cosine(10)
    t = torch.full((2,), 2)
    y = torch.full((2, 4), 0.01)
    scale = 1.5 / float(sched.step_size[2])  # eta = 1.5: y - 1.5 * 2y = -2y, the energy |y|^2 quadruples
    out = run_chains(Quadratic(), sched, y, t, LangevinKeys(steps=1, step_scale=scale, noise_mult=0.0))
    assert torch.allclose(out, -2 * y)


def test_the_sampler_starts_fresh_chains_at_the_init_scale_and_hands_over_their_level_t_state(setup):
    model, sched, a, y0, t = setup
    eps = torch.randn_like(y0)
    cfg = TrainConfig(rank=N, diffusion_steps=T, mining="langevin", langevin_steps=3, langevin_init_scale=1.2)
    sampler = NegativeSampler(SamplerKeys.of(cfg), sched, N * N, seed=0, device=torch.device("cpu"))
    negs = sampler.sample(energy_of(model, a, t), y0, t, eps, step=0)
    gen = torch.Generator()
    gen.set_state(NegativeSampler(SamplerKeys.of(cfg), sched, N * N, 0, torch.device("cpu")).chain_noise.get_state())
    expected = run_chains(energy_of(model, a, t), sched, sched.q_sample(y0, t, 1.2 * eps), t,
                          LangevinKeys(3, 1.2), gen)
    assert torch.allclose(negs.state, expected)
    assert torch.allclose(negs.answer, (expected / sched.sqrt_abar[t][:, None]).clamp(-2, 2))
    assert sampler.buffer is None and "replay_frac" not in negs.stats


# ---- the replay buffer ---------------------------------------------------------------------------
@pytest.mark.parametrize("buckets", [1, 3])
def test_the_replay_buffer_keeps_fifo_order_and_samples_as_the_deque_oracle(buckets):
    capacity, dim = 12, 2
    ours = ReplayBuffer(capacity, dim, buckets, prob=0.8, seed=5)
    ref = naive_dcd.FifoBuffer(capacity, buckets, prob=0.8, seed=5)
    g = seeded(3)
    for step, size in enumerate([3, 5, 1, 9, 4, 7, 2]):  # one batch (9) overfills a bucket on its own
        t = torch.randint(0, buckets, (size,), generator=g)
        draw, expected = ours.draw(t, step), ref.draw(t, step)
        assert draw.replayed.tolist() == [e[0] for e in expected]
        for row, (replayed, answer, age) in enumerate(expected):
            if replayed:
                assert torch.equal(draw.start[row], answer) and int(draw.age[row]) == age
        answers = torch.arange(size * dim, dtype=torch.float32).reshape(size, dim) + 100 * step
        ours.push(answers, t, step)
        ref.push(answers, t, step)
        for b in range(buckets):
            assert torch.equal(ours.entries(b), torch.stack([e for e, _ in ref.queues[b]]) if ref.queues[b]
                               else torch.zeros(0, dim))
    assert any(len(q) == q.maxlen for q in ref.queues), "the test should have filled a bucket"


def test_an_empty_buffer_starts_every_chain_fresh_and_a_restored_buffer_draws_the_same():
    buf = ReplayBuffer(8, 2, 1, prob=1.0, seed=0)
    assert not buf.draw(torch.zeros(4, dtype=torch.long), 0).replayed.any()
    buf.push(torch.randn(6, 2), torch.zeros(6, dtype=torch.long), 1)
    copy = ReplayBuffer(8, 2, 1, prob=1.0, seed=99)
    copy.load_state_dict(buf.state_dict())
    a, b = buf.draw(torch.zeros(5, dtype=torch.long), 4), copy.draw(torch.zeros(5, dtype=torch.long), 4)
    assert a.replayed.all() and torch.equal(a.start, b.start) and torch.equal(a.age, b.age)
    assert a.age.tolist() == [3] * 5


# ---- the CD loss ---------------------------------------------------------------------------------
@pytest.mark.parametrize("reg", [0.0, 0.1])
def test_the_cd_loss_and_its_gradients_equal_the_naive_loop_and_stop_at_the_sampler(setup, reg):
    model, sched, a, y0, t = setup
    noise, contrast = torch.randn_like(y0), torch.randn_like(y0)
    leaf = torch.randn_like(y0, requires_grad=True)  # stands for the sampler's inputs
    neg_state = sched.q_sample(y0, t, 2 * leaf)  # carries a graph back to `leaf`
    weights = torch.rand(B, dtype=torch.float64)
    ref = naive_dcd.cd_loss(model, sched, a, y0, t, noise, contrast, neg_state, weights, reg)
    ref_grads = torch.autograd.grad(ref, list(model.parameters()))
    parts = training_loss(energy_of(model, a, t), sched, y0, t, noise, neg_state / 2, contrast, weights, "cd",
                          neg_state, reg)
    parts.loss.backward()
    assert torch.allclose(parts.loss, ref, atol=1e-12)
    for p, r in zip(model.parameters(), ref_grads):
        assert torch.allclose(p.grad, r, atol=1e-12)
    assert leaf.grad is None, "the gradient must stop at the negatives"
    e_pos = model(a, sched.q_sample(y0, t, contrast), t)
    e_neg = model(a, neg_state, t)
    penalty = reg * (e_pos.pow(2) + e_neg.pow(2)).mean()
    assert torch.allclose(parts.energy, e_pos.mean() - e_neg.mean() + penalty, atol=1e-12)


def test_per_sample_weights_equal_to_the_constant_give_the_same_bits_and_zero_drops_a_term(setup):
    model, sched, a, y0, t = setup
    noise, contrast, neg = torch.randn_like(y0), torch.randn_like(y0), 0.3 * torch.randn_like(y0)
    f = energy_of(model, a, t)
    const = training_loss(f, sched, y0, t, noise, neg, contrast, 0.5)
    per = training_loss(f, sched, y0, t, noise, neg, contrast, torch.full((B,), 0.5, dtype=torch.float64))
    assert torch.equal(const.loss, per.loss)
    off = training_loss(f, sched, y0, t, noise, neg, contrast, torch.zeros(B, dtype=torch.float64))
    assert torch.allclose(off.loss, training_loss(f, sched, y0, t, noise, None, None, 0.5).loss, atol=1e-12)


# ---- the residual filter -------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["drop", "weight"])
def test_residuals_and_the_percentile_mask_equal_the_loops(setup, mode):
    _, _, a, y0, t = setup
    r = residuals(a, y0, N)
    ref = [naive_dcd.residual(a[b], y0[b], N) for b in range(B)]
    assert torch.allclose(r, torch.tensor(ref, dtype=torch.float64), atol=1e-12)
    w = filter_weights(r, t, T, FilterKeys(mode, 40.0, 5.0))
    expected = naive_dcd.filter_weights(ref, t, T, 40.0, 5.0, mode)
    assert torch.allclose(w, torch.tensor(expected, dtype=torch.float64), atol=1e-12)
    assert 0 < float((w < 1).float().mean()) < 0.5


def test_the_true_inverse_has_zero_residual_and_the_filter_is_stricter_at_small_t():
    from trainer.data import make_matrices

    a, y = make_matrices(N, 400, seeded(0))
    assert float(residuals(a, y, N).max()) < 1e-3
    r = torch.rand(400, dtype=torch.float64)
    t = torch.arange(400) % T
    w = filter_weights(r, t, T, FilterKeys("drop", 30.0, 10.0))
    assert float(1 - w[t == 0].mean()) > float(1 - w[t == T - 1].mean())


# ---- the energy schedule -------------------------------------------------------------------------
def test_the_energy_schedule_weights_at_chosen_steps_equal_the_formula():
    t = torch.arange(10)
    sched = schedule_from(0.1, 0.2, 1000, 0.2, 0.8, 10)
    for step in (0, 1, 50, 199, 200, 201, 999):
        got = sched.weights(step, t)
        ref = [naive_dcd.energy_weight(step, int(x), 0.1, 0.2, 1000, 0.2, 0.8, 10) for x in t]
        assert torch.allclose(got, torch.tensor(ref, dtype=torch.float32)), step
    assert torch.allclose(sched.weights(100, t), torch.tensor([0, 0] + [0.05] * 7 + [0.0]))
    assert sched.weights(0, t).sum() == 0
    assert schedule_from(0.5, 0.0, 1000, 0.0, 1.0, 10).weights(0, t) == 0.5  # the reference's constant


# ---- the mixed strategy --------------------------------------------------------------------------
def test_mixed_negatives_are_each_strategy_on_its_slice_of_the_batch(setup):
    model, sched, a, y0, t = setup
    eps = torch.randn_like(y0)
    cfg = TrainConfig(rank=N, diffusion_steps=T, mining="mixed", mixed_strategy="random:0.7,adversarial:0.3")
    f = detached(energy_of(model, a, t))
    negs = NegativeSampler(SamplerKeys.of(cfg), sched, N * N, 0, torch.device("cpu")).sample(f, y0, t, eps, 0)
    cut = round(0.7 * B)
    rnd = mine(MiningKeys(mining="random"), rows(f, slice(0, cut)), sched, y0[:cut], t[:cut], eps[:cut])
    adv = mine(MiningKeys(mining="adversarial"), rows(f, slice(cut, B)), sched, y0[cut:], t[cut:], eps[cut:])
    assert torch.equal(negs.answer, torch.cat([rnd, adv]))
    assert torch.allclose(negs.state, sched.q_sample(negs.answer, t, eps))
    assert not torch.equal(adv, mine(MiningKeys(mining="random"), rows(f, slice(cut, B)), sched, y0[cut:],
                                     t[cut:], eps[cut:]))


@pytest.mark.parametrize("text", ["random:0.5", "random:0.5,sideways:0.5", "random:x", "random:1.5,langevin:-0.5"])
def test_a_bad_mix_is_refused_with_a_clear_message(text):
    with pytest.raises(ConfigError, match="mixed_strategy"):
        build({"mining": "mixed", "mixed_strategy": text})


@pytest.mark.parametrize("key, value", [("energy_loss", "bce"), ("residual_filter", "on"), ("replay_prob", 1.5),
                                        ("energy_t_min", 0.9), ("langevin_step_scale", 0)])
def test_new_keys_refuse_bad_values(key, value):
    with pytest.raises(ConfigError):
        build({key: value, "energy_t_max": 0.8})
