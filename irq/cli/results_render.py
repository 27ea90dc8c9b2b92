"""How the results commands print: a rich table on a terminal, md/latex/csv/json on request."""
from __future__ import annotations

import sys
from typing import Any

from irq.ui import UI, clean, counted

RICH_ROWS = 300  # more rows than this print as plain aligned text: rich lays out every cell


def print_results(ui: UI, ans: Any, fmt: str) -> None:
    """The table and its verdicts in the asked format."""
    from irq.results.table import to_csv, to_json, to_latex, to_markdown, to_text

    if fmt == "json":
        ui.json({"table": to_json(ans.table), "verdicts": [
            {"id": v.id, "baseline": v.baseline, "criterion": v.criterion.text, "outcome": v.outcome,
             "sentence": v.sentence, "p_met": v.p_met, "p_not_met": v.p_not_met} for v in ans.verdicts]})
        return
    if fmt != "rich":
        sys.stdout.write({"md": to_markdown, "latex": to_latex, "csv": to_csv}[fmt](ans.table))
        if ans.verdicts and fmt == "csv":  # the file stays one table a reader can parse: the verdicts beside it
            for v in ans.verdicts:
                ui.note(f"{v.outcome}: {v.sentence}")
        elif ans.verdicts:  # a document: they follow the table (a list, or LaTeX comments)
            mark = "%" if fmt == "latex" else "-"
            sys.stdout.write("\n" + "".join(f"{mark} {v.sentence}\n" for v in ans.verdicts))
        return
    if not ui.interactive:  # piped, as every listing: a header, then a tab-separated line per row; notes to stderr
        from irq.results.table import cells, columns, notes

        t = ans.table
        sys.stdout.write("".join("\t".join(clean(c, cell=True) for c in row) + "\n"
                                 for row in [columns(t), *(cells(t, r) for r in t.rows)]))
        for n in notes(t):
            ui.note(n)
        for v in ans.verdicts:
            ui.note(f"{v.outcome}: {v.sentence}")
        return
    if len(ans.table.rows) > RICH_ROWS:  # rich lays out every cell: aligned text, no box drawing
        sys.stdout.write(to_text(ans.table))
    else:
        _rich_table(ui, ans.table, ans.metric, ans.goal)
    for v in ans.verdicts:
        style = {"met": "green", "not met": "red"}.get(v.outcome, "yellow")
        ui.styled((v.outcome, style), (": " + v.sentence, ""))


def _rich_table(ui: UI, table: Any, metric: str, goal: str) -> None:
    from rich.table import Table
    from rich.text import Text

    from irq.results.table import cells, columns, notes

    t = Table(title=Text(f"{metric} ({'lower' if goal == 'min' else 'higher'} is better)"), title_justify="left")
    for col in columns(table):
        t.add_column(col, justify="left" if col == "id" else "right", no_wrap=col in ("id", "n"), overflow="fold")
    for r in table.rows:
        t.add_row(*(Text(clean(v)) for v in cells(table, r)))
    ui.print(t)
    for n in notes(table):
        ui.print(n)


def print_sweep(ui: UI, out: Any, proposed: bool, as_json: bool) -> None:
    """The points a sweep created (or would create)."""
    from irq.fields import fmt_seeds

    base, points = out.base, out.points
    if as_json:
        ui.json({"base": base.id, "dry_run": not out.created,
                 "config": str(out.config_file) if out.config_file else None,
                 "points": [{"id": p.id, "title": p.title, "overrides": p.overrides, "parameters": p.parameters,
                             "seeds": p.seeds} for p in points]})
        return
    verb = "created" if out.created else "would create"
    ui.print(f"{verb} {counted(len(points), 'experiment')} from {base.id} "
             f"({'PROPOSED' if proposed else 'READY'}):")
    for p in points:
        ui.print(f"  {p.id}  {p.title}" + (f"  seeds {fmt_seeds(p.seeds)}" if p.seeds else ""))
    if base.config_path and out.config_file is None:
        ui.note(f"warning: {base.id}'s config {base.config_path} is not readable from here; "
                "the points carry its parameters only")
