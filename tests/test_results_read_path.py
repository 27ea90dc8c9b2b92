"""`irq results`, `plot` and `report` read the ledger on the stdlib read path: no SQLAlchemy or
pydantic import for reading, and a ledger the user may only read (file 0444 in a 0555 folder)
gives its results. Comparisons against a baseline go through scipy in blocks and give each
experiment exactly what it gets alone.

Tests run as root here, and root passes every permission check: the in-process test sets the
modes for real and also makes ``os.access`` say "not writable", as irq.ledger.reader sees it
(the check that chooses ``immutable=1``), so SQLite opens the file read-only; the subprocess
test runs irq as ``nobody`` (setpriv) where the kernel refuses for real, skipped where it cannot.
"""
from __future__ import annotations

import csv
import gc
import hashlib
import io
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from irq.results.stats import compare, compare_many, summarise
from tests.results_fixture import FINAL, study

REPO = Path(__file__).resolve().parent.parent


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def settle(db: Path) -> None:
    """Close the fixture's connections and fold the WAL into the file."""
    gc.collect()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for extra in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        extra.unlink(missing_ok=True)


def csv_rows(text: str) -> dict[str, dict[str, str]]:
    return {r["id"]: r for r in csv.DictReader(io.StringIO(text))}


@pytest.fixture
def shared(ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The study's ledger alone in a folder: the file 0444, the folder 0555."""
    study(ledger, tmp_path)
    ledger.close()
    folder = tmp_path / "shared"
    folder.mkdir()
    settle(tmp_path / "queue.db")
    shutil.copy(tmp_path / "queue.db", folder / "queue.db")
    os.chmod(folder / "queue.db", 0o444)
    os.chmod(folder, 0o555)
    real = os.access

    def access(path, mode, *a, **kw):  # what a user other than root is told
        if mode & os.W_OK and Path(path).resolve() in (folder.resolve(), (folder / "queue.db").resolve()):
            return False
        return real(path, mode, *a, **kw)

    monkeypatch.setattr("irq.ledger.location.os.access", access)
    yield folder / "queue.db"
    os.chmod(folder, 0o755)


def test_results_on_a_read_only_ledger_in_a_read_only_folder(shared: Path, irq, tmp_path: Path) -> None:
    from irq.ledger.reader import access_mode

    assert access_mode(shared) == "immutable"
    before = digest(shared.parent)
    r = irq("--db", str(shared), "results", "--format", "csv")
    assert r.code == 0, r
    rows = csv_rows(r.out)
    for eid, vals in FINAL.items():
        assert float(rows[eid]["mean"]) == pytest.approx(np.mean(list(vals.values())), rel=1e-3)
    r = irq("--db", str(shared), "results", "--baseline", "Q-001", "--criterion", "val_mse -20%", "--format", "md")
    assert r.code == 0 and "Q-003 vs Q-001" in r.out, r
    r = irq("--db", str(shared), "plot", "final", "-o", str(tmp_path / "figs"))
    assert r.code == 0 and (tmp_path / "figs" / "final.png").is_file(), r
    assert digest(shared.parent) == before  # nothing written, and no -wal or -shm made beside it


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_results_as_another_user_for_real(ledger, tmp_path: Path) -> None:
    """The kernel refuses here: irq runs as `nobody` on root's 0444 ledger in a 0555 folder."""
    study(ledger, tmp_path)
    ledger.close()
    settle(tmp_path / "queue.db")
    folder = Path("/tmp") / f"irq-results-ro-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    try:
        shutil.copy(tmp_path / "queue.db", folder / "queue.db")
        os.chmod(folder / "queue.db", 0o444)
        os.chmod(folder, 0o555)
        before = digest(folder)
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "HOME": "/", "IRQ_USER_CONFIG": "/nonexistent.toml"}
        run = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "irq",
               "--db", str(folder / "queue.db")]
        probe = subprocess.run([*run, "--help"], env=env, cwd="/", capture_output=True, text=True, check=False)
        if probe.returncode != 0:
            pytest.skip(f"irq cannot run as nobody here: {probe.stderr[-200:]}")
        r = subprocess.run([*run, "results", "--format", "csv"], env=env, cwd="/", capture_output=True, text=True,
                           check=False)
        assert r.returncode == 0, r.stderr
        assert set(csv_rows(r.stdout)) == set(FINAL)
        assert digest(folder) == before
    finally:
        os.chmod(folder, 0o755)
        shutil.rmtree(folder, ignore_errors=True)


PROBE = """
import sys
from irq.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
print("IMPORTED:", ",".join(sorted(m for m in ("pydantic", "sqlalchemy", "sqlmodel") if m in sys.modules)))
"""


def test_results_and_plot_import_no_orm_or_pydantic(ledger, tmp_path: Path) -> None:
    """Reading for results costs no SQLAlchemy import (≈ 0.4 s of CPU) and no pydantic: irq.toml's
    metric and goal come from irq/config_files.py. `report` imports the ORM (sqlmodel, built on
    pydantic) only to record itself in the ledger's meta table, after reading and plotting."""
    (tmp_path / "irq.toml").write_text('[project]\nmetric = "val_mse"\ngoal = "min"\n')
    study(ledger, tmp_path)
    ledger.close()
    cases = {("results",): "", ("results", "Q-003", "--baseline", "Q-001", "--criterion", "val_mse -20%"): "",
             ("plot", "final", "-o", "figs"): "", ("report", "-o", "out/summary.md"): "pydantic,sqlalchemy,sqlmodel"}
    for args, expected in cases.items():
        r = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=tmp_path, capture_output=True, text=True,
                           timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert f"IMPORTED: {expected}\n" in r.stdout, (args, r.stdout[-300:], r.stderr[-800:])


@pytest.mark.filterwarnings("ignore:Precision loss occurred")  # the rows whose seeds all agree
@pytest.mark.parametrize("n", [3, 5, 10, 13])
def test_comparisons_in_blocks_equal_each_comparison_alone(n: int) -> None:
    rng = np.random.default_rng(n)
    b = list(rng.normal(0.04, 0.003, 7))
    xs = [list(r) for r in rng.normal(0.035, 0.002, (90, n))] + [[0.03] * n, [0.05] * n]
    ids = [f"Q-{i:03d}" for i in range(len(xs))]
    many = compare_many(ids, xs, "B", b)
    for i in [*range(0, 90, 11), 90, 91]:
        assert compare(ids[i], xs[i], "B", b) == many[i]  # exactly: the same draws, the same sums
    assert many[0].rel_low < many[0].rel_bound_low < many[0].rel_diff < many[0].rel_bound_high < many[0].rel_high


@pytest.mark.parametrize("n", [10, 13])
def test_an_interval_of_many_seeds_does_not_depend_on_its_block(n: int) -> None:
    """Past eight seeds numpy's sums depend on the layout of a block; a block of one is sent twice
    so that a row alone is summed as in a block of 200."""
    rng = np.random.default_rng(n)
    x = rng.normal(0.035, 0.002, (250, n))
    many = summarise(list(x))
    for i in (0, 199, 200, 249):
        assert summarise([x[i]]) == [many[i]]
