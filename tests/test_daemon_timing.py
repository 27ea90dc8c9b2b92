"""The daemon acts within seconds: it polls every interval while work runs or waits, backs off
only while the cluster does not answer, wakes when another process changes the ledger, never
sleeps max_interval on an empty queue, and holds (never submits) what a person must fix.

No test asserts a duration: each sets intervals of an hour where the old behaviour would have
waited, so the test finishes only if the daemon woke for the right reason (pytest-timeout
catches a hang)."""
from __future__ import annotations

import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from irq import errors
from irq.backends.fake import FakeBackend
from irq.backends.registry import Backends
from irq.backends.target import REPO_ROOT, Target
from irq.config import Config, DaemonConfig
from irq.daemon.loop import CycleReport, LedgerWatch, _sleep, cycle, next_wait, run
from irq.experiments.edit import Changes, add_experiment, edit
from irq.jobs.preflight import preflight_hook
from irq.ledger.database import Ledger
from irq.ledger.models import Experiment
from irq.ui import UI

pytestmark = pytest.mark.timeout(120)
HOUR = 3600.0


def opener(fake: FakeBackend, tmp_path: Path):
    target = Target(kind="local", name="local", workdir=str(tmp_path / "work"), code_dir=str(REPO_ROOT),
                    python=sys.executable)

    def open_backends(config: Config) -> Backends:
        b = Backends(config)
        b.provide(fake, target)
        return b

    return open_backends


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(path=None, root=tmp_path, daemon=DaemonConfig(interval=HOUR, max_interval=HOUR))


def test_no_backoff_while_jobs_run_or_work_waits():
    quiet = CycleReport()  # jobs running, nothing changed this cycle
    assert next_wait(quiet, 5, 5, 600) == 5
    assert next_wait(quiet, 5, 40, 600) == 5  # back to the poll interval at once
    waiting = CycleReport(waiting={"Q-002": "no free job slot (2 of 2 used)"})
    assert next_wait(waiting, 5, 5, 600) == 5


def test_backoff_only_while_the_cluster_does_not_answer():
    down = CycleReport(unreachable={"slurm:fasrc": "connection refused"})
    waits = [5.0]
    for _ in range(8):
        waits.append(next_wait(down, 5, waits[-1], 600))
    assert waits[:5] == [5, 10, 20, 40, 80] and waits[-1] == 600
    assert next_wait(CycleReport(needs_person="password"), 5, 5, 600) == 10
    assert next_wait(CycleReport(), 5, 600, 600) == 5  # it answers again: poll again


def test_a_login_ends_the_wait_for_a_person_whatever_the_backoff(ledger, config, tmp_path):
    """The cluster wants a one-time code and no master is up: the daemon backs off (an hour
    here) and stays the same process; `irq login` in another terminal ends the wait at once."""
    fake = FakeBackend(name="local", limit=2)
    fake.log_out()
    add_experiment(ledger, "Q-001", "waits for the login")
    said: list[str] = []

    def new_cycle() -> None:
        said.append(ledger.get_meta("daemon_needs_login") or "")
        if len(said) == 2:
            assert not fake.jobs  # nothing was submitted while nobody was logged in
        threading.Timer(0.3, fake.log_in).start()

    fake.new_cycle = new_cycle  # type: ignore[method-assign]
    run(ledger, config, UI(), max_cycles=2, open_backends=opener(fake, tmp_path))
    assert said[1].startswith("needs login: run irq login local"), said
    assert [j.request.name.split(".")[0] for j in fake.jobs.values()] == ["Q-001"]
    assert ledger.get_meta("daemon_needs_login") == ""


def test_a_wait_for_a_login_that_is_already_up_is_not_cut_short(ledger):
    """Logged in yet refused (a wrong code, an account problem): the backoff stands, no busy loop."""
    watch = LedgerWatch(ledger.path)
    stop = {"flag": False}
    asked: list[bool] = []

    def login() -> bool:
        asked.append(True)
        return True

    threading.Timer(0.8, lambda: stop.update(flag=True)).start()
    _sleep(HOUR, stop, watch, early=False, login=login)  # returns only because of the signal
    assert stop["flag"] and asked == [True]
    watch.close()


def test_the_wait_ends_when_another_process_writes_the_ledger(ledger):
    watch = LedgerWatch(ledger.path)
    stop = {"flag": False}

    def writer() -> None:
        add_experiment(ledger, "Q-001", "added while the daemon waits")

    threading.Timer(0.3, writer).start()
    _sleep(HOUR, stop, watch, early=True)  # returns only because the ledger changed
    assert watch.changed() and not stop["flag"]
    with ledger.transaction() as s:
        assert Ledger.experiment(s, "Q-001")
    watch.close()


def test_backing_off_ignores_ledger_changes_but_not_signals(ledger):
    watch = LedgerWatch(ledger.path)
    stop = {"flag": False}

    def writer() -> None:
        add_experiment(ledger, "Q-001", "x")
        threading.Timer(0.5, lambda: stop.update(flag=True)).start()

    threading.Timer(0.3, writer).start()
    _sleep(HOUR, stop, watch, early=False)
    assert stop["flag"] and watch.changed()  # the ledger changed, yet only the signal ended the wait
    watch.close()


def test_new_ready_work_is_submitted_without_waiting_the_interval(ledger, config, tmp_path):
    fake = FakeBackend(name="local", limit=2)
    seen_first = threading.Event()

    def add_when_idle() -> None:
        while ledger.get_meta("daemon_last_cycle") is None:
            seen_first.wait(0.05)
        add_experiment(ledger, "Q-001", "arrives after the first cycle")

    threading.Thread(target=add_when_idle, daemon=True).start()
    run(ledger, config, UI(), max_cycles=2, open_backends=opener(fake, tmp_path))  # interval: an hour
    assert [j.request.name.split(".")[0] for j in fake.jobs.values()] == ["Q-001"]


def test_work_made_ready_while_a_cycle_ends_is_submitted_at_once(ledger, config, tmp_path, monkeypatch):
    """The race the test above met under load: an experiment committed after the cycle's submit
    step read the ledger but before the daemon started watching it. The daemon must go again at
    once, never sleep the interval (an hour here) with READY work it has not seen."""
    import irq.daemon.loop as loop

    fake = FakeBackend(name="local", limit=2)
    log_cycle, slept = loop._log_cycle, []

    def log_then_add(ui, rep):  # runs after the cycle, where another process's commit can land
        log_cycle(ui, rep)
        with ledger.transaction() as s:
            known = {e.id for e in Ledger.experiments(s)}
        if "Q-001" not in known:
            add_experiment(ledger, "Q-001", "made READY as the first cycle ends")

    monkeypatch.setattr(loop, "_log_cycle", log_then_add)
    monkeypatch.setattr(loop, "_sleep", lambda *a, **k: slept.append(a[0]))
    run(ledger, config, UI(), max_cycles=2, open_backends=opener(fake, tmp_path))  # interval: an hour
    assert [j.request.name.split(".")[0] for j in fake.jobs.values()] == ["Q-001"]
    assert slept == []  # the second cycle came at once, not after a sleep


def test_an_empty_queue_does_not_sleep_max_interval(ledger, tmp_path):
    config = Config(path=None, root=tmp_path, daemon=DaemonConfig(interval=0.1, max_interval=HOUR))
    fake = FakeBackend(name="local", limit=2)
    assert run(ledger, config, UI(), max_cycles=3, open_backends=opener(fake, tmp_path)) == 0


def test_a_freed_slot_is_refilled_on_the_next_poll_after_quiet_cycles(ledger, tmp_path):
    """Ten quiet cycles while the job runs (the old loop doubled its wait on each: 0.1 s became
    minutes), then the job ends: the next poll refills the slot."""
    config = Config(path=None, root=tmp_path, daemon=DaemonConfig(interval=0.1, max_interval=HOUR))
    fake = FakeBackend(name="local", limit=1)
    for i in (1, 2):
        add_experiment(ledger, f"Q-00{i}", f"job {i}")
    cycles = []

    def new_cycle() -> None:  # the daemon keeps its backends; each cycle starts here
        cycles.append(len(fake.jobs))
        if len(cycles) == 12:
            fake.set_state(next(iter(fake.jobs)), "COMPLETED")

    fake.new_cycle = new_cycle  # type: ignore[method-assign]
    run(ledger, config, UI(), max_cycles=13, open_backends=opener(fake, tmp_path))
    assert cycles[1:12] == [1] * 11  # one job ran through the quiet cycles, the other waited
    assert len(fake.jobs) == 2  # refilled in the cycle that saw the first end


def _held(ledger: Ledger, exp_id: str) -> Experiment:
    with ledger.transaction() as s:
        exp = Ledger.experiment(s, exp_id)
        assert Ledger.attempts(s, exp_id) == []
        return exp


def test_the_daemon_holds_an_experiment_whose_preflight_fails(ledger, config, tmp_path):
    fake = FakeBackend(name="local", limit=2)
    add_experiment(ledger, "Q-001", "preflight fails")

    def preflight(*_args) -> None:
        raise errors.PreflightFailed("module loads: commented out", "uncomment them")

    for _ in range(3):
        with opener(fake, tmp_path)(config) as b:
            rep = cycle(ledger, config, UI(), b, preflight)
        assert rep.submitted == [] and "Q-001" in rep.waiting
    exp = _held(ledger, "Q-001")
    assert exp.held_fix == "uncomment them" and fake.jobs == {}


def test_an_experiment_without_a_runnable_config_is_held_until_edited(ledger, config, tmp_path):
    fake = FakeBackend(name="local", limit=2)
    with ledger.transaction() as s:  # as an import brings it: a value the trainer refuses
        Ledger.add_experiment(s, Experiment(id="Q-001", seq=0, title="imported", parameters={"mining": "greedy"},
                                            config_path="trainer/configs/tiny.json"))
    hook = preflight_hook(config, ledger)
    for _ in range(3):
        with opener(fake, tmp_path)(config) as b:
            cycle(ledger, config, UI(), b, hook)
    exp = _held(ledger, "Q-001")
    assert "trainer config" in exp.waiting_reason and "irq edit Q-001" in exp.held_fix
    edit(ledger, "Q-001", Changes(params={"mining": "random"}))
    with opener(fake, tmp_path)(config) as b:
        rep = cycle(ledger, config, UI(), b, hook)
    assert rep.submitted == ["Q-001"] and len(fake.jobs) == 1


@pytest.mark.parametrize("config_path, said", [(None, "Q-002 has no trainer config"),
                                               ("configs/gone.json", "trainer config configs/gone.json is not in")])
def test_the_bundled_trainer_without_a_config_file_is_held_never_sent(ledger, config, tmp_path, config_path, said):
    """Its job script stops at once without one (exit 2: "has no trainer config"), and a config
    file the job cannot read fails the trainer at once: `irq check` passed both, and submit sent them."""
    fake = FakeBackend(name="local", limit=2)
    with ledger.transaction() as s:
        Ledger.add_experiment(s, Experiment(id="Q-002", seq=0, title="no config", parameters={"rank": 3},
                                            config_path=config_path))
    with opener(fake, tmp_path)(config) as b:
        rep = cycle(ledger, config, UI(), b, preflight_hook(config, ledger))
    exp = _held(ledger, "Q-002")
    assert rep.submitted == [] and not fake.jobs
    assert said in exp.waiting_reason and "irq edit Q-002" in exp.held_fix


def test_an_export_into_a_missing_folder_is_logged_and_the_daemon_keeps_serving(ledger, tmp_path):
    config = Config(path=None, root=tmp_path, export="nodir/queue.md",
                    daemon=DaemonConfig(interval=0.1, max_interval=HOUR))
    fake = FakeBackend(name="local", limit=1)
    add_experiment(ledger, "Q-001", "x")
    assert run(ledger, config, UI(), max_cycles=2, open_backends=opener(fake, tmp_path)) == 0
    assert len(fake.jobs) == 1 and not (tmp_path / "nodir").exists()


def test_an_idle_daemon_asks_the_scheduler_nothing_and_logs_one_quiet_line(ledger, tmp_path, capsys):
    """With nothing READY or running, a cycle has no question for the scheduler (each idle cycle
    asked for the job slots: a round trip to the cluster every poll, all night), and a run of quiet
    cycles is one log line, not one per poll."""
    config = Config(path=None, root=tmp_path, daemon=DaemonConfig(interval=0.1, max_interval=HOUR))
    fake = FakeBackend(name="local", limit=2)
    assert run(ledger, config, UI(), max_cycles=5, open_backends=opener(fake, tmp_path)) == 0
    with ledger.transaction() as s:
        assert Ledger.calls_since(s, datetime(2000, 1, 1, tzinfo=timezone.utc)) == 0
    log = capsys.readouterr().err
    assert log.count("cycle: nothing changed") == 1, log


def test_an_export_named_onto_the_ledger_is_refused_each_cycle_and_the_daemon_serves_on(ledger, tmp_path, capsys):
    """`export = "queue.db"`: the daemon read the ledger as text and ended 'irq failed unexpectedly'."""
    config = Config(path=None, root=tmp_path, export=ledger.path.name, daemon=DaemonConfig(interval=0.1, max_interval=HOUR))
    add_experiment(ledger, "Q-001", "x")
    import sqlite3

    con = sqlite3.connect(ledger.path)  # bytes no UTF-8 text holds (as any ledger of some size has)
    con.execute("CREATE TABLE blob_ (b BLOB)")
    con.execute("INSERT INTO blob_ VALUES (x'fffefdfc')")
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    assert run(ledger, config, UI(), max_cycles=2, open_backends=opener(FakeBackend(name="local", limit=1), tmp_path)) == 0
    said = capsys.readouterr()
    assert "is a SQLite database (an irq ledger?): irq never writes over it" in said.out + said.err
    from irq.ledger.database import Ledger

    Ledger(ledger.path).close()  # the ledger is whole
