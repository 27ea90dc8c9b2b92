"""The habits of a command-line tool: version, -h, completion, examples, choices; listings that
grep and awk can read; a closed pipe; one time and number format; following a run."""
from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from irq.ui import iso, num

REPO = Path(__file__).resolve().parent.parent
MAIN_COMMANDS = ["init", "import", "export", "add", "ready", "retry", "status", "show", "render", "submit",
                 "fetch", "cancel", "log", "check", "trust", "daemon", "demo", "results", "sweep", "plot", "report"]


def test_version_and_short_help(irq):
    r = irq("--version")
    assert r.code == 0 and re.fullmatch(r"irq \d+\.\d+\.\d+\S*\n", r.out), r
    r = irq("-h")
    assert r.code == 0 and "Usage: irq" in r.out and "--show-completion" in r.out
    assert irq("status", "-h").code == 0


@pytest.mark.parametrize("cmd", MAIN_COMMANDS)
def test_every_main_command_shows_an_example(irq, cmd):
    r = irq(cmd, "--help")
    assert r.code == 0 and "Example" in r.out and f"irq {cmd}" in r.out, r.out


def test_priority_is_a_listed_choice(irq):
    r = irq("add", "--help")
    assert "highest|high|medium|low" in r.out
    irq("init")
    r = irq("add", "Q-001", "--title", "x", "--priority", "urgent")
    assert r.code == 2 and "urgent" in r.err


def test_piped_status_is_one_tab_separated_line_per_row(irq, seed_queue):
    irq("import", str(seed_queue))
    irq("add", "Q-100", "--title", "a very long title " * 20)
    r = irq("status", "--offline")
    lines = r.out.splitlines()
    assert len(lines) == 11  # ten imported experiments and one added, no headers, no wrapping
    assert all(len(line.split("\t")) == 7 for line in lines)
    assert not re.search("[\u2500-\u257f]", r.out)  # no box drawing
    row = next(line.split("\t") for line in lines if line.split("\t")[1] == "Q-100")
    assert row[0] == "READY" and row[2] == ("a very long title " * 20).strip()


def test_an_empty_ledger_prints_the_next_step(irq):
    irq("init")
    r = irq("status", "--offline")
    assert r.code == 0 and "no experiments yet" in r.err and "irq import queue.md" in r.err and r.out == ""


def test_an_empty_ledger_checks_irq_toml_before_naming_the_next_step(irq, tmp_path):
    """The next step is `irq add`, which reads irq.toml: a mistake in it is said now, not then."""
    irq("init")
    with open(tmp_path / "irq.toml", "a") as f:
        f.write("colour = 'blue'\n")
    r = irq("status", "--offline")
    assert r.code == 2 and r.err.startswith("error: ") and "unknown key 'daemon.colour'" in r.err, r


def test_a_filter_that_matches_nothing_says_what_the_ledger_holds(irq):
    """`--state FAILED` on a ledger without failures said "no experiments yet" (the empty ledger's line)."""
    irq("init")
    assert irq("add", "Q-001", "-p", "lr=1").code == 0
    assert irq("add", "Q-002", "-p", "lr=2", "--proposed").code == 0
    r = irq("status", "--offline", "--state", "FAILED")
    assert r.code == 0 and r.out == "", r
    assert "no experiments yet" not in r.err
    assert "no experiment in the states asked for; the ledger holds 2 (1 READY, 1 PROPOSED)" in r.err, r.err


def test_imported_attempts_say_irq_never_refreshed_them(irq, seed_queue):
    irq("import", str(seed_queue))
    rows = {x["id"]: x for x in json.loads(irq("status", "--offline", "--json").out)["experiments"]}
    assert rows["Q-001"]["detail"] == "RUNNING when imported; irq cannot ask about it (`irq record Q-001 HOW` once it ends)"
    assert "irq cannot ask its scheduler: once it ended, `irq record Q-001 completed|failed|cancelled`" in irq(
        "show", "Q-001").out


TIME_LIKE = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d[^\"]*")


def test_every_json_time_is_iso_utc_with_z(irq, seed_queue):
    irq("import", str(seed_queue))
    for args in (["status", "--offline", "--json"], ["show", "Q-004", "--json"], ["add", "Q-100", "-t", "x", "--json"]):
        out = irq(*args).out
        times = TIME_LIKE.findall(out)
        assert times, args
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t) for t in times), (args, set(times))


def test_one_time_and_number_format():
    from datetime import datetime, timedelta, timezone

    assert iso(datetime(2026, 1, 14, 4, 20, 54, 123456)) == "2026-01-14T04:20:54Z"
    assert iso(datetime(2026, 1, 14, 6, 20, 54, tzinfo=timezone(timedelta(hours=2)))) == "2026-01-14T04:20:54Z"
    assert [num(0.06880000001), num(0.0688), num(12), num(None), num(1234567.0)] == [
        "0.0688", "0.0688", "12", "", "1.235e+06"]


def test_a_closed_pipe_exits_quietly(tmp_path, irq):
    irq("init")
    big = "x" * 100_000  # more than a pipe holds: the writer meets the closed end
    assert irq("add", "Q-001", "--title", big, "--notes", big, "--hypothesis", big).code == 0
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "IRQ_USER_CONFIG": str(tmp_path / "none.toml")}
    for cmd in ("show Q-001", "show Q-001 --json", "status --offline --json"):
        p = subprocess.run(["bash", "-c", f"set -o pipefail; {sys.executable} -m irq {cmd} | head -c 10"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and p.stderr == "", (cmd, p.returncode, p.stderr[-500:])


def test_submit_prints_each_outcome_once(tmp_path, irq):
    irq("init")
    irq("add", "Q-001", "--title", "no config: the job ends at once")
    r = irq("submit", "Q-001", "--no-check")
    assert r.code == 0, r
    assert r.out.count("Q-001") == 1 and r.out.startswith("Q-001: submitted as job")
    assert "Q-001" not in r.err
    irq("add", "Q-002", "--title", "again, verbose")
    r = irq("submit", "Q-002", "--no-check", "--verbose")
    assert r.out.count("Q-002") == 1 and "Q-002: submitted as job" in r.err


def test_fetch_names_a_job_still_completing(tmp_path, irq, seed_queue, ledger):
    from irq.cli import render
    from irq.jobs.actions import FetchReport
    from irq.jobs.fetch import still_finishing

    irq("import", str(seed_queue))
    con = sqlite3.connect(tmp_path / "queue.db")
    con.execute("UPDATE attempt SET backend='slurm:x', state='COMPLETING' WHERE experiment_id='Q-001'")
    con.commit()
    con.close()
    still = still_finishing(ledger)
    assert [(a.experiment_id, a.state) for a in still] == [("Q-001", "COMPLETING"), ("Q-002", "PENDING")]
    first, second = render.fetched(FetchReport([], still))
    assert first == "Q-001 attempt 1: job 55239690 is still COMPLETING; fetch again once it ends"
    assert second.startswith("Q-002 attempt 1: imported from queue.md as PENDING; irq cannot ask its scheduler")
    assert [a.experiment_id for a in still_finishing(ledger, ["Q-001"])] == ["Q-001"]
    assert render.fetched(FetchReport([], [])) == ["nothing to fetch: no attempt has finished since the last fetch"]


def _running(tmp_path: Path, exp: str = "Q-001") -> Path:
    """Q-001's attempt runs locally as job 7 in run1/ (its job folder as the local runner keeps
    it while the job runs: the scheduler's answer); returns the run folder."""
    import os

    from tests.test_local_backend import _running_folder

    _running_folder(tmp_path / ".irq" / "local" / "jobs", "7", os.getpid())
    run = tmp_path / "run1"
    run.mkdir()
    con = sqlite3.connect(tmp_path / "queue.db")
    con.execute("UPDATE attempt SET backend='local', job_id='7', run_dir=?, state='RUNNING' WHERE experiment_id=?",
                (str(run), exp))
    (token,) = con.execute("SELECT token FROM attempt WHERE experiment_id=? AND job_id='7'", (exp,)).fetchone()
    con.commit()
    con.close()
    job = tmp_path / ".irq" / "local" / "jobs" / "7" / "job.json"  # named as irq names its jobs: with the token
    job.write_text(json.dumps({**json.loads(job.read_text()), "name": f"{exp}.{token}"}))
    return run


def test_log_follow_prints_new_lines_and_curve_rows_once(tmp_path, irq, seed_queue, ledger):
    from irq.backends.registry import Backends
    from irq.cli.follow import LogFollower
    from irq.config import load_config
    from irq.jobs.follow import follow
    from irq.ui import UI

    irq("import", str(seed_queue))
    run = _running(tmp_path)
    log, curve = run / "slurm-7.out", run / "curve.jsonl"
    log.write_text("start\n")
    curve.write_text(json.dumps({"step": 10, "loss": 0.5, "val_mse": 0.25}) + "\n")
    writes = iter([
        lambda: (log.write_text("start\nstep 20\n"), curve.write_text(curve.read_text() + json.dumps(
            {"step": 20, "loss": 0.4, "val_mse": 0.2, "best_val_mse": 0.2}) + "\n{\"step\": 3")),  # a row being written
        lambda: (run / "status.json").write_text('{"status": "completed"}'),
    ])
    ui, printed = UI(), []
    ui.print = lambda *a, **k: printed.append(a[0])  # type: ignore[method-assign]
    ui.note = lambda m: printed.append("note: " + m)  # type: ignore[method-assign]
    follower = LogFollower(ui, lines=40)
    with Backends(load_config()) as b:
        for look in follow(ledger, b, "Q-001", 0.01, sleep=lambda s: next(writes)()):
            follower.show(look)
    assert printed == [
        "note: Q-001 attempt 1, job 7:", "start", "curve step 10  loss 0.5  val_mse 0.25",
        "step 20", "curve step 20  loss 0.4  val_mse 0.2  best_val_mse 0.2",
        "note: Q-001 attempt 1 has finished; `irq fetch Q-001`",
    ]


def test_log_follow_from_the_command_line(tmp_path, irq, seed_queue):
    irq("import", str(seed_queue))
    run = _running(tmp_path)
    (run / "slurm-7.out").write_text("".join(f"line {i}\n" for i in range(100)))
    (run / "curve.jsonl").write_text(json.dumps({"step": 5, "loss": 1.0, "val_mse": 0.5}) + "\n")
    (run / "status.json").write_text("{}")
    r = irq("log", "Q-001", "-f", "-n", "3")
    assert r.code == 0 and r.out == "line 97\nline 98\nline 99\ncurve step 5  loss 1  val_mse 0.5\n", r
    assert "has finished" in r.err
    r = irq("log", "Q-001", "-f", "-n", "0")  # none of the backlog ([-0:] once printed all of it)
    assert r.code == 0 and r.out == "curve step 5  loss 1  val_mse 0.5\n", r
    assert irq("log", "Q-001", "-n", "0").out == "" and irq("log", "Q-001", "-n", "1").out == "line 99\n"


def test_status_watch_prints_one_block_per_refresh_with_the_curve(tmp_path, irq, seed_queue):
    irq("import", str(seed_queue))
    run = _running(tmp_path)
    (run / "curve.jsonl").write_text(json.dumps({"step": 5, "loss": 1.0, "val_mse": 0.5}) + "\n")
    r = irq("status", "--offline", "--watch", "0.1", "--count", "2")
    assert r.code == 0, r
    blocks = r.out.split("\n\n")
    assert len(blocks) == 2 and blocks[0] == blocks[1].rstrip("\n")
    q1 = next(line for line in blocks[0].splitlines() if "\tQ-001\t" in line)
    assert q1.endswith("RUNNING; step 5  loss 1  val_mse 0.5")
    # with --json, one JSON document per refresh and line (JSON Lines): two documents in a row were no JSON
    r = irq("status", "--offline", "--watch", "0.1", "--count", "2", "--json")
    lines = r.out.splitlines()
    assert r.code == 0 and len(lines) == 2, r
    docs = [json.loads(line) for line in lines]
    assert docs[0] == docs[1] and {e["id"] for e in docs[0]["experiments"]} >= {"Q-001"}


def test_daemon_status_json_uses_the_same_time_format(irq, ledger):
    from datetime import datetime

    ledger.set_meta("daemon_last_cycle", datetime(2026, 1, 14, 4, 20, 54, 123456).isoformat())
    assert json.loads(irq("daemon", "status", "--json").out)["last_cycle"] == "2026-01-14T04:20:54Z"


def test_status_prints_a_result_in_the_one_number_format(tmp_path, irq, seed_queue):
    irq("import", str(seed_queue))
    con = sqlite3.connect(tmp_path / "queue.db")
    con.execute("""UPDATE attempt SET results='{"val_mse": 0.068812345}' WHERE experiment_id='Q-004' AND number=6""")
    con.commit()
    con.close()
    rows = {x["id"]: x for x in json.loads(irq("status", "--offline", "--json").out)["experiments"]}
    assert rows["Q-004"]["detail"] == "val_mse 0.06881"  # as `irq fetch` prints it (4 significant digits)


def test_status_names_a_backend_that_did_not_answer_in_json_too(capsys):
    from irq.cli import render
    from irq.jobs.status import StatusReport
    from irq.ui import UI

    for as_json in (True, False):
        render.status_page(UI(), StatusReport([], None, {"slurm:fasrc": "connection refused"}), as_json)
        err = capsys.readouterr().err
        assert "warning: slurm:fasrc did not answer (connection refused)" in err, (as_json, err)


def test_ctrl_c_ends_a_watch_or_a_follow_quietly_with_the_interrupted_exit_code():
    """docs/errors.md: 130 when interrupted; a watch and `log -f` once exited 0."""
    import pytest

    from irq.cli.follow import follow_log, watch
    from irq.ui import UI

    def interrupted(*_a):
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exc:
        watch(UI(), 1.0, None, lambda: None, sleep=interrupted)
    assert exc.value.code == 130

    def looks():
        raise KeyboardInterrupt
        yield

    with pytest.raises(SystemExit) as exc:
        follow_log(UI(), looks(), 10)
    assert exc.value.code == 130


def test_an_unknown_state_is_a_usage_mistake(irq, ledger):
    assert irq("status", "--state", "bogus").code == 2  # what you typed: exit 2 (docs/errors.md), not 1


def test_following_a_run_that_writes_no_status_json_ends_when_the_scheduler_says_so(tmp_path, irq, seed_queue, ledger):
    """The run contract asks for no status.json: `irq log -f` of an own script once kept looking
    after its job ended, until another command refreshed the ledger. The scheduler is asked at
    most every ASK_EVERY seconds, and at once on the first look."""
    from irq.backends.registry import Backends
    from irq.config import load_config
    from irq.jobs import follow as fm

    irq("import", str(seed_queue))
    run = _running(tmp_path)
    (run / "slurm-7.out").write_text("working\n")
    task = tmp_path / ".irq" / "local" / "jobs" / "7" / "task-x.json"
    now = [0.0]
    asked = []
    real = fm.ended

    def counting(backend, a):
        asked.append(now[0])
        return real(backend, a)

    def tick(_s):
        now[0] += 10
        if now[0] == 40:  # the job ends (no status.json): its task says so, as the local runner writes it
            task.write_text(json.dumps({**json.loads(task.read_text()), "state": "COMPLETED", "exit_code": 0}))

    import pytest

    mp = pytest.MonkeyPatch()
    mp.setattr(fm, "ended", counting)
    try:
        with Backends(load_config()) as b:
            looks = list(fm.follow(ledger, b, "Q-001", 10, sleep=tick, clock=lambda: now[0]))
    finally:
        mp.undo()
    assert looks[-1].finished and not any(x.finished for x in looks[:-1])
    assert asked == [0.0, 30.0, 60.0]  # at once, then every 30 s: it ended at 40, seen at 60
    assert len(looks) == 7


def test_fetch_json_names_a_job_still_running_as_the_text_does(tmp_path, irq, seed_queue):
    """`irq fetch Q-001 --json` printed [] where the text said the job is still running."""
    irq("import", str(seed_queue))
    _running(tmp_path)
    text = irq("fetch", "Q-001").out
    assert "Q-001 attempt 1: job 7 is still RUNNING; fetch again once it ends" in text
    (entry,) = json.loads(irq("fetch", "Q-001", "--json").out)
    assert entry == {"id": "Q-001", "attempt": 1, "state": "RUNNING",
                     "detail": "job 7 is still RUNNING; fetch again once it ends"}


def test_a_fetched_failure_names_its_state_once():
    from irq.cli import render
    from irq.jobs.actions import FetchReport
    from irq.jobs.fetch import FetchOutcome

    rep = FetchReport([FetchOutcome("Q-001", 1, "FAILED", "FAILED (exit code 1)"),
                       FetchOutcome("Q-002", 1, "FAILED", "`python: command not found`"),
                       FetchOutcome("Q-003", 1, "DONE", "val_mse 0.0121")], [])
    assert render.fetched(rep) == ["Q-001 attempt 1: FAILED (exit code 1)",
                                   "Q-002 attempt 1: FAILED (`python: command not found`)",
                                   "Q-003 attempt 1: DONE (val_mse 0.0121)"]


def test_log_follow_of_an_array_follows_each_tasks_log_and_drops_no_line():
    """The tasks' logs were joined into one text: a line a task wrote mid-way changed the middle of
    it, the follower took it for a new window and printed the tail only, so seeds' lines went
    missing. Each log is followed on its own, its lines named by its seed."""
    from types import SimpleNamespace

    from irq.cli.follow import LogFollower
    from irq.ui import UI

    ui, printed = UI(), []
    ui.print = lambda *a, **k: printed.append(a[0])  # type: ignore[method-assign]
    ui.note = lambda m: None  # type: ignore[method-assign]
    follower = LogFollower(ui, lines=40)

    def look(a: str, b: str):
        return SimpleNamespace(exp_id="A", attempt=1, job_id="5", logs={"seed_0": a, "seed_1": b}, curve={},
                               finished=False)

    follower.show(look("s0 step 1\n", "s1 step 1\n"))
    follower.show(look("s0 step 1\ns0 step 2\n", "s1 step 1\n"))
    follower.show(look("s0 step 1\ns0 step 2\n", "s1 step 1\ns1 step 2\ns1 step 3\n"))
    follower.show(look("s0 step 1\ns0 step 2\ns0 step 3\n", "s1 step 1\ns1 step 2\ns1 step 3\n"))
    assert printed == ["seed_0: s0 step 1", "seed_1: s1 step 1", "seed_0: s0 step 2", "seed_1: s1 step 2",
                       "seed_1: s1 step 3", "seed_0: s0 step 3"]
