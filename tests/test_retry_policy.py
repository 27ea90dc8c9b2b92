"""RetryPolicy: one type for the three spellings of a policy, and one pure decision (bigger)."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from irq.fields import FieldError
from irq.policy.retry import RetryPolicy, bigger

policies = st.builds(
    RetryPolicy,
    on=st.sampled_from([(), ("TIMEOUT",), ("OUT_OF_MEMORY",), ("TIMEOUT", "OUT_OF_MEMORY")]),
    max_time_minutes=st.none() | st.integers(1, 14 * 1440),
    max_memory_mb=st.none() | st.integers(1, 1024).map(lambda g: g * 1024) | st.integers(1, 4000),
    max_attempts=st.none() | st.integers(1, 20),
)


@given(policies)
def test_text_and_json_round_trip(p):
    assert RetryPolicy.from_dict(p.to_dict()) == (p if p.to_dict() else None)
    if p.format():
        assert RetryPolicy.parse(p.format()) == p


def test_the_queue_md_spelling():
    p = RetryPolicy.parse("on TIMEOUT, out_of_memory; max time 8 hours; max memory 64GB; max attempts 4")
    assert p == RetryPolicy(("TIMEOUT", "OUT_OF_MEMORY"), 480, 64 * 1024, 4)
    assert p.format() == "on TIMEOUT, OUT_OF_MEMORY; max time 8 hours; max memory 64GB; max attempts 4"
    assert p.to_dict() == {"on": ["TIMEOUT", "OUT_OF_MEMORY"], "max_time_minutes": 480,
                           "max_memory_mb": 65536, "max_attempts": 4}


@pytest.mark.parametrize("text", ["on NODE_FAIL", "max 8 hours", "max time soon", "max attempts x"])
def test_bad_text_is_refused_with_the_expected_form(text):
    with pytest.raises(FieldError):
        RetryPolicy.parse(text)


def test_the_cli_options():
    assert RetryPolicy.from_options([]) is None
    p = RetryPolicy.from_options(["timeout"], "8 hours", None, 3)
    assert p == RetryPolicy(("TIMEOUT",), 480, None, 3)
    with pytest.raises(FieldError):
        RetryPolicy.from_options(["FAILED"])


def test_defaults_when_unset():
    p = RetryPolicy.from_dict({"max_time_minutes": 90})
    assert p.triggers == ("TIMEOUT", "OUT_OF_MEMORY") and p.attempts_allowed == 3
    assert RetryPolicy.from_dict({}) is None


RES = {"time_minutes": 60, "memory_mb": 4096, "gpus": 1}


def test_a_timeout_doubles_the_time_up_to_the_cap():
    b = bigger(RES, "TIMEOUT", RetryPolicy(max_time_minutes=90), 1)
    assert b.resources == {**RES, "time_minutes": 90}
    assert b.change == "time 1 hour -> 1.5 hours after TIMEOUT"
    assert bigger(b.resources, "TIMEOUT", RetryPolicy(max_time_minutes=90), 2) is None  # at the cap
    assert bigger(RES, "TIMEOUT", RetryPolicy(), 1).resources["time_minutes"] == 120  # no cap: doubles


def test_out_of_memory_doubles_the_memory():
    b = bigger(RES, "OUT_OF_MEMORY", RetryPolicy(max_memory_mb=64 * 1024), 1)
    assert b.resources["memory_mb"] == 8192 and b.change == "memory 4GB -> 8GB after OUT_OF_MEMORY"
    assert RES["memory_mb"] == 4096  # pure: the input is untouched


@pytest.mark.parametrize("state, policy, attempts, resources", [
    ("FAILED", RetryPolicy(), 1, RES),  # not a resource failure
    ("TIMEOUT", RetryPolicy(on=("OUT_OF_MEMORY",)), 1, RES),  # not this policy's trigger
    ("TIMEOUT", RetryPolicy(max_attempts=2), 2, RES),  # attempts used up
    ("TIMEOUT", None, 1, RES),  # no policy
    ("OUT_OF_MEMORY", RetryPolicy(), 1, {"time_minutes": 60}),  # no memory asked: nothing to double
])
def test_no_bump(state, policy, attempts, resources):
    assert bigger(resources, state, policy, attempts) is None
