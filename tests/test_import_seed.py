"""A researcher brings the hand-kept queue.md of the IRED study into irq: every fact in it
must survive, one by one."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from irq.formats.queue_io import import_queue
from irq.ledger.database import Ledger


def t(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(timezone.utc)


@pytest.fixture
def study(ledger, seed_queue):
    report = import_queue(ledger, seed_queue)
    with ledger.transaction() as s:
        exps = {e.id: e for e in Ledger.experiments(s)}
        atts = {}
        for a in Ledger.attempts(s):
            atts.setdefault(a.experiment_id, []).append(a)
    return report, exps, atts


def test_mojibake_is_repaired_and_reported(study):
    report, exps, _ = study
    assert report.repaired_lines > 0
    assert exps["Q-001"].annotations["parameters.rank"] == "(20×20 matrices)"


def test_every_experiment_is_there_once_with_its_state(study):
    report, exps, atts = study
    assert list(exps) == [f"Q-{n:03d}" for n in range(1, 11)]
    assert {i: e.state for i, e in exps.items() if int(i[2:]) <= 4} == {
        "Q-001": "IN_PROGRESS", "Q-002": "IN_PROGRESS", "Q-003": "IN_PROGRESS", "Q-004": "DONE",
    }
    assert all(exps[f"Q-{n:03d}"].state == "PROPOSED" for n in range(5, 11))
    assert report.experiments == 10 and report.attempts == 8


def test_definitions_keep_parameters_resources_priority_and_dependencies(study):
    _, exps, _ = study
    q1 = exps["Q-001"]
    assert q1.title == "Baseline (No Negative Mining)"
    assert q1.hypothesis == "Establish baseline performance with standard diffusion training"
    assert q1.config_path == "configs/q001_baseline.json"
    assert q1.parameters == {"mining": "none", "rank": 20, "diffusion_steps": 10, "train_steps": 100_000,
                             "batch_size": 2048, "learning_rate": 1e-4}
    assert q1.resources == {"gpus": 1, "memory_mb": 16 * 1024, "time_minutes": 120, "partition": "gpu_test"}
    assert q1.priority == "HIGH"
    assert q1.annotations["priority"] == "(must run first - establishes baseline)"
    assert q1.notes == "Standard energy-based diffusion without contrastive negative mining"
    q2 = exps["Q-002"]
    assert q2.depends_on == ["Q-001"]
    assert q2.parameters["negative_sampling"] == "Random matrices from uniform distribution"
    q3 = exps["Q-003"]
    assert q3.depends_on == ["Q-001", "Q-002"]
    assert q3.resources["time_minutes"] == 150
    assert q3.parameters["mining"] == "adversarial"
    assert "opt_step()" in q3.parameters["negative_optimization"]
    q4 = exps["Q-004"]
    assert q4.priority == "HIGHEST"
    assert q4.parameters["rank"] == 10 and q4.parameters["train_steps"] == 1000
    assert q4.resources == {"gpus": 1, "memory_mb": 8192, "time_minutes": 15, "partition": "gpu_test"}


def test_q003_is_queued_locally_waiting_for_a_slot(study):
    _, exps, atts = study
    q3 = exps["Q-003"]
    assert "Q-003" not in atts
    assert q3.waiting_reason == "SLURM QOSMaxSubmitJobPerUserLimit (max 2 jobs per user)"
    assert ["Auto-submit", "Will submit automatically when Q-001 or Q-002 completes"] in q3.queue_extras


def test_running_and_pending_attempts(study):
    _, _, atts = study
    (a1,) = atts["Q-001"]
    assert (a1.number, a1.state, a1.job_id, a1.run_id) == (1, "RUNNING", "55239690", "q001_20260114_042054")
    assert a1.submitted_at == t("2026-01-14T04:20:54Z") and a1.started_at == t("2026-01-14T04:23:20Z")
    assert a1.git_sha == "9a691f6" and a1.partition == "gpu_test"
    assert ["Workflow", "✅ Automated git clone to `/tmp/ired-job-55239690`"] in a1.extras
    (a2,) = atts["Q-002"]
    assert (a2.state, a2.job_id, a2.run_id) == ("PENDING", "55240031", "q002_20260114_042901")
    assert a2.annotations["state"] == "(waiting for SLURM scheduler)"
    assert ["Note", "Running in parallel with Q-001"] in a2.extras


def test_the_pilot_is_one_experiment_with_six_attempts_in_order(study):
    _, _, atts = study
    q4 = atts["Q-004"]
    assert [a.number for a in q4] == [1, 2, 3, 4, 5, 6]
    assert [a.job_id for a in q4] == ["55131103", "55208278", "55210815", "55211671", "55213584", "55214713"]
    assert [a.state for a in q4] == ["FAILED", "CANCELLED", "FAILED", "FAILED", "FAILED", "COMPLETED"]
    assert [a.run_id for a in q4] == [
        "q004_20260113_185013", "q004_20260113_223811", "q004_20260113_225500",
        "q004_20260113_225843", "q004_20260113_231120", "q004_20260113_234005",
    ]
    a1, a2, a3, a4, a5, a6 = q4
    assert a1.submitted_at == t("2026-01-13T10:51:04Z") and a1.ended_at == t("2026-01-13T22:36:38Z")
    assert a1.error == "`python: command not found`"
    assert a1.root_cause == "Module load lines commented out in sbatch script"
    assert a1.fix_applied.startswith("Uncommented `module load python/3.9`")
    assert a2.ended_at == t("2026-01-13T22:55:00Z")
    assert a2.extras == [["Reason", "Redeployed with gpu_test partition for better queue priority "
                                    "(was submitted with old gpu partition)"]]
    assert a3.error == "Module not found - `python/3.9` doesn't exist on cluster"
    assert a3.root_cause == "Cluster uses versioned module names (e.g., `python/3.10.13-fasrc01`)"
    assert "gitlink" in a4.root_cause
    assert a4.extras[0][0] == "Required fix" and "git rm --cached projects/ired" in a4.extras[0][1]
    assert "69c9fcf" in a5.root_cause and a5.ended_at == t("2026-01-13T23:18:21Z")
    assert a6.started_at == t("2026-01-13T23:41:31Z") and a6.ended_at == t("2026-01-13T23:42:37Z")
    assert a6.modules == ["python/3.10.13-fasrc01", "cuda/11.8.0-fasrc01"]
    assert a6.results == {"Training MSE": 0.0706, "Validation MSE": 0.0688,
                          "Configuration": "10×10 matrices, 1000 steps, no mining",
                          "Output": "results/ds_inverse/model_mlp_pilot"}
    assert ["Runtime", "2 minutes 16 seconds (136s)"] in a6.extras
    assert ["Milestone", "🎉 First successful completion with automated git workflow!"] in a6.extras


def test_future_extensions_are_proposed_and_never_submittable(study):
    _, exps, _ = study
    assert exps["Q-006"].title == "Larger matrices (rank=50) to test scalability"
    assert exps["Q-010"].state == "PROPOSED"


def test_the_preamble_survives(ledger, seed_queue):
    import_queue(ledger, seed_queue)
    assert ledger.get_meta("title") == "Experiment Queue — Adversarial Negative Mining for Matrix Inversion"
    pre = ledger.get_meta("preamble")
    assert "## Research Question" in pre and "**H3 (Adversarial negatives)**" in pre
    assert "convergence speed (steps to threshold)" in pre


def test_every_import_is_in_the_event_log(ledger, seed_queue):
    import_queue(ledger, seed_queue)
    with ledger.transaction() as s:
        events = Ledger.events(s)
    assert len(events) == 10 + 8
    assert all(e.reason == "imported from seed_queue.md" for e in events)


def test_an_import_goes_after_every_experiment_even_when_some_were_removed(ledger, seed_queue):
    """Imported experiments take queue positions after the highest one there is: counting the
    experiments instead gave a position already taken once one had been removed."""
    from irq.experiments.edit import add_experiment

    for exp_id in ("A-1", "A-2", "A-3"):
        add_experiment(ledger, exp_id, exp_id)
    with ledger.transaction() as s:
        s.delete(Ledger.experiment(s, "A-2"))  # as `irq rm` leaves it: A-1 at 1, A-3 at 3
    import_queue(ledger, seed_queue)
    with ledger.transaction() as s:
        seqs = {e.id: e.seq for e in Ledger.experiments(s)}
        attempts = Ledger.attempts(s)
        events = {ev.attempt_id: ev for ev in Ledger.events(s) if ev.kind == "attempt"}
    assert len(set(seqs.values())) == len(seqs)
    assert min(v for k, v in seqs.items() if not k.startswith("A-")) > seqs["A-3"]
    # every imported attempt has its own event, naming it
    assert len(attempts) == 8 and all(events[a.id].experiment_id == a.experiment_id for a in attempts)


def test_a_hand_written_queue_may_name_sections_as_people_do_and_wrap_its_notes(ledger, tmp_path):
    """'## Ready' and '## In progress' are the sections READY and IN_PROGRESS (they were read as the
    preamble: "holds no experiment"); an indented line under a bullet continues it, as in Markdown."""
    p = tmp_path / "queue.md"
    p.write_text("# Mine\n\n## Ready\n\n### Q-001: Baseline\n- **Notes**: a note wrapped\n  over two lines\n"
                 "- **Parameters**:\n  - Rank: 20\n    (the seed's size)\n\n## In progress\n\n### Q-002: Next\n"
                 "- **Priority**: LOW\n\n### Q-002: Next - ATTEMPT 1\n- **Status**: RUNNING\n- **Job ID**: 77\n",
                 encoding="utf-8")
    import_queue(ledger, p)
    with ledger.transaction() as s:
        one, two = Ledger.experiment(s, "Q-001"), Ledger.experiment(s, "Q-002")
        assert (one.state, one.notes, one.parameters) == ("READY", "a note wrapped over two lines", {"rank": 20})
        assert one.annotations == {"parameters.rank": "(the seed's size)"}
        assert (two.state, two.priority) == ("IN_PROGRESS", "LOW")


@pytest.mark.parametrize("bom, newline", [(True, "\n"), (False, "\r\n"), (True, "\r\n")],
                         ids=["byte order mark", "Windows line ends", "both"])
def test_a_queue_saved_by_a_windows_editor_reads_as_the_same_queue(tmp_path, seed_queue, bom, newline):
    """A byte order mark made the title line preamble (the title became the default), and Windows
    line ends stayed in the preamble as carriage returns, written back into every export."""
    text = seed_queue.read_text(encoding="utf-8").replace("\n", newline)
    saved = tmp_path / "windows.md"
    saved.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    plain, windows = Ledger(tmp_path / "plain.db", create=True), Ledger(tmp_path / "windows.db", create=True)
    import_queue(plain, seed_queue)
    import_queue(windows, saved)
    assert windows.get_meta("title") == "Experiment Queue — Adversarial Negative Mining for Matrix Inversion"
    assert "\r" not in windows.get_meta("preamble")
    from irq.formats.export import export_text

    assert export_text(windows) == export_text(plain)


def test_a_status_line_in_a_definition_is_the_experiments_own_state(ledger, tmp_path):
    """`- **Status**: READY` under an experiment in READY made an attempt in state READY, and the
    experiment FAILED; it is the experiment's own state, as its section says."""
    q = tmp_path / "q.md"
    q.write_text("# Q\n\n## READY\n\n### Q-001: planned\n- **Status**: READY\n- **Notes**: next week\n\n"
                 "### Q-002: ran - ATTEMPT 1\n- **Status**: FAILED\n- **Job ID**: 7\n")
    import_queue(ledger, q)
    with ledger.transaction() as s:
        exps = {e.id: e for e in Ledger.experiments(s)}
        assert Ledger.attempts(s, "Q-001") == [] and len(Ledger.attempts(s, "Q-002")) == 1
    assert exps["Q-001"].state == "READY" and exps["Q-001"].notes == "next week"
    assert exps["Q-002"].state == "FAILED"


def _defs(*blocks: str) -> str:
    return "# Q\n\n## READY\n\n" + "\n".join(blocks)


def test_dependencies_in_words_name_the_files_and_the_ledgers_experiments(ledger, tmp_path):
    """A free-text dependency was read for Q-NNN ids only: 'Run after lr-01 for comparison' became
    no dependency at all (the experiment ran at once), and an id of the ledger could not be named
    by a later import ("depends on unknown experiment")."""
    first = tmp_path / "first.md"
    first.write_text(_defs("### lr-01: Eval\n- **Command**: `echo 1`\n"))
    import_queue(ledger, first)
    later = tmp_path / "later.md"
    later.write_text(_defs("### Q-011: Wider\n- **Command**: `echo 2`\n- **Dependencies**: Run after lr-01 for comparison\n",
                           "### Q-012: Deeper\n- **Command**: `echo 3`\n- **Dependencies**: Run after Q-011 and lr-01.\n",
                           "### Q-013: Plain\n- **Command**: `echo 4`\n- **Dependencies**: lr-01\n"))
    import_queue(ledger, later)
    with ledger.transaction() as s:
        deps = {i: Ledger.experiment(s, i).depends_on for i in ("Q-011", "Q-012", "Q-013")}
    assert deps == {"Q-011": ["lr-01"], "Q-012": ["Q-011", "lr-01"], "Q-013": ["lr-01"]}
    from irq.formats.export import export_text

    text = export_text(ledger)  # the words as written, since they name exactly those experiments
    assert "- **Dependencies**: Run after lr-01 for comparison\n" in text
    assert "- **Dependencies**: Run after Q-011 and lr-01.\n" in text


def test_a_comment_ends_and_the_text_after_it_is_read(ledger, tmp_path):
    """A comment closed mid-line dropped the rest of the line; a line of only a comment is still skipped."""
    q = tmp_path / "q.md"
    q.write_text(_defs("### Q-010: x\n- **Notes**: first\n  <!-- c --> tail\n<!-- a\nlonger comment -->\n"
                       "- **Priority**: LOW <!-- not a comment: mid-line text is kept -->\n"))
    import_queue(ledger, q)
    with ledger.transaction() as s:
        e = Ledger.experiment(s, "Q-010")
    assert (e.notes, e.priority, e.annotations.get("priority")) == \
        ("first tail", "LOW", "<!-- not a comment: mid-line text is kept -->")


def test_a_file_with_old_mac_line_ends_reads_as_lines(ledger, tmp_path):
    q = tmp_path / "q.md"
    q.write_bytes(_defs("### Q-010: x\n- **Notes**: a\n", "### Q-011: y\n- **Notes**: b\n").replace("\n", "\r").encode())
    assert import_queue(ledger, q).experiments == 2


def test_cancelling_an_imported_job_records_it_ended(irq, tmp_path, monkeypatch, seed_queue):
    """An attempt imported as RUNNING could not be cancelled ("unknown backend 'imported'"), nor
    retired ("cancel first"), nor fetched: the experiment stayed IN_PROGRESS for ever."""
    monkeypatch.chdir(tmp_path)
    assert irq("init").code == 0 and irq("import", str(seed_queue)).code == 0
    got = irq("cancel", "Q-001")
    assert got.code == 0, got
    assert "irq cannot reach job 55239690; recorded as CANCELLED and Q-001 as FAILED" in got.out
    assert "scancel 55239690" in got.out
    shown = irq("show", "Q-001", "--json")
    import json

    data = json.loads(shown.out)
    assert data["experiment"]["state"] == "FAILED" and data["attempts"][-1]["state"] == "CANCELLED"
    assert irq("retry", "Q-001").code == 0


@pytest.mark.parametrize("words", ["None", "TBD", "Independent.", "n/a", "-"])
def test_dependencies_written_as_none_mean_none_and_read_back_as_written(ledger, tmp_path, words):
    """`- **Dependencies**: None` (or TBD, Independent) was refused as an unknown experiment 'None',
    and a '-' was read as no dependency and then dropped from the export."""
    from irq.formats.export import export_text

    p = tmp_path / "queue.md"
    p.write_text(f"# Q\n\n## READY\n\n### Q-001: a\n- **Dependencies**: {words}\n", encoding="utf-8")
    import_queue(ledger, p)
    with ledger.transaction() as s:
        assert Ledger.experiment(s, "Q-001").depends_on == []
    assert f"- **Dependencies**: {words}\n" in export_text(ledger)
