"""Plain-loop, float64 versions of seed 004's pieces, for equivalence tests (the style of naive.py).

Sample by sample, list by list, autograd for every gradient: slow and obvious on purpose.
"""

from __future__ import annotations

import math
from collections import deque

import torch

import naive


def langevin_chain(m, sched, a, x, t, steps, step_scale, noise_mult, xis):
    """x <- clamp(x - eta grad E + sigma xi, +-2 sqrt(abar_t)), eta = step_scale lambda_t, sigma = mult sqrt(2 eta)."""
    rows = []
    for b in range(x.shape[0]):
        tb = int(t[b])
        eta = step_scale * float(sched.step_size[tb])
        sigma = noise_mult * math.sqrt(2 * eta)
        bound = 2.0 * float(sched.sqrt_abar[tb])
        xb = x[b:b + 1].clone()
        for k in range(steps):
            with torch.enable_grad():
                _, g = naive.energy_and_grad(m, a[b:b + 1], xb.clone(), t[b:b + 1], create_graph=False)
            xb = torch.clamp(xb - eta * g + sigma * xis[k][b:b + 1], -bound, bound).detach()
        rows.append(xb)
    return torch.cat(rows)


class FifoBuffer:
    """deque(maxlen) per bucket; draw: the floor(v * len)-th oldest entry when u < prob and non-empty."""

    def __init__(self, capacity, buckets, prob, seed):
        self.queues = [deque(maxlen=max(capacity // buckets, 1)) for _ in range(buckets)]
        self.buckets, self.prob = buckets, prob
        self.generator = torch.Generator()
        self.generator.manual_seed(seed)

    def bucket(self, t):
        return int(t) if self.buckets > 1 else 0

    def push(self, answers, t, step):
        for b in range(answers.shape[0]):
            self.queues[self.bucket(t[b])].append((answers[b].clone(), step))

    def draw(self, t, step):
        u = torch.rand(len(t), generator=self.generator)
        v = torch.rand(len(t), generator=self.generator)
        out = []  # (replayed, answer or None, age)
        for b in range(len(t)):
            q = self.queues[self.bucket(t[b])]
            if float(u[b]) < self.prob and len(q) > 0:
                answer, born = q[min(int(float(v[b]) * len(q)), len(q) - 1)]
                out.append((True, answer, step - born))
            else:
                out.append((False, None, 0))
        return out


def cd_loss(m, sched, a, y0, t, noise, contrast_noise, neg_state, weights, reg=0.0):
    """mean_b [ mse_b + w_b (E(pos_b) - E(neg_b) + reg (E(pos_b)^2 + E(neg_b)^2)) ], neg a constant."""
    sa, s1a = sched.sqrt_abar[t][:, None], sched.sqrt_one_minus_abar[t][:, None]
    x = sa * y0 + s1a * noise
    _, eps_hat = naive.energy_and_grad(m, a, x, t)
    total = 0.0
    for b in range(len(t)):
        mse = ((eps_hat[b] - noise[b]) ** 2).mean()
        pos = sa[b] * y0[b] + s1a[b] * contrast_noise[b]
        e_pos = naive.energy(m, a[b:b + 1], pos[None], t[b:b + 1])[0]
        e_neg = naive.energy(m, a[b:b + 1], neg_state[b:b + 1].detach(), t[b:b + 1])[0]
        total = total + mse + weights[b] * (e_pos - e_neg + reg * (e_pos ** 2 + e_neg ** 2))
    return total / len(t)


def residual(a_row, y_row, n):
    """||A Y - I||_F with three explicit loops."""
    total = 0.0
    for i in range(n):
        for j in range(n):
            s = sum(float(a_row[i * n + k]) * float(y_row[k * n + j]) for k in range(n))
            total += (s - (1.0 if i == j else 0.0)) ** 2
    return math.sqrt(total)


def percentile(values, q):
    """Linear interpolation between the order statistics (numpy's default), q in [0, 100]."""
    v = sorted(values)
    pos = q / 100 * (len(v) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (pos - lo) * (v[hi] - v[lo])


def filter_weights(res, t, num_steps, p0, p_last, mode):
    out = []
    for b, r in enumerate(res):
        q = p0 + (p_last - p0) * int(t[b]) / max(num_steps - 1, 1)
        tau = percentile(res, q)
        if mode == "drop":
            out.append(1.0 if r >= tau else 0.0)
        else:
            out.append(1.0 if r >= tau else r / tau)
    return out


def energy_weight(step, t, max_weight, warmup_frac, train_steps, t_min, t_max, num_steps):
    warm = round(warmup_frac * train_steps)
    ramp = 1.0 if warm == 0 else min(1.0, step / warm)
    inside = t_min * num_steps <= t <= t_max * num_steps
    return max_weight * ramp * (1.0 if inside else 0.0)
