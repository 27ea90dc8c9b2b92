"""irq.toml as files: where they are, their TOML, and the two settings read-only views need.

Stdlib only. `irq.config` validates whole files with pydantic (about 0.1 s of CPU to import and
build); the views that only read the ledger (`status --offline`, `show`, `export`, `results`)
need just the headline metric and its goal, and take them from here. A value this module cannot
vouch for is handed to `irq.config`, so a bad one still gets the full error in the user's words.
Commands that act (add, submit, check, the daemon, online status) validate the whole file.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irq import errors

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FILENAME = "irq.toml"
DOCS = "docs/configuration.md"
DEFAULT_METRIC = "val_mse"
GOALS = ("min", "max")


def find_config(start: Path | None = None) -> Path | None:
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / FILENAME).is_file():
            return d / FILENAME
    return None


def user_config_path() -> Path:
    return Path(os.environ.get("IRQ_USER_CONFIG") or Path.home() / ".config" / "irq" / "config.toml")


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8-sig"))  # -sig: a byte order mark some editors write
    except OSError as exc:
        raise errors.ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise errors.ConfigError(f"{path}: not a text file (not UTF-8)",
                                 f"irq.toml is TOML text; see {DOCS}") from None
    except tomllib.TOMLDecodeError as exc:
        raise errors.ConfigError(f"{path}: not valid TOML: {exc}") from None


def merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def config_data(explicit: Path | None = None, start: Path | None = None) -> tuple[dict[str, Any], Path | None]:
    """The user's file with the project's merged over it, and the project file's path."""
    data: dict[str, Any] = {}
    user = user_config_path()
    if user.is_file():
        data = read_toml(user)
    if explicit is not None and not explicit.is_file():
        what = "no such config file" if not explicit.exists() else "not a file (a folder, a pipe or a device)"
        raise errors.ConfigError(f"{explicit}: {what}", f"pass an irq.toml to --config; see {DOCS}")
    path = explicit or find_config(start)
    if path is not None:
        data = merge(data, read_toml(path))
    return data, path


@dataclass(frozen=True)
class ReadSettings:
    """What read-only views use of irq.toml: the headline metric, whether lower ("min") or higher
    ("max") is better, and the project file (its folder holds the project's templates/)."""

    metric: str = DEFAULT_METRIC
    goal: str = "min"
    file: Path | None = None


def read_settings(explicit: Path | None = None) -> ReadSettings:
    """[project] metric and goal, without pydantic when both are plainly valid."""
    data, path = config_data(explicit)
    project = data.get("project", {})
    if isinstance(project, dict):
        metric, goal = project.get("metric", DEFAULT_METRIC), project.get("goal", "min")
        if isinstance(metric, str) and metric and metric.isprintable() and goal in GOALS:
            return ReadSettings(metric, goal, path)
    from irq.config import load_config

    p = load_config(explicit).project  # raises the precise error (or takes what it accepts)
    return ReadSettings(p.metric, p.goal, path)
