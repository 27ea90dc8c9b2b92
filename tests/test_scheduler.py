"""The daemon's decision, as a pure function: which READY experiments go into free slots."""
from __future__ import annotations

from irq.policy.scheduler import Candidate, plan


def c(i: str, prio: str = "MEDIUM", seq: int = 0, deps: tuple[str, ...] = (), requested: bool = False) -> Candidate:
    return Candidate(i, prio, seq or int(i[2:]), "READY", deps, requested)


def test_priority_then_queue_order_fill_the_free_slots():
    p = plan([c("Q-001", "LOW"), c("Q-002", "HIGH"), c("Q-003", "HIGHEST"), c("Q-004", "HIGH")], {}, 2)
    assert p.submit == ["Q-003", "Q-002"]
    assert p.wait == {"Q-004": "no free job slot", "Q-001": "no free job slot"}


def test_dependencies_wait_until_done_and_hold_when_failed():
    states = {"Q-001": "IN_PROGRESS", "Q-002": "DONE", "Q-005": "FAILED"}
    p = plan([c("Q-003", deps=("Q-001", "Q-002")), c("Q-004", deps=("Q-002",)), c("Q-006", deps=("Q-005",))],
             states, 5)
    assert p.submit == ["Q-004"]
    assert p.wait == {"Q-003": "waiting for Q-001 (IN_PROGRESS)"}
    assert p.hold["Q-006"].startswith("dependency Q-005 FAILED")


def test_a_retired_dependency_holds_with_what_to_do_never_waits_for_ever():
    states = {"Q-001": "RETIRED", "Q-002": "DONE", "Q-003": "FAILED"}
    p = plan([c("Q-004", deps=("Q-002", "Q-001")), c("Q-005", deps=("Q-003", "Q-001"))], states, 5)
    assert p.submit == [] and p.wait == {}
    assert p.hold["Q-004"].startswith("dependency Q-001 RETIRED (it will never run: drop the dependency")
    assert "--no-after" in p.hold["Q-004"]
    assert p.hold["Q-005"].startswith("dependency Q-003 FAILED (retry it")


def test_what_the_user_asked_for_goes_first_within_a_priority():
    p = plan([c("Q-001"), c("Q-002", requested=True)], {}, 1)
    assert p.submit == ["Q-002"]


def test_no_slots_submits_nothing():
    p = plan([c("Q-001", "HIGHEST")], {}, 0)
    assert p.submit == [] and p.wait == {"Q-001": "no free job slot"}
    assert p.describe() == ["wait   Q-001: no free job slot"]


def test_an_array_takes_a_slot_per_task_and_one_too_big_is_held():
    p = plan([c("Q-101", "HIGH"), Candidate("Q-102", "HIGH", 102, "READY", (), False, cost=2),
              Candidate("Q-103", "HIGH", 103, "READY", (), False, cost=10)], {}, 2, limit=2)
    assert p.submit == ["Q-101"]
    assert p.wait == {"Q-102": "no free job slot"}
    assert p.hold["Q-103"].startswith("its 10 array tasks exceed the job limit of 2")


def test_work_held_for_a_fix_goes_after_the_rest_of_its_priority():
    held = Candidate("Q-001", "HIGH", 1, "IN_PROGRESS", (), True, held=True)
    p = plan([held, c("Q-002", "HIGH"), c("Q-003", "LOW")], {}, 2)
    assert p.submit == ["Q-002", "Q-001"] and p.wait == {"Q-003": "no free job slot"}  # priority still first
