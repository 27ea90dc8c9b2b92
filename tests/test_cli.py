"""A researcher's first session: init, add experiments, look at them, export queue.md."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from irq.ledger.database import Ledger


def test_init_creates_the_ledger_and_a_commented_config(tmp_path, irq):
    r = irq("init")
    assert r.code == 0 and "created ledger queue.db" in r.out
    assert (tmp_path / "queue.db").exists()
    cfg = (tmp_path / "irq.toml").read_text()
    assert cfg.startswith("# irq configuration") and "[clusters.fasrc]" in cfg
    r = irq("init")
    assert r.code == 0 and "ledger already at queue.db" in r.out


def test_db_can_be_chosen_by_flag_or_environment(tmp_path, irq, monkeypatch):
    assert irq("--db", "other.db", "init").code == 0
    assert (tmp_path / "other.db").exists()
    monkeypatch.setenv("IRQ_DB", str(tmp_path / "env.db"))
    assert irq("init").code == 0
    assert (tmp_path / "env.db").exists()


def test_add_from_flags_and_a_trainer_config(tmp_path, irq):
    irq("init")
    cfg = tmp_path / "q003.json"
    cfg.write_text(json.dumps({"rank": 20, "diffusion_steps": 10, "train_steps": 100000, "batch_size": 2048,
                               "learning_rate": 1e-4, "mining": "adversarial", "mining_opt_steps": 2}))
    r = irq("add", "Q-001", "--title", "Baseline", "--priority", "high", "--gpus", "1", "--mem", "16GB",
            "--time", "2 hours", "--partition", "gpu_test", "-p", "mining=none")
    assert r.code == 0, r
    r = irq("add", "Q-003", "--title", "Adversarial", "--config-file", str(cfg), "--after", "Q-001",
            "--seeds", "0-9", "-p", "train_steps=1000", "--json")
    assert r.code == 0, r
    exp = json.loads(r.out)
    assert exp["parameters"] == {"rank": 20, "diffusion_steps": 10, "train_steps": 1000, "batch_size": 2048,
                                 "learning_rate": 0.0001, "mining": "adversarial"}
    assert exp["depends_on"] == ["Q-001"] and exp["seeds"] == list(range(10))
    assert exp["config_path"] == str(cfg)
    with Ledger(tmp_path / "queue.db").transaction() as s:
        q1 = Ledger.experiment(s, "Q-001")
    assert q1.priority == "HIGH" and q1.resources == {"gpus": 1, "memory_mb": 16384, "time_minutes": 120,
                                                      "partition": "gpu_test"}


def test_status_groups_by_state_and_speaks_json(irq, seed_queue):
    irq("init")
    assert irq("import", str(seed_queue)).code == 0
    r = irq("status", "--offline")
    assert r.code == 0
    states = [line.split("\t")[0] for line in r.out.splitlines()]  # piped: one row per line, state first
    assert states == ["IN_PROGRESS"] * 3 + ["DONE"] + ["PROPOSED"] * 6
    data = json.loads(irq("status", "--offline", "--json").out)
    rows = {row["id"]: row for row in data["experiments"]}
    assert rows["Q-003"]["detail"] == "queued locally, waiting for Q-001 (IN_PROGRESS), Q-002 (IN_PROGRESS)"  # its dependencies first
    assert rows["Q-004"]["attempts"] == 6 and rows["Q-004"]["detail"] == "val_mse 0.0688"
    assert rows["Q-001"]["job_id"] == "55239690" and rows["Q-001"]["scheduler_state"] == "RUNNING"


def test_show_lists_every_attempt_with_its_error_cause_and_fix(irq, seed_queue):
    irq("import", str(seed_queue))
    r = irq("show", "Q-004")
    assert r.code == 0
    for fact in ("attempt 1", "python: command not found", "Module load lines commented out",
                 "attempt 6", "Validation MSE: 0.0688", "python/3.10.13-fasrc01"):
        assert fact in r.out
    data = json.loads(irq("show", "Q-004", "--json").out)
    assert [a["number"] for a in data["attempts"]] == [1, 2, 3, 4, 5, 6]
    assert data["attempts"][2]["root_cause"].startswith("Cluster uses versioned module names")
    assert data["experiment"]["state"] == "DONE"


def test_export_writes_queue_md_that_imports_back(tmp_path, irq, seed_queue):
    irq("import", str(seed_queue))
    r = irq("export", "queue.md")
    assert r.code == 0 and (tmp_path / "queue.md").exists()
    assert irq("--db", "copy.db", "import", "queue.md").code == 0
    again = irq("--db", "copy.db", "export")
    assert again.out == (tmp_path / "queue.md").read_text()


def test_import_reports_the_mojibake_repair(irq, seed_queue):
    r = irq("import", str(seed_queue))
    assert "repaired double-encoded UTF-8" in r.out
    assert "imported 10 experiments (3 IN_PROGRESS, 1 DONE, 6 PROPOSED) and 8 attempts" in r.out


def test_ready_promotes_a_future_extension(irq, seed_queue):
    irq("import", str(seed_queue))
    r = irq("ready", "Q-006")
    assert r.code == 0 and "Q-006 is READY" in r.out
    data = json.loads(irq("status", "--offline", "--json").out)
    assert {row["id"]: row["state"] for row in data["experiments"]}["Q-006"] == "READY"


def test_daemon_is_a_group_of_run_start_stop_status(irq):
    irq("init")
    irq("add", "Q-001", "--title", "First", "--priority", "high")
    irq("add", "Q-002", "--title", "Second", "--after", "Q-001")
    r = irq("daemon", "run", "--dry-run", "--json")
    assert r.code == 0, r
    plan = json.loads(r.out)
    assert plan["submit"] == ["Q-001"] and "Q-001" in plan["wait"]["Q-002"]
    r = irq("daemon", "run", "--dry-run")
    assert r.code == 0 and "submit Q-001" in r.out, r
    st = json.loads(irq("daemon", "status", "--json").out)
    assert st["running"] is False and st["last_cycle"] is None
    assert "no daemon was running" in irq("daemon", "stop").out
    r = irq("daemon", "sometimes")
    assert r.code == 2 and "No such command" in r.err, r
    with Ledger(Path("queue.db")).transaction() as s:  # the dry run changed nothing
        assert {e.id: e.state for e in Ledger.experiments(s)} == {"Q-001": "READY", "Q-002": "READY"}


def test_render_and_check_preview_the_same_job(tmp_path, irq):
    irq("init")
    irq("add", "Q-001", "--title", "First", "-p", "mining=random", "-p", "colour=blue")
    r = irq("render", "Q-001", "-o", "job.sh")
    assert r.code == 0 and "colour" in r.err  # not a trainer key: said, not passed
    script = (tmp_path / "job.sh").read_text()
    assert "--mining random" in script and "--colour" not in script  # not a trainer flag...
    assert "export IRQ_PARAM_COLOUR=blue" in script and '"colour": "blue"' in script  # ...but the job gets it
    assert "# irq experiment Q-001 attempt 1 (First)" in script
    r = irq("check", "Q-001", "--json")
    checks = json.loads(r.out)["Q-001"]
    assert {c["name"] for c in checks} >= {"module loads"}
    assert r.code == (0 if all(c["ok"] for c in checks) else 1)


def test_a_bug_is_one_error_line_with_its_traceback_kept_and_the_ledger_unchanged(irq, tmp_path, monkeypatch):
    """The last boundary (irq/cli/app.py): an exception irq did not expect prints no traceback but
    `error:` and a `hint:` naming the file that keeps it, exits 70, and leaves the ledger as it was."""
    import sqlite3

    from irq.results import sweep

    irq("init")
    assert irq("add", "Q-001", "-t", "base", "-p", "rank=5").code == 0
    before = sqlite3.connect(tmp_path / "queue.db").execute("SELECT id, state, rev FROM experiment").fetchall()

    def broken(*args, **kwargs):
        raise ValueError("an unforeseen case")

    monkeypatch.setattr(sweep, "expand", broken)
    monkeypatch.delenv("IRQ_DEBUG")
    r = irq("sweep", "Q-001", "rank=1,2")
    assert r.code == 70 and "Traceback" not in r.err + r.out
    error, hint = r.err.strip().splitlines()
    assert error == "error: irq failed unexpectedly: ValueError: an unforeseen case"
    kept = Path(hint.split("its traceback is in ", 1)[1].split(";", 1)[0])
    assert hint.startswith("hint: this is a bug in irq") and kept.parent == tmp_path / "irq-cache"
    assert "Traceback" in kept.read_text() and "an unforeseen case" in kept.read_text()
    assert sqlite3.connect(tmp_path / "queue.db").execute("SELECT id, state, rev FROM experiment").fetchall() == before
    monkeypatch.setenv("IRQ_DEBUG", "1")
    with pytest.raises(ValueError, match="an unforeseen case"):
        irq("sweep", "Q-001", "rank=1,2")


def test_the_configured_export_follows_every_command_that_changes_the_ledger(irq, tmp_path):
    """irq.toml `export`: queue.md is re-exported after add, edit, ready, retry, retire, rm and
    import too (it was after submit, fetch, cancel and the daemon only, so it went stale)."""
    (tmp_path / "irq.toml").write_text('export = "docs/queue.md"\n')
    (tmp_path / "docs").mkdir()
    irq("init")
    queue = tmp_path / "docs" / "queue.md"

    def shown() -> str:
        return queue.read_text()

    assert irq("add", "Q-001", "-t", "first", "-p", "rank=5").code == 0
    assert "### Q-001: first" in shown()
    assert irq("edit", "Q-001", "-t", "renamed").code == 0 and "### Q-001: renamed" in shown()
    assert irq("add", "Q-002", "-t", "idea", "--proposed", "-p", "rank=6").code == 0
    assert "- [ ] **Q-002**: idea" in shown()
    r = irq("ready", "Q-002", "Q-999")  # the second is unknown: refused before anything changes
    assert r.code != 0 and "- [ ] **Q-002**: idea" in shown()
    assert irq("ready", "Q-002").code == 0 and "### Q-002: idea" in shown() and "**Q-002**" not in shown()
    assert irq("retire", "Q-002").code == 0 and "## RETIRED" in shown()
    assert irq("rm", "Q-001").code == 0 and "Q-001" not in shown()
    other = tmp_path / "other.md"
    other.write_text("# Experiment Queue\n\n## READY\n\n### Q-010: imported\n- **Priority**: HIGH\n")
    assert irq("import", str(other)).code == 0 and "### Q-010: imported" in shown()
    queue.unlink()
    (tmp_path / "docs").rmdir()  # the export's folder is gone: the change is made all the same
    r = irq("add", "Q-003", "-t", "third", "-p", "rank=7")
    assert r.code == 0 and "warning: the change is made, but queue.md was not re-exported" in r.err
    assert json.loads(irq("show", "Q-003", "--json").out)["experiment"]["state"] == "READY"


def test_hand_edits_of_the_exported_queue_md_are_kept_aside_never_overwritten(irq, tmp_path):
    """A researcher used to queue.md edits it by hand: the next command rewrote the file and the
    edit was gone, without a word. The edited file is now kept beside it, and irq says so; a file
    irq wrote itself is replaced quietly, and a hand-kept queue.md the export is pointed at is kept too."""
    queue = tmp_path / "queue.md"
    queue.write_text("# My queue\n\n## Ready\n\n### Q-001: kept by hand\n- **Notes**: years of notes\n")
    (tmp_path / "irq.toml").write_text('export = "queue.md"\n')
    irq("init")

    def kept() -> list[Path]:
        return sorted(tmp_path.glob("queue.md.edited-*"))

    r = irq("add", "Q-101", "-t", "first", "-p", "rank=5")
    assert r.code == 0 and len(kept()) == 1 and "years of notes" in kept()[0].read_text()
    assert "queue.md held text irq did not write there (kept by hand, or changed by hand since irq wrote it); " \
           "it is kept in queue.md.edited-" in r.err
    assert "### Q-101: first" in queue.read_text()
    kept()[0].unlink()
    assert irq("add", "Q-102", "-t", "second", "-p", "rank=6").code == 0
    assert kept() == []  # what irq wrote, replaced quietly
    queue.write_text(queue.read_text().replace("### Q-101: first", "### Q-101: first\n- **Notes**: my edit"))
    r = irq("edit", "Q-102", "-t", "renamed")
    assert r.code == 0 and "held text irq did not write there" in r.err, r
    (copy,) = kept()
    assert "- **Notes**: my edit" in copy.read_text() and "my edit" not in queue.read_text()
    assert "### Q-102: renamed" in queue.read_text()
    copy.unlink()
    queue.write_text(queue.read_text() + "\n<!-- a note to self -->\n")  # the daemon re-exports a stale file
    r = irq("daemon", "run", "--once", "--dry-run")
    assert kept() == [], r  # a dry run writes nothing
    r = irq("daemon", "run", "--once")
    assert r.code == 0 and "held text irq did not write there" in r.err, r
    assert "a note to self" in kept()[0].read_text() and "a note to self" not in queue.read_text()


def test_a_command_in_a_subfolder_uses_the_projects_ledger_and_init_makes_one_here(irq, tmp_path, monkeypatch):
    """The ledger is found as irq.toml is, from here upwards: `irq status` in results/ once said
    "no ledger at queue.db" and hinted `irq init`, which split the study into a second ledger."""
    irq("init")
    assert irq("add", "Q-001", "-t", "at the top", "-p", "rank=5").code == 0
    (tmp_path / "results" / "deeper").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "results" / "deeper")
    assert irq("add", "Q-002", "-t", "from below", "-p", "rank=6").code == 0
    assert not (tmp_path / "results" / "deeper" / "queue.db").exists()
    rows = json.loads(irq("status", "--json", "--offline").out)["experiments"]
    assert [r["id"] for r in rows] == ["Q-001", "Q-002"]
    monkeypatch.setenv("IRQ_DB", str(tmp_path / "other.db"))  # $IRQ_DB and --db still win
    assert irq("status", "--offline").code != 0
    monkeypatch.delenv("IRQ_DB")
    assert "created ledger queue.db" in irq("init").out  # init makes a new project here, as asked
    assert (tmp_path / "results" / "deeper" / "queue.db").exists()
    assert json.loads(irq("status", "--json", "--offline").out)["experiments"] == []


def test_the_repositorys_docs_queue_md_is_the_export_of_its_ledger(irq, tmp_path):
    """README says docs/queue.md is the export of queue.db: it was not, once export gained a line."""
    repo = Path(__file__).resolve().parent.parent
    copy = tmp_path / "study.db"
    copy.write_bytes((repo / "queue.db").read_bytes())  # the repository's ledger is never opened for writing
    r = irq("--db", str(copy), "export")
    assert r.code == 0, r
    assert r.out == (repo / "docs" / "queue.md").read_text(encoding="utf-8"), \
        "export queue.db again: irq --db queue.db export docs/queue.md"


def test_a_quoted_parameter_value_stays_text(irq):
    """-p reads numbers as numbers; in double quotes a value is text as written (queue.md writes such a value quoted)."""
    assert irq("init").code == 0
    r = irq("add", "t1", "-t", "x", "--command", "echo {a} {b}", "-p", "a=100", "-p", 'b="100"')
    assert r.code == 0, r
    params = json.loads(irq("show", "t1", "--json").out)["experiment"]["parameters"]
    assert params == {"a": 100, "b": "100"}
    assert '  - B: "100"' in irq("export").out


def test_edits_kept_aside_are_never_lost_to_a_later_copy_or_to_irq_export(irq, tmp_path, monkeypatch):
    """Two edits kept in the same second went to one name: the second copy replaced the first. And
    `irq export queue.md` wrote over a hand-kept or hand-edited queue.md without a word."""
    import irq.formats.queue_io as queue_io

    monkeypatch.setattr(queue_io, "_stamp", lambda: "20261205T000000Z")  # every copy in one second
    queue = tmp_path / "queue.md"
    queue.write_text("# My queue\n\n## Ready\n\n### Q-001: kept by hand\n- **Notes**: years of notes\n")
    irq("init")
    r = irq("export", "queue.md")
    assert r.code == 0 and "kept in queue.md.edited-20261205T000000Z" in r.err, r
    assert "### Q-001" not in queue.read_text()
    for n in (1, 2):
        queue.write_text(queue.read_text() + f"\n<!-- edit {n} -->\n")
        r = irq("export", "queue.md")
        assert r.code == 0 and "held text irq did not write there" in r.err, r
    copies = sorted(tmp_path.glob("queue.md.edited-*"))
    assert [p.name for p in copies] == ["queue.md.edited-20261205T000000Z", "queue.md.edited-20261205T000000Z-2",
                                        "queue.md.edited-20261205T000000Z-3"]
    assert "years of notes" in copies[0].read_text() and "edit 1" in copies[1].read_text()
    assert "edit 2" in copies[2].read_text()
    r = irq("export", "queue.md")  # what irq wrote itself: replaced quietly
    assert r.code == 0 and "by hand" not in r.err and len(list(tmp_path.glob("queue.md.edited-*"))) == 3, r


def test_irq_commands_exporting_at_once_never_take_each_others_text_for_a_hand_edit(tmp_path):
    """The check (is this what irq wrote?) and the write were not under a lock: two irq commands
    exporting at once each saw the other's text and kept it aside as a person's edit."""
    import subprocess
    import sys

    script = ("import sys; from pathlib import Path; from irq.formats.queue_io import write_export\n"
              "from irq.formats.queuelines import FORMAT_MARKER as M\n"
              "for i in range(300): write_export(Path(sys.argv[1]), f'# Q\\n{M}\\n' + f'{sys.argv[2]} {i}\\n' * 50)\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "queue.md"), w]) for w in "ab"]
    assert [p.wait(60) for p in procs] == [0, 0]
    assert sorted(tmp_path.glob("queue.md.edited-*")) == []


def test_a_failing_export_leaves_the_file_where_it_was(irq, tmp_path):
    """The hand-kept file was moved aside before the render, and a template error then left no
    queue.md at all: only the copy, which the error did not name."""
    irq("init")
    queue = tmp_path / "queue.md"
    queue.write_text("# My queue\n\nyears of notes\n")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "queue.md.j2").write_text("{{ nonexistent.attr }}\n")
    r = irq("export", "queue.md")
    assert r.code != 0 and "nonexistent" in r.err, r
    assert queue.read_text() == "# My queue\n\nyears of notes\n" and list(tmp_path.glob("queue.md.edited-*")) == []


def test_an_export_through_a_symlink_keeps_the_link_and_copies_the_hand_edits(irq, tmp_path):
    """The kept copy was the link itself, and a plain file replaced the link: the shared file was
    never written again."""
    irq("init")
    (tmp_path / "shared").mkdir()
    target = tmp_path / "shared" / "queue.md"
    target.write_text("# My queue\n\nyears of notes\n")
    (tmp_path / "link.md").symlink_to(target)
    r = irq("export", "link.md")
    assert r.code == 0 and "held text irq did not write there" in r.err, r
    assert (tmp_path / "link.md").is_symlink() and "<!-- irq:queue v1" in target.read_text()
    (copy,) = tmp_path.glob("link.md.edited-*")
    assert not copy.is_symlink() and copy.read_text() == "# My queue\n\nyears of notes\n"


def test_a_ledger_named_from_another_folder_works_in_its_own_project(irq, tmp_path, monkeypatch):
    """`irq --db irq-demo/queue.db results` (as the demo suggests) looked for the fetched runs from
    the current folder (no curve, nothing to plot), and a submit from there ran the job here."""
    proj = tmp_path / "proj"
    proj.mkdir()
    monkeypatch.chdir(proj)
    irq("init")
    (proj / "irq.toml").write_text('[project]\ncommand = "echo {x}"\n[local]\nslots = 1\n')
    assert irq("add", "Q-001", "-p", "x=1").code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    r = irq("--db", "../proj/queue.db", "render", "Q-001")
    assert r.code == 0 and f"{proj}/.irq/local/runs/q001_" in r.out and "echo 1" in r.out, r
    monkeypatch.setenv("IRQ_DB", str(proj / "queue.db"))
    assert f"{proj}/.irq/local/runs/" in irq("render", "Q-001").out
    (elsewhere / "irq.toml").write_text('[project]\ncommand = "echo other {x}"\n')
    r = irq("--db", "../proj/queue.db", "--config", "irq.toml", "render", "Q-001")  # --config still wins
    assert "echo other 1" in r.out, r


@pytest.mark.parametrize("argv", [[], ["daemon"]])
def test_a_command_group_alone_prints_its_help_on_stdout(irq, argv):
    """`irq` alone printed `error: Usage: …` and the whole help to stderr (52 lines, exit 2)."""
    r = irq(*argv)
    assert r.code == 0 and r.out.startswith("Usage: irq") and "Commands:" in r.out and r.err == "", r


def test_submit_with_nothing_ready_says_so(irq):
    """It printed nothing at all."""
    irq("init")
    r = irq("submit", "--all-ready")
    assert r.code == 0 and r.out == "" and "nothing to submit: no READY experiment" in r.err, r


def test_a_shown_login_prompt_goes_to_stderr(monkeypatch, capsys):
    """input() wrote the prompt to stdout, into what `--json` prints."""
    import io

    from irq.cli.common import _echoed

    monkeypatch.setattr("sys.stdin", io.StringIO("me\n"))
    assert _echoed("User: ") == "me"
    got = capsys.readouterr()
    assert got.out == "" and got.err == "User: "
