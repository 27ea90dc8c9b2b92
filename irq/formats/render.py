"""Jinja rendering of irq's text outputs (queue.md, job scripts).

Templates ship inside the package (``irq/formats/templates``, read with ``importlib.resources``
so a regular, non-editable install finds them). A ``templates/`` folder beside the project's
irq.toml, or the folder named by ``$IRQ_TEMPLATES``, overrides them file by file.

StrictUndefined everywhere: a value the template needs and nobody set is an error naming
it, never an empty string in a job script.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from irq import errors

if TYPE_CHECKING:
    import jinja2

    from irq.config import Config

PACKAGE = "irq.formats"
FOLDER = "templates"


def project_templates(config: Config | None) -> Path | None:
    """The project's own template folder: ``templates/`` beside its irq.toml, if there is one."""
    return templates_beside(config.path if config is not None else None)


def templates_beside(config_file: Path | None) -> Path | None:
    """``templates/`` beside an irq.toml, if there is one."""
    if config_file is None:
        return None
    folder = config_file.parent / FOLDER
    return folder if folder.is_dir() else None


def template_dirs(extra: Path | None = None) -> list[Path]:
    """Folders searched before the packaged templates: the project's, then $IRQ_TEMPLATES."""
    dirs: list[Path] = []
    if extra is not None:
        dirs.append(extra)
    env_dir = os.environ.get("IRQ_TEMPLATES")
    if env_dir:
        dirs.append(Path(env_dir))
    return [d for d in dirs if d.is_dir()]


def _packaged(name: str) -> tuple[str, None, Callable[[], bool]] | None:
    """A template shipped with irq, read through importlib.resources (works from any install).

    Never "up to date": each render looks again, so a project template added while a daemon
    runs is used from its next cycle on."""
    from importlib import resources  # only when rendering: `irq export` of the packaged layout never reads one

    res = resources.files(PACKAGE).joinpath(FOLDER, name)
    return (res.read_text(encoding="utf-8"), None, lambda: False) if res.is_file() else None


def overridden(name: str, extra_dir: Path | None = None) -> bool:
    """Whether a project's or $IRQ_TEMPLATES' folder has its own template `name`."""
    return any((d / name).is_file() for d in template_dirs(extra_dir))


@lru_cache(maxsize=8)
def _env(dirs: tuple[Path, ...]) -> jinja2.Environment:
    import jinja2  # only when rendering: `irq export` of the packaged layout never imports it

    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader([str(d) for d in dirs]), jinja2.FunctionLoader(_packaged)])
    return jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)


def render(name: str, context: dict[str, Any], extra_dir: Path | None = None,
           filters: dict[str, Any] | None = None) -> str:
    return "".join(render_stream(name, context, extra_dir, filters))


def render_stream(name: str, context: dict[str, Any], extra_dir: Path | None = None,
                  filters: dict[str, Any] | None = None) -> Iterator[str]:
    """The rendered text in pieces, as Jinja's generate() makes them: a 10,000-experiment
    queue.md is written as it renders, never held whole."""
    import jinja2

    dirs = tuple(template_dirs(extra_dir))
    try:
        env = _env(dirs)
        env.filters.update(filters or {})
        yield from env.get_template(name).generate(**context)
    except jinja2.TemplateNotFound:
        where = ", ".join([*(str(d) for d in dirs), f"{PACKAGE}/{FOLDER}"])
        raise errors.TemplateError(f"template {name} not found in {where}") from None
    except jinja2.UndefinedError as exc:
        raise errors.TemplateError(f"template {name}: {exc.message}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise errors.TemplateError(f"template {exc.filename or name}:{exc.lineno}: {exc.message}") from None
    except errors.IrqError:
        raise
    except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError, RecursionError) as exc:
        # a project's template that fails as it runs ({{ 1/0 }}, a file that is not UTF-8, one that extends itself)
        raise errors.TemplateError(f"template {name} failed while rendering: {type(exc).__name__}: {exc}"[:400],
                                   f"fix your {name} (in {', '.join(str(d) for d in dirs) or 'your templates folder'}), "
                                   "or remove it to use irq's own") from None
