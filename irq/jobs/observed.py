"""What the scheduler said about one attempt, as the ledger records it: one state for a job or
an array, and the facts that go with it. Pure (no ledger, no ORM): the refresh records it
(irq/jobs/sync.py), and `irq status` asks whether recording it would change anything before it
loads the ORM at all (irq/jobs/quickstatus.py)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from irq.backends.base import JobInfo
from irq.ledger.states import AttemptState, is_active


def aggregate(rows: list[JobInfo]) -> tuple[str, int | None, datetime | None, datetime | None, str | None]:
    """One state for a job or an array: active while any task is, else the worst outcome."""
    states = [r.state for r in rows]
    if any(is_active(st) for st in states):
        st = "RUNNING" if "RUNNING" in states else next(x for x in states if is_active(x))
    elif all(x == "COMPLETED" for x in states):
        st = "COMPLETED"
    else:
        order = ["OUT_OF_MEMORY", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "FAILED", "CANCELLED"]
        st = next((x for x in order if x in states), next(x for x in states if x != "COMPLETED"))
    codes = [r.exit_code for r in rows if r.exit_code is not None]
    exit_code = max(codes) if codes else None
    starts = [r.start for r in rows if r.start]
    ends = [r.end for r in rows if r.end]
    end = max(ends) if ends and not any(is_active(x) for x in states) else None
    reason = next((r.reason for r in rows if r.reason), None)
    return st, exit_code, (min(starts) if starts else None), end, reason


def observation(got: list[JobInfo], started_at: datetime | None
                ) -> tuple[AttemptState, dict[str, Any], datetime | None, str | None]:
    """(state, facts, end, reason) to record for an attempt the scheduler listed with these rows;
    `started_at` is what the attempt has recorded already (a start is never moved)."""
    st, code, start, end, reason = aggregate(got)
    facts: dict[str, Any] = {"started_at": started_at or start}
    if len(got) > 1 or got[0].task_id is not None:
        facts["tasks"] = {str(r.task_id): {"state": r.state, "exit_code": r.exit_code} for r in got
                          if r.task_id is not None}
    if code is not None:
        facts["exit_code"] = code
    if st in ("NODE_FAIL", "BOOT_FAIL", "LOST") and reason:  # the only word of why (the local runner died,
        facts["error"] = reason                              # its job folder is gone): kept on the attempt
    return AttemptState.of(st), facts, end, reason


def mine(att: Any, got: list[JobInfo] | None) -> list[JobInfo] | None:
    """The rows of this attempt's job. A job id that now names another job (its name without the
    attempt's token: ids start again in another [local] workdir, or after a scheduler reset) is
    never read as this attempt's: the job is lost, a NODE_FAIL that says why."""
    token, exp_id = getattr(att, "token", None), getattr(att, "experiment_id", None)
    names = [r.name for r in got or [] if r.name]
    # the experiment's own job name with another token is still its job (an import gives attempts new
    # tokens): an experiment has one active attempt, so its id in a name is enough
    if not token or not names or any(token in n or (exp_id and n.startswith(f"{exp_id}.")) for n in names):
        return got
    return [JobInfo(job_id=att.job_id, state="NODE_FAIL",
                    reason=f"job {att.job_id} is now another job ({names[0]}): its id was used again (a [local] "
                           "workdir moved, or the scheduler was reset), and this attempt's job cannot be found")]


def unchanged(att: Any, got: list[JobInfo] | None) -> bool:
    """Recording `got` on this active attempt would change nothing (no new state, no new fact,
    no unknown_since to clear): what the refresh writes then is only its updated_at."""
    got = mine(att, got)
    if not got or att.unknown_since is not None:
        return False
    state, facts, _, _ = observation(got, att.started_at)
    return state.value == att.state and all(getattr(att, k) == v for k, v in facts.items())
