"""The ledger file (issue 10, finding 7): read commands never create or alter a ledger; an
empty, foreign or corrupt file is refused with a hint; a ledger the user may not write
(another user's file, a read-only folder) still serves every read command.

Tests run as root here, and root passes every permission check, so most of them make the
ledger unwritable by monkeypatching ``os.access`` as ``irq.ledger.reader`` sees it (the
check irq makes before choosing ``mode=ro`` or ``immutable=1``); SQLite itself then enforces
the read-only opening, root or not, which is what the write-refusal tests observe. One test
uses the kernel for real: it runs irq as the unprivileged user ``nobody`` (setpriv) on a
ledger in a folder only root may write, and is skipped where that is not possible.
"""
from __future__ import annotations

import gc
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def digest(folder: Path) -> dict[str, str]:
    """Every file in the folder with data in it, and its content hash: what 'unchanged' means
    here. The WAL's -shm is SQLite's shared-memory index and an empty -wal holds nothing: a
    reader of a WAL ledger in a writable folder makes both (SQLite needs them to read safely
    beside a writer), so they do not count; any byte written to the ledger or its WAL does."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.endswith("-shm") and not (p.name.endswith("-wal") and not p.stat().st_size)}


@pytest.fixture
def filled(tmp_path: Path, irq) -> Path:
    """A ledger with a READY experiment and a FAILED one with an attempt."""
    assert irq("init").code == 0
    assert irq("add", "Q-001", "-t", "first").code == 0
    assert irq("add", "Q-002", "-t", "second").code == 0
    assert irq("add", "Q-003", "-t", "later", "--proposed").code == 0
    from irq.ledger.database import Ledger
    from irq.ledger.states import State

    lg = Ledger(tmp_path / "queue.db")
    with lg.transaction() as s:
        exp = Ledger.experiment(s, "Q-002")
        att = Ledger.new_attempt(s, exp, backend="local")
        Ledger.set_attempt_state(s, att, "PENDING", job_id="4242")
        Ledger.set_attempt_state(s, att, "FAILED")
        Ledger.set_state(s, exp, State.FAILED, "job failed")
    lg.close()
    return settled(tmp_path / "queue.db")


def settled(db: Path) -> Path:
    """Close every connection the setup left (in-process commands) and fold the WAL into the
    file, so that what a test sees changing is its own doing."""
    gc.collect()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return db


def unwritable(monkeypatch: pytest.MonkeyPatch, *paths: Path) -> None:
    """Make os.access say 'not writable' for these paths, as it would for another user."""
    real = os.access
    denied = {str(p.resolve()) for p in paths}

    def access(path, mode, *a, **kw):
        if mode & os.W_OK and str(Path(path).resolve()) in denied:
            return False
        return real(path, mode, *a, **kw)

    monkeypatch.setattr("irq.ledger.location.os.access", access)


READS = [("status", "--offline"), ("status", "--offline", "--json"), ("status",), ("show", "Q-002"),
         ("show", "Q-002", "--json"), ("export",)]


@pytest.mark.parametrize("kind", ["empty", "foreign"])
@pytest.mark.parametrize("cmd", [*READS, ("ready", "Q-003")])
def test_empty_or_foreign_file_is_refused_and_left_alone(tmp_path: Path, irq, kind: str, cmd: tuple) -> None:
    db = tmp_path / "queue.db"
    if kind == "empty":
        db.write_bytes(b"")
    else:
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE photos (id INTEGER)")
        conn.commit()
        conn.close()
    before = digest(tmp_path)
    r = irq(*cmd)
    assert r.code != 0, r
    assert "not an irq ledger" in r.err and "hint:" in r.err and "Traceback" not in r.err
    assert digest(tmp_path) == before  # today an empty file came back as a ledger


@pytest.mark.parametrize("cmd", READS)
def test_corrupt_ledger_says_how_to_recover(filled: Path, irq, cmd: tuple) -> None:
    data = bytearray(filled.read_bytes())
    data[:16] = b"not sqlite at al"  # the header: SQLite no longer recognises the file
    filled.write_bytes(bytes(data))
    before = digest(filled.parent)
    r = irq(*cmd)
    assert r.code != 0
    assert "damaged" in r.err and ".recover" in r.err and "backup" in r.err, r
    assert digest(filled.parent) == before


@pytest.mark.parametrize("cmd", [("add", "Z-1", "-t", "x", "-p", "lr=9"), ("ready", "Q-003"), ("retire", "Q-003")])
def test_a_ledger_with_a_damaged_page_says_how_to_recover_on_a_write_too(filled: Path, irq, cmd: tuple) -> None:
    """A header intact and one page overwritten: the read commands said "damaged"; every command
    that writes ended "irq failed unexpectedly" with SQLite's statement in the message."""
    conn = sqlite3.connect(filled)
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'experiment'").fetchone()
    conn.close()
    data = bytearray(filled.read_bytes())
    data[4096 * (root - 1):4096 * root] = b"\xff" * 4096  # the experiment table's page: the schema and meta still read
    filled.write_bytes(bytes(data))
    r = irq(*cmd)
    assert r.code == 1 and "damaged" in r.err and ".recover" in r.err, r
    assert r.err.count("error:") == 1 and "unexpectedly" not in r.err and "[SQL" not in r.err, r


def test_a_schema_version_that_is_no_number_is_a_damaged_ledger(filled: Path, irq) -> None:
    conn = sqlite3.connect(filled)
    conn.execute("UPDATE meta SET value = 'abc' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    for cmd in (("status", "--offline"), ("add", "Z-1", "-t", "x", "-p", "lr=9")):
        r = irq(*cmd)
        assert r.code == 1 and "its schema version is 'abc', not a number" in r.err and "unexpectedly" not in r.err, r


@pytest.mark.parametrize("where", ["file", "folder"])
def test_read_only_ledger_serves_every_read_command(filled: Path, irq, monkeypatch, where: str) -> None:
    unwritable(monkeypatch, filled if where == "file" else filled.parent)
    from irq.ledger.reader import access_mode

    assert access_mode(filled) == ("ro" if where == "file" else "immutable")
    before = digest(filled.parent)
    outs = {cmd: irq(*cmd) for cmd in READS}
    assert all(r.code == 0 for r in outs.values()), outs
    assert "Q-002" in outs[("status", "--offline")].out and "4242" in outs[("show", "Q-002")].out
    assert "### Q-002: second - ATTEMPT 1" in outs[("export",)].out
    assert digest(filled.parent) == before  # no byte changed
    if where == "folder":  # immutable: SQLite made no file at all beside the ledger
        # (the cache folder is here only because the tests put $IRQ_CACHE_DIR in tmp_path: the
        # export keeps its cache there, never beside the ledger)
        assert sorted(p.name for p in filled.parent.iterdir() if p.name != "irq-cache") == ["irq.toml", "queue.db"]


@pytest.mark.parametrize("cmd", [("ready", "Q-003"), ("add", "Q-004", "-t", "fourth")])
def test_write_on_read_only_ledger_is_refused_by_sqlite(filled: Path, irq, monkeypatch, cmd: tuple) -> None:
    unwritable(monkeypatch, filled)
    before = digest(filled.parent)
    r = irq(*cmd)
    assert r.code != 0 and "read-only" in r.err and "hint:" in r.err and "Traceback" not in r.err, r
    assert digest(filled.parent) == before


def test_read_only_switch(filled: Path, irq, monkeypatch) -> None:
    monkeypatch.setenv("IRQ_READ_ONLY", "1")
    assert irq("status", "--offline").code == 0
    assert "read-only" in irq("ready", "Q-003").err


def test_online_status_on_read_only_ledger_shows_last_recorded(filled: Path, irq, monkeypatch) -> None:
    from irq.ledger.database import Ledger

    lg = Ledger(filled)
    with lg.transaction() as s:
        att = Ledger.new_attempt(s, Ledger.experiment(s, "Q-001"), backend="local")
        Ledger.set_attempt_state(s, att, "PENDING", job_id="777")
    lg.close()
    settled(filled)
    unwritable(monkeypatch, filled)
    r = irq("status")
    assert r.code == 0 and "read-only" in r.err and "not refreshed" in r.err, r  # piped: a note, beside the rows


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_another_users_ledger_in_a_read_only_folder_for_real(filled: Path, tmp_path_factory) -> None:
    """The kernel refuses here: irq runs as `nobody` on root's ledger in a root-only folder."""
    shared = Path("/tmp") / f"irq-ro-{os.getpid()}"
    shutil.rmtree(shared, ignore_errors=True)
    shared.mkdir()
    try:
        shutil.copy(filled, shared / "queue.db")  # settled: the WAL is folded into the file
        os.chmod(shared / "queue.db", 0o644)
        os.chmod(shared, 0o755)
        before = digest(shared)
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "HOME": str(shared),
               "IRQ_USER_CONFIG": str(shared / "none.toml")}
        run = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "irq",
               "--db", str(shared / "queue.db")]
        probe = subprocess.run([*run, "--help"], env=env, cwd="/", capture_output=True, text=True, check=False)
        if probe.returncode != 0:
            pytest.skip(f"irq cannot run as nobody here: {probe.stderr[-200:]}")
        for cmd in (["status", "--offline"], ["show", "Q-002"], ["export"]):
            r = subprocess.run([*run, *cmd], env=env, cwd="/", capture_output=True, text=True, check=False)
            assert r.returncode == 0, (cmd, r.stderr)
            assert "Q-002" in r.stdout
        r = subprocess.run([*run, "ready", "Q-003"], env=env, cwd="/", capture_output=True, text=True, check=False)
        assert r.returncode != 0 and "read-only" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert digest(shared) == before
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_a_broken_rule_is_not_taken_for_a_damaged_ledger(tmp_path: Path) -> None:
    """The damaged-page answer caught every DatabaseError: a UNIQUE constraint (a bug) read as
    "damaged: restore a backup"."""
    from sqlalchemy.exc import IntegrityError

    from irq.ledger.database import Ledger
    from irq.ledger.models import Attempt, Experiment

    lg = Ledger(tmp_path / "queue.db", create=True)
    with lg.transaction() as s:
        Ledger.add_experiment(s, Experiment(id="Q-001", seq=0, title="t"))
    with pytest.raises(IntegrityError):
        with lg.transaction() as s:
            s.add(Attempt(experiment_id="Q-001", number=1, token="same"))
            s.add(Attempt(experiment_id="Q-001", number=2, token="same"))
    lg.close()
