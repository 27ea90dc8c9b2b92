"""queue.md's blocks as SQL: the text of an attempt's or an experiment's plain columns, made by
SQLite, in pieces around the JSON columns that Python formats (``queue_layout``).

The lines are those of ``blocks.attempt_lines`` / ``blocks.definition_lines`` rendered by
``BlockView.text``, in the same order. A row with anything only Python renders (annotations,
an array's tasks, free-text extras, a retry policy, a time in another form) gets NULL as its
first piece, and the caller renders the whole row with ``blocks.py``, the reference.
"""
from __future__ import annotations

from irq.formats import sql_fields as f
from irq.ledger.states import ACTIVE_STATES, State

_TIMES = ("submitted_at", "started_at", "ended_at", "unknown_since", "fetched_at")
_TEXTS = ("error", "root_cause", "fix_applied", "suggested_fix", "resource_change")  # queuefile.FREE_TEXT
_CODE = ("work_dir", "run_dir", "output")  # in backticks when fields.fmt_code would
_ACTIVE = ", ".join(sorted(f"'{s.value}'" for s in ACTIVE_STATES))
_ENDED_LABEL = (f"CASE WHEN a.state = 'COMPLETED' THEN 'Completed' WHEN a.state = 'CANCELLED' THEN 'Cancelled' "
                f"WHEN a.state IN ({_ACTIVE}) THEN 'Ended' ELSE 'Failed' END")


def attempt_pieces(completed: bool) -> str:
    """Three text columns of an attempt's block: heading to run dir (NULL when the row is not
    plain), exit code to resources changed, output and fetched; its modules go between the
    first two, its results between the last two. `completed` marks the heading as DONE does.
    Needs `a` (attempt) joined with `e` (its experiment)."""
    plain = f.all_of("a.annotations = '{}'", "a.extras = '[]'", "a.tasks = '{}'", f.title_plain("e.title"),
                     *(f.time_plain(f"a.{c}") for c in _TIMES),
                     *f.text_plain([f"a.{c}" for c in _TEXTS], [f"a.{c}" for c in _CODE]))
    heading = f.Piece("### %s: %s - ATTEMPT %s" + (" ✓ COMPLETED" if completed else "") + "\n",
                      ("a.experiment_id", "e.title", "a.number"))
    first = f.printf(
        heading,
        f.bullet("Status", "a.state"),
        f.optional("Backend", "nullif(a.backend, 'imported')"),
        f.when_any(["a.cluster"], f.optional("Cluster", "a.cluster")),
        f.optional("Job ID", "a.job_id"),
        f.when_any(["a.array"], f.optional("Array", "a.array")),
        f.optional("Run ID", "a.run_id"),
        f.time("Submitted", "a.submitted_at"),
        f.when_any(["a.started_at", "a.ended_at", "a.unknown_since", "a.git_sha", "a.partition", "a.work_dir"],
                   f.time("Started", "a.started_at"),
                   f.time("Ended", "a.ended_at", key_sql=_ENDED_LABEL),
                   f.time("Unknown since", "a.unknown_since"),
                   f.optional("Git SHA", "a.git_sha"),
                   f.optional("Partition", "a.partition"),
                   f.in_ticks("Work dir", "a.work_dir")),
        f.in_ticks("Run dir", "a.run_dir"),
    )
    second = f.printf(
        f.when_any(["a.exit_code"], f.optional("Exit code", "a.exit_code")),
        f.optional("Error", "a.error"),
        f.when_any(["a.root_cause", "a.fix_applied", "a.suggested_fix", "a.resource_change"],
                   f.optional("Root cause", "a.root_cause"),
                   f.optional("Fix applied", "a.fix_applied"),
                   f.optional("Suggested fix", "a.suggested_fix"),
                   f.optional("Resources changed", "a.resource_change")),
    )
    third = f.printf(f.when_any(["a.output", "a.fetched_at"], f.in_ticks("Output", "a.output"),
                                f.time("Fetched", "a.fetched_at")))
    return f"CASE WHEN {plain} THEN {first} END, {second}, {third}"


def definition_pieces(checklist: bool) -> str:
    """Three text columns of an experiment's definition: heading to command (NULL when the row
    is not plain), priority, notes; its parameters, seeds and resources go between the first
    two, its dependencies between the last two. `checklist`: the proposed experiments' layout,
    '- [ ] **Q-001**: title' and indented bullets. DONE's derived lines are the caller's."""
    ind = "  " if checklist else ""
    plain = f.all_of("e.annotations = '{}'", "e.retry_policy IN ('{}', 'null')", f.title_plain("e.title"),
                     *f.text_plain(["e.hypothesis", "e.notes"], ["e.config_path", "e.command"]))
    heading = f.Piece("- [ ] **%s**: %s\n" if checklist else "### %s: %s\n", ("e.id", "e.title"))
    first = f.printf(heading, f.optional("Hypothesis", "e.hypothesis", ind), f.in_ticks("Config", "e.config_path", ind),
                     f.in_ticks("Command", "e.command", ind))
    priority = f.printf(f.when(f"NOT (e.state = '{State.PROPOSED.value}' AND e.priority = 'MEDIUM')",
                               f.bullet("Priority", "e.priority", ind)))
    notes = f.printf(f.optional("Notes", "e.notes", ind))
    return f"CASE WHEN {plain} THEN {first} END, {priority}, {notes}"

