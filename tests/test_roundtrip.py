"""queue.md is a faithful view of the ledger: export, import into an empty ledger, export
again gives the same text, for the seed and for any ledger hypothesis can generate."""
from __future__ import annotations

import string
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irq.fields import param_key, param_label, parse_scalar
from irq.formats.queue_io import export_queue, import_queue
from irq.formats.queue_attempts import ATT_FREE, QUEUED_FREE
from irq.ledger.database import Ledger
from irq.ledger.models import Attempt, Experiment, Meta

ALPHABET = string.ascii_letters + string.digits + " .,;:!?()[]{}'\"/+-=_<>%&@$^~|" + "×—é✓αβ→"


def _canonical_text(s: str) -> bool:
    low = s.strip()
    return (
        bool(low)
        and parse_scalar(low) == (low, None)
        and not low.startswith(("<!--", "#", "-", "*", "["))
        and "ATTEMPT" not in low and "COMPLETED" not in low and "QUEUED" not in low
        and not low.endswith(":")
    )


text = st.text(ALPHABET, min_size=1, max_size=24).map(str.strip).filter(_canonical_text)
label = st.text(string.ascii_letters + " ", min_size=1, max_size=16).map(str.strip).filter(
    lambda s: bool(s) and _canonical_text(s))
scalar = st.one_of(
    st.integers(-10**9, 10**9),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.booleans(),
    text,
)
# any character the ledger can hold: control characters, and text that reads as double-encoded UTF-8
# ('Â«'), which import repairs only in a hand-kept queue.md, never in irq's own export; but no NUL,
# which nothing writes into the ledger (a command line cannot carry one, import refuses it)
any_char = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")


# what a job's metrics.json or a -p value may hold: any text (line breaks, colons, quotes, backticks,
# leading spaces, text that looks like a number), written where plain text would not read back as a JSON string
any_scalar = st.one_of(st.integers(-10**9, 10**9), st.floats(allow_nan=False, allow_infinity=False, width=64),
                       st.booleans(), st.none(), st.text(any_char, max_size=12))
free_text = st.text(any_char, min_size=1, max_size=16)  # a note, a job's error: any text at all
# titles that end as a heading's marks do, or start with a quote: written as JSON strings
heading_like = st.one_of(
    st.builds(lambda t, m: t + m, text, st.sampled_from([" - ATTEMPT 2", " ✓ COMPLETED", " (HELD-OUT split)",
                                                         " (QUEUED now)", "✓COMPLETED", " (HELD) - ATTEMPT 12"])),
    text.map(lambda t: f'"{t}"'), text.map(lambda t: f'"{t}" rest'))
param_keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,10}", fullmatch=True).filter(lambda k: k != "mining")
times = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)).map(
    lambda d: d.replace(microsecond=0, tzinfo=timezone.utc))
resources = st.fixed_dictionaries({}, optional={
    "gpus": st.integers(0, 8), "cpus": st.integers(1, 64), "memory_mb": st.integers(1, 512 * 1024),
    "time_minutes": st.integers(1, 10 * 1440),
    "partition": st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
})
ACTIVE = ["PENDING", "RUNNING", "UNKNOWN", "SUBMITTING"]
ENDED = ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"]
sched_states = st.sampled_from(ACTIVE + ENDED)


@st.composite
def attempts_for(draw, exp_id: str, exp_state: str, queued: bool) -> list[Attempt]:
    """Attempts as the ledger holds them: earlier ones ended; the last one active only while the
    experiment is IN_PROGRESS, which has a running job, a job left to fetch or a queue entry."""
    out = []
    running = exp_state == "IN_PROGRESS" and not queued
    count = draw(st.integers(1 if running else 0, 3))
    for n in range(1, count + 1):
        last = running and n == count
        state = draw(st.sampled_from(ACTIVE)) if last and draw(st.booleans()) else draw(st.sampled_from(ENDED))
        if queued and n == 1:
            state = draw(sched_states)
        backend = draw(st.sampled_from(["imported", "local", "slurm:fasrc"]))
        fetched = draw(st.none() | times)
        if last and state in ENDED:  # a job that ended and is left to fetch
            backend, fetched = draw(st.sampled_from(["local", "slurm:fasrc"])), None
        out.append(Attempt(
            experiment_id=exp_id, number=n, token=f"irq-{exp_id}-{n}", state=state,
            backend=backend,
            job_id=draw(st.none() | st.from_regex(r"[1-9][0-9]{0,8}", fullmatch=True)),
            array=draw(st.none() | st.just("0-9%2")),
            tasks=draw(st.dictionaries(st.integers(0, 9).map(str), st.fixed_dictionaries(
                {"state": sched_states, "exit_code": st.none() | st.integers(0, 255)}), max_size=3)),
            run_id=draw(st.none() | st.from_regex(r"q[0-9]{3}_[0-9]{8}_[0-9]{6}", fullmatch=True)),
            submitted_at=draw(st.none() | times), started_at=draw(st.none() | times),
            ended_at=draw(st.none() | times), unknown_since=draw(st.none() | times),
            git_sha=draw(st.none() | st.from_regex(r"[0-9a-f]{7,40}", fullmatch=True)),
            partition=draw(st.none() | st.sampled_from(["gpu", "gpu_test"])),
            work_dir=draw(st.none() | st.just("/scratch/irq-job-1") | free_text),
            modules=draw(st.lists(st.from_regex(r"[a-z]+/[0-9]+\.[0-9]+(-[a-z0-9]+)?", fullmatch=True), max_size=2)),
            exit_code=draw(st.none() | st.integers(0, 255)),
            error=draw(st.none() | text | free_text), root_cause=draw(st.none() | text | free_text),
            fix_applied=draw(st.none() | text), suggested_fix=draw(st.none() | text),
            results=draw(st.dictionaries(label | st.text(any_char, max_size=12), scalar | any_scalar,
                                         max_size=3)),
            output=draw(st.none() | st.just("runs/q001/seed_0")),
            fetched_at=fetched,
            extras=[[k, draw(text)] for k in draw(st.lists(st.sampled_from(ATT_FREE), unique=True, max_size=3))],
        ))
    return out


@st.composite
def ledgers(draw) -> tuple[list[Experiment], list[Attempt]]:
    n = draw(st.integers(1, 5))
    exps, atts = [], []
    for i in range(1, n + 1):
        exp_id = f"Q-{i:03d}"
        state = draw(st.sampled_from(["READY", "IN_PROGRESS", "DONE", "FAILED", "PROPOSED"]))
        params = draw(st.dictionaries(param_keys, scalar | any_scalar, max_size=4))
        if draw(st.booleans()):
            params = {"mining": draw(st.sampled_from(["none", "random", "adversarial"]) | any_scalar), **params}
        queued = state == "IN_PROGRESS" and draw(st.booleans())
        exps.append(Experiment(
            id=exp_id, seq=i, title=draw(text | heading_like), state=state, hypothesis=draw(st.none() | text | free_text),
            command=draw(st.none() | free_text),
            config_path=draw(st.none() | st.just("trainer/configs/tiny.json")), parameters=params,
            resources=draw(resources), priority=draw(st.sampled_from(["HIGHEST", "HIGH", "MEDIUM", "LOW"])),
            depends_on=draw(st.lists(st.sampled_from([f"Q-{j:03d}" for j in range(1, i)]), unique=True, max_size=2))
            if i > 1 else [],
            seeds=draw(st.lists(st.integers(0, 20), unique=True, max_size=4)),
            notes=draw(st.none() | text | free_text),
            waiting_reason=draw(text) if queued else None,
            queued_since=draw(st.none() | times) if queued else None,
            queue_extras=[[k, draw(text)] for k in draw(st.lists(st.sampled_from(QUEUED_FREE), unique=True, max_size=2))]
            if queued else [],
        ))
        if state != "PROPOSED":
            atts.extend(draw(attempts_for(exp_id, state, queued)))
    return exps, atts


def _fill(ledger: Ledger, exps: list[Experiment], atts: list[Attempt], title: str) -> None:
    with ledger.transaction() as s:
        s.add(Meta(key="title", value=title))
        for e in exps:
            s.add(e)
        s.flush()
        for a in atts:
            s.add(a)


def _round_trip(tmp: Path, first: Ledger) -> tuple[str, str, Ledger]:
    text1 = export_queue(first, tmp / "one.md")
    second = Ledger(tmp / "two.db", create=True)
    import_queue(second, tmp / "one.md")
    text2 = export_queue(second, None)
    return text1, text2, second


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=ledgers())
def test_export_import_export_is_the_same_text(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("rt")
    exps, atts = data
    first = Ledger(tmp / "one.db", create=True)
    _fill(first, exps, atts, "Generated study")
    text1, text2, second = _round_trip(tmp, first)
    assert text1 == text2
    with first.transaction() as s1, second.transaction() as s2:
        pass
    with second.transaction() as s:
        got = {e.id: e for e in Ledger.experiments(s)}
        got_atts = {(a.experiment_id, a.number): a for a in Ledger.attempts(s)}
    for e in exps:
        g = got[e.id]
        assert (g.title, g.state, g.priority, g.parameters, g.resources, g.seeds, g.depends_on) == \
               (e.title, e.state, e.priority, e.parameters, e.resources, e.seeds, e.depends_on)
        assert (g.waiting_reason, g.hypothesis, g.notes, g.command) == (e.waiting_reason, e.hypothesis, e.notes, e.command)
    assert set(got_atts) == {(a.experiment_id, a.number) for a in atts}
    for a in atts:
        g = got_atts[(a.experiment_id, a.number)]
        assert (g.state, g.job_id, g.run_id, g.git_sha, g.results, g.error, g.exit_code, g.tasks) == \
               (a.state, a.job_id, a.run_id, a.git_sha, a.results, a.error, a.exit_code, a.tasks)
        assert (g.root_cause, g.work_dir) == (a.root_cause, a.work_dir)
        assert (g.submitted_at, g.started_at, g.ended_at) == (a.submitted_at, a.started_at, a.ended_at)
    first.close()
    second.close()


def test_the_seed_round_trips(tmp_path, ledger, seed_queue):
    import_queue(ledger, seed_queue)
    text1, text2, _ = _round_trip(tmp_path, ledger)
    assert text1 == text2
    # the export keeps the seed's layout and every section
    for heading in ("## READY", "## IN_PROGRESS", "## DONE", "## FAILED", "## Future Extensions"):
        assert heading in text1
    assert "### Q-004: Pilot Test (Debug Run) - ATTEMPT 3" in text1
    assert "- **Error**: Module not found - `python/3.9` doesn't exist on cluster" in text1


def test_exported_times_are_utc_with_z(tmp_path, ledger, seed_queue):
    import_queue(ledger, seed_queue)
    text = export_queue(ledger, None)
    assert "- **Submitted**: 2026-01-14T04:20:54Z" in text
    assert datetime(2026, 1, 14, 4, 20, 54) - timedelta(0)  # sanity of the literal above


def test_every_parameter_name_reads_back_as_itself():
    """Words where they read back (the seed's layout), the name in backticks where they would not:
    `LR` once came back as lr, lr.max as lr_max, and a command with {LR} could no longer run."""
    words = {"rank": "Rank", "learning_rate": "Learning rate", "mining_opt_steps": "Mining opt steps", "lr": "Lr"}
    names = {"LR": "`LR`", "lr.max": "`lr.max`", "Rank": "`Rank`", "lr-max": "`lr-max`", "_x": "`_x`", "a__b": "`a__b`"}
    for key, label in {**words, **names}.items():
        assert param_label(key) == label
        assert param_key(label) == key
    assert param_key("Negative sampling") == "negative_sampling"  # a hand-kept queue's words
    assert param_key("`a b`") == "a_b"  # not a name: read as words, as before

