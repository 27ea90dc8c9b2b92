"""The two state machines, named: experiments and their attempts, with their legal moves.

Experiments move PROPOSED -> READY -> IN_PROGRESS -> DONE | FAILED (myqueue-style public
states), and any that will never run (again) may be RETIRED, its history kept; attempts carry the scheduler's own finer state (PENDING, RUNNING, TIMEOUT, ...) plus
irq's bookkeeping states. The stored values are these strings, so ledgers and queue.md files
written before the enums keep reading. ``irq.ledger.transitions`` is the only writer.
"""
from __future__ import annotations

from enum import Enum


class State(str, Enum):
    """An experiment's state."""

    PROPOSED = "PROPOSED"
    READY = "READY"
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"
    FAILED = "FAILED"
    RETIRED = "RETIRED"  # will never run (again); kept with its history

    def __str__(self) -> str:
        return self.value


LEGAL: dict[State, set[State]] = {
    State.PROPOSED: {State.READY, State.RETIRED},
    State.READY: {State.IN_PROGRESS, State.RETIRED},
    # back to READY: a queued-locally experiment taken off the queue before any job ran;
    # RETIRED only while it has no active attempt (move_experiment checks)
    State.IN_PROGRESS: {State.DONE, State.FAILED, State.READY, State.RETIRED},
    State.FAILED: {State.READY, State.RETIRED},
    State.DONE: set(),
    State.RETIRED: set(),
}


class Priority(str, Enum):
    HIGHEST = "HIGHEST"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"

    @property
    def rank(self) -> int:
        return ["HIGHEST", "HIGH", "MEDIUM", "LOW"].index(self.value)


class AttemptState(str, Enum):
    """An attempt's state: SLURM's names, plus irq's own bookkeeping states."""

    SUBMITTING = "SUBMITTING"  # row written, sbatch not yet confirmed: adopt by token on restart
    UNKNOWN = "UNKNOWN"  # the scheduler reported no state it names
    REFUSED = "REFUSED"  # sbatch said no (job limit, bad partition): no job exists
    NOT_SUBMITTED = "NOT_SUBMITTED"  # irq stopped before the job reached the scheduler
    PENDING = "PENDING"
    CONFIGURING = "CONFIGURING"
    RUNNING = "RUNNING"
    COMPLETING = "COMPLETING"
    REQUEUED = "REQUEUED"
    RESIZING = "RESIZING"
    SUSPENDED = "SUSPENDED"
    STOPPED = "STOPPED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    REVOKED = "REVOKED"
    LOST = "LOST"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def of(cls, raw: str) -> AttemptState:
        """A scheduler's word as a state; a word SLURM added since is UNKNOWN (kept polling)."""
        try:
            return cls(normalize_scheduler_state(raw))
        except ValueError:
            return cls.UNKNOWN


A = AttemptState
SUBMITTING, UNKNOWN, REFUSED, NOT_SUBMITTED = A.SUBMITTING, A.UNKNOWN, A.REFUSED, A.NOT_SUBMITTED
# the scheduler still has the job (or may have it: UNKNOWN, SUBMITTING)
LIVE_STATES = frozenset({A.PENDING, A.CONFIGURING, A.RUNNING, A.COMPLETING, A.REQUEUED, A.RESIZING,
                         A.SUSPENDED, A.STOPPED, A.UNKNOWN})
ACTIVE_STATES = LIVE_STATES | {A.SUBMITTING}
SUCCESS_STATES = frozenset({A.COMPLETED})
FAILURE_STATES = frozenset({A.FAILED, A.CANCELLED, A.TIMEOUT, A.OUT_OF_MEMORY, A.NODE_FAIL, A.PREEMPTED,
                            A.BOOT_FAIL, A.DEADLINE, A.REVOKED, A.LOST})
FINAL_STATES = SUCCESS_STATES | FAILURE_STATES  # the job ran and ended: there is something to fetch
CLOSED_STATES = FINAL_STATES | {A.REFUSED, A.NOT_SUBMITTED}  # no job will ever change it again

ATTEMPT_LEGAL: dict[AttemptState, frozenset[AttemptState]] = {
    # confirmed (sbatch answered, or adopted by token), refused, or it never reached the scheduler
    A.SUBMITTING: frozenset({A.PENDING, A.REFUSED, A.NOT_SUBMITTED}),
    **{st: (LIVE_STATES | FINAL_STATES) - {st} for st in LIVE_STATES},
    **{st: frozenset() for st in FINAL_STATES | {A.REFUSED}},
    # sbatch answered after a reconcile elsewhere had given the submission up: the job exists
    A.NOT_SUBMITTED: frozenset({A.PENDING}),
}


def normalize_scheduler_state(raw: str) -> str:
    """'CANCELLED by 1001' -> 'CANCELLED'; 'RUNNING ✓' -> 'RUNNING'."""
    word = raw.strip().split()[0] if raw.strip() else UNKNOWN.value
    return word.upper().rstrip("+")


def is_active(state: str) -> bool:
    return state in ACTIVE_STATES


def is_final(state: str) -> bool:
    return state in FINAL_STATES
