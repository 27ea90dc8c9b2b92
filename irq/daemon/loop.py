"""`irq daemon`: keep the job slots full until the queue is empty.

Each cycle: refresh (one batched query per backend), fetch what finished, apply retry
policies, submit READY experiments into free slots (the scheduler's plan), re-export
queue.md if anything changed. Between cycles it waits one poll interval, and wakes as soon as
another process changes the ledger; only an unreachable cluster makes it back off. Restart-safe: a cycle begins by reconciling attempts whose
submission was never confirmed, so `kill -9` at any point loses and duplicates nothing. An
unreachable cluster leaves every state as it was and is retried with backoff (up to
[daemon] max_interval). So is a login that needs a person (a one-time code), except that the
wait ends within a second of `irq login`: the same process resumes, on the same backends.
"""
from __future__ import annotations

import fcntl
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irq import errors, faults
from irq.backends.registry import Backends, record_calls
from irq.backends.registry import slots as cached_slots
from irq.config import Config
from irq.formats.export import Derived
from irq.formats.queue_io import derived_for, hand_edits_kept, write_export
from irq.formats.render import project_templates
from irq.jobs.fetch import fetch
from irq.jobs.submit import candidates, submit
from irq.jobs.sync import refresh
from irq.ledger.claims import lock_beside
from irq.ledger.database import Ledger
from irq.ledger.models import utcnow
from irq.ledger.states import State
from irq.policy.retry import RetryPolicy, bigger
from irq.policy.scheduler import Plan, plan
from irq.ui import UI

WATCH_STEP = 0.5  # seconds between looks at the ledger while waiting


@dataclass
class CycleReport:
    changed: list[str] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)
    considered: set[str] = field(default_factory=set)  # the READY experiments this cycle's submit step saw
    unreachable: dict[str, str] = field(default_factory=dict)
    needs_person: str | None = None
    refused: errors.HostKeyError | None = None  # a host key was refused: stop, a person must check it
    exported: bool = False

    @property
    def anything(self) -> bool:
        return bool(self.changed or self.submitted or self.fetched or self.retried)


def dry_run_plan(ledger: Ledger, config: Config, backends: Backends) -> tuple[Plan, Any]:
    """What a cycle would submit now; reads the scheduler, writes nothing."""
    backend = backends.get(backends.default_name())
    slots = cached_slots(ledger, backends)
    per_task = backend.counts_array_tasks
    with ledger.transaction() as s:
        cands, states = candidates(s, per_task)
    return plan(cands, states, slots.free, slots.limit if per_task else None), slots


def apply_retry_policies(ledger: Ledger) -> list[str]:
    """After TIMEOUT / OUT_OF_MEMORY: more time or memory (up to the policy's cap), READY again;
    the change is recorded on the experiment and carried onto its next attempt."""
    out = []
    with ledger.transaction() as s:
        for exp in Ledger.with_retry_policy(s, State.FAILED.value):
            last = Ledger.latest_attempt(s, exp.id)
            if last is None:
                continue
            bump = bigger(exp.resources, last.state, RetryPolicy.from_dict(exp.retry_policy),
                          len(Ledger.attempts(s, exp.id)))
            if bump is None:
                continue  # no policy, not its trigger, attempts used up, or at the cap: a person decides
            exp.resources = bump.resources
            exp.pending_resource_change = bump.change
            Ledger.set_state(s, exp, State.READY, f"retry policy: {bump.change}")
            out.append(f"{exp.id}: {bump.change}")
    return out


def cycle(ledger: Ledger, config: Config, ui: UI, backends: Backends,
          preflight: Any = None) -> CycleReport:
    """One pass: refresh, fetch, retry policies, submit into free slots, re-export. `irq demo` uses it too."""
    rep = CycleReport()
    try:
        r = refresh(ledger, backends, ui)
        rep.changed, rep.unreachable = r.changed, dict(r.unreachable)
        rep.refused = next(iter(r.refused.values()), None)
        rep.needs_person = next((m for m in r.unreachable.values() if m.startswith("needs login")), None)
        if not rep.unreachable:
            rep.fetched = [f"{o.id}: {o.state}" for o in fetch(ledger, config, backends, ui)]
            rep.retried = apply_retry_policies(ledger)
            outs = submit(ledger, config, backends, ui, all_ready=True, preflight=preflight, queue_waiting=False)
            rep.submitted = [o.id for o in outs if o.status == "submitted"]
            rep.waiting = {o.id: o.message for o in outs if o.status in ("queued", "held")}
            rep.considered = {o.id for o in outs}
    except errors.HostKeyError as exc:
        rep.refused = exc
    except errors.AuthError as exc:
        rep.needs_person = exc.message
    except errors.BackendError as exc:
        rep.unreachable[backends.default_name()] = exc.message
    except errors.IrqError as exc:  # anything else a command would report: said, and the daemon serves on
        ui.log(f"cycle ended early: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
    finally:
        try:
            record_calls(ledger, backends)
        except errors.IrqError:
            pass
    if config.export:
        try:
            dest = config.resolve(config.export)
            if (kept := _export_if_stale(ledger, dest, rep, project_templates(config), derived_for(config, dest))):
                ui.log(f"warning: {hand_edits_kept(dest, kept)}")
        except errors.UsageError as exc:  # a missing folder: say so every cycle, keep serving
            ui.log(f"cannot re-export queue.md: {exc.message} ({exc.hint})")
    ledger.set_meta("daemon_last_cycle", utcnow().isoformat())
    ledger.set_meta("daemon_needs_login", rep.needs_person or "")
    return rep


def _export_if_stale(ledger: Ledger, path: Path, rep: CycleReport, template_dir: Path | None,
                     derived: Derived) -> Path | None:
    """Re-export queue.md whenever it differs from the ledger (also after a crash mid-export);
    a person's changes to it are kept aside (queue_io.write_export): that copy, if any."""
    from irq.formats.export import export_text
    from irq.formats.queue_io import never_over_irqs_own

    never_over_irqs_own(path)  # `export = "queue.db"`: said each cycle (UsageError), the ledger left whole
    text = export_text(ledger, template_dir, derived)
    try:
        current = path.read_text(encoding="utf-8")
    except (OSError, ValueError):  # gone, or not text: written over as any stale export is
        current = None
    if text == current:
        return None
    faults.point("before_export")
    kept = write_export(path, text)
    rep.exported = True
    return kept


class DaemonLock:
    """One daemon per ledger: an exclusive lock on `<ledger>.daemon.lock` holding its pid."""

    def __init__(self, db: Path) -> None:
        self.path = lock_beside(db, ".daemon.lock")
        self.fh: Any = None

    def acquire(self) -> None:
        try:
            self.fh = open(self.path, "a+")
        except OSError as exc:
            raise errors.LedgerError(f"cannot make the daemon's lock file {self.path}: {exc.strerror or exc}",
                                     "the daemon writes the ledger and its folder: run it where you may write") from None
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.seek(0)
            pid = self.fh.read().strip() or "?"
            self.fh.close()
            raise errors.IrqError(f"a daemon already serves {self.path.name[:-12]} (pid {pid})",
                                  "`irq daemon stop` stops it; one daemon per ledger") from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(str(os.getpid()))
        self.fh.flush()

    def holder(self) -> int | None:
        """The pid of the running daemon, if any."""
        if not self.path.exists():
            return None
        with open(self.path, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                txt = fh.read().strip()
                return int(txt) if txt.isdigit() else -1
            fcntl.flock(fh, fcntl.LOCK_UN)
        return None

    def release(self) -> None:
        if self.fh:
            fcntl.flock(self.fh, fcntl.LOCK_UN)
            self.fh.close()
            self.fh = None


class LedgerWatch:
    """Tells when another process has committed to the ledger (`PRAGMA data_version` on a
    connection of its own), so READY work added meanwhile starts within a second, not a poll."""

    def __init__(self, path: Path) -> None:
        self.con = sqlite3.connect(path, timeout=5, isolation_level=None)
        self.seen = 0
        self.seen = self.version()

    def version(self) -> int:
        try:
            return int(self.con.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:
            return self.seen  # busy or gone: the next poll tells

    def mark(self) -> None:
        self.seen = self.version()

    def changed(self) -> bool:
        return self.version() != self.seen

    def close(self) -> None:
        self.con.close()


def next_wait(rep: CycleReport, base: float, previous: float, max_interval: float) -> float:
    """Poll every `base` seconds while anything runs, waits or could be added; double the wait
    (up to max_interval) only while the cluster does not answer or a login needs a person."""
    if rep.unreachable or rep.needs_person:
        return min(max(previous * 2, base), max(max_interval, base))
    return base


def run(ledger: Ledger, config: Config, ui: UI, *, interval: float | None = None, once: bool = False,
        preflight: Any = None, max_cycles: int | None = None,
        open_backends: Callable[[Config], Backends] = Backends) -> int:
    """The daemon loop. SIGINT / SIGTERM finish the current step, then exit 0. `open_backends`
    opens the backends once for the daemon's lifetime (tests hand in a FakeBackend)."""
    base = poll_interval(config, interval)
    lock, serving = _take(ledger)
    stop = {"flag": False}

    def on_signal(signum: int, _frame: Any) -> None:
        stop["flag"] = True
        ui.log(f"received {signal.Signals(signum).name}: finishing the current step")

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    wait, cycles, was_empty, was_quiet = base, 0, False, False
    last_arrived: set[str] = set()
    watch = LedgerWatch(ledger.path)
    backends = open_backends(config)  # one connection for the daemon's lifetime; a drop reconnects on use
    try:
        ui.log(f"daemon serving {ledger.path} (backend {config.backend}, interval {base:g}s)")
        while not stop["flag"]:
            if file_identity(ledger.path) != serving:
                raise errors.LedgerError(f"ledger {ledger.path} was replaced or removed while the daemon served it: "
                                         "the daemon stopped (it would have gone on with the old file)",
                                         "`irq daemon start` serves the file there now")
            cycles += 1
            backends.new_cycle()
            rep = cycle(ledger, config, ui, backends, preflight)
            _log_cycle(ui, rep)
            if quiet(rep) and not was_quiet:
                ui.log("cycle: nothing changed (the next quiet cycles are not logged; `irq daemon status` "
                       "shows the last one)")
            was_quiet = quiet(rep)
            if rep.refused:  # a changed or unknown host key: never retried unattended
                raise rep.refused
            if once or (max_cycles and cycles >= max_cycles):
                break
            wait = next_wait(rep, base, wait, float(config.daemon.max_interval))
            watch.mark()  # first: a commit after this ends the sleep, one before it is in what is read below
            ready, active = open_work(ledger)
            empty = not ready and not active
            if empty and not was_empty:
                ui.log("queue empty: every experiment is DONE, FAILED, RETIRED or PROPOSED; watching for new work")
            was_empty = empty
            early = not (rep.unreachable or rep.needs_person)
            if early and (arrived := ready - rep.considered) and arrived != last_arrived:
                last_arrived = arrived  # made READY while the cycle ran, after its submit step read: go again now
                continue
            last_arrived = set()
            _sleep(wait, stop, watch, early=early, login=backends.logged_in if rep.needs_person else None)
    finally:
        watch.close()
        backends.close()
        for s, h in old.items():
            signal.signal(s, h)
        lock.release()
    ui.log("daemon stopped")
    return 0


def _take(ledger: Ledger) -> tuple[DaemonLock, tuple[int, int] | None]:
    """The daemon's lock on a ledger it may write, and which file it serves (a file put in its
    place later is not the one it serves: see file_identity)."""
    if ledger.readonly:
        raise errors.LedgerError(f"ledger {ledger.path} is read-only for you (another user's file, or a read-only "
                                 "folder): the daemon writes every cycle", "run the daemon as the ledger's owner, "
                                 "or copy it: cp queue.db mine.db && irq --db mine.db daemon start")
    lock = DaemonLock(ledger.path)
    lock.acquire()
    return lock, file_identity(ledger.path)


def file_identity(path: Path) -> tuple[int, int] | None:
    """The file a path names now (device and inode), None when there is none: a backup restored
    over the ledger, or the ledger deleted, is another file (or none) under the same name."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def poll_interval(config: Config, interval: float | None) -> float:
    """--interval, else the larger of [daemon] interval and the cluster's poll_interval."""
    if interval is None:
        interval = config.daemon.interval
        if config.backend != "local":
            interval = max(interval, config.cluster().poll_interval)
    if not interval > 0:
        raise errors.UsageError(f"--interval {interval:g}: the daemon needs an interval above 0 seconds",
                                "e.g. --interval 30; see docs/configuration.md ([daemon] interval)")
    return max(0.1, float(interval))


def _sleep(wait: float, stop: dict[str, bool], watch: LedgerWatch, early: bool,
           login: Callable[[], bool] | None = None) -> None:
    """Sleep `wait` seconds in short steps; end early on a signal or, unless backing off, when
    another process changed the ledger (a new or promoted experiment, a cancel, an edit).
    Waiting for a person to log in (`login`: the backends' local check), end as soon as that
    check turns True: `irq login` resumes the daemon within a second, whatever the backoff."""
    deadline = time.monotonic() + wait
    waiting_login = login is not None and not login()  # already True: no news to wait for
    while not stop["flag"] and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(WATCH_STEP, left))
        if early and watch.changed():
            return
        if waiting_login and login():
            return


def open_work(ledger: Ledger) -> tuple[set[str], bool]:
    """The READY experiments' ids, and whether any experiment is IN_PROGRESS."""
    with ledger.transaction() as s:
        rows = Ledger.states(s, {State.READY.value, State.IN_PROGRESS.value})
    return {i for i, st in rows.items() if st == State.READY.value}, State.IN_PROGRESS.value in rows.values()


def queue_empty(ledger: Ledger) -> bool:
    """Nothing left for a cycle to do: no experiment READY or IN_PROGRESS."""
    ready, active = open_work(ledger)
    return not ready and not active


def _log_cycle(ui: UI, rep: CycleReport) -> None:
    for c in rep.changed:
        ui.log(c)
    for f in rep.fetched:
        ui.log(f"fetched {f}")
    for r in rep.retried:
        ui.log(f"retry policy {r}")
    if rep.submitted:
        ui.log("submitted " + ", ".join(rep.submitted))
    for name, msg in rep.unreachable.items():
        ui.log(f"{name} unreachable: {msg}; states unchanged, retrying with backoff")
    if rep.needs_person:
        ui.log(f"login needs a person: {rep.needs_person}. The daemon waits and resumes by itself once you "
               "run `irq login CLUSTER` at a terminal.")
    if rep.exported:
        ui.log("re-exported queue.md")


def quiet(rep: CycleReport) -> bool:
    """A cycle with nothing to tell: only the first of a run of them is logged."""
    return not (rep.anything or rep.unreachable or rep.needs_person or rep.refused or rep.exported)
