"""The results cache (irq/results/cache.py): a warm `irq results` prints exactly what a cold one
prints, loads neither scipy nor numpy, recomputes only what changed, never writes the ledger, and
shrugs off a cache file it cannot use.

The conftest points IRQ_CACHE_DIR at the test's own folder.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from irq import cache_files as cf
from irq.results import cache as rc
from irq.results import cache_entries as ce
from irq.results.collect import collect
from irq.results.table import build, to_csv
from tests.results_fixture import add_exp, add_single_attempt, study
from tests.test_results_read_path import digest, settle, shared  # noqa: F401  (shared: a fixture)

REPO = Path(__file__).resolve().parent.parent
FIVE = {0: 0.031, 1: 0.0335, 2: 0.029, 3: 0.0302, 4: 0.0318}  # enough seeds for the IQM
COMMANDS = (("results", "--format", "csv"),
            ("results", "--format", "json", "--baseline", "Q-001"),
            ("results", "--format", "md", "--baseline", "Q-001", "--criterion", "val_mse -20%"))


def fill(ledger, root: Path) -> Path:
    """The study, an experiment of five single runs and one of a single run; the ledger closed."""
    study(ledger, root)
    add_exp(ledger, "Q-004", "Five single runs", state="DONE")
    for seed, v in FIVE.items():
        add_single_attempt(ledger, "Q-004", {"val_mse": v, "seed": seed})
    add_exp(ledger, "Q-005", "One run", state="DONE")
    add_single_attempt(ledger, "Q-005", {"val_mse": 0.05, "seed": 0})
    ledger.close()
    return root / "queue.db"


def cache_files() -> list[Path]:
    folder = Path(os.environ[cf.ENV])
    return sorted(folder.glob("results-*.json")) if folder.is_dir() else []


def parts(f: Path) -> dict[str, dict]:
    """The entries of every intact part of a cache file, by part name."""
    import zlib

    return {name: json.loads(body) for name, (body, crc) in rc.load(f).items() if zlib.crc32(body) == crc}


def write_parts(f: Path, named: dict[str, dict], version: int = rc.VERSION) -> None:
    """A cache file of these parts, each with its right length and CRC."""
    import zlib

    bodies = {n: json.dumps(e).encode() for n, e in named.items()}
    head = {"format": rc.FORMAT, "version": version, "parts": [[n, len(b), zlib.crc32(b)] for n, b in bodies.items()]}
    f.write_bytes(json.dumps(head).encode() + b"\n" + b"".join(bodies.values()))


def test_a_warm_run_prints_the_cold_runs_output_byte_for_byte(ledger, tmp_path: Path, irq) -> None:
    db = fill(ledger, tmp_path)
    for args in COMMANDS:
        for f in cache_files():
            f.unlink()
        cold = irq(*args)
        assert cold.code == 0, cold
        assert len(cache_files()) == 1
        warm = irq(*args)
        assert warm.code == 0 and warm.out == cold.out, args
    # and what the cache gives is what the statistics give without one
    exps = collect(db, tmp_path)
    cached = build(exps, "val_mse", "min", "Q-001", cache=rc.ResultsCache.open(db))
    assert to_csv(cached) == to_csv(build(exps, "val_mse", "min", "Q-001"))
    assert cached.rows == build(exps, "val_mse", "min", "Q-001").rows


def test_the_cache_is_json_data_named_after_the_ledger(ledger, tmp_path: Path, irq) -> None:
    db = fill(ledger, tmp_path)
    assert irq("results", "--format", "csv").code == 0
    (f,) = cache_files()
    assert f == rc.cache_path(db) and f.stat().st_mode & 0o077 == 0
    head = json.loads(f.read_bytes().split(b"\n", 1)[0])
    assert head["format"] == rc.FORMAT and head["version"] == rc.VERSION
    got = parts(f)
    assert [n.split("-")[0] for n in got] == ["rows", "summaries"] and len(head["parts"]) == 2
    assert [len(e) for e in got.values()] == [5, 5]  # one row and one summary per experiment
    assert not list(f.parent.glob(".*.tmp"))


def test_the_cache_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(cf.ENV, str(tmp_path / "mine"))
    assert cf.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(cf.ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cf.cache_dir() == tmp_path / "xdg" / "irq"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cf.cache_dir() == tmp_path / "home" / ".cache" / "irq"


PROBE = """
import sys
from irq.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
print("IMPORTED:", ",".join(sorted(m for m in ("numpy", "scipy") if m in sys.modules)))
"""


def test_a_warm_run_imports_neither_scipy_nor_numpy(ledger, tmp_path: Path) -> None:
    fill(ledger, tmp_path)
    for args in (("results", "--format", "csv"), ("results", "--baseline", "Q-001"),
                 ("results", "Q-003", "Q-004", "--format", "json")):
        runs = [subprocess.run([sys.executable, "-c", PROBE, *args], cwd=tmp_path, capture_output=True, text=True, check=False,
                               timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)}) for _ in range(2)]
        assert "IMPORTED: numpy,scipy\n" in runs[0].stdout or args[1] == "Q-003", (args, runs[0].stderr[-800:])
        assert runs[1].stdout.endswith("IMPORTED: \n"), (args, runs[1].stdout[-300:], runs[1].stderr[-800:])
        assert runs[1].stdout == runs[0].stdout.replace("IMPORTED: numpy,scipy\n", "IMPORTED: \n"), args


def test_a_new_result_recomputes_that_row_only(ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from irq.ledger.database import Ledger
    from irq.results import stats

    db = fill(ledger, tmp_path)
    first = rc.ResultsCache.open(db)
    before = build(collect(db, tmp_path), "val_mse", "min", "Q-001", cache=first)
    first.save()
    assert first.fresh == 5 + 4  # five summaries, four comparisons
    lg = Ledger(db)
    add_single_attempt(lg, "Q-003", {"val_mse": 0.0305, "seed": 1})  # seed 1 run again
    lg.close()
    seen: list[list[float]] = []
    real = stats.summarise
    monkeypatch.setattr(stats, "summarise", lambda groups, *a: seen.extend(map(list, groups)) or real(groups, *a))
    again = rc.ResultsCache.open(db)
    after = build(collect(db, tmp_path), "val_mse", "min", "Q-001", cache=again)
    assert seen == [[0.0300, 0.0305, 0.0310]]  # Q-003 alone went to the statistics
    assert again.fresh == 2  # its summary and its comparison
    rows = {r.id: r for r in after.rows}
    assert rows["Q-003"].summary.mean != before.rows[2].summary.mean
    assert [r for r in after.rows if r.id != "Q-003"] == [r for r in before.rows if r.id != "Q-003"]
    assert to_csv(after) == to_csv(build(collect(db, tmp_path), "val_mse", "min", "Q-001"))


def test_other_settings_miss_and_a_subset_hits_without_writing(ledger, tmp_path: Path, irq) -> None:
    fill(ledger, tmp_path)
    assert irq("results", "--format", "csv").code == 0
    (f,) = cache_files()
    stamp = f.stat().st_mtime_ns
    sub = irq("results", "Q-003", "Q-004", "--format", "csv")
    assert sub.code == 0 and f.stat().st_mtime_ns == stamp  # every row a hit: nothing written
    assert irq("results", "--format", "csv", "--resamples", "1000").code == 0
    got = parts(f)  # other resamples: another part, the first one kept; the rows hit
    assert sorted(n for n in got if not n.startswith("rows-")) == ["summaries-1000", "summaries-10000"]
    assert [len(e) for e in got.values()] == [5, 5, 5]
    assert sub.out.splitlines()[1:] == [line for line in irq("results", "--format", "csv").out.splitlines()
                                        if line.startswith(("Q-003", "Q-004"))]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign", "old version", "bad entries", "a folder",
                                    "a flipped byte", "bad rows", "no header line", "bad part list"])
def test_an_unusable_cache_file_is_ignored(ledger, tmp_path: Path, irq, damage: str) -> None:
    db = fill(ledger, tmp_path)
    args = ("results", "--format", "json", "--baseline", "Q-001")  # json: every field of every row shows
    clean = irq(*args)
    (f,) = cache_files()
    raw, good = f.read_bytes(), parts(f)
    assert len(good) == 3
    f.unlink()
    if damage == "garbage":
        f.write_bytes(b"\x00\xff not json at all")
    elif damage == "truncated":
        f.write_bytes(raw[:len(raw) // 2])
    elif damage == "foreign":
        f.write_text(json.dumps([1, 2, 3]) + "\n{}")
    elif damage == "old version":
        write_parts(f, good, rc.VERSION - 1)
    elif damage == "bad entries":  # each part's CRC right, its entries not what irq writes
        write_parts(f, {n: {k: b for k, b in zip(e, [["x"] * 11, [1], None, {}, "s", [0] * 11, ["Q"] * 4])}
                        for n, e in good.items()})
    elif damage == "a flipped byte":
        at = raw.index(b"\n") + 300
        f.write_bytes(raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1:])
    elif damage == "bad rows":  # right revisions and CRCs, wrong values inside
        rows = next(n for n in good if n.startswith("rows-"))
        bad = {k: [*e[:4], [str(sd) for sd in e[4]], *e[5:8], [1] * len(e[8]), *e[9:]] for k, e in good[rows].items()}
        write_parts(f, {**good, rows: bad})
    elif damage == "no header line":
        f.write_bytes(raw.replace(b"\n", b" ", 1))
    elif damage == "bad part list":
        head, rest = raw.split(b"\n", 1)
        f.write_bytes(json.dumps({**json.loads(head), "parts": [["x", -5, 0]]}).encode() + b"\n" + rest)
    else:
        f.mkdir()
    r = irq(*args)
    assert r.code == 0 and r.out == clean.out and not r.err, r
    if damage != "a folder":
        assert parts(f) == good  # written afresh
    assert rc.cache_path(db) == f


def test_an_unwritable_cache_folder_is_ignored(ledger, tmp_path: Path, irq, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(ledger, tmp_path)
    clean = irq("results", "--format", "csv")
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(cf.ENV, str(tmp_path / "a-file" / "irq"))  # no folder can be made under a file
    r = irq("results", "--format", "csv")
    assert r.code == 0 and r.out == clean.out and not r.err, r

    def refuse(*_a, **_kw):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setenv(cf.ENV, str(tmp_path / "fresh"))
    monkeypatch.setattr("irq.results.cache.write_atomically", refuse)  # what a read-only home does (root passes modes)
    r = irq("results", "--format", "csv")
    assert r.code == 0 and r.out == clean.out and not r.err, r


def test_a_read_only_ledger_is_left_untouched(shared: Path, irq) -> None:  # noqa: F811  (the fixture)
    before = digest(shared.parent)
    stamp = shared.stat().st_mtime_ns
    cold = irq("--db", str(shared), "results", "--format", "csv", "--baseline", "Q-001")
    warm = irq("--db", str(shared), "results", "--format", "csv", "--baseline", "Q-001")
    assert cold.code == 0 and warm.out == cold.out, warm
    assert digest(shared.parent) == before and shared.stat().st_mtime_ns == stamp
    assert cache_files() == [rc.cache_path(shared)]


def test_a_ledger_that_changed_is_read_afresh(ledger, tmp_path: Path, irq) -> None:
    """A new experiment has a revision no kept row has: it is read from the ledger."""
    from irq.ledger.database import Ledger

    fill(ledger, tmp_path)
    assert irq("results", "--format", "csv").code == 0
    lg = Ledger(tmp_path / "queue.db")
    add_exp(lg, "Q-006", "Added later", state="DONE")
    lg.close()
    out = irq("results", "--format", "csv").out
    assert "Q-006,0," in out
    settle(tmp_path / "queue.db")


def test_batched_keys_are_the_single_keys(tmp_path: Path) -> None:
    """summary_keys()/comparison_keys() build each digest in one go; a warm run finds what a single
    key stored only if both make the same bytes (also for no values and for values of another length)."""
    cache = rc.ResultsCache.open(tmp_path / "queue.db")
    groups = [[], [0.5], [0.031, 0.029, float("inf")], [1e-300, -2.0, 3.0, 4.0, 5.0]]
    base = rc.floats([0.03, 0.04])
    assert cache.summary_keys(groups, 1000) == [cache.summary_key(g, 1000) for g in groups]
    assert cache.comparison_keys(groups, base, "min", 1000) == [cache.comparison_key(g, base, "min", 1000)
                                                               for g in groups]
    assert len({*cache.comparison_keys(groups, base, "min", 1000), *cache.comparison_keys(groups, base, "max", 1000),
                *cache.comparison_keys(groups, rc.floats([0.03]), "min", 1000)}) == 3 * len(groups)


def test_a_whole_table_round_trips_and_anything_else_is_no_table() -> None:
    """pack_table() keeps each row's integers, values (None where absent, exact to the bit) and
    note; an entry of another shape, count or with damaged fields reads as no table, never a wrong one."""
    rows = [((5,), [0.1, None, 1e-300, -0.0], "n = 1: no interval"), ((2,), [None] * 4, ""), ((7,), [1.5, 2.5, 3.5, 4.5], "é")]
    entry = json.loads(json.dumps(ce.pack_table(rows)))  # as the file keeps it
    got = ce.unpack_table(entry, 3, 1, 4)
    assert got == [((5,), (0.1, None, 1e-300, -0.0), "n = 1: no interval"), ((2,), (None,) * 4, ""),
                   ((7,), (1.5, 2.5, 3.5, 4.5), "é")]
    assert str(got[0][1][3]) == "-0.0"
    assert ce.unpack_table(entry, 2, 1, 4) is None  # another number of rows
    assert ce.unpack_table(entry, 3, 2, 4) is None  # integers of another width
    assert ce.unpack_table(entry, 3, 1, 3) is None  # a mask wider than the values
    for k, bad in [(1, "%%%"), (2, "AAAA"), (3, ce.to_text([1.0])), (4, ["a", "b"]), (4, ["a", 1, "c"]), (0, "3")]:
        damaged = list(entry)
        damaged[k] = bad
        assert ce.unpack_table(damaged, 3, 1, 4) is None, (k, bad)
    assert ce.unpack_table(entry[:4], 3, 1, 4) is None and ce.unpack_table({}, 3, 1, 4) is None


def test_a_large_table_is_read_back_whole_and_a_changed_value_recomputes_its_row_only(
        ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From TABLE_MIN rows the statistics are also kept as one entry: the next run with the same
    values takes it whole (no row's key looked up), and gives the rows a cold run gives; a changed
    value misses it, goes to the per-row entries, and only that row is computed again."""
    from irq.results import stats

    monkeypatch.setattr(rc, "TABLE_MIN", 3)
    db = fill(ledger, tmp_path)
    first = rc.ResultsCache.open(db)
    cold = build(collect(db, tmp_path), "val_mse", "min", "Q-001", cache=first)
    first.save()
    uncached = to_csv(build(collect(db, tmp_path), "val_mse", "min", "Q-001", cache=None))
    (f,) = cache_files()
    assert sorted(n for n in parts(f) if n.startswith("tables-")) == ["tables-comparisons-min-10000",
                                                                      "tables-summaries-10000"]

    def refuse(*_a, **_k):
        raise AssertionError("computed, or looked up row by row, though the whole table was kept")

    with monkeypatch.context() as m:
        for owner, name in [(stats, "summarise"), (stats, "compare_many"), (rc.ResultsCache, "summary"),
                            (rc.ResultsCache, "comparison")]:
            m.setattr(owner, name, refuse)
        warm = rc.ResultsCache.open(db)
        again = build(collect(db, tmp_path), "val_mse", "min", "Q-001", cache=warm)
    assert again.rows == cold.rows and warm.fresh == 0
    assert to_csv(again) == uncached
    seen: list[list[float]] = []
    real = stats.summarise
    monkeypatch.setattr(stats, "summarise", lambda groups, *a: seen.extend(map(list, groups)) or real(groups, *a))
    from irq.ledger.database import Ledger

    lg = Ledger(db)
    add_single_attempt(lg, "Q-005", {"val_mse": 0.06, "seed": 1})
    lg.close()
    changed = rc.ResultsCache.open(db)
    build(collect(db, tmp_path), "val_mse", "min", "Q-001", cache=changed)
    assert seen == [[0.05, 0.06]]  # the whole table missed; the other rows came from their own entries


def test_a_part_of_whole_tables_keeps_the_latest_few(tmp_path: Path) -> None:
    """Each set of rows is its own whole table (a subset of ids, a new value): a part keeps this
    run's and the latest earlier ones, up to TABLES, so the file does not grow by a table a run."""
    db = tmp_path / "queue.db"
    for k in range(rc.TABLES + 2):
        cache = rc.ResultsCache.open(db)
        cache.keep_table("tables-summaries-10", f"key-{k}", [((1,), [float(k)] + [None] * 9, "")])
        cache.save()
    (f,) = cache_files()
    kept = parts(f)["tables-summaries-10"]
    assert list(kept) == [f"key-{k}" for k in range(rc.TABLES + 1, 1, -1)]  # the newest first
