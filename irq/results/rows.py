"""What a results row takes from the ledger, and its reuse between runs of `irq results`.

A row's ledger part (`Collected`: the per-seed values of one metric with their attempt, seed and
commit, what is missing and why, the trivial baselines) is a function of its experiment's rows
and its attempts' rows, of the metric, and of irq's code that reads them (collect.py and this
file). The ledger gives every experiment a revision that changes with any write to it or its
attempts (irq/ledger/revisions.py), so a row collected once is kept in the results cache
(irq/results/cache.py) under the experiment's id and revision, in a part of the file for the
metric and that code: a warm run reads only (id, rev) from the experiment table, and collects only the
experiments whose revision it has not seen.

Files outside the ledger are never part of a kept row: the values come from the attempts'
`results` column (irq fetch writes metrics.json's numbers there), and the curves of --threshold
are read from the run folders on every run. A ledger without revisions (one only ever read since
they came) is collected whole, as without a cache.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from irq.ledger import reader
from irq.results.cache_entries import from_text, to_text
from irq.results.collect import ExperimentRuns, Run, gc_paused, in_order, known_ids, read

if TYPE_CHECKING:
    from irq.results.cache import ResultsCache

VERSION = 1  # bump whenever a kept row's layout changes (a change of the code is caught by its digest)
TRIVIAL = (("baseline_mean_mse", "predict-mean"), ("baseline_zero_mse", "predict-zero"))
READ_ALL = 500  # more misses than this: the ledger is read whole, cheaper than a long IN (...)


@dataclass(slots=True)
class Collected:
    """One experiment's row before its statistics: what the table shows of its runs for one metric.

    The values are kept as columns (one entry per value each): a warm `irq results` builds 10,000
    of these from the cache, and the per-value records and sorted sets only some renderings read
    (JSON, the report) are made when asked for."""

    id: str
    title: str
    state: str
    numbers: tuple[float, ...]  # the metric's values, in the ledger's order of attempts and seeds
    value_attempts: list[int]  # per value: its attempt, seed and commit
    value_seeds: list[int | None]
    value_commits: list[str | None]
    missing: list[str]
    trivial: dict[str, float]  # predict-mean / predict-zero (mean over the runs that have the metric)
    outputs: list[str | None]  # each value's fetched run folder as stored (relative to the project root)
    root: Path | None = field(default=None)  # the project root, for the curves; never kept

    @property
    def values(self) -> list[dict[str, Any]]:
        """Every number behind the row: {attempt, seed, value, commit}."""
        return [{"attempt": a, "seed": sd, "value": v, "commit": c}
                for a, sd, v, c in zip(self.value_attempts, self.value_seeds, self.numbers, self.value_commits)]

    @property
    def attempts(self) -> list[int]:
        return sorted(set(self.value_attempts))

    @property
    def seeds(self) -> list[int]:
        return sorted({s for s in self.value_seeds if s is not None})

    @property
    def commits(self) -> list[str]:
        return sorted({c[:12] for c in self.value_commits if c})

    def by_seed(self) -> dict[int, float]:
        """The values of the seeded runs, by seed (for rank consistency)."""
        return {s: v for s, v in zip(self.value_seeds, self.numbers) if s is not None}

    def runs(self) -> list[Run]:
        """The runs behind the values, enough to find their curves (--threshold)."""
        return [Run(self.id, a, sd, {}, c, self.root, out)
                for a, sd, c, out in zip(self.value_attempts, self.value_seeds, self.value_commits, self.outputs)]


def measure(e: ExperimentRuns, metric: str, root: Path | None = None) -> Collected:
    """The row's ledger part of one experiment's runs."""
    import statistics  # here, not at the top: a warm run never needs it (nor its imports, ≈ 2.5 ms)

    have, vals, missing = e.measured(metric)
    trivial = {}
    for key, label in TRIVIAL if metric.endswith("mse") else ():  # the trainer's baselines are of an MSE
        got = [v for r in have if (v := r.value(key)) is not None]
        if got:
            trivial[label] = statistics.fmean(got)
    return Collected(
        e.id, e.title, e.state, tuple(vals), [r.attempt for r in have], [r.seed for r in have],
        [r.git_sha for r in have], [str(m) for m in missing], trivial, [r.output for r in have],
        root if root is not None else next((r.root for r in have), None))


def code_digest() -> str:
    """What identifies the code a kept row came from: this file and collect.py, byte for byte."""
    from irq.results import collect

    h = hashlib.sha256(str(VERSION).encode())
    for f in (__file__, collect.__file__):
        try:
            h.update(Path(f).read_bytes())
        except (OSError, TypeError):
            h.update(b"unreadable")  # then nothing kept can match a readable copy's digest
    return h.hexdigest()[:32]


def section(metric: str) -> str:
    """The name of the cache part that keeps the rows collected for `metric` by this code."""
    return "rows-" + hashlib.sha256(f"{code_digest()}|{metric}".encode()).hexdigest()[:32]


def to_entry(rev: int, c: Collected) -> list:
    """A kept row: [rev, title, state, per value: attempts, seeds, values, commits, outputs; missing,
    which trivial baselines are present (a bit each), their values]. Doubles as base64 (cache_entries.to_text)."""
    trivial = [label for _key, label in TRIVIAL if label in c.trivial]
    return [rev, c.title, c.state, list(c.value_attempts), list(c.value_seeds), to_text(c.numbers),
            list(c.value_commits), c.outputs, c.missing,
            sum(1 << k for k, (_key, label) in enumerate(TRIVIAL) if label in c.trivial),
            to_text([c.trivial[label] for label in trivial])]


def from_entries(hits: list[tuple[str, list]], root: Path) -> list[Collected | None]:
    """The kept rows of (id, entry) pairs whose revision matched, each None when not a row this
    code keeps. Checked column by column (the types of all titles, all seeds...), not value by
    value: a part's CRC already caught damage, this catches a foreign writer's entries."""
    if not hits:
        return []
    entries = [e for _i, e in hits]
    out: list[Collected | None] = []
    if all(len(e) == SIZE for e in entries) and _sound(entries):
        labels = [label for _key, label in TRIVIAL]
        both = (1 << len(TRIVIAL)) - 1
        for eid, e in hits:
            values, mask = from_text(e[5], len(e[3])), e[9]
            trivial = from_text(e[10], mask.bit_count()) if 0 <= mask <= both else None
            if values is None or trivial is None:
                out.append(None)
                continue
            out.append(Collected(
                eid, e[1], e[2], values, e[3], e[4], e[6], e[8],
                dict(zip(labels, trivial)) if mask == both else _trivial(labels, mask, trivial), e[7], root))
        return out
    if len(hits) == 1:
        return [None]
    half = len(hits) // 2  # some entry is unsound: find which, halving
    return from_entries(hits[:half], root) + from_entries(hits[half:], root)


def _trivial(labels: list[str], mask: int, values: Sequence[float]) -> dict[str, float]:
    present = iter(values)
    return {label: next(present) for k, label in enumerate(labels) if mask >> k & 1}


def _types(items: Any) -> set[type]:
    return set(map(type, items))


def _sound(entries: list[list]) -> bool:
    """Whether every entry has a kept row's types, and its per-value columns one length."""
    flat = chain.from_iterable
    _r, titles, states, attempts, seeds, _v, commits, outputs, missing, masks, _t = zip(*entries)
    if not (_types(titles) | _types(states) <= STR and _types(attempts) | _types(seeds) | _types(commits)
            | _types(outputs) | _types(missing) <= LIST and _types(masks) <= INT):
        return False
    n = list(map(len, attempts))
    return (list(map(len, seeds)) == n and list(map(len, commits)) == n and list(map(len, outputs)) == n
            and _types(flat(attempts)) <= INT and _types(flat(seeds)) <= INT_OR_NONE
            and _types(flat(commits)) | _types(flat(outputs)) <= STR_OR_NONE and _types(flat(missing)) <= STR)


SIZE = 11  # items of a kept row
STR, LIST, INT = {str}, {list}, {int}
INT_OR_NONE, STR_OR_NONE = {int, type(None)}, {str, type(None)}


def collect_rows(db: Path, root: Path, ids: list[str] | None, metric: str,
                 cache: ResultsCache | None) -> list[Collected]:
    """Every experiment's row (or the named ones', in the order named) for `metric`: those whose
    revision the cache has from it, the others collected from the ledger (in the same snapshot)."""
    from irq.ledger.revisions import has_revisions

    with reader.reading(db) as conn, gc_paused():
        if cache is None or cache.path is None or not has_revisions(conn):
            wanted = known_ids(ids, {r[0] for r in conn.execute("SELECT id FROM experiment")}) if ids else None
            out = [measure(e, metric, root) for e in read(conn, root, wanted)]
            return in_order(out, wanted)
        revs = conn.execute("SELECT id, rev FROM experiment ORDER BY seq").fetchall()
        if ids:
            wanted = known_ids(ids, {r[0] for r in revs})
            keep = set(wanted)
            revs = [r for r in revs if r[0] in keep]
        else:
            wanted = None
        key = section(metric)
        kept = cache.stored(key)
        hits = [(eid, e) for eid, rev in revs if type(e := kept.get(eid)) is list and e and e[0] == rev
                and type(e[0]) is int]
        got: dict[str, Collected] = {}
        for (eid, entry), c in zip(hits, from_entries(hits, root)):
            if c is not None:
                got[eid] = c
                cache.keep_row(key, eid, entry, fresh=False)
        misses = [eid for eid, _rev in revs if eid not in got]
        if misses:
            rev_of = dict(revs)
            todo = set(misses)
            exps = read(conn, root, None if len(misses) > READ_ALL else misses)
            for e in exps:
                if e.id in todo:
                    c = got[e.id] = measure(e, metric, root)
                    cache.keep_row(key, e.id, to_entry(rev_of[e.id], c), fresh=True)
        out = [got[eid] for eid, _rev in revs]
    return in_order(out, wanted)

