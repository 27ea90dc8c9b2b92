"""irq at the size of a long study: 10,000 experiments and 50,000 attempts, 200 of them active.

    .venv/bin/python bench/bench_scale.py [--experiments 10000] [--attempts-per 5] [--runs 3] [--mq PATH/mq]
                                          [--only NAME ...] [--changed 200] [--bytecode]

Builds that ledger with a script (bulk SQL into a ledger made by `irq init`, so the schema is the
one this irq writes), then runs each command as its own process and reads the process's own CPU
time and peak memory from the kernel (wait4). Every figure is printed beside the CLI's start-up
floor (`irq --help`) measured in the same run, because the machines are shared and noisy: the
ratio is the figure to compare. When myqueue is installed (`mq` on PATH, or `--mq PATH/mq`), a
myqueue folder with as many task records (filled through myqueue's own API, in the same states) is
made and `mq ls`, which lists them all, is measured in the same run too, and every figure is also
given as a ratio to it. `irq export` is measured cold (the export cache emptied before each run),
warm (an unchanged ledger exported again) and after --changed experiments were changed by hand
before each run (irq/formats/export_cache.py). `irq import` reads that export into a new ledger,
and again into the ledger it filled (refused: every id is there). Last, with every ended attempt marked fetched (as a
ledger irq fetch has kept up with), `irq fetch` that finds nothing new and one dry-run cycle of the
daemon (refresh, fetch, plan): what the daemon spends on every poll. Beside them, a reference
that is not irq: "floor: read export columns", a few lines of CPython that read every column
queue.md shows, unformatted and unordered, and write them out: the least a first export (an empty
export cache) of this ledger costs on this stack. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

STATES = ("DONE", "FAILED", "READY", "PROPOSED")
ATTEMPT_FINAL = ("COMPLETED", "FAILED", "TIMEOUT", "CANCELLED")
# A reference, not irq: the least any export of this ledger must do in CPython, reading the columns
# queue.md shows (every row, no formatting, no order) and writing them as tab-separated text.
FLOOR = """import sqlite3, sys
con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
with open(sys.argv[2], "w", encoding="utf-8") as out:
    for table, cols in (("experiment", "id, title, state, hypothesis, config_path, command, parameters, resources, "
                                       "priority, depends_on, seeds, notes, annotations, queue_extras"),
                        ("attempt", "experiment_id, number, backend, cluster, job_id, array, tasks, run_id, state, "
                                    "exit_code, submitted_at, started_at, ended_at, unknown_since, git_sha, partition, "
                                    "work_dir, run_dir, modules, error, root_cause, fix_applied, suggested_fix, "
                                    "resource_change, results, output, fetched_at, annotations, extras")):
        for row in con.execute(f"SELECT {cols} FROM {table}"):
            out.write("\\t".join(map(str, row)) + "\\n")
"""


def run_measured(cmd: list[str], cwd: Path, env: dict[str, str],
                 prepare: Callable[[], None] | None = None, refused: bool = False) -> tuple[float, float, int]:
    """(cpu seconds, wall seconds, peak RSS in MB) of one process; `prepare` runs first, unmeasured;
    `refused`: the command must fail (an import of ids the ledger has)."""
    if prepare is not None:
        prepare()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if (proc.returncode != 0) != refused:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}")
    return ru.ru_utime + ru.ru_stime, wall, ru.ru_maxrss // 1024


def new_ledger(irq: list[str], env: dict[str, str], folder: Path, name: str) -> None:
    """An empty ledger `name` in `folder` (irq init), replacing any earlier one."""
    for f in folder.glob(name + "*"):
        f.unlink()
    subprocess.run(irq + ["--db", str(folder / name), "init"], cwd=folder, env=env, capture_output=True, check=True)


def filled_ledger(irq: list[str], env: dict[str, str], folder: Path, name: str, fill: list[str]) -> None:
    """The ledger `name` the last import filled; made and filled by `fill` when there is none yet."""
    if not (folder / name).exists():
        new_ledger(irq, env, folder, name)
        subprocess.run(fill, cwd=folder, env=env, capture_output=True, check=True)


def defaults_for(conn: sqlite3.Connection, table: str) -> dict[str, object]:
    """A value for every NOT NULL column without a default: JSON columns get {} or [] by name."""
    lists = {"depends_on", "seeds", "extras", "queue_extras", "modules"}
    out: dict[str, object] = {}
    for _, name, typ, notnull, dflt, pk in conn.execute(f"PRAGMA table_info({table})"):
        if notnull and dflt is None and not pk:
            if typ.upper() == "JSON":
                out[name] = "[]" if name in lists else "{}"
            elif typ.upper() in ("INTEGER", "FLOAT", "BOOLEAN"):
                out[name] = 0
            elif typ.upper() == "DATETIME":
                out[name] = "2026-01-01 00:00:00"
            else:
                out[name] = ""
    return out


def insert(conn: sqlite3.Connection, table: str, base: dict[str, object], rows: list[dict[str, object]]) -> None:
    cols = list({**base, **rows[0]})
    sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
    conn.executemany(sql, [tuple({**base, **r}[c] for c in cols) for r in rows])


def build_ledger(folder: Path, irq: list[str], n_exp: int, per: int, active: int) -> Path:
    env = {**os.environ, "IRQ_USER_CONFIG": str(folder / "none.toml")}
    subprocess.run(irq + ["init"], cwd=folder, env=env, check=True, capture_output=True)
    db = folder / "queue.db"
    # in a child process: the rows built here would otherwise stay in this process's peak RSS,
    # which every measured command inherits at fork (ru_maxrss counts it)
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_scale as b; " \
           f"b.fill_ledger(b.Path({str(db)!r}), {n_exp}, {per}, {active})"
    subprocess.run([sys.executable, "-c", code], check=True)
    make_local_jobs(folder / ".irq" / "local" / "jobs", n_exp, per, active, os.getpid())
    return db


def make_local_jobs(jobs: Path, n_exp: int, per: int, active: int, pid: int) -> None:
    """The job folders of the active attempts as the local backend keeps them while they run
    (irq/backends/localrun.py writes the same files), their supervisor's pid a live process (this
    one): `irq status` reads them as running jobs, as it would 200 real ones."""
    start = datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat()
    for i in range(min(active, n_exp)):
        job_id = str(100000 + i * per + per)  # the latest attempt's, as fill_ledger numbers them
        d = jobs / job_id
        d.mkdir(parents=True)
        (d / "job.json").write_text(json.dumps({"id": job_id, "name": f"Q-{i + 1:05d}.irq-{i:06d}{per:02d}",
                                                "tasks": None, "throttle": 1, "submitted": start}))
        (d / "supervisor.json").write_text(json.dumps({"pid": pid, "start": start}))
        (d / "task-x.json").write_text(json.dumps({"state": "RUNNING", "pid": pid, "start": start}))


def fill_ledger(db: Path, n_exp: int, per: int, active: int) -> None:
    """Bulk rows into an empty ledger: `active` IN_PROGRESS with a RUNNING latest attempt, the
    rest DONE, FAILED, READY and PROPOSED in turn, `per` attempts each (tests use it too)."""
    conn = sqlite3.connect(db)
    exp_base, att_base = defaults_for(conn, "experiment"), defaults_for(conn, "attempt")
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    exps, atts = [], []
    for i in range(n_exp):
        state = "IN_PROGRESS" if i < active else STATES[i % len(STATES)]
        when = (t0 + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S")
        exps.append({"id": f"Q-{i + 1:05d}", "seq": i + 1, "title": f"sweep point {i} [lr=1e-3]", "state": state,
                     "priority": "MEDIUM", "parameters": json.dumps({"rank": 20, "mining": "adversarial", "seed": i % 10}),
                     "resources": json.dumps({"gpus": 1, "time_minutes": 120, "partition": "gpu"}),
                     "created_at": when, "updated_at": when})
        for n in range(1, per + 1):
            last = n == per
            st = ("RUNNING" if i < active and last else
                  "COMPLETED" if state == "DONE" and last else ATTEMPT_FINAL[(i + n) % len(ATTEMPT_FINAL)])
            atts.append({"experiment_id": f"Q-{i + 1:05d}", "number": n, "token": f"irq-{i:06d}{n:02d}",
                         "backend": "local", "job_id": str(100000 + i * per + n), "run_id": f"q{i:05d}_{n}",
                         "state": st, "submitted_at": when, "run_dir": f"/scratch/runs/q{i:05d}_{n}",
                         "script": "#!/bin/bash\n" + "#SBATCH --comment=padding\n" * 40,
                         "results": json.dumps({"val_mse": 0.01 + (i % 97) / 1e4} if st == "COMPLETED" else {}),
                         "error": None if st in ("COMPLETED", "RUNNING") else "exit code 1",
                         "created_at": when, "updated_at": when})
    insert(conn, "experiment", exp_base, exps)
    insert(conn, "attempt", att_base, atts)
    conn.commit()
    conn.close()


# run by myqueue's own interpreter, in the folder `mq init` made: N tasks through myqueue's API
# (Queue.add writes .myqueue/queue.sqlite3 as `mq submit` does, without a scheduler), in the
# states of fill_ledger's experiments: the first ACTIVE running, then done, FAILED, queued
# (READY) and queued (PROPOSED: myqueue has no state for "not yet agreed") in turn.
FILL_MYQUEUE = """
import sys, time
from pathlib import Path
from myqueue.config import Configuration
from myqueue.queue import Queue
from myqueue.states import State
from myqueue.task import create_task

n, active = int(sys.argv[1]), int(sys.argv[2])
cycle = (State.done, State.FAILED, State.queued, State.queued)
now = time.time()
tasks = []
for i in range(n):
    t = create_task("train.py", [f"--seed={i % 10}"], resources="1:2d", folder=f"runs/q{i + 1:05d}")
    t.id, t.state, t.tqueued = 100000 + i, State.running if i < active else cycle[i % 4], now - 3600
    if t.state in (State.running, State.done, State.FAILED):
        t.trunning = now - 600  # well inside the 2 days asked for: `mq ls` times out none
    if t.state in (State.done, State.FAILED):
        t.tstop = now - 60
    if t.state == State.FAILED:
        t.error = "exit code 1"  # known: `mq ls` does not look for an out-of-memory message
    tasks.append(t)
with Queue(Configuration.read(Path.cwd())) as queue:
    queue.add(*tasks)
"""


def change_experiments(db: Path, n: int, round_: int) -> None:
    """A new note on n experiments spread over the ledger, as `sqlite3` by hand would write it: their
    revisions change (irq/ledger/revisions.py), so an export recomputes their text and no other's."""
    conn = sqlite3.connect(db)
    ids = [r[0] for r in conn.execute("SELECT id FROM experiment ORDER BY seq")]
    step = max(1, len(ids) // max(n, 1))
    conn.executemany("UPDATE experiment SET notes = ? WHERE id = ?",
                     [(f"changed in round {round_}", i) for i in ids[::step][:n]])
    conn.commit()
    conn.close()


def mark_fetched(db: Path) -> None:
    """Every ended attempt fetched, as irq fetch leaves a ledger it has kept up with (fill_ledger's
    attempts never were): a fetch or a daemon cycle then finds only what ended since."""
    conn = sqlite3.connect(db)
    conn.execute("UPDATE attempt SET fetched_at = updated_at WHERE fetched_at IS NULL AND state != 'RUNNING'")
    conn.commit()
    conn.close()


def interpreter_of(script: str) -> list[str]:
    """The command that runs `script`'s Python: its #! line (a venv's mq names the venv's python)."""
    first = Path(script).read_bytes()[:512].split(b"\n")[0].decode(errors="replace")
    return shlex.split(first[2:]) if first.startswith("#!") else ["python3"]


def build_myqueue(folder: Path, mq: str | None, n: int, active: int) -> tuple[Path | None, str]:
    """A myqueue folder with n task records, and what it is (or why there is none)."""
    if mq is None:
        return None, "myqueue not installed (no `mq` on PATH, no --mq): no `mq ls` column"
    home = folder / "mq"
    home.mkdir()
    subprocess.run([mq, "init"], cwd=home, check=True, capture_output=True)
    cfg = home / ".myqueue" / "config.py"
    if not cfg.is_file():  # `mq init` copies ~/.myqueue/config.py when there is one
        cfg.write_text("config = {'scheduler': 'local'}\n")
    r = subprocess.run([*interpreter_of(mq), "-c", FILL_MYQUEUE, str(n), str(active)], cwd=home,
                       capture_output=True, text=True, check=False)
    listed = subprocess.run([mq, "ls"], cwd=home, capture_output=True, text=True, check=False).stdout
    total = re.search(r"total: (\d+)", listed)
    if r.returncode != 0 or total is None or int(total.group(1)) != n:
        return None, (f"myqueue could not be given {n} tasks ({r.stderr.strip()[-300:] or listed[-300:]}): "
                      "no `mq ls` column")
    return home, f"`mq ls` lists {n} tasks ({listed.strip().splitlines()[-1]}), myqueue at {mq}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--experiments", type=int, default=10_000)
    ap.add_argument("--attempts-per", type=int, default=5)
    ap.add_argument("--active", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="measure only the commands whose name contains NAME (repeatable; start-up always)")
    ap.add_argument("--changed", type=int, default=200, help="experiments changed before each 'export, N changed' run")
    ap.add_argument("--bytecode", action="store_true",
                    help="let the measured processes keep compiled bytecode (in the bench's temporary folder, "
                         "PYTHONPYCACHEPREFIX), as an installed irq has it, even where PYTHONDONTWRITEBYTECODE is set")
    ap.add_argument("--mq", help="the `mq` command of a myqueue install (default: `mq` on PATH)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="irq-scale-"))
    irq = [sys.executable, "-m", "irq"]
    t = time.perf_counter()
    build_ledger(tmp, irq, args.experiments, args.attempts_per, args.active)
    print(f"ledger: {args.experiments} experiments, {args.experiments * args.attempts_per} attempts "
          f"({args.active} active) built in {time.perf_counter() - t:.1f}s")
    cache = tmp / "cache"  # the export cache (irq/formats/export_cache.py): emptied or kept per case
    env = {**os.environ, "IRQ_USER_CONFIG": str(tmp / "none.toml"), "COLUMNS": "120", "IRQ_CACHE_DIR": str(cache)}
    if args.bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")  # filled by each command's first, unmeasured run
    db = tmp / "queue.db"
    rounds = iter(range(1, 1_000_000))
    mid = f"Q-{args.experiments // 2:05d}"
    cases = {
        "irq --help": irq + ["--help"],
        "irq --version": irq + ["--version"],
        "irq status --offline": irq + ["status", "--offline"],
        "irq status": irq + ["status"],
        "irq status --json": irq + ["status", "--json", "--offline"],
        "status --state F --limit 20": irq + ["status", "--offline", "--state", "FAILED", "--limit", "20"],
        "status --offline --all": irq + ["status", "--offline", "--all"],
        "status --json --all": irq + ["status", "--json", "--offline", "--all"],
        f"irq show {mid}": irq + ["show", mid],
        "export cold": irq + ["export"],
        "export warm": irq + ["export"],
        f"export, {args.changed} changed": irq + ["export"],
        "export FILE warm": irq + ["export", str(tmp / "out.md")],
        "floor: read export columns": [sys.executable, "-c", FLOOR, str(db), str(tmp / "floor.txt")],
        "import into a new ledger": irq + ["--db", str(tmp / "imported.db"), "import", str(tmp / "out.md")],
        "import refused (ids taken)": irq + ["--db", str(tmp / "imported.db"), "import", str(tmp / "out.md")],
        # last: marking the attempts fetched changes every experiment's revision
        "fetch, nothing ended": irq + ["fetch"],
        "daemon --once --dry-run": irq + ["daemon", "run", "--once", "--dry-run"],
    }
    prepare: dict[str, Callable[[], None]] = {
        "export cold": lambda: shutil.rmtree(cache, ignore_errors=True),
        f"export, {args.changed} changed": lambda: change_experiments(db, args.changed, next(rounds)),
        "import into a new ledger": lambda: new_ledger(irq, env, tmp, "imported.db"),
        "import refused (ids taken)": lambda: filled_ledger(irq, env, tmp, "imported.db", cases["import into a new ledger"]),
        "fetch, nothing ended": lambda: mark_fetched(db),
    }
    refused = {"import refused (ids taken)"}
    rows = {}
    for name, cmd in cases.items():
        if name != "irq --help" and args.only and not any(o in name for o in args.only):
            continue
        if name.startswith("import") and not (tmp / "out.md").exists():
            subprocess.run(irq + ["export", str(tmp / "out.md")], cwd=tmp, env=env, capture_output=True, check=True)
        if name in prepare:
            prepare[name]()
        if (subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, check=False).returncode != 0) != (name in refused):
            print(f"({name}: not supported by this irq, left out)")
            continue
        figs = [run_measured(cmd, tmp, env, prepare.get(name), name in refused) for _ in range(args.runs)]
        rows[name] = (statistics.median(f[0] for f in figs), statistics.median(f[1] for f in figs),
                      max(f[2] for f in figs))
    floor = rows["irq --help"][0]
    mq = args.mq or shutil.which("mq")
    home, what = build_myqueue(tmp, mq, args.experiments, args.active) if not args.only else (None, "--only: no `mq ls` column")
    mq_cpu = None
    if home is not None:
        figs = [run_measured([mq, "ls"], home, env) for _ in range(args.runs)]
        rows[f"mq ls ({args.experiments} tasks)"] = (statistics.median(f[0] for f in figs),
                                                   statistics.median(f[1] for f in figs), max(f[2] for f in figs))
        mq_cpu = rows[f"mq ls ({args.experiments} tasks)"][0]
    print(f"{'command':26} {'cpu s':>7} {'wall s':>7} {'peak MB':>8} {'x start-up':>11}"
          + (f" {'x mq ls':>8}" if mq_cpu else ""))
    for name, (cpu, wall, mb) in rows.items():
        print(f"{name:26} {cpu:7.2f} {wall:7.2f} {mb:8d} {cpu / floor:11.1f}"
              + (f" {cpu / mq_cpu:8.1f}" if mq_cpu else ""))
    print(f"({what})")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
