"""Dependencies between experiments (`--after`, queue.md's Dependencies): a pure check that they
form no cycle. An experiment in a cycle waits for itself: the scheduler would show it "waiting"
for ever, so a cycle is refused where dependencies come in (`irq edit --after`, `irq import`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence


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
