"""The dependency-cycle check (irq/policy/dependencies.py), as a table of graphs."""
from __future__ import annotations

import pytest

from irq.policy.dependencies import describe, find_cycle

CASES = [  # (name, graph, start, the cycle found or None)
    ("no experiments", {}, None, None),
    ("no dependencies", {"a": [], "b": []}, None, None),
    ("a chain", {"a": ["b"], "b": ["c"], "c": []}, None, None),
    ("a diamond is no cycle", {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}, None, None),
    ("an unlisted dependency has none", {"a": ["x"]}, None, None),
    ("itself", {"a": ["a"]}, None, ["a", "a"]),
    ("two", {"a": ["b"], "b": ["a"]}, None, ["a", "b", "a"]),
    ("three, found from the start", {"a": ["b"], "b": ["c"], "c": ["a"]}, None, ["a", "b", "c", "a"]),
    ("behind a chain", {"a": ["b"], "b": ["c"], "c": ["b"]}, None, ["b", "c", "b"]),
    ("through start", {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}, "a", ["a", "b", "c", "a"]),
    ("not through start", {"a": ["b"], "b": ["c"], "c": ["b"], "d": []}, "a", None),
    ("through start, the shortest", {"a": ["b", "c"], "b": ["x"], "x": ["a"], "c": ["a"]}, "a", ["a", "c", "a"]),
    ("start on itself", {"a": ["a"]}, "a", ["a", "a"]),
]


@pytest.mark.parametrize("name, graph, start, want", CASES, ids=[c[0] for c in CASES])
def test_find_cycle(name, graph, start, want):
    assert find_cycle(graph, start) == want


def test_every_path_found_is_a_cycle_of_the_graph():
    graph = {f"e{i}": [f"e{(i * 7 + k) % 40}" for k in range(1, 3) if (i + k) % 5] for i in range(40)}
    for start in [None, *graph]:
        cycle = find_cycle(graph, start)
        if cycle is not None:
            assert cycle[0] == cycle[-1]
            assert all(b in graph[a] for a, b in zip(cycle, cycle[1:]))


def test_a_chain_of_ten_thousand_needs_no_recursion():
    chain = {f"e{i}": [f"e{i + 1}"] for i in range(10_000)}
    assert find_cycle(chain) is None
    chain["e10000"] = ["e0"]
    cycle = find_cycle(chain)
    assert cycle is not None and len(cycle) == 10_002
    assert find_cycle(chain, "e5000") is not None


def test_described_in_words():
    assert describe(["a", "b", "c", "a"]) == "a runs after b, which runs after c, which runs after a"
