"""Dependencies between experiments (`--after`, queue.md's Dependencies), as pure functions: what
an experiment still waits for, what holds it until a person acts, and whether they form a cycle.

An experiment runs once every experiment it runs after is DONE. One whose dependency FAILED
waits for a retry; one whose dependency was RETIRED would wait for ever: both are held with what
to do (the scheduler and `irq status` say the same). An experiment in a cycle waits for itself,
so a cycle is refused where dependencies come in (`irq edit --after`, `irq import`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence


# a dependency in one of these states is not DONE and will not be without a person: what to do
HOLDING = {"FAILED": "retry it, or drop the dependency",
           "RETIRED": "it will never run: drop the dependency with irq edit --no-after or --after OTHER, or retire this one too"}


def pending(depends_on: Sequence[str], states: Mapping[str, str]) -> list[str]:
    """The dependencies that are not DONE yet (`states`: every experiment's state by id)."""
    return [d for d in depends_on if states.get(d) != "DONE"]


def hold(depends_on: Sequence[str], states: Mapping[str, str]) -> tuple[str, str] | None:
    """(reason, fix) when a dependency FAILED or was RETIRED, e.g. ('dependency Q-005 FAILED',
    'retry it, or drop the dependency'); None when the experiment only waits (or may run)."""
    for state, fix in HOLDING.items():
        if held := [d for d in depends_on if states.get(d) == state]:
            return f"dependency {', '.join(held)} {state}", fix
    return None


def find_cycle(after: Mapping[str, Sequence[str]], start: str | None = None) -> list[str] | None:
    """A cycle of the graph `after` (experiment -> the experiments it runs after) as the path
    that closes it, e.g. ['Q-1', 'Q-2', 'Q-1']; None when there is none. With `start`, only a
    cycle through `start` (the experiment just changed) is looked for. Ids `after` does not list
    have no dependencies. Iterative depth-first search: a chain of 10,000 is no recursion limit."""
    if start is not None:
        return _path_back(after, start)
    done: set[str] = set()
    for root in after:
        if root in done:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        on_path: dict[str, int] = {root: 0}
        while stack:
            node, i = stack[-1]
            deps = after.get(node, ())
            if i == len(deps):
                stack.pop()
                del on_path[node]
                done.add(node)
                continue
            stack[-1] = (node, i + 1)
            nxt = deps[i]
            if nxt in on_path:
                return [n for n, _ in stack[on_path[nxt]:]] + [nxt]
            if nxt not in done:
                on_path[nxt] = len(stack)
                stack.append((nxt, 0))
    return None


def _path_back(after: Mapping[str, Sequence[str]], start: str) -> list[str] | None:
    """The shortest path start -> ... -> start along the dependencies (breadth first), or None."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for dep in after.get(node, ()):
                if dep == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if dep not in came_from:
                    came_from[dep] = node
                    nxt.append(dep)
        frontier = nxt
    return None


def describe(cycle: Sequence[str]) -> str:
    """['Q-1', 'Q-2', 'Q-1'] in words: 'Q-1 runs after Q-2, which runs after Q-1'."""
    return f"{cycle[0]} runs after " + ", which runs after ".join(cycle[1:])
