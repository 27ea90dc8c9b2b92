"""A deliberately naive, line-by-line version of the reference algorithm, for equivalence tests.

Everything the trainer optimises away is done the slow, obvious way here: FiLM computed per sample,
fc1 applied to the concatenation [A, y], grad_y E by autograd with create_graph, energies at the
candidate recomputed at every descent step. The trainer must agree with it to rounding error.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainer.model import EnergyMLP, sinusoidal_embedding


def energy(m: EnergyMLP, a, y, t):
    x = torch.cat([a, y], dim=-1)
    emb = m.time_mlp(sinusoidal_embedding(t, dtype=a.dtype))
    g2, b2 = m.film2(emb).chunk(2, dim=-1)
    g3, b3 = m.film3(emb).chunk(2, dim=-1)
    swish = lambda v: v * torch.sigmoid(v)  # noqa: E731
    h = swish(m.fc1(x))
    h = swish(m.fc2(h) * (g2 + 1) + b2)
    h = swish(m.fc3(h) * (g3 + 1) + b3)
    return m.fc4(h).pow(2).sum(dim=-1)


def energy_and_grad(m, a, y, t, create_graph=True):
    y = y.detach().requires_grad_(True) if not create_graph else y.requires_grad_(True)
    e = energy(m, a, y, t)
    (g,) = torch.autograd.grad(e.sum(), [y], create_graph=create_graph)
    return e, g


def opt_step(m, sched, a, y, t, steps, step_scale=1.0):
    """The reference's descent: step factor overwritten to 2 after the first step, clamp by t[0]."""
    sf = step_scale
    for _ in range(steps):
        with torch.enable_grad():
            e, g = energy_and_grad(m, a, y.clone(), t, create_graph=False)
        y_new = y - sched.step_size[t][:, None] * g * sf
        sf = 2.0 * step_scale
        max_val = 2.0 * sched.sqrt_abar[t[0]]
        y_new = torch.clamp(y_new, -max_val, max_val)
        e_new = energy(m, a, y_new, t)
        bad = e_new > e
        y_new[bad] = y[bad]
        y = y_new.detach()
    return y


def training_loss(m, sched, a, y0, t, noise, contrast_noise=None, mining="none", opt_steps=2, noise_scale=3.0):
    sa, s1a = sched.sqrt_abar[t][:, None], sched.sqrt_one_minus_abar[t][:, None]
    x = sa * y0 + s1a * noise
    _, eps_hat = energy_and_grad(m, a, x, t)
    loss_mse = F.mse_loss(eps_hat, noise, reduction="none").mean(-1)
    if mining == "none":
        return loss_mse.mean()
    pos = sa * y0 + s1a * contrast_noise
    start = sa * y0 + s1a * noise_scale * contrast_noise
    if mining == "adversarial":
        start = opt_step(m, sched, a, start.detach(), t, opt_steps)
    neg0 = torch.clamp(start.detach() / sa, -2, 2)
    neg = sa * neg0 + s1a * contrast_noise
    e = energy(m, torch.cat([a, a]), torch.cat([pos, neg]), torch.cat([t, t]))
    e_real, e_fake = e.chunk(2)
    logits = -torch.stack([e_real, e_fake], dim=-1)
    loss_energy = F.cross_entropy(logits, torch.zeros(len(t), dtype=torch.long), reduction="none")
    return (loss_mse + 0.5 * loss_energy).mean()


@torch.no_grad()
def sample(m, sched, a, inner_steps, noise):
    y = noise
    for t in reversed(range(sched.num_steps)):
        tt = torch.full((a.shape[0],), t, dtype=torch.long)
        with torch.enable_grad():
            _, eps_hat = energy_and_grad(m, a, y.clone(), tt, create_graph=False)
        x0 = (y - sched.sqrt_one_minus_abar[t] * eps_hat) / sched.sqrt_abar[t]
        x0 = x0.clamp(-2, 2)
        y = sched.sqrt_abar[t] * x0
        y = opt_step(m, sched, a, y, tt, inner_steps)
        max_val = 2.0 * sched.sqrt_abar[t]
        y = y.clamp(-max_val, max_val)
        x0 = y / sched.sqrt_abar[t]
        if t > 0:
            y = sched.sqrt_abar[t - 1] * x0
    return y
