"""The training loop: fresh matrices every step, checkpoints that resume bit for bit, final metrics."""

from __future__ import annotations

import contextlib
import math
import platform
import random
import signal
import time
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np
import torch

from trainer import data as D
from trainer.config import TrainConfig, from_checkpoint
from trainer.diagnostics import mining_diagnostics
from trainer.diffusion import Energy, Schedule
from trainer.ema import EMA
from trainer.energy_schedule import EnergySchedule, schedule_from
from trainer.evaluate import Score, score
from trainer.model import EAGER, EnergyMLP, Film, Kernels, Weights
from trainer.negatives import Negatives, NegativeSampler, SamplerKeys
from trainer.objective import training_loss
from trainer.residual import FilterKeys, filter_weights, residuals
from trainer.rundir import RunDir

# config keys that change what a checkpoint means: a resumed run may not change them
SHAPE_KEYS = ("rank", "diffusion_steps")


class NaNLossError(RuntimeError):
    """The loss stopped being finite: the run cannot recover, say where it happened."""


class CannotRun(RuntimeError):
    """The run cannot start as configured (a checkpoint of another shape in --out, no CUDA): the
    CLI says so on one line, exits 2, and leaves the run folder's files as they were."""


class Interrupted(RuntimeError):
    """SIGTERM/SIGINT (preemption, scancel, time limit): last.pt was saved, rerun to resume."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}; "
                         "last checkpoint saved, rerun with the same --out to resume")
        self.signum = signum


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CannotRun(f"device {name!r} requested but CUDA is not available on this machine (use auto or cpu)")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Constant, or cosine-annealed from cosine_lr_start to min_lr at train_steps."""
    start = cfg.cosine_lr_start
    if start is None or step < start or cfg.train_steps <= start:
        return cfg.learning_rate
    progress = min(1.0, (step - start) / (cfg.train_steps - start))
    return cfg.min_lr + 0.5 * (cfg.learning_rate - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def should_stop(step: int, best_step: Optional[int], patience: Optional[int]) -> bool:
    """Early stopping: `patience` steps have passed since the best validation MSE."""
    return patience is not None and step - (best_step or 0) >= patience


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam(0.9, 0.99); the fused kernel where available (same update, ~3x cheaper on CPU)."""
    try:
        return torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.99), fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.99))


def detached(f: Energy) -> Energy:
    """The same energy without the parameters' graph: mining trains nothing."""
    film = Film(*(v.detach() for v in (f.film.scale2, f.film.bias2, f.film.scale3, f.film.bias3)))
    weights = Weights(*(v.detach() for v in vars(f.weights).values()))
    return Energy(f.model, f.ctx.detach(), film, weights)


def energy_of_batch(model: EnergyMLP, a: torch.Tensor, t: torch.Tensor) -> Energy:
    return Energy(model, model.context(a), model.film(t), model.weights())


@dataclass
class FinalScores:
    """What the end of a run measures, for metrics.json."""

    val: Score
    last_row: Optional[dict] = None  # the curve row of the final step, if the loop wrote one
    test: Optional[Score] = None
    ood: Optional[Score] = None
    train_mse: Optional[float] = None
    best_test: Optional[float] = None
    best_train: Optional[float] = None


@dataclass
class Progress:
    """Everything besides tensors that a resumed run must remember."""

    step: int = 0
    best_val_mse: float = math.inf
    best_step: Optional[int] = None
    steps_to_threshold: Optional[int] = None
    train_time_s: float = 0.0  # time inside training steps (excludes evaluation and checkpoints)
    wall_time_s: float = 0.0  # total, accumulated over resumed sessions
    sums: dict = field(default_factory=dict)  # per-step terms accumulated since the last curve row
    stopped_early: bool = False


# per-step terms averaged into each curve row (those a step did not produce are averaged over the others)
ROW_TERMS = ("loss", "loss_denoise", "loss_energy", "grad_norm", "energy_pos", "energy_neg", "energy_gap",
             "energy_weight", "filtered_frac", "replay_frac", "buffer_age", "buffer_fill")
# values of the last curve row repeated in metrics.json: the state of the negatives at the end
NEGATIVE_METRICS = ("energy_pos", "energy_neg", "energy_gap", "energy_weight", "filtered_frac", "replay_frac",
                    "buffer_age", "buffer_fill", "neg_residual_p10", "neg_residual_p50", "neg_residual_p90")


def accumulate(sums: dict, terms: dict) -> None:
    """Running sums and counts (key, key + '#n') of the per-step terms."""
    for key, value in terms.items():
        sums[key] = sums.get(key, 0.0) + value
        sums[key + "#n"] = sums.get(key + "#n", 0) + 1


def means(sums: dict) -> dict:
    return {k: sums[k] / sums[k + "#n"] for k in ROW_TERMS if sums.get(k + "#n")}


def residual_quantiles(a: torch.Tensor, answer: torch.Tensor, n: int) -> dict:
    """10th, 50th and 90th percentiles of ||A Y- - I||_F over a batch of negatives."""
    q = torch.quantile(residuals(a, answer, n), torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64,
                                                              device=a.device))
    return {"neg_residual_p10": float(q[0]), "neg_residual_p50": float(q[1]), "neg_residual_p90": float(q[2])}


class Trainer:
    def __init__(self, cfg: TrainConfig, run: RunDir, git_sha: Optional[str] = None):
        self.cfg, self.run, self.git_sha = cfg, run, git_sha
        self.device = resolve_device(cfg.device)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        seed_everything(cfg.seed)
        self.kernels = Kernels.compiled() if cfg.compile else EAGER  # mining and sampling only
        self.schedule = Schedule.cosine(cfg.diffusion_steps, self.device)
        self.model = EnergyMLP(cfg.rank * cfg.rank, cfg.diffusion_steps, self.kernels).to(self.device)
        self.ema = EMA(self.model, cfg.ema_decay, cfg.ema_update_every, cfg.ema_warmup)
        self.opt = make_optimizer(self.model, cfg)
        self.stream = D.TrainStream(cfg.rank, cfg.batch_size, seed=cfg.seed)
        self.noise = torch.Generator(device=self.device)
        self.noise.manual_seed(cfg.seed + 1_000_003)
        self.cpu_noise = D.seeded(cfg.seed + 2_000_003)  # uniform negatives, drawn on the CPU
        self.diag_noise = D.seeded(cfg.seed + 3_000_017)
        self.sampler = NegativeSampler(SamplerKeys.of(cfg), self.schedule, cfg.rank * cfg.rank, cfg.seed,
                                       self.device)
        self.energy_schedule: EnergySchedule = schedule_from(
            cfg.energy_loss_weight, cfg.energy_warmup_frac, cfg.train_steps, cfg.energy_t_min, cfg.energy_t_max,
            cfg.diffusion_steps)
        self.filter = FilterKeys(cfg.residual_filter, cfg.residual_percentile, cfg.residual_percentile_last)
        self.load_fixed_sets()
        self.progress = Progress()
        self._signal: Optional[int] = None
        self._last: Optional[tuple[torch.Tensor, torch.Tensor, Optional[Negatives]]] = None

    def load_fixed_sets(self) -> None:
        """Held-out sets, the same for every run of a study (they depend on data_seed only)."""
        c = self.cfg
        self.val = D.fixed_set(c.rank, c.val_size, c.data_seed, D.VAL_OFFSET).to(self.device)
        self.test = D.fixed_set(c.rank, c.test_size, c.data_seed, D.TEST_OFFSET).to(self.device)
        self.ood = D.fixed_set(c.rank, c.ood_size, c.data_seed, D.OOD_OFFSET, ood=True).to(self.device)
        mean = D.mean_inverse(c.rank, c.data_seed).to(self.device)
        self.baselines = D.baselines(self.val.y, mean)
        self.ood_baselines = (D.baselines(self.ood.y, D.mean_inverse(c.rank, c.data_seed, ood=True).to(self.device))
                              if len(self.ood) else None)
        self.threshold = c.mse_threshold if c.mse_threshold is not None else 0.9 * self.baselines["mean"]

    # ---- checkpoints ----------------------------------------------------------------------------
    def state(self) -> dict:
        p = self.progress
        return {
            "step": p.step, "config": self.cfg.to_dict(), "model": self.model.state_dict(),
            "ema": self.ema.state_dict(), "optimizer": self.opt.state_dict(),
            "stream": self.stream.state_dict(), "noise": self.noise.get_state(),
            "cpu_noise": self.cpu_noise.get_state(), "diag_noise": self.diag_noise.get_state(),
            "sampler": self.sampler.state_dict(),
            "python_rng": random.getstate(), "numpy_rng": np.random.get_state(),
            "torch_rng": torch.get_rng_state(), "progress": vars(p).copy(), "torch_version": torch.__version__,
        }

    def resume(self) -> Optional[int]:
        """Load checkpoints/last.pt if there is one: the run continues bit for bit from its step."""
        if not self.run.last.exists():
            return None
        ck = self.run.load_checkpoint(self.run.last)
        saved = from_checkpoint(ck["config"])
        for key in SHAPE_KEYS:
            if getattr(saved, key) != getattr(self.cfg, key):
                raise CannotRun(f"cannot resume {self.run.path}: its checkpoint has {key}={getattr(saved, key)}, "
                                f"the config has {getattr(self.cfg, key)} (give another --out for a new run)")
        changed = [k for k, v in self.cfg.to_dict().items() if ck["config"].get(k) != v]
        self.model.load_state_dict(ck["model"])
        self.ema.load_state_dict(ck["ema"])
        self.opt.load_state_dict(ck["optimizer"])
        self.stream.load_state_dict(ck["stream"])
        for gen, key in ((self.noise, "noise"), (self.cpu_noise, "cpu_noise"), (self.diag_noise, "diag_noise")):
            gen.set_state(ck[key])
        if "sampler" in ck:
            self.sampler.load_state_dict(ck["sampler"])
        random.setstate(ck["python_rng"])
        np.random.set_state(ck["numpy_rng"])
        torch.set_rng_state(ck["torch_rng"])
        self.progress = Progress(**ck["progress"])
        self.run.truncate_curve(self.progress.step)
        if changed:
            self.run.log(f"resuming with changed config keys: {', '.join(changed)}")
        return self.progress.step

    def save_last(self) -> None:
        self.run.save_checkpoint(self.run.last, self.state())

    # ---- one optimisation step ------------------------------------------------------------------
    def energy_weights(self, a: torch.Tensor, t: torch.Tensor, negatives: Negatives) -> tuple:
        """(weight, terms): the schedule's w(s, t), times the residual filter's w_b when it is on."""
        weight = self.energy_schedule.weights(self.progress.step, t)
        terms: dict = {}
        if self.filter.mode != "off":
            keep = filter_weights(residuals(a, negatives.answer, self.cfg.rank), t, self.cfg.diffusion_steps,
                                  self.filter).to(a.dtype)
            weight = weight * keep
            terms["filtered_frac"] = float(1 - keep.mean())
        terms["energy_weight"] = float(weight.mean()) if isinstance(weight, torch.Tensor) else weight
        return weight, terms

    def train_step(self, a: torch.Tensor, y0: torch.Tensor) -> dict:
        """Loss (denoising + weighted energy term), backward, clipped Adam step, EMA update."""
        cfg, sched, gen = self.cfg, self.schedule, self.noise
        mining = cfg.mining != "none"
        t = torch.randint(0, cfg.diffusion_steps, (a.shape[0],), generator=gen, device=self.device)
        noise = torch.randn(y0.shape, generator=gen, device=self.device)
        contrast_noise = torch.randn(y0.shape, generator=gen, device=self.device) if mining else None
        f = energy_of_batch(self.model, a, t)
        negatives = self.sampler.sample(detached(f), y0, t, contrast_noise, self.progress.step,
                                        self.cpu_noise) if mining else None
        weight, out = self.energy_weights(a, t, negatives) if negatives is not None else (0.0, {})
        parts = training_loss(f, sched, y0, t, noise, negatives.answer if negatives else None, contrast_noise,
                              weight, cfg.energy_loss, negatives.state if negatives else None, cfg.cd_reg)
        loss = float(parts.loss.detach())
        if not math.isfinite(loss):
            raise NaNLossError(f"NaN loss at step {self.progress.step + 1} (loss={loss})")
        self.opt.zero_grad(set_to_none=True)
        parts.loss.backward()
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(list(self.model.parameters()), max_norm))
        if not math.isfinite(grad_norm):  # clipping an infinite norm zeroes every gradient: training would stop, silently
            raise NaNLossError(f"gradient norm {grad_norm} at step {self.progress.step + 1} (loss={loss})")
        self.opt.step()
        self.ema.update(self.model)
        out.update({"loss": loss, "loss_denoise": float(parts.denoise), "grad_norm": grad_norm})
        if parts.energy is not None:
            e_pos, e_neg = float(parts.energy_pos.mean()), float(parts.energy_neg.mean())
            out.update({"loss_energy": float(parts.energy), "energy_pos": e_pos, "energy_neg": e_neg,
                        "energy_gap": e_pos - e_neg})
            out.update(negatives.stats)
        self._last = (a, y0, negatives)
        return out

    # ---- evaluation and bookkeeping -------------------------------------------------------------
    def evaluate(self, model: EnergyMLP, data: D.FixedSet):
        c = self.cfg
        return score(model, self.schedule, data, c.inner_steps, c.faithful, c.eval_batch_size, c.accuracy_tol)

    def diagnostics(self, a: torch.Tensor, y0: torch.Tensor) -> dict:
        c, k = self.cfg, min(self.cfg.diag_size, a.shape[0])
        a, y0 = a[:k], y0[:k]
        t = torch.randint(0, c.diffusion_steps, (k,), generator=self.diag_noise).to(self.device)
        noise = torch.randn(y0.shape, generator=self.diag_noise).to(self.device)
        with torch.no_grad():
            f = energy_of_batch(self.model, a, t)
        return mining_diagnostics(c, f, self.schedule, a, y0, t, noise, self.diag_noise)

    def curve_row(self, a: torch.Tensor, y0: torch.Tensor) -> dict:
        """The row of this checkpoint: mean step terms, EMA scores (train batch, validation), diagnostics."""
        c, p = self.cfg, self.progress
        val = self.evaluate(self.ema.model, self.val)
        k = min(c.val_size, a.shape[0])
        train = self.evaluate(self.ema.model, D.FixedSet(a[:k], y0[:k]))
        row = {"step": p.step, **means(p.sums)}
        last = self._last
        if last is not None and last[2] is not None:
            row.update(residual_quantiles(last[0], last[2].answer, c.rank))
        row.update({"train_mse": train.mse, "val_mse": val.mse, "val_accuracy": val.accuracy,
                    "lr": self.opt.param_groups[0]["lr"], "train_time_s": round(p.train_time_s, 3)})
        if c.diagnostics:
            row.update(self.diagnostics(a, y0))
        return row

    def checkpoint(self, a: torch.Tensor, y0: torch.Tensor) -> bool:
        """Score the EMA model, append a curve row, save checkpoints; True if early stopping says stop."""
        c, p = self.cfg, self.progress
        t0 = time.perf_counter()
        row = self.curve_row(a, y0)
        if not math.isfinite(row["val_mse"]):  # the weights are no longer finite: no later step can mend them
            raise NaNLossError(f"validation MSE {row['val_mse']} at step {p.step}")
        p.sums = {}
        improved = row["val_mse"] < p.best_val_mse
        if improved:
            p.best_val_mse, p.best_step = row["val_mse"], p.step
        if p.steps_to_threshold is None and row["val_mse"] <= self.threshold:
            p.steps_to_threshold = p.step
        row["best_val_mse"] = p.best_val_mse
        self.run.append_curve(row)
        if improved:
            self.run.save_checkpoint(self.run.best, self.state())
        p.stopped_early = should_stop(p.step, p.best_step, c.early_stopping_patience) and p.step < c.train_steps
        self.save_last()
        self.run.log(f"step {p.step}: train_mse {row['train_mse']:.5f} val_mse {row['val_mse']:.5f} "
                     f"(best {p.best_val_mse:.5f} @ {p.best_step}; predict-mean {self.baselines['mean']:.5f}) "
                     f"eval {time.perf_counter() - t0:.1f}s")
        return p.stopped_early

    # ---- the run --------------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        self._signal = signum

    @contextlib.contextmanager
    def signals_caught(self) -> Iterator[None]:
        """SIGTERM/SIGINT only set a flag: the loop saves last.pt between steps and stops."""
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        for s in previous:
            signal.signal(s, self._on_signal)
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def start(self) -> None:
        """Resume if last.pt exists, write started.json, log the header, start the wall clock."""
        c = self.cfg
        resumed = self.resume()
        self.run.mark_started(c.to_dict(), c.seed, resumed)
        self.run.log(f"irq trainer: mining={c.mining} rank={c.rank} T={c.diffusion_steps} steps={c.train_steps} "
                     f"batch={c.batch_size} device={self.device} torch={torch.__version__} "
                     f"threads={torch.get_num_threads()} faithful={c.faithful} seed={c.seed}"
                     + (f" (resumed at step {resumed})" if resumed is not None else ""))
        if c.mining != "none":
            self.run.log(f"energy term: {c.energy_loss}, weight {c.energy_loss_weight}, "
                         f"residual filter {c.residual_filter}")
        if c.compile and self.kernels.failure:
            self.run.log(f"torch.compile unavailable, running eager: {self.kernels.failure}")
        self.run.log(f"baselines on the validation set: predict-zero {self.baselines['zero']:.5f}, "
                     f"predict-mean {self.baselines['mean']:.5f}; threshold {self.threshold:.5f}")
        self._clock = (time.perf_counter(), self.progress.wall_time_s)

    def tick_wall_clock(self) -> None:
        session_start, before = self._clock
        self.progress.wall_time_s = before + time.perf_counter() - session_start

    def log_step(self, terms: dict) -> None:
        c, p = self.cfg, self.progress
        rate = p.step / max(p.train_time_s, 1e-9)
        eta = (c.train_steps - p.step) / max(rate, 1e-9)
        extra = f" energy {terms['loss_energy']:.4f}" if "loss_energy" in terms else ""
        self.run.log(f"step {p.step}/{c.train_steps} loss {terms['loss']:.4f} "
                     f"(denoise {terms['loss_denoise']:.4f}{extra}) {rate:.2f} steps/s eta {eta / 60:.1f} min")

    def fit(self) -> dict:
        """Train to train_steps (or an early stop), checkpointing as it goes; returns the final metrics."""
        c = self.cfg
        self.start()
        p = self.progress
        a = y0 = None
        with self.signals_caught():
            while p.step < c.train_steps and not p.stopped_early:  # a rerun of a stopped run trains no further
                if self._signal is not None:  # preempted: save and leave between two steps
                    self.tick_wall_clock()
                    self.save_last()
                    raise Interrupted(self._signal, p.step)
                # set the learning rate of this step
                for group in self.opt.param_groups:
                    group["lr"] = lr_at(c, p.step)
                # fetch a fresh batch; forward, backward, update
                t0 = time.perf_counter()
                a, y0 = (x.to(self.device, non_blocking=True) for x in self.stream.next())
                terms = self.train_step(a, y0)
                p.step += 1
                p.train_time_s += time.perf_counter() - t0
                # logging
                accumulate(p.sums, terms)
                if p.step % c.log_interval == 0:
                    self.log_step(terms)
                # evaluate the EMA model, checkpoint, maybe stop early
                if p.step % c.checkpoint_interval == 0 or p.step == c.train_steps:
                    self.tick_wall_clock()
                    if self.checkpoint(a, y0):
                        self.run.log(f"early stopping at step {p.step}: no improvement since step {p.best_step}")
                        break
        self.tick_wall_clock()
        return self.finish(a, y0)

    # ---- the end --------------------------------------------------------------------------------
    def final_scores(self, a: Optional[torch.Tensor], y0: Optional[torch.Tensor], rows: list[dict]) -> FinalScores:
        """The EMA model on validation, test and OOD; the best checkpoint's EMA model on test."""
        c, p = self.cfg, self.progress
        last_row = rows[-1] if rows and rows[-1].get("step") == p.step else None
        if last_row is None and p.step > 0 and a is None:
            a, y0 = (x.to(self.device) for x in D.TrainStream(c.rank, c.batch_size, c.seed).next())
        out = FinalScores(val=self.evaluate(self.ema.model, self.val), last_row=last_row)
        out.test = self.evaluate(self.ema.model, self.test) if len(self.test) else None
        out.ood = self.evaluate(self.ema.model, self.ood) if len(self.ood) else None
        out.train_mse = last_row["train_mse"] if last_row else (
            self.evaluate(self.ema.model, D.FixedSet(a[: c.val_size], y0[: c.val_size])).mse if a is not None else None)
        if self.run.best.exists() and p.best_step is not None:
            best_model = EnergyMLP(c.rank * c.rank, c.diffusion_steps, self.kernels).to(self.device)
            best_model.load_state_dict(self.run.load_checkpoint(self.run.best)["ema"]["model"])
            out.best_test = self.evaluate(best_model, self.test).mse if len(self.test) else None
            out.best_train = next((r["train_mse"] for r in rows if r.get("step") == p.best_step), None)
        return out

    def finish(self, a: Optional[torch.Tensor], y0: Optional[torch.Tensor]) -> dict:
        """Score the final EMA model, settle best/threshold, write metrics.json."""
        p = self.progress
        scores = self.final_scores(a, y0, self.run.read_curve())
        if not math.isfinite(scores.val.mse):
            raise NaNLossError(f"validation MSE {scores.val.mse} at the end (step {p.step})")
        if p.best_step is None or scores.val.mse < p.best_val_mse:
            p.best_val_mse, p.best_step = scores.val.mse, p.step
        if p.steps_to_threshold is None and scores.val.mse <= self.threshold:
            p.steps_to_threshold = p.step
        metrics = self.metrics(scores)
        self.run.write_metrics(metrics)
        self.run.log(f"done: {p.step} steps, val_mse {scores.val.mse:.5f} (best {p.best_val_mse:.5f} @ {p.best_step}), "
                     f"ood_mse {metrics['ood_mse']}, predict-mean {self.baselines['mean']:.5f}, "
                     f"{metrics['steps_per_s'] or 0:.2f} steps/s")
        return metrics

    def metrics(self, s: FinalScores) -> dict:
        """metrics.json: flat, documented in docs/trainer.md."""
        c, p = self.cfg, self.progress
        ood_base = self.ood_baselines
        out = {
            "train_mse": s.train_mse, "val_mse": s.val.mse, "best_val_mse": p.best_val_mse,
            "best_step": p.best_step, "best_train_mse": s.best_train,
            "test_mse": s.test.mse if s.test else None, "best_test_mse": s.best_test,
            "ood_mse": s.ood.mse if s.ood else None, "accuracy": s.val.accuracy, "accuracy_tol": c.accuracy_tol,
            "ood_accuracy": s.ood.accuracy if s.ood else None, "steps_to_threshold": p.steps_to_threshold,
            "mse_threshold": self.threshold, "baseline_zero_mse": self.baselines["zero"],
            "baseline_mean_mse": self.baselines["mean"],
            "ood_baseline_zero_mse": ood_base["zero"] if ood_base else None,
            "ood_baseline_mean_mse": ood_base["mean"] if ood_base else None,
            "steps": p.step, "stopped_early": p.stopped_early, "wall_time_s": round(p.wall_time_s, 3),
            "train_time_s": round(p.train_time_s, 3),
            "steps_per_s": p.step / p.train_time_s if p.train_time_s > 0 else None,
            "device": str(self.device), "torch_version": torch.__version__,
            "python_version": platform.python_version(), "num_threads": torch.get_num_threads(),
            "git_sha": self.git_sha, "seed": c.seed, "mining": c.mining, "faithful": c.faithful,
        }
        if c.mining != "none":
            out["energy_loss"] = c.energy_loss
            out.update({k: s.last_row[k] for k in NEGATIVE_METRICS if s.last_row and k in s.last_row})
        out["config"] = c.to_dict()
        return out
