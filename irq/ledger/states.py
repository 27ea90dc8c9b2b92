"""Experiment and scheduler states, and the legal moves between experiment states.

Experiments move PROPOSED -> READY -> IN_PROGRESS -> DONE | FAILED (myqueue-style public
states); attempts carry the scheduler's own finer state (PENDING, RUNNING, TIMEOUT, ...).
"""
from __future__ import annotations

from enum import Enum


class State(str, Enum):
    PROPOSED = "PROPOSED"
    READY = "READY"
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"
    FAILED = "FAILED"


LEGAL: dict[State, set[State]] = {
    State.PROPOSED: {State.READY},
    State.READY: {State.IN_PROGRESS},
    # back to READY: a queued-locally experiment taken off the queue before any job ran
    State.IN_PROGRESS: {State.DONE, State.FAILED, State.READY},
    State.FAILED: {State.READY},
    State.DONE: set(),
}


class Priority(str, Enum):
    HIGHEST = "HIGHEST"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"

    @property
    def rank(self) -> int:
        return ["HIGHEST", "HIGH", "MEDIUM", "LOW"].index(self.value)


# Scheduler (attempt) states, as SLURM names them, plus irq's own bookkeeping states.
SUBMITTING = "SUBMITTING"  # row written, sbatch not yet confirmed: adopt by token on restart
UNKNOWN = "UNKNOWN"  # the scheduler could not be asked; see Attempt.unknown_since
REFUSED = "REFUSED"  # sbatch said no (job limit, bad partition): no job exists
NOT_SUBMITTED = "NOT_SUBMITTED"  # irq stopped before the job reached the scheduler
ACTIVE_STATES = {
    SUBMITTING, "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "RESIZING",
    "SUSPENDED", "STOPPED", UNKNOWN,
}
SUCCESS_STATES = {"COMPLETED"}
FAILURE_STATES = {
    "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
    "BOOT_FAIL", "DEADLINE", "REVOKED", "LOST",
}
FINAL_STATES = SUCCESS_STATES | FAILURE_STATES


def normalize_scheduler_state(raw: str) -> str:
    """'CANCELLED by 1001' -> 'CANCELLED'; 'RUNNING ✓' -> 'RUNNING'."""
    word = raw.strip().split()[0] if raw.strip() else UNKNOWN
    return word.upper().rstrip("+")


def is_active(state: str) -> bool:
    return state in ACTIVE_STATES


def is_final(state: str) -> bool:
    return state in FINAL_STATES
