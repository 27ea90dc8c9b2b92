"""`irq status`'s refresh when nothing changed (irq/jobs/quickstatus.py): the same decision as the
full refresh, one round trip whatever path it takes, an early exec used only when its command
line is the very same, and neither the ORM nor paramiko loaded. `ssh` here is a script that
logs its arguments and answers what the test wrote (the real thing: bench/bench_status.py and
the loopback cluster tests)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from irq.backends.base import JobInfo
from irq.backends.slurm_output import MARK, SACCT_NOT_RUN
from irq.backends.ssh import ahead
from irq.jobs.observed import unchanged
from irq.ledger.database import Ledger
from irq.ledger.models import Attempt, Experiment

T0 = datetime(2026, 11, 23, 16, 48, tzinfo=timezone.utc)

FAKE_SSH = """#!{python}
import json, os, sys
with open(os.environ["FAKE_SSH_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
reply = open(os.environ["FAKE_SSH_REPLY"]).read()
if reply.startswith("DENIED"):
    sys.stderr.write("me@login.example.org: Permission denied (keyboard-interactive).\\n")
    sys.exit(255)
sys.stdout.write(reply)
"""


def reply(state: str, job: str = "101", sacct: bool | None = None) -> str:
    """What the refresh's shell prints: sacct's section only when it ran, by default (as the real
    shell decides) when squeue does not show the job live."""
    code = "0:0" if state in ("RUNNING", "PENDING") else "1:0"
    end = "Unknown" if state in ("RUNNING", "PENDING") else "2026-11-23T16:50:00"
    sq = f"{job}|{state}|None|2026-11-23T16:48:00|Q-001.irq-x\n" if state in ("RUNNING", "PENDING") else ""
    if not ((not sq) if sacct is None else sacct):
        return f"{MARK}\n{sq}{MARK} rc=0\n{MARK} rc=0 {SACCT_NOT_RUN}\n"
    return (f"{MARK}\n{sq}{MARK} rc=0\n{job}|{state}|{code}|2026-11-23T16:48:00|{end}|Q-001.irq-x\n"
            f"{MARK} rc=0\n")


@pytest.fixture
def project(tmp_path: Path, monkeypatch, ledger: Ledger) -> Path:
    ssh = tmp_path / "ssh"
    ssh.write_text(FAKE_SSH.format(python=sys.executable))
    ssh.chmod(0o755)
    (tmp_path / "ssh_config").write_text("")
    monkeypatch.setenv("IRQ_SSH", str(ssh))
    monkeypatch.setenv("IRQ_CONTROL_DIR", str(tmp_path / "cm"))
    monkeypatch.setenv("FAKE_SSH_LOG", str(tmp_path / "ssh.log"))
    monkeypatch.setenv("FAKE_SSH_REPLY", str(tmp_path / "reply"))
    (tmp_path / "reply").write_text(reply("RUNNING"))
    write_toml(tmp_path, 22)
    now = datetime.now(timezone.utc)
    with ledger.transaction() as s:
        exp = Ledger.add_experiment(s, Experiment(id="Q-001", seq=1, title="t", state="IN_PROGRESS"))
        Ledger.new_attempt(s, exp, token="irq-x", backend="slurm:c", state="PENDING", job_id="101", submitted_at=now)
    ledger.set_meta("job_limit:slurm:c", json.dumps({"limit": 2, "source": "sacctmgr QOS twojobs",
                                                     "at": now.isoformat()}))
    return tmp_path


def write_toml(root: Path, port: int) -> None:
    (root / "irq.toml").write_text(f"""backend = "c"
[clusters.c]
host = "login.example.org"
port = {port}
user = "me"
repo_url = "x"
workdir = "/w"
ssh_config = "{root / 'ssh_config'}"
known_hosts = "{root / 'kh'}"
""")


def execs(root: Path) -> list[list[str]]:
    log = root / "ssh.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def calls(root: Path) -> int:
    with Ledger(root / "queue.db").transaction() as s:
        return Ledger.calls_since(s, datetime(2000, 1, 1, tzinfo=timezone.utc))


def the_attempt(root: Path) -> Attempt:
    with Ledger(root / "queue.db").transaction() as s:
        return Ledger.attempts(s)[0]


def status_process(root: Path) -> tuple[dict, set[str]]:
    """`irq status --json` as a process of its own: what it printed, and which heavy modules it loaded."""
    code = ("import runpy, sys\nsys.argv = ['irq', 'status', '--json']\ntry:\n"
            "    runpy.run_module('irq', run_name='__main__')\nfinally:\n"
            "    sys.stderr.write('LOADED ' + ' '.join(m for m in ('sqlalchemy', 'sqlmodel', 'paramiko', 'pydantic') "
            "if m in sys.modules) + '\\n')\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=root, env=os.environ, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    loaded = p.stderr.rpartition("LOADED ")[2].split()
    return json.loads(p.stdout), set(loaded)


def test_a_second_status_in_a_row_takes_one_exec_started_ahead_and_no_orm(project, irq):
    r = irq("status", "--json")  # PENDING -> RUNNING: the full refresh, with the answer already read
    assert r.code == 0, r
    first = execs(project)
    assert len(first) == 1 and the_attempt(project).state == "RUNNING" and calls(project) == 1  # squeue alone
    assert not ahead._started
    out, loaded = status_process(project)  # nothing changes now: the quick path
    assert not loaded, loaded  # neither the ORM nor paramiko, nor pydantic (irq.toml as validated last time)
    assert execs(project) == first * 2  # the same command line, once
    assert out["experiments"][0]["scheduler_state"] == "RUNNING"
    assert "job slots: 1 of 2 used, 1 free (limit from sacctmgr QOS twojobs)" in json.dumps(out)
    assert calls(project) == 2  # squeue recorded (sacct not run for a live job), as the full refresh records it


def test_an_early_exec_from_an_older_configuration_is_never_used(project, irq):
    assert irq("status", "--json").code == 0
    write_toml(project, 2200)
    (project / "reply").write_text(reply("RUNNING"))
    n = len(execs(project))
    r = irq("status", "--json")
    assert r.code == 0, r
    new = [e for e in execs(project)[n:] if e[e.index("-p") + 1] == "2200"]
    assert len(new) == 1  # the early exec (port 22) was killed unread, this one answered
    assert json.loads((project / "cm" / "status-ahead.json").read_text())[
        f"{(project / 'queue.db').resolve()}|slurm:c"]["ssh"][:5][-1] == "2200"
    assert not ahead._started


def test_an_irq_toml_changed_since_is_validated_again(project, irq):
    assert irq("status", "--json").code == 0
    toml = project / "irq.toml"
    toml.write_text(toml.read_text().replace("port = 22", 'port = "22"'))
    r = irq("status", "--json")
    assert r.code != 0 and "port" in r.err, r  # pydantic's word, not the remembered settings


def test_a_change_goes_through_the_full_refresh_on_the_same_answer(project, irq):
    assert irq("status", "--json").code == 0
    (project / "reply").write_text(reply("FAILED"))
    n = len(execs(project))
    assert irq("status", "--json").code == 0
    assert len(execs(project)) == n + 1  # the quick path read it, the full refresh recorded it
    att = the_attempt(project)
    assert att.state == "FAILED" and att.exit_code == 1 and calls(project) == 3  # squeue, then squeue and sacct


def test_needs_login_is_said_after_one_attempt_and_keeps_the_state(project, irq):
    assert irq("status", "--json").code == 0
    (project / "reply").write_text("DENIED")
    n = len(execs(project))
    r = irq("status", "--json")
    assert r.code == 0 and "needs login: run irq login c" in r.err, r
    assert len(execs(project)) == n + 1  # BatchMode, once: the full refresh took the same answer
    att = the_attempt(project)
    assert att.state == "RUNNING" and att.unknown_since is not None


# ------------------------------------------------------------------ the decision, against the real one
ROWS = {
    "same": [JobInfo("101", "RUNNING", start=T0)],
    "pending": [JobInfo("101", "PENDING")],
    "started": [JobInfo("101", "RUNNING", start=T0 + timedelta(minutes=5))],
    "done": [JobInfo("101", "COMPLETED", exit_code=0, start=T0, end=T0 + timedelta(minutes=9))],
    "failed": [JobInfo("101", "FAILED", exit_code=1, start=T0, end=T0 + timedelta(minutes=9))],
    "tasks": [JobInfo("101_0", "RUNNING", start=T0), JobInfo("101_1", "PENDING")],
    "tasks_moved": [JobInfo("101_0", "RUNNING", start=T0), JobInfo("101_1", "RUNNING", start=T0)],
    "absent": [],
}
STORED = {
    "running": dict(state="RUNNING", started_at=T0),
    "running_no_start": dict(state="RUNNING"),
    "pending": dict(state="PENDING"),
    "unknown_since": dict(state="RUNNING", started_at=T0, unknown_since=T0),
    "array": dict(state="RUNNING", started_at=T0, tasks={"0": {"state": "RUNNING", "exit_code": None},
                                                         "1": {"state": "PENDING", "exit_code": None}}),
}


@pytest.mark.parametrize("stored", sorted(STORED))
@pytest.mark.parametrize("rows", sorted(ROWS))
def test_unchanged_says_what_the_full_refresh_would_write(tmp_path, stored, rows):
    """The quick path's "nothing changed" is exactly: the full refresh changes no column but
    updated_at (the oracle: irq/jobs/sync.py's _apply on a real ledger). A job the scheduler does
    not list always takes the full refresh."""
    from irq.jobs.sync import RefreshReport, _apply
    from irq.ledger import reader

    lg = Ledger(tmp_path / "q.db", create=True)
    with lg.transaction() as s:
        exp = Ledger.add_experiment(s, Experiment(id="Q-001", seq=1, title="t", state="IN_PROGRESS"))
        Ledger.new_attempt(s, exp, token="irq-x", backend="slurm:c", job_id="101", submitted_at=T0, **STORED[stored])
    with reader.reading(lg.path) as conn:
        rec = next(reader.records(conn, "SELECT * FROM attempt"))
    before = {k: v for k, v in rec.__dict__.items() if k != "updated_at"}
    with lg.transaction() as s:
        _apply(s, Ledger.attempts(s)[0], ROWS[rows] or None, RefreshReport())
    with reader.reading(lg.path) as conn:
        after = {k: v for k, v in next(reader.records(conn, "SELECT * FROM attempt")).__dict__.items()
                 if k != "updated_at"}
    lg.close()
    if (stored, rows) in (("running", "same"), ("pending", "pending"), ("array", "tasks")):
        assert unchanged(rec, ROWS[rows])  # the usual second status in a row
    if rows == "absent":  # a job the scheduler no longer lists: always the full refresh (it marks it unknown)
        assert not unchanged(rec, None)
    else:
        assert unchanged(rec, ROWS[rows]) == (before == after), (before, after)


@pytest.mark.parametrize("argv, db", [
    (["status"], ""), (["status", "--json"], ""), (["--db", "x.db", "status"], "x.db"),
    (["--db=x.db", "--config", "c.toml", "status", "--state", "FAILED", "--limit=3"], "x.db"),
    (["status", "--offline"], None), (["status", "--help"], None), (["status", "-w", "5"], None),
    (["show", "Q-001"], None), (["--db"], None), (["status", "--limit"], None), (["status", "status"], None),
    (["--json", "status"], None), ([], None),
])
def test_the_program_starts_the_exec_early_only_for_a_plain_refreshing_status(argv, db):
    from irq.cli.early import plain_status

    assert plain_status(argv) == db


def test_the_irq_program_starts_the_exec_before_it_loads_its_verbs(project, irq):
    """As `irq status` runs (its program name irq): the exec is under way before typer loads."""
    assert irq("status", "--json").code == 0  # remembers the command line
    probe = ("import sys\nsys.argv = ['irq', 'status']\nfrom irq.backends.ssh import ahead\nseen = []\n"
             "init = ahead.Started.__init__\n"
             "def spy(self, argv):\n    seen.append('typer' in sys.modules)\n    init(self, argv)\n"
             "ahead.Started.__init__ = spy\nimport irq.cli\nprint(len(ahead._started), *seen)\n")
    p = subprocess.run([sys.executable, "-c", probe], cwd=project, env=os.environ, capture_output=True, text=True,
                       timeout=60)
    assert p.stdout.split() == ["1", "False"], p


def test_a_remembered_command_line_is_run_only_from_a_file_nobody_else_may_write(project, irq):
    """It runs before anything checks it: a memo others could write, or one naming another
    program than irq's ssh, is ignored (the status then starts its exec after the config)."""
    assert irq("status", "--json").code == 0
    memo = project / "cm" / "status-ahead.json"
    key = f"{(project / 'queue.db').resolve()}|slurm:c"
    assert ahead.remembered(key)
    memo.chmod(0o666)
    assert ahead.remembered(key) is None
    memo.chmod(0o600)
    data = json.loads(memo.read_text())
    data[key]["ssh"][0] = "/bin/echo"
    memo.write_text(json.dumps(data))
    assert ahead.remembered(key) is None
    assert irq("status", "--json").code == 0 and not ahead._started  # and the status still works


def test_only_the_irq_program_starts_an_exec_as_it_loads(monkeypatch):
    from irq.cli import early

    monkeypatch.setattr(sys, "argv", [str(Path(early.__file__).parents[1] / "__main__.py"), "status"])
    assert early.irq_program()  # python -m irq
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/irq", "status"])
    assert early.irq_program()
    monkeypatch.setattr(sys, "argv", ["/venv/lib/python3.11/site-packages/pytest/__main__.py", "status"])
    assert not early.irq_program()  # python -m pytest status: not irq


SPY = ("import sys\nsys.argv = ['irq', 'status']\nfrom irq.backends.ssh import ahead\nseen = []\n"
       "init = ahead.Started.__init__\n"
       "def spy(self, argv):\n    seen.append(('sqlite3' in sys.modules, argv[-1]))\n    init(self, argv)\n"
       "ahead.Started.__init__ = spy\nimport irq.cli\nimport json\nprint(json.dumps(seen))\n")


def early_execs(root: Path) -> list[tuple[bool, str]]:
    """What the irq program started as it loaded: (sqlite3 loaded then, the remote command) each."""
    p = subprocess.run([sys.executable, "-c", SPY], cwd=root, env=os.environ, capture_output=True, text=True,
                       check=False, timeout=60)
    assert p.returncode == 0, p.stderr
    return [tuple(e) for e in json.loads(p.stdout)]


@pytest.mark.parametrize("sacct, n_calls", [(None, 3), (True, 6)])
def test_an_unchanged_ledger_starts_the_last_query_before_reading_the_ledger(project, irq, sacct, n_calls):
    """A status that found nothing changed keeps its query and the ledger's stamp after its own
    writes (squeue's call, and sacct's when it ran); the next one starts that query before it
    loads sqlite3, and uses its answer."""
    (project / "reply").write_text(reply("RUNNING", sacct=sacct))
    assert irq("status", "--json").code == 0  # PENDING -> RUNNING: the full refresh
    status_process(project)  # nothing changed: the quick path keeps the query
    key = ahead.query_key(project / "queue.db")
    kept = json.loads((project / "cm" / "status-ahead.json").read_text())[key]
    assert kept["sacct_args"][-2:] == ["-j", "101"] and kept["key"].endswith("|slurm:c")
    (early,) = early_execs(project)
    assert early[0] is False  # started from the memo, the ledger unread
    assert early[1].endswith("-j 101 -o JobID,State,ExitCode,Start,End,JobName")
    n = len(execs(project))
    out, loaded = status_process(project)
    assert not loaded and len(execs(project)) == n + 1  # one exec: the early one was the one used
    assert out["experiments"][0]["scheduler_state"] == "RUNNING" and calls(project) == n_calls


def test_a_ledger_written_since_reads_the_ledger_before_the_exec_starts(project, irq, ledger):
    """Any write since (here a second attempt) changes the stamp: the query is built from the
    ledger again, with the new job, and nothing is run from the remembered one."""
    assert irq("status", "--json").code == 0
    status_process(project)
    with ledger.transaction() as s:
        exp = Ledger.add_experiment(s, Experiment(id="Q-002", seq=2, title="t", state="IN_PROGRESS"))
        Ledger.new_attempt(s, exp, backend="slurm:c", state="PENDING", job_id="102",
                           submitted_at=datetime.now(timezone.utc))
    (early,) = early_execs(project)
    assert early[0] is True and "-j 101,102 " in early[1]


def test_a_remembered_query_is_run_only_from_a_file_nobody_else_may_write(project, irq):
    assert irq("status", "--json").code == 0
    status_process(project)
    memo = project / "cm" / "status-ahead.json"
    memo.chmod(0o664)
    assert early_execs(project) == []  # neither the query nor the command line: the status starts its own
    memo.chmod(0o600)
    data = json.loads(memo.read_text())
    data[ahead.query_key(project / "queue.db")]["sacct_args"] = ["-j", 101]  # not a list of strings
    memo.write_text(json.dumps(data))
    assert [e[0] for e in early_execs(project)] == [True]  # the ledger read instead
