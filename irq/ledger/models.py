"""The ledger's tables: experiments, their submission attempts, and the event log.

Attempts and events are never deleted: the history of an experiment (five failed pilots
before one ran) is the point of the ledger.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Optional, TypeVar

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


F = TypeVar("F", bound=Callable[..., Any])


def no_arguments(factory: F) -> F:
    """A default factory whose signature pydantic need not work out. pydantic asks for it every
    time it calls the factory (to see whether it takes the validated data); for `dict` and `list`
    that means parsing their text signature: 19 of the 42 s `irq import` took for 10,000
    experiments. With `__signature__` set, `inspect.signature` returns it at once."""
    factory.__signature__ = inspect.Signature()  # type: ignore[attr-defined]
    return factory


@no_arguments
def new_dict() -> dict[str, Any]:
    return {}


@no_arguments
def new_list() -> list[Any]:
    return []


@no_arguments
def utcnow() -> datetime:
    """Aware UTC, second precision: what the ledger stores and queue.md prints."""
    return datetime.now(timezone.utc).replace(microsecond=0)


class Meta(SQLModel, table=True):
    """Key/value facts about the ledger itself (schema version, queue.md preamble)."""

    key: str = Field(primary_key=True)
    value: str = Field(sa_column=Column(Text, nullable=False))


class Experiment(SQLModel, table=True):
    id: str = Field(primary_key=True)
    seq: int = Field(index=True)  # queue order: order of creation / appearance
    title: str
    state: str = Field(default="READY", index=True)  # a State value
    hypothesis: Optional[str] = None
    config_path: Optional[str] = None
    # the shell command it runs, with {name} placeholders; None: the project's default command
    command: Optional[str] = Field(default=None, sa_column=Column(Text))
    # rank, diffusion_steps, train_steps, batch_size, learning_rate, mining, ... (JSON)
    parameters: dict[str, Any] = Field(default_factory=new_dict, sa_column=Column(JSON, nullable=False))
    # gpus, cpus, memory ("16G"), time_minutes, partition
    resources: dict[str, Any] = Field(default_factory=new_dict, sa_column=Column(JSON, nullable=False))
    priority: str = "MEDIUM"
    depends_on: list[str] = Field(default_factory=new_list, sa_column=Column(JSON, nullable=False))
    seeds: list[int] = Field(default_factory=new_list, sa_column=Column(JSON, nullable=False))
    notes: Optional[str] = None
    # Verbatim text that qualifies a typed value: {"priority": "(must run first)", ...}
    annotations: dict[str, str] = Field(default_factory=new_dict, sa_column=Column(JSON, nullable=False))
    # Free-text bullets kept verbatim, in order: [["Purpose", "..."], ...]
    extras: list[list[str]] = Field(default_factory=new_list, sa_column=Column(JSON, nullable=False))
    # Set while an IN_PROGRESS experiment has no active attempt: "queued locally" (waiting for a
    # slot or a dependency), or "held until fixed" when held_fix says what a person must fix.
    # Written only by irq.ledger.transitions; read through transitions.waiting().
    queued_since: Optional[datetime] = None
    waiting_reason: Optional[str] = None
    held_fix: Optional[str] = None
    queue_extras: list[list[str]] = Field(default_factory=new_list, sa_column=Column(JSON, nullable=False))
    # retry policy (off by default): irq.policy.retry.RetryPolicy as a dict
    retry_policy: dict[str, Any] = Field(default_factory=new_dict, sa_column=Column(JSON, nullable=False))
    # a resource bump decided by the retry policy, carried onto the next attempt's resource_change
    pending_resource_change: Optional[str] = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Attempt(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("experiment_id", "number"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    experiment_id: str = Field(foreign_key="experiment.id", index=True)
    number: int
    token: str = Field(unique=True, index=True)  # carried by the job (name/comment): adoption key
    backend: str = "imported"
    cluster: Optional[str] = None
    job_id: Optional[str] = Field(default=None, index=True)
    array: Optional[str] = None  # "0-9%2"
    # per array task: {"3": {"state": "COMPLETED", "exit_code": 0, ...}}
    tasks: dict[str, Any] = Field(default_factory=new_dict, sa_column=Column(JSON, nullable=False))
    run_id: Optional[str] = None
    state: str = Field(default="SUBMITTING", index=True)  # an AttemptState value; refreshes select the active
    exit_code: Optional[int] = None
    submitted_at: Optional[datetime] = None
    started_at: Optional[datetime] = None
    ended_at: Optional[datetime] = None
    unknown_since: Optional[datetime] = None
    git_sha: Optional[str] = None
    partition: Optional[str] = None
    work_dir: Optional[str] = None
    run_dir: Optional[str] = None
    modules: list[str] = Field(default_factory=new_list, sa_column=Column(JSON, nullable=False))
    script: Optional[str] = Field(default=None, sa_column=Column(Text))
    error: Optional[str] = None
    root_cause: Optional[str] = None
    fix_applied: Optional[str] = None
    suggested_fix: Optional[str] = None
    resource_change: Optional[str] = None  # why this attempt got more time/memory
    results: dict[str, Any] = Field(default_factory=new_dict, sa_column=Column(JSON, nullable=False))
    output: Optional[str] = None  # where fetched results are
    fetched_at: Optional[datetime] = None
    annotations: dict[str, str] = Field(default_factory=new_dict, sa_column=Column(JSON, nullable=False))
    extras: list[list[str]] = Field(default_factory=new_list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Event(SQLModel, table=True):
    """Append-only: one row per change of an experiment's or attempt's state."""

    id: Optional[int] = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    experiment_id: str = Field(index=True)
    attempt_id: Optional[int] = None
    kind: str = "experiment"  # experiment | attempt
    from_state: Optional[str] = None
    to_state: str
    reason: Optional[str] = None


class SchedulerCall(SQLModel, table=True):
    """One row per round trip to a scheduler: the polling budget admins can read."""

    id: Optional[int] = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    backend: str
    command: str  # squeue | sacct | sbatch | scancel | sacctmgr | sinfo ...
