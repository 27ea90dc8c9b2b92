"""User data is never markup: hostile strings from users and jobs print verbatim everywhere.

Each value goes in through the commands (titles, notes, parameters) or into the ledger as a job
would leave it (errors, root causes, log lines, curve rows), then out through status, show, log
and export, piped (plain lines), on a terminal (rich tables and panels) and as JSON.
"""
from __future__ import annotations

import json
import sqlite3

import pytest

from irq import errors
from irq.ui import UI, clean

HOSTILE = [
    "[/bold]",
    "[red]alarm",
    "ResNet [lr=1e-3]",
    "cannot open [/data/train.csv]",
    ":100: and :smile:",
    "queue.md:100: bad line",
    "\x1b[31mred\x1b[0m",
    "$(touch pwned) `id`",
    "long " + "x" * 3000,
    "مرحبا بالعالم שלום",
    "\u202eevil override",
]


def shown(value: str) -> str:
    """How a value must appear in text output: itself, control characters as visible escapes."""
    return clean(value)


def strings(data) -> set[str]:
    """Every string value inside parsed JSON."""
    if isinstance(data, dict):
        return set().union(*(strings(v) for v in data.values())) if data else set()
    if isinstance(data, list):
        return set().union(*(strings(v) for v in data)) if data else set()
    return {data} if isinstance(data, str) else set()


@pytest.fixture(params=["plain", "terminal"])
def mode(request, monkeypatch):
    if request.param == "terminal":  # rich's own switch: the consoles believe they write to a tty
        monkeypatch.setenv("TTY_COMPATIBLE", "1")
        monkeypatch.setenv("COLUMNS", "4000")
        monkeypatch.setenv("NO_COLOR", "1")  # styles may remain; no colour code comes from irq itself
    else:
        monkeypatch.setenv("TTY_COMPATIBLE", "0")
    return request.param


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_titles_notes_and_parameters_print_verbatim(irq, mode, value):
    assert irq("init").code == 0
    r = irq("add", "Q-001", "--title", value, "--notes", value, "-p", f"tag={value}", "--hypothesis", value)
    assert r.code == 0 and shown(value) in r.out, r
    for args in (["status", "--offline"], ["show", "Q-001"]):
        r = irq(*args)
        assert r.code == 0, r
        assert shown(value) in r.out, (args, r.out[-800:])
        assert "\x1b[31m" not in r.out and "💯" not in r.out and "😄" not in r.out
    for args in (["status", "--offline", "--json"], ["show", "Q-001", "--json"]):
        r = irq(*args)
        assert r.code == 0, r
        assert value in strings(json.loads(r.out))
    data = json.loads(irq("show", "Q-001", "--json").out)["experiment"]
    assert data["title"] == value and data["notes"] == value and data["parameters"]["tag"] == value


def _job_wrote(tmp_path, value: str) -> None:
    """Q-004's attempts failed with `value` as their error and cause; Q-001 runs locally and logs it."""
    con = sqlite3.connect(tmp_path / "queue.db")
    con.execute("UPDATE attempt SET error=?, root_cause=?, suggested_fix=? WHERE experiment_id='Q-004'",
                (value, value, value))
    con.execute("UPDATE experiment SET state='FAILED' WHERE id='Q-004'")
    run = tmp_path / "run1"
    run.mkdir()
    (run / "slurm-7.out").write_text(f"step 1\n{value}\nstep 2\n")
    (run / "curve.jsonl").write_text(json.dumps({"step": 100, "loss": 0.5, "val_mse": 0.25, "note": value}) + "\n")
    con.execute("UPDATE attempt SET backend='local', job_id='7', run_dir=?, state='RUNNING' WHERE experiment_id='Q-001'",
                (str(run),))
    con.commit()
    con.close()


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_job_errors_and_log_lines_print_verbatim(tmp_path, irq, seed_queue, mode, value):
    """A job log saying `cannot open [/data/train.csv]` used to make status and show exit 1 (MarkupError)."""
    assert irq("import", str(seed_queue)).code == 0
    _job_wrote(tmp_path, value)
    for args in (["status", "--offline"], ["show", "Q-004"], ["log", "Q-001"], ["log", "Q-001", "-f", "--count", "1"]):
        r = irq(*args)
        assert r.code == 0, (args, r)
        assert shown(value[:119]) in r.out or shown(value)[:119] in r.out, (args, r.out[-800:])  # status cuts at 120, with …
        assert "\x1b[31m" not in r.out
    r = irq("show", "Q-004", "--json")
    assert json.loads(r.out)["attempts"][0]["error"] == value
    assert irq("export").code == 0


def test_status_and_show_survive_a_bracket_in_a_job_log(tmp_path, irq, seed_queue):
    irq("import", str(seed_queue))
    _job_wrote(tmp_path, "cannot open [/data/train.csv]")
    for args in (["status", "--offline"], ["show", "Q-004"]):
        r = irq(*args)
        assert r.code == 0 and "cannot open [/data/train.csv]" in r.out, r


def test_error_messages_keep_brackets_and_colons(capsys, monkeypatch):
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    UI().error(errors.UsageError("queue.md:100: unknown field [x] :smile:", "see [docs] :100:"))
    err = capsys.readouterr().err
    assert "queue.md:100: unknown field [x] :smile:" in err and "see [docs] :100:" in err
    assert "💯" not in err and "😄" not in err


def test_an_import_error_at_line_100_is_not_an_emoji(tmp_path, irq, seed_queue):
    text = seed_queue.read_text().splitlines()
    lines = text + [""] * max(0, 99 - len(text))
    lines = lines[:99] + ["## Q-050: broken", "- **Status**: [NOT A STATE]"]
    (tmp_path / "bad.md").write_text("\n".join(lines) + "\n")
    r = irq("import", "bad.md")
    assert r.code != 0 and "💯" not in r.err and "Traceback" not in r.err
    assert ":100" in r.err or ":101" in r.err, r.err


@pytest.mark.parametrize("cmd", [["trust", "--help"], ["daemon", "run", "--help"], ["--help"]])
def test_help_texts_keep_their_brackets(irq, cmd):
    r = irq(*cmd)
    assert r.code == 0
    want = {"trust": "[clusters.NAME]", "daemon": "irq.toml [daemon]", "--help": "Examples:"}[cmd[0]]
    assert want in r.out, r.out


JOB_KEYS = ["a: b", "x\ny", "`k`", "- dash", "  sp", "[red]m[/red]", "", '"q"', "LR", "val_mse"]
JOB_VALUES = ["line1\nline2", "100", "true", "  padded", "`tick`", '"quoted"', ":100:", 7, 0.25, None, False]


def test_a_jobs_metric_names_and_values_survive_show_and_an_export_and_import(tmp_path, irq, seed_queue):
    """A job's metrics.json may name a metric 'x\\ny' or 'a: b' and give a text '100': `irq show` keeps
    each on its line, and queue.md writes them so that an import gives back the same names, values
    and types (a line break in a name once broke the export, and the export could not be imported)."""
    assert irq("import", str(seed_queue)).code == 0
    results = {k: JOB_VALUES[i % len(JOB_VALUES)] for i, k in enumerate(JOB_KEYS)} | {"n": "x\ny"}
    con = sqlite3.connect(tmp_path / "queue.db")
    con.execute("UPDATE attempt SET results=? WHERE experiment_id='Q-004' AND number=1", (json.dumps(results),))
    con.execute("UPDATE experiment SET parameters=json_set(parameters, '$.tag', ?) WHERE id='Q-004'", ("a\nb: c",))
    con.commit()
    con.close()
    shown_block = irq("show", "Q-004").out
    assert "\nline2" not in shown_block and "\ny" not in shown_block, shown_block
    assert irq("export", "out.md").code == 0
    (tmp_path / "two").mkdir()
    r = irq("--db", str(tmp_path / "two" / "queue.db"), "init")
    assert r.code == 0, r
    r = irq("--db", str(tmp_path / "two" / "queue.db"), "import", "out.md")
    assert r.code == 0, r
    got = json.loads(irq("--db", str(tmp_path / "two" / "queue.db"), "show", "Q-004", "--json").out)
    assert got["attempts"][0]["results"] == results
    assert [type(v) for v in got["attempts"][0]["results"].values()] == [type(v) for v in results.values()]
    assert got["experiment"]["parameters"]["tag"] == "a\nb: c"
    again = irq("--db", str(tmp_path / "two" / "queue.db"), "export").out
    assert again == (tmp_path / "out.md").read_text()


def test_text_that_looks_double_encoded_survives_an_export_and_import(tmp_path, irq, seed_queue):
    """A job's error quoting 'cafÃ©' and a note with 'â€”' are what was stored: an import of irq's own
    export keeps them (import once 'repaired' them into 'café' and '—'); a hand-kept queue.md still
    gets the repair (test_import_seed)."""
    assert irq("import", str(seed_queue)).code == 0
    con = sqlite3.connect(tmp_path / "queue.db")
    con.execute("UPDATE attempt SET error=? WHERE experiment_id='Q-004' AND number=1", ("open cafÃ©.csv: Ã© â€” ÃƒÂ©",))
    con.execute("UPDATE experiment SET notes=? WHERE id='Q-004'", ("dash â€” here",))
    con.commit()
    con.close()
    assert irq("export", "out.md").code == 0
    two = str(tmp_path / "two.db")
    r = irq("--db", two, "import", "out.md")
    assert r.code == 0 and "repaired" not in r.out, r.out
    got = json.loads(irq("--db", two, "show", "Q-004", "--json").out)
    assert got["experiment"]["notes"] == "dash â€” here"
    assert got["attempts"][0]["error"] == "open cafÃ©.csv: Ã© â€” ÃƒÂ©"
    assert irq("--db", two, "export").out == (tmp_path / "out.md").read_text()


@pytest.mark.parametrize("mode_", ["plain", "terminal"])
def test_show_lays_out_a_note_and_an_error_of_several_lines(tmp_path, irq, seed_queue, monkeypatch, mode_):
    """A note or a job's error of several lines is shown line under line beneath its key (show
    printed queue.md's JSON string, "first\\nsecond"), each line verbatim, control characters visible."""
    monkeypatch.setenv("TTY_COMPATIBLE", "1" if mode_ == "terminal" else "0")
    monkeypatch.setenv("COLUMNS", "200")
    assert irq("import", str(seed_queue)).code == 0
    note = "first line [bold]\n  indented \x1b[31mred\n\nlast"
    con = sqlite3.connect(tmp_path / "queue.db")
    con.execute("UPDATE experiment SET notes=? WHERE id='Q-004'", (note,))
    con.execute("UPDATE attempt SET error=? WHERE experiment_id='Q-004' AND number=1", ("Traceback:\n  File x\nValueError: y",))
    con.commit()
    con.close()
    out = irq("show", "Q-004").out
    assert "  Notes:\n    first line [bold]\n      indented \\x1b[31mred\n\n    last\n" in out, out
    assert "\x1b[31m" not in out
    lines = [ln.strip(" │|") for ln in out.splitlines()]
    assert lines[lines.index("Error:") + 1:lines.index("Error:") + 4] == ["Traceback:", "File x", "ValueError: y"], out


NAN_QUEUE = """# Experiment Queue

## DONE

### Q-001: diverged
- **Parameters**:
  - Lr: inf
  - Scale: 1e400

### Q-001: diverged - ATTEMPT 1 ✓ COMPLETED
- **Status**: COMPLETED
- **Job ID**: 12
- **Results**:
  - val_mse: nan
"""


def _strict_json(text: str):
    def refuse(name: str):
        raise AssertionError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_nan_and_inf_are_kept_as_text_and_every_json_stays_json(tmp_path, irq):
    """A hand-kept queue.md recording a diverged run as `nan`, or `-p lr=inf`: stored as the text
    written (they were stored as NaN and Infinity, which SQLite's JSON cannot read: `irq status`
    then failed on the whole ledger with 'malformed JSON', and --json printed NaN, which is not JSON)."""
    (tmp_path / "q.md").write_text(NAN_QUEUE)
    assert irq("import", "q.md").code == 0
    r = irq("add", "Q-002", "-p", "lr=nan", "-p", "x=-inf")
    assert r.code == 0, r
    for args in (["status", "--json"], ["show", "Q-001", "--json"], ["show", "Q-002", "--json"],
                 ["results", "--format", "json"]):
        r = irq(*args)
        assert r.code == 0, (args, r)
        _strict_json(r.out)
    assert irq("status").code == 0
    shown = _strict_json(irq("show", "Q-001", "--json").out)
    assert shown["experiment"]["parameters"] == {"lr": "inf", "scale": "1e400"}
    assert shown["attempts"][0]["results"] == {"val_mse": "nan"}
    assert _strict_json(irq("show", "Q-002", "--json").out)["experiment"]["parameters"] == {"lr": "nan", "x": "-inf"}
    assert irq("export", "out.md").code == 0
    assert irq("--db", "two.db", "import", "out.md").code == 0
    assert irq("--db", "two.db", "export").out == (tmp_path / "out.md").read_text()


def test_a_ledger_holding_nan_still_serves_status(tmp_path, irq, seed_queue):
    """A ledger an earlier irq wrote NaN into (in a DONE experiment's results) is read, not refused."""
    assert irq("import", str(seed_queue)).code == 0
    con = sqlite3.connect(tmp_path / "queue.db")
    con.execute("UPDATE attempt SET results='{\"val_mse\": NaN}' WHERE experiment_id='Q-004'")
    con.commit()
    con.close()
    for args in (["status"], ["status", "--json"], ["show", "Q-004"], ["export"], ["show", "Q-004", "--json"]):
        r = irq(*args)
        assert r.code == 0, (args, r)
    assert _strict_json(irq("show", "Q-004", "--json").out)["attempts"][0]["results"] == {"val_mse": "nan"}


def test_a_huge_metrics_json_is_kept_whole_on_disk_and_bounded_in_the_ledger(tmp_path):
    """A job wrote a 20 MB string and 200,000 keys into metrics.json: all of it went into the ledger,
    `irq show` printed 20 MB, queue.md grew by as much. The ledger keeps 1000 entries, texts of up to
    1000 characters (marked cut), names of up to 200, and the headline metric always."""
    import json as _json

    from irq.jobs.contract import read_run

    data = {"blob": "z" * 20_000_000, "x" * 300: 1.0, **{f"m{i}": float(i) for i in range(200_000)}, "val_mse": 0.5}
    (tmp_path / "metrics.json").write_text(_json.dumps(data))
    r = read_run(tmp_path, metric="val_mse")
    assert r.problem is None and len(r.metrics) == 1001 and r.metrics["val_mse"] == 0.5
    assert r.metrics["blob"] == "z" * 1000 + "…" and "x" * 300 not in r.metrics
    assert list(r.metrics)[:3] == ["blob", "m0", "m1"]
