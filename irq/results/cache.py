"""The results cache: each experiment's statistics remembered between runs of `irq results`,
outside the ledger (a read command never writes the ledger).

A row's statistics are a pure function of their inputs: its per-seed values in order, the number of
resamples, the confidence level, the fixed bootstrap seed, irq's statistics code (VERSION) and the
numpy and scipy that compute them. Every bootstrap block starts from the same seed and draws in the
same batches (irq/results/stats.py), so a row's interval does not depend on the other rows of the
table; a comparison depends on its own values and the baseline's only. Each is kept under a digest of
exactly those inputs: a changed value, resample count, goal or library gives another digest, and only
the rows that miss are computed (in the same blocks, along their rows, as without the cache).

The same file keeps the rows' ledger parts (irq/results/rows.py), by experiment id and revision,
one part per metric and version of the code that collects them: a warm run reads only the
experiment table's (id, rev) and collects nothing it has seen.

The file is data, never code: one per ledger, named by a digest of the ledger's resolved path, in
the cache folder of irq/cache_files.py. A header line (JSON) lists its parts, each a JSON object
of entries with its length and CRC-32: the summaries of one resample count, the comparisons of one
goal and resample count, the rows of one metric. A part whose length or CRC does not match is
damaged and ignored (its entries computed again), the others still serve, and a run decodes only
the parts it asks for. Doubles are base64 of their IEEE bits: exact, and read back far faster than
decimal text. The file is written whole to a temporary file renamed over the old one, and only when
something was computed or collected. A missing, corrupt, foreign or unwritable cache is ignored:
everything is computed as without it, never an error.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

from irq.cache_files import ledger_file, write_atomically
from irq.results.cache_entries import (
    decode,
    encode,
    floats,
    from_text,
    pack,
    pack_table,
    unpack,
    unpack_table,
)
from irq.results.records import (
    COMPARISON_FIELDS,
    CONFIDENCE,
    IQM_MIN_N,
    SEED,
    SUMMARY_FIELDS,
    Comparison,
    Summary,
)

VERSION = 5  # bump whenever irq/results/stats.py could compute any number differently, or the file's layout changes
FORMAT = "irq-results-cache"
LIMIT = 100_000  # entries kept per part: this run's first, then earlier ones (about 15 MB of statistics)
PARTS = 16  # parts kept (summaries per resample count, comparisons per goal and count, their whole tables, rows
# per metric and code): this run's first, then the file's others in its order; a run decodes only the parts it asks for
TABLE_MIN = 500  # groups from which a whole table's statistics are also kept as one entry (read back in one piece)
TABLES = 4  # whole tables kept per part: this run's, then the latest earlier ones
FULL_SUMMARY = (1 << len(SUMMARY_FIELDS) - 2) - 1  # the mask of a summary with every statistic
FULL_COMPARISON = (1 << len(COMPARISON_FIELDS) - 3) - 1  # and of a comparison
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


@dataclass
class ResultsCache:
    """One ledger's cached statistics and rows: the intact parts of its file, decoded when a run
    first asks for one, and the entries this run used or made, by part."""

    path: Path | None
    parts: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # the file's parts, still encoded, and their CRCs
    decoded: dict[str, dict[str, list]] = field(default_factory=dict)
    used: dict[str, dict[str, list]] = field(default_factory=dict)
    fresh: int = 0  # entries computed or collected this run: the file is rewritten only when there are some
    salt: bytes = b""

    @classmethod
    def open(cls, ledger: Path) -> ResultsCache:
        path = cache_path(ledger)
        machine = getattr(os, "uname", lambda: None)()
        salt = "|".join([str(VERSION), repr(CONFIDENCE), str(SEED), str(IQM_MIN_N), sys.platform,
                         machine.machine if machine else "", libraries()]).encode()
        return cls(path, load(path) if path is not None else {}, salt=hashlib.sha256(salt).digest())

    def stored(self, part: str) -> dict[str, list]:
        """A part's entries as the file has them ({} for none), decoded once."""
        got = self.decoded.get(part)
        if got is None:
            body, crc = self.parts.get(part, (b"", 0))
            got = self.decoded[part] = decode(body) if zlib.crc32(body) == crc else {}
        return got

    def _used(self, part: str) -> dict[str, list]:
        got = self.used.get(part)
        if got is None:
            got = self.used[part] = {}
        return got

    def _key(self, kind: bytes, *parts: bytes) -> str:
        return hashlib.blake2b(b"|".join((kind, self.salt, *parts)), digest_size=16).hexdigest()

    def summary_key(self, values: Sequence[float], resamples: int) -> str:
        return self.summary_keys([values], resamples)[0]

    def summary_keys(self, groups: Sequence[Sequence[float]], resamples: int) -> list[str]:
        """summary_key() of every group: one digest each over the same bytes, the common part joined once."""
        blake2b, pack_ = hashlib.blake2b, struct.pack
        head = b"|".join((b"summary", self.salt, b""))
        return [blake2b(head + pack_(f"<qq{len(g)}d", len(g), resamples, *g), digest_size=16).hexdigest()
                for g in groups]

    def comparison_key(self, values: Sequence[float], baseline: bytes, goal: str, resamples: int) -> str:
        """`baseline`: floats() of the baseline's values."""
        return self._key(b"comparison", goal.encode(), struct.pack("<qqq", len(values), len(baseline) // 8, resamples),
                         floats(values), baseline)

    def comparison_keys(self, groups: Sequence[Sequence[float]], baseline: bytes, goal: str,
                        resamples: int) -> list[str]:
        """comparison_key() of every group: the same bytes, each digest in one pack and the common parts joined once."""
        blake2b, pack_, nb = hashlib.blake2b, struct.pack, len(baseline) // 8
        head, tail = b"|".join((b"comparison", self.salt, goal.encode(), b"")), b"|" + baseline
        return [blake2b(head + pack_(f"<qqqc{len(g)}d", len(g), nb, resamples, b"|", *g) + tail,
                        digest_size=16).hexdigest() for g in groups]

    def table_key(self, kind: bytes, groups: Sequence[Sequence[float]], *extra: bytes) -> str:
        """One digest of every group's values, in order, with their lengths, and of `extra` (each
        with its length, so no two inputs give one byte string): a whole table's key."""
        flat = list(chain.from_iterable(groups))
        sized = [struct.pack("<q", len(x)) + x for x in extra]
        return self._key(b"table-" + kind, *sized, struct.pack(f"<{len(groups)}q", *map(len, groups)),
                         struct.pack(f"<{len(flat)}d", *flat))

    def table(self, part: str, key: str, count: int, ints: int, size: int) \
            -> list[tuple[tuple[int, ...], tuple[float | None, ...], str]] | None:
        """A whole table kept by keep_table(): per row its `ints` integers, `size` values (None where
        absent) and note; None when not kept or not such a table."""
        entry = self._used(part).get(key) or self.stored(part).get(key)
        got = unpack_table(entry, count, ints, size)
        if got is not None:
            self._used(part)[key] = entry  # type: ignore[assignment]  # unpack_table() checked it
        return got

    def keep_table(self, part: str, key: str, rows: Sequence[tuple[Sequence[int], Sequence[float | None], str]]) -> None:
        self._used(part)[key] = pack_table(rows)
        self.fresh += 1

    def _get(self, part: str, key: str, ints: int, size: int) -> tuple[list[int], list[float | None], str] | None:
        used = self._used(part)
        got = used.get(key) or self.stored(part).get(key)
        unpacked = unpack(got, ints, size)
        if unpacked is not None:
            used[key] = got  # type: ignore[assignment]  # unpack() checked it
        return unpacked

    def summary(self, part: str, key: str, n: int) -> Summary | None:
        used = self._used(part)
        entry = used.get(key) or self.stored(part).get(key)
        if type(entry) is list and len(entry) == 4 and entry[0] == n and entry[1] == FULL_SUMMARY \
                and type(entry[0]) is int and type(entry[3]) is str:  # the common case, checked inline
            got = from_text(entry[2], len(SUMMARY_FIELDS) - 2)
            if got is not None:
                used[key] = entry
                return Summary(n, *got, entry[3])
        got = self._get(part, key, 1, len(SUMMARY_FIELDS) - 2)
        if got is None or got[0] != [n]:
            return None
        return Summary(n, *got[1], got[2])

    def comparison(self, part: str, key: str, exp_id: str, baseline: str, n: int, nb: int) -> Comparison | None:
        used = self._used(part)
        entry = used.get(key) or self.stored(part).get(key)
        if type(entry) is list and len(entry) == 5 and entry[0] == n and entry[1] == nb \
                and entry[2] == FULL_COMPARISON and type(entry[0]) is int and type(entry[1]) is int \
                and type(entry[4]) is str:  # the common case, checked inline
            got = from_text(entry[3], len(COMPARISON_FIELDS) - 3)
            if got is not None:
                used[key] = entry
                return Comparison(exp_id, baseline, n, nb, *got, entry[4])
        got = self._get(part, key, 2, len(COMPARISON_FIELDS) - 3)
        if got is None or got[0] != [n, nb]:
            return None
        return Comparison(exp_id, baseline, n, nb, *got[1], got[2])

    def keep_summary(self, part: str, key: str, s: Summary) -> None:
        self._used(part)[key] = pack([s.n], [getattr(s, f) for f in SUMMARY_FIELDS[1:-1]], s.note)
        self.fresh += 1

    def keep_comparison(self, part: str, key: str, c: Comparison) -> None:
        self._used(part)[key] = pack([c.n, c.n_baseline], [getattr(c, f) for f in COMPARISON_FIELDS[2:-1]], c.note)
        self.fresh += 1

    def keep_row(self, part: str, exp_id: str, entry: list, fresh: bool) -> None:
        """A row this run shows (`fresh`: collected now, not taken from the file); irq/results/rows.py."""
        self._used(part)[exp_id] = entry
        self.fresh += fresh

    def save(self) -> None:
        """Write this run's parts (its entries, then the part's earlier ones up to LIMIT), then the
        file's other parts up to PARTS, if anything was computed; any failure (no such folder
        allowed, full disk, read-only home) leaves the cache as it was."""
        if self.path is None or not self.fresh:
            return
        try:
            out = {}
            for name, entries in self.used.items():
                body = encode(merged(entries, self.stored(name), TABLES if name.startswith("tables-") else LIMIT))
                out[name] = body, zlib.crc32(body)
            for name, part in self.parts.items():  # copied as they are: a damaged one stays damaged, and ignored
                if len(out) >= PARTS:
                    break
                out.setdefault(name, part)
            head = json.dumps({"format": FORMAT, "version": VERSION,
                               "parts": [[n, len(b), crc] for n, (b, crc) in out.items()]}, separators=(",", ":"))
            write_atomically(self.path, b"".join([head.encode(), b"\n", *(b for b, _crc in out.values())]))
        except (OSError, TypeError, ValueError):
            pass


def merged(mine: dict[str, list], earlier: dict[str, list], limit: int = LIMIT) -> dict[str, list]:
    """This run's entries, then the earlier ones it did not replace, up to `limit`."""
    entries = dict(mine)
    for k, v in earlier.items():
        if len(entries) >= limit:
            break
        entries.setdefault(k, v)
    return entries


def load(path: Path) -> dict[str, tuple[bytes, int]]:
    """The parts of a cache file, still encoded, with the CRC-32 each should have (checked when a
    part is decoded: a run pays only for the parts it uses), by name; {} for a missing, unreadable,
    corrupt or foreign file, and a part cut short is left out."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        end = data.index(b"\n")
        head = json.loads(data[:end])
    except (OSError, ValueError, RecursionError):
        return {}
    if type(head) is not dict or head.get("format") != FORMAT or head.get("version") != VERSION:
        return {}
    listed = head.get("parts")
    if type(listed) is not list:
        return {}
    out: dict[str, tuple[bytes, int]] = {}
    at = end + 1
    for part in listed:
        if type(part) is not list or len(part) != 3 or type(part[0]) is not str or type(part[1]) is not int \
                or type(part[2]) is not int or part[1] < 0:
            return out  # where the next part starts is unknown
        body = data[at:at + part[1]]
        at += part[1]
        if len(body) == part[1]:
            out[part[0]] = body, part[2]
    return out


def summaries(cache: ResultsCache | None, groups: Sequence[Sequence[float]], resamples: int) -> list[Summary]:
    """stats.summarise() of every group, each taken from the cache when it is there: only the
    groups that miss go to numpy and scipy (and when none miss, neither is imported)."""
    if cache is None:
        from irq.results.stats import summarise

        return summarise(groups, resamples)
    part = f"summaries-{resamples}"
    whole = cache.table_key(b"summaries", groups, str(resamples).encode()) if len(groups) >= TABLE_MIN else None
    if whole is not None:
        kept = cache.table(f"tables-{part}", whole, len(groups), 1, len(SUMMARY_FIELDS) - 2)
        if kept is not None:
            return [Summary(n, *values, note) for (n,), values, note in kept]
    keys = cache.summary_keys(groups, resamples)
    out = [cache.summary(part, k, len(g)) for k, g in zip(keys, groups)]
    missed = [i for i, s in enumerate(out) if s is None]
    if missed:
        from irq.results.stats import summarise

        for i, s in zip(missed, summarise([groups[i] for i in missed], resamples)):
            out[i] = s
            cache.keep_summary(part, keys[i], s)
    if whole is not None:
        cache.keep_table(f"tables-{part}", whole, [((s.n,), [getattr(s, f) for f in SUMMARY_FIELDS[1:-1]], s.note)
                                                    for s in out])  # type: ignore[union-attr]  # filled
    return out  # type: ignore[return-value]  # every None was filled


def comparisons(cache: ResultsCache | None, ids: Sequence[str], xs: Sequence[Sequence[float]], baseline_id: str,
                b: Sequence[float], goal: str, resamples: int) -> list[Comparison]:
    """stats.compare_many() against the baseline, each comparison taken from the cache when it is there."""
    if cache is None:
        from irq.results.stats import compare_many

        return compare_many(ids, xs, baseline_id, b, goal, resamples)
    bb, part = floats(b), f"comparisons-{goal}-{resamples}"
    whole = cache.table_key(b"comparisons", xs, goal.encode(), str(resamples).encode(), bb) \
        if len(xs) >= TABLE_MIN else None  # the ids only label the values: not part of the key
    if whole is not None:
        kept = cache.table(f"tables-{part}", whole, len(xs), 2, len(COMPARISON_FIELDS) - 3)
        if kept is not None:
            return [Comparison(i, baseline_id, n, nb, *values, note) for i, ((n, nb), values, note) in zip(ids, kept)]
    keys = cache.comparison_keys(xs, bb, goal, resamples)
    out = [cache.comparison(part, k, i, baseline_id, len(x), len(b)) for k, i, x in zip(keys, ids, xs)]
    missed = [i for i, c in enumerate(out) if c is None]
    if missed:
        from irq.results.stats import compare_many

        got = compare_many([ids[i] for i in missed], [xs[i] for i in missed], baseline_id, b, goal, resamples)
        for i, c in zip(missed, got):
            out[i] = c
            cache.keep_comparison(part, keys[i], c)
    if whole is not None:
        cache.keep_table(f"tables-{part}", whole, [((c.n, c.n_baseline), [getattr(c, f) for f in COMPARISON_FIELDS[2:-1]],
                                                    c.note) for c in out])  # type: ignore[union-attr]  # filled
    return out  # type: ignore[return-value]
