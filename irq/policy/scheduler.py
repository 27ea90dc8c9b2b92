"""What to submit next: a pure function from the ledger's state and the free slots to a plan.

Kept apart from the code that acts on it, so the daemon's decisions can be tested (and shown
with ``--dry-run``) without a cluster.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from irq.ledger.states import Priority
from irq.policy.dependencies import hold, pending


@dataclass(frozen=True)
class Candidate:
    id: str
    priority: str
    seq: int
    state: str  # READY, or IN_PROGRESS while queued locally
    depends_on: tuple[str, ...] = ()
    requested: bool = False  # the user asked to submit it (queued locally)
    cost: int = 1  # job slots it takes: SLURM counts each array task against the limit
    held: bool = False  # held until fixed (its preflight or job script failed): tried after the others


@dataclass
class Plan:
    submit: list[str] = field(default_factory=list)
    wait: dict[str, str] = field(default_factory=dict)  # id -> why it waits
    hold: dict[str, str] = field(default_factory=dict)  # id -> why it cannot run (a dependency failed or retired)

    def describe(self) -> list[str]:
        lines = [f"submit {i}" for i in self.submit]
        lines += [f"wait   {i}: {r}" for i, r in self.wait.items()]
        lines += [f"hold   {i}: {r}" for i, r in self.hold.items()]
        return lines


def order_key(c: Candidate) -> tuple[int, int, int, int]:
    """Priority first (HIGHEST..LOW), then work that is not held for a fix (a held experiment is
    tried again with the slots the others leave: it never starves them), then what the user asked
    for, then queue order."""
    return (Priority(c.priority).rank, 1 if c.held else 0, 0 if c.requested else 1, c.seq)


def plan(candidates: list[Candidate], states: dict[str, str], free_slots: int, limit: int | None = None) -> Plan:
    """Fill `free_slots` with candidates whose dependencies are DONE, best first. A candidate
    that can never fit (an array with more tasks than the job limit) is held, not retried."""
    p = Plan()
    used = 0
    for c in sorted(candidates, key=order_key):
        if held := hold(c.depends_on, states):
            p.hold[c.id] = f"{held[0]} ({held[1]})"
            continue
        if waits := pending(c.depends_on, states):
            p.wait[c.id] = "waiting for " + ", ".join(f"{d} ({states.get(d, 'unknown')})" for d in waits)
            continue
        if limit is not None and c.cost > limit:
            p.hold[c.id] = (f"its {c.cost} array tasks exceed the job limit of {limit} (each task counts): "
                            "split the seeds, or use a partition / QOS with a higher limit")
            continue
        if used + c.cost <= free_slots:
            p.submit.append(c.id)
            used += c.cost
        else:
            p.wait[c.id] = "no free job slot"
    return p
