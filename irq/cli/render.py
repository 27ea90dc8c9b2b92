"""How the CLI shows what services return: rich tables, panels and plain lines. No work here."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.text import Text

from irq.cli.common import STATE_STYLE, _dump, _print_line, shown_lines
from irq.cli.follow import curve_text
from irq.ledger.states import is_active
from irq.ui import UI, clean, iso, num

STATUS_COLUMNS = ("id", "title", "priority", "attempts", "job", "detail")


def status(ui: UI, report: Any) -> None:
    """`irq status`: one table per state on a terminal; piped, one tab-separated line per
    experiment (state first), then job slots and the polling budget on stderr."""
    if not report.rows:
        ui.note(report.none_shown())
    for state, group in report.groups():
        rows = [(r.id, r.title, r.priority, num(r.attempts), r.job_id or "", _detail(r, report)) for r in group]
        ui.table(f"{state} ({len(group)})", STATUS_COLUMNS, rows, style=STATE_STYLE.get(state, ""),
                 plain_prefix=(state,))
    say = ui.print if ui.interactive else ui.note
    if report.slots:
        if report.slots.get("summary"):
            say(report.slots["summary"])
        say(f"scheduler calls in the last hour: {num(report.slots['scheduler_calls_last_hour'])}")


def _detail(r: Any, report: Any) -> str:
    row = getattr(report, "curves", {}).get(r.id)
    return f"{r.detail}; {curve_text(row)}" if row else r.detail


def status_json(report: Any) -> dict:
    """Rows as flat dicts (a shallow copy: asdict's deep copy costs more than the encoding)."""
    curves = getattr(report, "curves", {})
    return {"experiments": [dict(r.__dict__) | ({"curve": curves[r.id]} if r.id in curves else {})
                            for r in report.rows],
            "slots": report.slots}


def show(ui: UI, v: Any) -> None:
    """`irq show`: the definition as bullets, one panel per attempt; every value verbatim."""
    from rich.panel import Panel

    from irq.formats.blocks import attempt_lines, definition_lines

    e = v.experiment
    ui.styled((f"{e.id}: {e.title}", "bold"), ("  ", ""), (e.state, STATE_STYLE.get(e.state, "white")))
    if v.waiting:
        ui.print(v.waiting)
    if v.commit or v.headline:
        ui.print("latest attempt: " + ", ".join(x for x in (v.headline, v.commit and f"ran commit {v.commit}") if x))
    for line in definition_lines(e):
        _print_line(ui, line)
    for a in v.attempts:
        body = [NEVER_REFRESHED.format(id=a.experiment_id)] if a.backend == "imported" and is_active(a.state) else []
        for line in attempt_lines(a):
            body.extend(shown_lines(line))
        if not ui.interactive:
            ui.print(f"attempt {a.number}")
            for b in body:
                ui.print("  " + b)
            continue
        ui.print(Panel(Text(clean("\n".join(body))), title=f"attempt {a.number}", title_align="left"))
    _history(ui, v.events)


SHOWN_EVENTS = 10


def _history(ui: UI, events: list[Any]) -> None:
    """The experiment's latest state changes, with their reasons (an edit, `irq retire --reason`,
    `irq record --note`): the rest in `irq show ID --json`."""
    from irq.fields import fmt_time

    mine = [e for e in events if e.kind != "attempt"]
    if not mine:
        return
    ui.print("history" + (f" (latest {SHOWN_EVENTS} of {len(mine)}; all in --json)" if len(mine) > SHOWN_EVENTS else ""))
    for e in mine[-SHOWN_EVENTS:]:
        move = (e.to_state if e.from_state is None else f"{e.from_state} -> {e.to_state}" if e.from_state != e.to_state
                else e.kind)
        ui.print(f"  {fmt_time(e.at)}  {move}" + (f": {' '.join(e.reason.split())}" if e.reason else ""))  # one line each


NEVER_REFRESHED = ("state as imported from queue.md; irq cannot ask its scheduler: once it ended, "
                   "`irq record {id} completed|failed|cancelled` records how")


def show_json(v: Any) -> dict:
    return {
        "experiment": _dump(v.experiment),
        "attempts": [{k: val for k, val in _dump(a).items() if k != "script"} | {"has_script": bool(a.script)}
                     for a in v.attempts],
        "events": [_dump(e) for e in v.events],
    }


def checks(ui: UI, reports: list[Any]) -> None:
    for rep in reports:
        ui.print(f"{rep.id} on {rep.backend} at {rep.sha[:12]}:")
        for ch in rep.checks:
            ui.print("  " + ch.line())


def outcome(o: Any) -> str:
    """One submission outcome as a line: 'Q-003: queued: no free job slot (2 of 2 used)' (a reason
    after a colon: reasons carry parentheses of their own), 'Q-001: submitted as job 1000'."""
    return f"{o.id}: {o.status}" + (f" as job {o.job_id}" if o.job_id else "") + (f": {o.message}" if o.message else "")


def still_detail(a: Any) -> str:
    """Why an attempt `irq fetch` could not take is not fetched yet, in words."""
    if a.backend == "imported":
        return (f"imported from queue.md as {a.state}; irq cannot ask its scheduler: once it ended, "
                f"`irq record {a.experiment_id} completed|failed|cancelled`")
    if a.unknown_since:
        return f"job {a.job_id} was {a.state} when last seen (the cluster did not answer)"
    return f"job {a.job_id} is still {a.state}; fetch again once it ends"


def fetched_json(rep: Any) -> list[dict]:
    """The fetched ones, DONE or FAILED, then those not finished yet, then those not fetched yet."""
    return ([asdict(o) for o in rep.outcomes]
            + [{"id": a.experiment_id, "attempt": a.number, "state": a.state, "detail": still_detail(a)} for a in rep.still]
            + [{"id": d.id, "attempt": d.attempt, "state": "NOT_FETCHED", "detail": f"cannot fetch yet: {d.why}"}
               for d in rep.deferred])


def fetched(rep: Any) -> list[str]:
    """`irq fetch`: one line per fetched attempt, and why the others are not fetched yet."""
    lines = [f"{o.id} attempt {o.attempt}: " + (o.detail if o.detail.startswith(o.state) else f"{o.state} ({o.detail})")
             for o in rep.outcomes]  # not "FAILED (FAILED (exit code 1))"
    lines += [f"{a.experiment_id} attempt {a.number}: {still_detail(a)}" for a in rep.still]
    lines += [str(d) for d in rep.deferred]
    if not lines and not rep.unreachable:
        lines.append("nothing to fetch: no attempt has finished since the last fetch")
    return lines


def daemon_info(info: dict) -> dict:
    """The daemon's status with its last cycle in the one time format of --json."""
    from datetime import datetime

    last = info.get("last_cycle")
    return info | {"last_cycle": iso(datetime.fromisoformat(last)) if last else None}


def daemon_status(info: dict) -> str:
    running = f"running (pid {info['pid']})" if info["running"] else "not running"
    return (f"daemon {running}; last cycle {info['last_cycle'] or 'never'}; "
            f"scheduler calls in the last hour: {info['scheduler_calls_last_hour']}"
            + (f"; {info['needs_login']}" if info.get("needs_login") else ""))


def demo(ui: UI, res: Any) -> None:
    """`irq demo`: the pilot's results beside the trivial baselines, and where everything is."""
    cols = ("id", "mining", "state", "val_mse", "predict mean", "predict zero", "steps/s")
    rows = [(r["id"], r["mining"], r["state"], num(r["val_mse"]), num(r["baseline_mean_mse"]),
             num(r["baseline_zero_mse"]), num(r["steps_per_s"]) if r["steps_per_s"] else "") for r in res.rows]
    ui.table("pilot results (validation MSE; lower is better)", cols, rows)
    db = res.folder / "queue.db"
    ui.print(f"ledger: {db}  queue: {res.folder / 'queue.md'}  results: {res.folder / 'results'}")
    ui.print(f"next: `irq --db {db} status`, `irq --db {db} show Q-043`")



def status_page(ui: UI, report: Any, as_json: bool, one_line: bool = False) -> None:
    """`irq status`: JSON (with what a limit folded away; `one_line`: a JSON Lines record, as
    --watch prints one per refresh), or the tables and the lines after them; either way a backend
    that did not answer is named on stderr."""
    for name, msg in report.unreachable.items():
        ui.note(f"warning: {name} did not answer ({msg}); states shown as last known")
    if as_json:
        data = status_json(report) | {"folded": report.folded}
        ui.json_line(data) if one_line else ui.json_rows(data)
        return
    status(ui, report)
    say = ui.print if ui.interactive else ui.note  # piped: stdout holds the rows only, one per line
    for line in report.folded_lines() + report.notes:
        say(line)
