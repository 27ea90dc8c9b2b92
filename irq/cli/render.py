"""How the CLI shows what services return: rich tables, panels and plain lines. No work here."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from irq.cli.common import STATE_STYLE, _dump, _esc, _print_line
from irq.ui import UI


def status(ui: UI, report: Any) -> None:
    """`irq status`: one table per state, then job slots and the polling budget."""
    from rich.table import Table

    for name, msg in report.unreachable.items():
        ui.err.print(f"warning: {name} did not answer ({msg}); states shown as last known", markup=False)
    for state, group in report.groups():
        t = Table(title=f"{state} ({len(group)})", title_justify="left", title_style=STATE_STYLE[state])
        for col in ("id", "title", "priority", "attempts", "job", "detail"):
            t.add_column(col)
        for r in group:
            t.add_row(r.id, r.title, r.priority, str(r.attempts), r.job_id or "", r.detail)
        ui.print(t)
    if report.slots:
        if report.slots.get("summary"):
            ui.print(report.slots["summary"])
        ui.print(f"scheduler calls in the last hour: {report.slots['scheduler_calls_last_hour']}")


def status_json(report: Any) -> dict:
    return {"experiments": [asdict(r) for r in report.rows], "slots": report.slots}


def show(ui: UI, v: Any) -> None:
    """`irq show`: the definition as bullets, one panel per attempt."""
    from rich.panel import Panel

    from irq.formats.export import attempt_lines, definition_lines

    e = v.experiment
    ui.styled(f"[bold]{_esc(e.id + ': ' + e.title)}[/]  [{STATE_STYLE.get(e.state, 'white')}]{e.state}[/]")
    if v.waiting:
        ui.print(v.waiting)
    if v.commit or v.headline:
        ui.print("latest attempt: " + ", ".join(x for x in (v.headline, v.commit and f"ran commit {v.commit}") if x))
    for line in definition_lines(e):
        _print_line(ui, line)
    for a in v.attempts:
        body = []
        for line in attempt_lines(a):
            body.append(f"{line.key}: {line.value}")
            body.extend(f"  {k}: {val}" for k, val in line.children)
        ui.print(Panel("\n".join(body), title=f"attempt {a.number}", title_align="left"))


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
    """One submission outcome as a line."""
    return f"{o.id}: {o.status}" + (f" as job {o.job_id}" if o.job_id else "") + (f" ({o.message})" if o.message else "")


def daemon_status(info: dict) -> str:
    running = f"running (pid {info['pid']})" if info["running"] else "not running"
    return (f"daemon {running}; last cycle {info['last_cycle'] or 'never'}; "
            f"scheduler calls in the last hour: {info['scheduler_calls_last_hour']}")


def demo(ui: UI, res: Any) -> None:
    """`irq demo`: the pilot's results beside the trivial baselines, and where everything is."""
    from rich.table import Table

    t = Table(title="pilot results (validation MSE; lower is better)", title_justify="left")
    for col in ("id", "mining", "state", "val_mse", "predict mean", "predict zero", "steps/s"):
        t.add_column(col)
    for r in res.rows:
        t.add_row(r["id"], str(r["mining"]), r["state"], _num(r["val_mse"]), _num(r["baseline_mean_mse"]),
                  _num(r["baseline_zero_mse"]), _num(r["steps_per_s"]) if r["steps_per_s"] else "")
    ui.print(t)
    db = res.folder / "queue.db"
    ui.print(f"ledger: {db}  queue: {res.folder / 'queue.md'}  results: {res.folder / 'results'}")
    ui.print(f"next: `irq --db {db} status`, `irq --db {db} show Q-043`")


def _num(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))
