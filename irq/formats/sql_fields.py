"""Bullet lines of queue.md as SQLite expressions, for ``sql_blocks``.

`irq export` of a long study prints hundreds of thousands of bullet lines, most of them a
label and a text column. SQLite writes those for a fraction of what decoding every column of
every row into Python objects costs. The forms are those of ``blocks.BlockView.text`` and
``fields.fmt_time``; JSON columns are left to Python and ``irq.fields``.
"""
from __future__ import annotations

NL = "'\n'"  # a newline in an SQL string literal (cheaper than a call to char(10) per line)


def concat(*parts: str) -> str:
    return "(" + " || ".join(parts) + ")"


def all_of(*conds: str) -> str:
    """True when every condition is. A CASE, because SQLite evaluates every operand of AND: this
    one stops at the first false (or NULL) condition."""
    return "CASE " + " ".join(f"WHEN ({c}) IS NOT 1 THEN 0" for c in conds) + " ELSE 1 END"


def when_any(cols: list[str], text: str) -> str:
    """`text` (the lines of these columns) only when one of them is set: one test skips a run of
    optional lines that most rows leave empty."""
    test = f"coalesce({', '.join(cols)})" if len(cols) > 1 else cols[0]
    return f"CASE WHEN {test} IS NULL THEN '' ELSE {text} END"


def bullet(key: str, value: str, indent: str = "") -> str:
    """'- **Key**: value' and a newline; '- **Key**:' when the value is '' (as BlockView.text)."""
    return f"'{indent}- **{key}**:' || CASE WHEN {value} = '' THEN '' ELSE ' ' || {value} END || {NL}"


def optional(key: str, value: str, indent: str = "") -> str:
    """The bullet only when the value is neither NULL nor '' (blocks.attempt_lines' `add`)."""
    return f"CASE WHEN {value} != '' THEN '{indent}- **{key}**: ' || {value} || {NL} ELSE '' END"


def in_ticks(key: str, value: str, indent: str = "") -> str:
    """optional() with the value in backticks (a path, a command)."""
    return f"CASE WHEN {value} != '' THEN '{indent}- **{key}**: `' || {value} || '`' || {NL} ELSE '' END"


def time(col: str) -> str:
    """fields.fmt_time of a stored time (see time_plain): '2026-01-14T04:20:54Z'; NULL stays NULL.
    Seconds are cut, not rounded, as strftime() cuts a datetime's microseconds."""
    return f"(substr({col}, 1, 10) || 'T' || substr({col}, 12, 8) || 'Z')"


def time_plain(col: str) -> str:
    """NULL, or a time of the length and shape irq stores, naive UTC: '2026-01-14 04:20:54' with
    or without '.ffffff' (the ORM writes one). A time with an offset is left to Python."""
    return (f"CASE WHEN {col} IS NULL THEN 1 ELSE length({col}) IN (19, 26) "
            f"AND substr({col}, 20, 1) IN ('', '.') AND substr({col}, 11, 1) IN (' ', 'T') END")
