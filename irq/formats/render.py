"""Jinja rendering of irq's text outputs (queue.md, sbatch scripts) from ``templates/``.

StrictUndefined everywhere: a value the template needs and nobody set is an error naming
it, never an empty string in a job script.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from irq import errors


def template_dirs(extra: Path | None = None) -> list[Path]:
    """Project templates (irq.toml's folder) win over the ones shipped with irq."""
    dirs: list[Path] = []
    if extra is not None:
        dirs.append(extra)
    env_dir = os.environ.get("IRQ_TEMPLATES")
    if env_dir:
        dirs.append(Path(env_dir))
    dirs.append(Path(__file__).resolve().parents[2] / "templates")
    return [d for d in dirs if d.is_dir()]


@lru_cache(maxsize=8)
def _env(dirs: tuple[Path, ...]) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in dirs]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return env


def render(name: str, context: dict[str, Any], extra_dir: Path | None = None,
           filters: dict[str, Any] | None = None) -> str:
    dirs = tuple(template_dirs(extra_dir))
    try:
        env = _env(dirs)
        env.filters.update(filters or {})
        return env.get_template(name).render(**context)
    except jinja2.TemplateNotFound:
        raise errors.TemplateError(
            f"template {name} not found in " + ", ".join(str(d) for d in dirs) or "no template folder"
        ) from None
    except jinja2.UndefinedError as exc:
        raise errors.TemplateError(f"template {name}: {exc.message}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise errors.TemplateError(f"template {exc.filename or name}:{exc.lineno}: {exc.message}") from None
