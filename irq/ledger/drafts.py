"""Rows not yet written, as plain objects: a model's fields with their defaults.

`irq import` of 10,000 experiments and 40,000 attempts spent most of its time building one ORM
object per row (every attribute set through SQLModel's and SQLAlchemy's instrumentation, every
default through pydantic) before a single INSERT. A draft is a SimpleNamespace with the same
attributes and defaults; `insert()` writes a list of them in one executemany through the model's
table, with the same column types (JSON, times) as the ORM would use. SQL triggers (the
revisions) fire as for any INSERT.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import insert as sql_insert
from sqlmodel import Session, SQLModel


class Draft(SimpleNamespace):
    """A row of a model, not yet written."""


@lru_cache(maxsize=None)
def _defaults(model: type[SQLModel]) -> tuple[tuple[str, Any, Callable[[], Any] | None], ...]:
    """Each field with a default: (name, constant, factory); the required ones have none."""
    out = []
    for name, f in model.model_fields.items():
        if f.default_factory is not None:
            out.append((name, None, f.default_factory))
        elif not f.is_required():
            out.append((name, f.default, None))
    return tuple(out)


def draft(model: type[SQLModel], **values: Any) -> Draft:
    """A new row of `model`: `values`, and every other field's default (factories called, as the
    model's constructor would: each row its own dict or list)."""
    row = {name: factory() if factory is not None else const for name, const, factory in _defaults(model)
           if name not in values}
    return Draft(**row, **values)


def insert(s: Session, model: type[SQLModel], drafts: Iterable[Draft]) -> None:
    """Write the drafts as rows of `model` in one statement (an integer id left None is the database's to give)."""
    rows = [{k: v for k, v in vars(d).items() if not (k == "id" and v is None)} for d in drafts]
    if rows:
        s.execute(sql_insert(model), rows)
