"""The results cache: each experiment's statistics remembered between runs of `irq results`,
outside the ledger (a read command never writes the ledger).

A row's statistics are a pure function of their inputs: its per-seed values in order, the number of
resamples, the confidence level, the fixed bootstrap seed, irq's statistics code (VERSION) and the
numpy and scipy that compute them. Every bootstrap block starts from the same seed and draws in the
same batches (irq/results/stats.py), so a row's interval does not depend on the other rows of the
table; a comparison depends on its own values and the baseline's only. Each is kept under a digest of
exactly those inputs: a changed value, resample count, goal or library gives another digest, and only
the rows that miss are computed (in the same blocks, along their rows, as without the cache).

The file is data (JSON), never code: one per ledger, named by a digest of the ledger's resolved path,
in the cache folder of irq/cache_files.py. It is written whole to a temporary
file renamed over the old one, and only when something was computed. A missing, corrupt, foreign or
unwritable cache is ignored: the statistics are computed as without it, never an error.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from irq.cache_files import ledger_file, write_atomically
from irq.results.records import (
    COMPARISON_FIELDS,
    CONFIDENCE,
    IQM_MIN_N,
    SEED,
    SUMMARY_FIELDS,
    Comparison,
    Summary,
)

VERSION = 1  # bump whenever irq/results/stats.py could compute any number differently
FORMAT = "irq-results-cache"
LIMIT = 100_000  # entries kept per ledger: this run's first, then earlier ones (about 15 MB)
LIBRARIES = ("numpy", "scipy")


def cache_path(ledger: Path) -> Path | None:
    """The results cache file of this ledger (irq/cache_files.py)."""
    return ledger_file(ledger, "results", ".json")


def libraries() -> str:
    """What identifies the installed numpy and scipy, found without importing them: the text of
    their version.py (version and git revision), else the path and time of their __init__.py."""
    import importlib.util

    out = []
    for name in LIBRARIES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        origin = Path(spec.origin) if spec is not None and spec.origin else None
        if origin is None:
            out.append(f"{name}: absent")
            continue
        try:
            out.append(f"{name}: " + (origin.parent / "version.py").read_text(encoding="utf-8", errors="replace"))
        except OSError:
            try:
                out.append(f"{name}: {origin} {origin.stat().st_mtime_ns}")
            except OSError:
                out.append(f"{name}: {origin}")
    return "\n".join(out)


def floats(values: Sequence[float]) -> bytes:
    """The values exactly, as the statistics see them (IEEE doubles, in order)."""
    return struct.pack(f"<{len(values)}d", *values)


@dataclass
class ResultsCache:
    """One ledger's cached statistics: those read from its file, and those this run used or made."""

    path: Path | None
    stored: dict[str, list] = field(default_factory=dict)
    used: dict[str, list] = field(default_factory=dict)
    fresh: int = 0  # entries computed this run: the file is rewritten only when there are some
    salt: bytes = b""

    @classmethod
    def open(cls, ledger: Path) -> ResultsCache:
        path = cache_path(ledger)
        machine = getattr(os, "uname", lambda: None)()
        salt = "|".join([str(VERSION), repr(CONFIDENCE), str(SEED), str(IQM_MIN_N), sys.platform,
                         machine.machine if machine else "", libraries()]).encode()
        return cls(path, load(path) if path is not None else {}, salt=hashlib.sha256(salt).digest())

    def _key(self, kind: bytes, *parts: bytes) -> str:
        return hashlib.blake2b(b"|".join((kind, self.salt, *parts)), digest_size=16).hexdigest()

    def summary_key(self, values: Sequence[float], resamples: int) -> str:
        return self._key(b"summary", struct.pack("<qq", len(values), resamples), floats(values))

    def comparison_key(self, values: Sequence[float], baseline: bytes, goal: str, resamples: int) -> str:
        """`baseline`: floats() of the baseline's values."""
        return self._key(b"comparison", goal.encode(), struct.pack("<qqq", len(values), len(baseline) // 8, resamples),
                         floats(values), baseline)

    def _get(self, key: str, ints: int, size: int) -> tuple[list[int], list[float | None], str] | None:
        got = self.used.get(key) or self.stored.get(key)
        unpacked = unpack(got, ints, size)
        if unpacked is not None:
            self.used[key] = got  # type: ignore[assignment]  # unpack() checked it
        return unpacked

    def summary(self, key: str, n: int) -> Summary | None:
        got = self._get(key, 1, len(SUMMARY_FIELDS) - 2)
        if got is None or got[0] != [n]:
            return None
        return Summary(n, *got[1], got[2])

    def comparison(self, key: str, exp_id: str, baseline: str, n: int, nb: int) -> Comparison | None:
        got = self._get(key, 2, len(COMPARISON_FIELDS) - 3)
        if got is None or got[0] != [n, nb]:
            return None
        return Comparison(exp_id, baseline, n, nb, *got[1], got[2])

    def keep_summary(self, key: str, s: Summary) -> None:
        self.used[key] = pack([s.n], [getattr(s, f) for f in SUMMARY_FIELDS[1:-1]], s.note)
        self.fresh += 1

    def keep_comparison(self, key: str, c: Comparison) -> None:
        self.used[key] = pack([c.n, c.n_baseline], [getattr(c, f) for f in COMPARISON_FIELDS[2:-1]], c.note)
        self.fresh += 1

    def save(self) -> None:
        """Write this run's entries, then earlier ones up to LIMIT, if anything was computed; any
        failure (no such folder allowed, full disk, read-only home) leaves the cache as it was."""
        if self.path is None or not self.fresh:
            return
        entries = dict(self.used)
        for k, v in self.stored.items():
            if len(entries) >= LIMIT:
                break
            entries.setdefault(k, v)
        try:
            text = json.dumps({"format": FORMAT, "version": VERSION, "entries": entries}, separators=(",", ":"))
            write_atomically(self.path, text)
        except (OSError, TypeError, ValueError):
            pass


def pack(ints: list[int], values: list[float | None], note: str) -> list:
    """An entry: [*ints, which values are present (a bit each), the present ones as base64 of IEEE
    doubles, note]: exact to the bit, and read back without parsing decimal text."""
    mask = sum(1 << i for i, v in enumerate(values) if v is not None)
    present = [float(v) for v in values if v is not None]
    return [*ints, mask, base64.b64encode(struct.pack(f"<{len(present)}d", *present)).decode("ascii"), note]


def unpack(entry: object, ints: int, size: int) -> tuple[list[int], list[float | None], str] | None:
    """pack()'s parts (`ints` integers, `size` values), or None for anything that is not such an entry."""
    if type(entry) is not list or len(entry) != ints + 3:
        return None
    *head, mask, data, note = entry
    if any(type(i) is not int for i in head) or type(mask) is not int or type(data) is not str or type(note) is not str:
        return None
    if mask < 0 or mask >> size:
        return None
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        return None
    if len(raw) != 8 * mask.bit_count():
        return None
    present = iter(struct.unpack(f"<{len(raw) // 8}d", raw))
    return head, [next(present) if mask >> i & 1 else None for i in range(size)], note


def load(path: Path) -> dict[str, list]:
    """The entries of a cache file; {} for a missing, unreadable, corrupt or foreign one."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError, RecursionError):
        return {}
    if type(data) is not dict or data.get("format") != FORMAT or data.get("version") != VERSION:
        return {}
    entries = data.get("entries")
    return entries if type(entries) is dict else {}


def summaries(cache: ResultsCache | None, groups: Sequence[Sequence[float]], resamples: int) -> list[Summary]:
    """stats.summarise() of every group, each taken from the cache when it is there: only the
    groups that miss go to numpy and scipy (and when none miss, neither is imported)."""
    if cache is None:
        from irq.results.stats import summarise

        return summarise(groups, resamples)
    keys = [cache.summary_key(g, resamples) for g in groups]
    out = [cache.summary(k, len(g)) for k, g in zip(keys, groups)]
    missed = [i for i, s in enumerate(out) if s is None]
    if missed:
        from irq.results.stats import summarise

        for i, s in zip(missed, summarise([groups[i] for i in missed], resamples)):
            out[i] = s
            cache.keep_summary(keys[i], s)
    return out  # type: ignore[return-value]  # every None was filled


def comparisons(cache: ResultsCache | None, ids: Sequence[str], xs: Sequence[Sequence[float]], baseline_id: str,
                b: Sequence[float], goal: str, resamples: int) -> list[Comparison]:
    """stats.compare_many() against the baseline, each comparison taken from the cache when it is there."""
    if cache is None:
        from irq.results.stats import compare_many

        return compare_many(ids, xs, baseline_id, b, goal, resamples)
    bb = floats(b)
    keys = [cache.comparison_key(x, bb, goal, resamples) for x in xs]
    out = [cache.comparison(k, i, baseline_id, len(x), len(b)) for k, i, x in zip(keys, ids, xs)]
    missed = [i for i, c in enumerate(out) if c is None]
    if missed:
        from irq.results.stats import compare_many

        got = compare_many([ids[i] for i in missed], [xs[i] for i in missed], baseline_id, b, goal, resamples)
        for i, c in zip(missed, got):
            out[i] = c
            cache.keep_comparison(keys[i], c)
    return out  # type: ignore[return-value]
