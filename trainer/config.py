"""Run configuration: one flat dataclass, loaded from JSON and overridden from the command line.

Flat on purpose: every key is also a `--key` flag, a JSON field, and an entry of metrics.json's
`config`, so irq can diff and sweep configs without knowing the trainer's internals.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

MINING = ("none", "random", "adversarial", "langevin", "mixed")
MIXABLE = ("random", "adversarial", "langevin")
RANDOM_NEGATIVES = ("noisy", "uniform")
ENERGY_LOSSES = ("nce", "cd")
FILTER_MODES = ("off", "drop", "weight")


MAX_SEED = 2**31 - 1  # irq's own bound on a seed; torch and numpy take any of them
FIXED_SETS = {1: "validation", 2: "test", 3: "OOD", 4: "mean-inverse", 5: "OOD mean-inverse"}  # data.py's offsets


class ConfigError(ValueError):
    """A bad config file or flag: the CLI reports it on one line and exits with code 2."""


def _key(help: str, **kw: Any) -> Any:
    return field(metadata={"help": help}, **kw)


@dataclass
class TrainConfig:
    # problem
    rank: int = _key("matrix size n: A and its inverse are n x n, flattened to n^2", default=20)
    # diffusion
    diffusion_steps: int = _key("T, the number of diffusion levels (cosine schedule)", default=10)
    inner_steps: int = _key("energy-descent steps per level at evaluation", default=5)
    faithful: bool = _key("keep the reference's descent quirks (see docs/trainer.md); false = clean variant",
                          default=True)
    # optimisation
    train_steps: int = _key("number of optimiser steps", default=100_000)
    batch_size: int = _key("training batch size (fresh matrices every step)", default=2048)
    learning_rate: float = _key("Adam learning rate (betas 0.9, 0.99)", default=1e-4)
    grad_clip: float = _key("max global gradient norm (0 disables)", default=1.0)
    cosine_lr_start: Optional[int] = _key("step at which a cosine decay to min_lr starts (null: constant lr)",
                                          default=None)
    min_lr: float = _key("final learning rate of the cosine decay", default=0.0)
    ema_decay: float = _key("EMA decay cap (the reference's ramp reaches it gradually)", default=0.995)
    ema_update_every: int = _key("EMA update period in steps", default=10)
    ema_warmup: int = _key("steps during which the EMA copies the online weights", default=100)
    early_stopping_patience: Optional[int] = _key(
        "stop when validation MSE has not improved for this many steps (null: never)", default=None)
    # negatives
    mining: str = _key("negative mining: none | random | adversarial | langevin | mixed", default="none")
    mining_opt_steps: int = _key("energy-descent steps that improve adversarial negatives", default=2)
    mining_noise_scale: float = _key("negatives start this many times noisier than level t", default=3.0)
    mining_step_scale: float = _key("multiplier of the descent step size while mining", default=1.0)
    random_negative: str = _key("random negatives: noisy (reference start, no descent) | uniform (U(-1,1) matrices)",
                                default="noisy")
    energy_loss_weight: float = _key("weight of the contrastive energy term (the schedule's maximum)", default=0.5)
    mixed_strategy: str = _key("mining=mixed: fractions of each strategy per batch, e.g. random:0.7,adversarial:0.3",
                               default="random:0.7,adversarial:0.3")
    # Langevin negatives and the replay buffer (seed 004)
    langevin_steps: int = _key("k: Langevin steps per chain (mining=langevin)", default=10)
    langevin_init_scale: float = _key("fresh chains start this many times noisier than level t", default=1.5)
    langevin_step_scale: float = _key("eta = this x lambda_t, the Langevin step size", default=1.0)
    langevin_noise_mult: float = _key("sigma = this x sqrt(2 eta), the Langevin noise (0: plain descent)",
                                      default=1.0)
    replay_size: int = _key("replay buffer capacity in chains (0: no buffer, every chain fresh)", default=0)
    replay_prob: float = _key("a chain starts from the buffer with this probability (else fresh)", default=0.95)
    replay_per_timestep: bool = _key("one FIFO per diffusion level (capacity split evenly) instead of one",
                                     default=False)
    # the energy term
    energy_loss: str = _key("contrastive objective: nce (softplus(E+ - E-), the reference) | cd (E+ - E-)",
                            default="nce")
    cd_reg: float = _key("energy_loss=cd: alpha of the L2 penalty alpha (E+^2 + E-^2) that bounds the energies",
                         default=0.0)
    energy_warmup_frac: float = _key("energy weight ramps linearly from 0 over this fraction of train_steps",
                                     default=0.0)
    energy_t_min: float = _key("energy term only for t >= this x T", default=0.0)
    energy_t_max: float = _key("energy term only for t <= this x T", default=1.0)
    residual_filter: str = _key("false-negative filter on ||A Y- - I||_F: off | drop | weight", default="off")
    residual_percentile: float = _key("tau(t) at t = 0: this percentile of the batch's residuals", default=30.0)
    residual_percentile_last: float = _key("tau(t) at t = T-1 (linear in between: stricter at small t)",
                                           default=10.0)
    # data and evaluation
    data_seed: int = _key("seed of the fixed validation / test / OOD sets (shared by all runs)", default=1234)
    val_size: int = _key("validation set size", default=1024)
    test_size: int = _key("test set size (evaluated at the end)", default=1024)
    ood_size: int = _key("size of the harder (+0.1 I) out-of-distribution set; 0 skips it", default=1024)
    eval_batch_size: int = _key("evaluation chunk size (memory bound)", default=2048)
    accuracy_tol: float = _key("an entry counts as accurate if |pred - target| < accuracy_tol", default=0.05)
    mse_threshold: Optional[float] = _key(
        "steps_to_threshold counts steps until val MSE <= this (null: 0.9 x the predict-mean baseline)",
        default=None)
    # bookkeeping
    checkpoint_interval: int = _key("evaluate, append to curve.jsonl and checkpoint every N steps", default=1000)
    log_interval: int = _key("print a progress line every N steps", default=100)
    diagnostics: bool = _key("record energy gaps, mining gradients, conditioning, false negatives", default=False)
    diag_size: int = _key("samples used by the diagnostics", default=256)
    false_negative_threshold: float = _key("a negative is false if its MSE to the positive is below this",
                                           default=0.01)
    seed: int = _key("seed of python, numpy, torch and the training stream", default=0)
    device: str = _key("auto | cpu | cuda | cuda:N", default="auto")
    num_threads: Optional[int] = _key("torch CPU threads (null: torch's default)", default=None)
    compile: bool = _key("torch.compile the energy functions (falls back to eager on failure)", default=False)

    def validate(self) -> "TrainConfig":
        checks = [
            (self.rank >= 1, "rank must be >= 1"),
            (self.diffusion_steps >= 1, "diffusion_steps must be >= 1"),
            (self.train_steps >= 0, "train_steps must be >= 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (0 < self.learning_rate < math.inf, "learning_rate must be > 0 and finite"),
            (self.grad_clip >= 0, "grad_clip must be >= 0 (0 disables clipping)"),
            (self.min_lr >= 0, "min_lr must be >= 0"),
            (self.ema_warmup >= 0, "ema_warmup must be >= 0"),
            (0 <= self.seed <= MAX_SEED, f"seed must be in [0, {MAX_SEED}]"),
            (0 <= self.data_seed <= MAX_SEED, f"data_seed must be in [0, {MAX_SEED}]"),
            (self.mining in MINING, f"mining must be one of {', '.join(MINING)}"),
            (self.random_negative in RANDOM_NEGATIVES,
             f"random_negative must be one of {', '.join(RANDOM_NEGATIVES)}"),
            (self.mining_opt_steps >= 0, "mining_opt_steps must be >= 0"),
            (self.energy_loss in ENERGY_LOSSES, f"energy_loss must be one of {', '.join(ENERGY_LOSSES)}"),
            (self.residual_filter in FILTER_MODES, f"residual_filter must be one of {', '.join(FILTER_MODES)}"),
            (self.langevin_steps >= 0, "langevin_steps must be >= 0"),
            (self.langevin_init_scale >= 0 and self.langevin_step_scale > 0 and self.langevin_noise_mult >= 0,
             "langevin_init_scale and langevin_noise_mult must be >= 0, langevin_step_scale > 0"),
            (self.replay_size >= 0, "replay_size must be >= 0"),
            (0 <= self.replay_prob <= 1, "replay_prob must be in [0, 1]"),
            (self.cd_reg >= 0, "cd_reg must be >= 0"),
            (0 <= self.energy_warmup_frac <= 1, "energy_warmup_frac must be in [0, 1]"),
            (0 <= self.energy_t_min <= self.energy_t_max, "need 0 <= energy_t_min <= energy_t_max"),
            (0 <= self.residual_percentile <= 100 and 0 <= self.residual_percentile_last <= 100,
             "residual percentiles must be in [0, 100]"),
            (self.inner_steps >= 0, "inner_steps must be >= 0"),
            (self.checkpoint_interval >= 1, "checkpoint_interval must be >= 1"),
            (self.log_interval >= 1, "log_interval must be >= 1"),
            (self.val_size >= 1, "val_size must be >= 1"),
            (self.test_size >= 0 and self.ood_size >= 0, "test_size and ood_size must be >= 0"),
            (self.eval_batch_size >= 1, "eval_batch_size must be >= 1"),
            (self.diag_size >= 2, "diag_size must be >= 2"),
            (0 <= self.ema_decay < 1, "ema_decay must be in [0, 1)"),
            (self.ema_update_every >= 1, "ema_update_every must be >= 1"),
            (self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
             "device must be auto, cpu, cuda or cuda:N"),
            (self.num_threads is None or self.num_threads >= 1, "num_threads must be >= 1 or null"),
            (self.early_stopping_patience is None or self.early_stopping_patience >= 1,
             "early_stopping_patience must be >= 1 or null"),
            (self.cosine_lr_start is None or self.cosine_lr_start >= 0, "cosine_lr_start must be >= 0 or null"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        # the fixed sets draw from data_seed * 1000 + offset (data.py), the training stream from seed:
        # a seed equal to one of those numbers would train on the very matrices it is scored on
        if (clash := self.seed - self.data_seed * 1000) in FIXED_SETS:
            raise ConfigError(f"seed {self.seed} draws the same matrices as the {FIXED_SETS[clash]} set "
                              f"(data_seed {self.data_seed} * 1000 + {clash}): pick another seed or data_seed")
        parse_mix(self.mixed_strategy)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_mix(text: str) -> tuple[tuple[str, float], ...]:
    """"random:0.7,adversarial:0.3" -> (("random", 0.7), ("adversarial", 0.3)); fractions must sum to 1."""
    parts: list[tuple[str, float]] = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, _, frac = item.partition(":")
        if name.strip() not in MIXABLE:
            raise ConfigError(f"mixed_strategy: unknown strategy {name.strip()!r}; use {', '.join(MIXABLE)}")
        try:
            value = float(frac)
        except ValueError:
            raise ConfigError(f"mixed_strategy: cannot read the fraction in {item!r} (want name:fraction)") from None
        if not 0 <= value <= 1:
            raise ConfigError(f"mixed_strategy: fraction {value} of {name.strip()} is not in [0, 1]")
        parts.append((name.strip(), value))
    if not parts or abs(sum(f for _, f in parts) - 1) > 1e-6:
        raise ConfigError(f"mixed_strategy: fractions must sum to 1, got {text!r}")
    return tuple(parts)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
KEYS = tuple(FIELDS)
_HINTS = typing.get_type_hints(TrainConfig)


def unknown_key_message(key: str) -> str:
    return f"unknown config key '{key}'; valid keys: {', '.join(KEYS)}"


def coerce(key: str, value: Any) -> Any:
    """Convert a JSON value or a command-line string to the declared type of `key`."""
    if key not in FIELDS:
        raise ConfigError(unknown_key_message(key))
    hint = _HINTS[key]
    optional = typing.get_origin(hint) is typing.Union and type(None) in typing.get_args(hint)
    base = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
    if isinstance(value, str) and value.strip().lower() in ("null", "none") and optional:
        return None
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key} may not be null")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if base is int:
            if isinstance(value, bool):
                raise ValueError(value)
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError(value)
            return int(number)
        if base is float:
            if isinstance(value, bool):
                raise ValueError(value)
            number = float(value)
            if math.isnan(number):
                raise ValueError(value)
            return number
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: cannot read {value!r} as {base.__name__}") from None


def load_json(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not a text file (UTF-8)") from None
    except OSError as exc:  # a folder, a file that may not be read
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    data.pop("_comment", None)  # a place for humans to say what a config is for
    return data


def build(file_values: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults, then the config file, then command-line overrides; unknown keys are refused."""
    values: dict[str, Any] = {}
    for source in (file_values or {}, overrides or {}):
        for key, value in source.items():
            key = key.replace("-", "_")
            values[key] = coerce(key, value)
    return TrainConfig(**values).validate()


def from_checkpoint(values: dict[str, Any]) -> TrainConfig:
    """Rebuild a config saved in a checkpoint, ignoring keys a later version dropped."""
    return TrainConfig(**{k: v for k, v in values.items() if k in FIELDS})
