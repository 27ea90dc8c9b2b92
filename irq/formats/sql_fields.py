"""Bullet lines of queue.md as SQLite expressions, for ``sql_blocks``.

`irq export` of a long study prints hundreds of thousands of bullet lines, most of them a label
and a text column. SQLite writes those for a fraction of what decoding every column of every row
into Python objects costs. The forms are those of ``blocks.BlockView.text`` and
``fields.fmt_time``; JSON columns are left to Python and ``irq.fields``.

A block is one ``printf()``: SQLite's ``||`` allocates and copies a new string for each operand
(most of the export's time when blocks were built that way), while printf appends to one buffer.
An optional line is then a few arguments that are NULL when it is absent (printf writes NULL as
nothing), so an absent line costs no allocation at all. (printf's %s ends a value at a NUL
character, which no text irq stores has.)
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Piece:
    """Part of a printf() call: its format text and the SQL expressions it takes."""

    fmt: str
    args: tuple[str, ...] = ()


def printf(*pieces: Piece) -> str:
    """The SQL expression that writes the pieces one after the other."""
    fmt = "".join(p.fmt for p in pieces).replace("'", "''")
    args = [a for p in pieces for a in p.args]
    return f"printf('{fmt}'{''.join(', ' + a for a in args)})"


def value(expr: str) -> Piece:
    """An SQL value as printf writes it: text as is, NULL as nothing."""
    return Piece("%s", (expr,))


def all_of(*conds: str) -> str:
    """True when every condition is. A CASE, because SQLite evaluates every operand of AND: this
    one stops at the first false (or NULL) condition."""
    return "CASE " + " ".join(f"WHEN ({c}) IS NOT 1 THEN 0" for c in conds) + " ELSE 1 END"


def when(cond: str, *pieces: Piece) -> Piece:
    """The pieces only where `cond` holds."""
    return value(f"CASE WHEN {cond} THEN {printf(*pieces)} END")


def when_any(cols: list[str], *pieces: Piece) -> Piece:
    """The pieces (the lines of these columns) only when one of them is set: one test skips a run
    of optional lines that most rows leave empty."""
    test = f"coalesce({', '.join(cols)})" if len(cols) > 1 else cols[0]
    return when(f"{test} IS NOT NULL", *pieces)


def _if(cond: str, text: str) -> str:
    """The text where `cond` holds, else NULL. CASE, not iif(): SQLite before 3.32 (RHEL 8's
    3.26, which its Python links) has no iif()."""
    return f"CASE WHEN {cond} THEN '{text.replace(chr(39), chr(39) * 2)}' END"


def bullet(key: str, expr: str, indent: str = "") -> Piece:
    """'- **Key**: value' and a newline; '- **Key**:' when the value is '' (as BlockView.text)."""
    return Piece(f"{indent}- **{key}**:%s%s\n", (_if(f"{expr} != ''", " "), expr))


def optional(key: str, expr: str, indent: str = "") -> Piece:
    """The bullet only when the value is neither NULL nor '' (blocks.attempt_lines' `add`)."""
    present = f"{expr} != ''"
    return Piece("%s%s%s", (_if(present, f"{indent}- **{key}**: "), expr, _if(present, "\n")))


def in_ticks(key: str, expr: str, indent: str = "") -> Piece:
    """optional() with the value in backticks (a path, a command)."""
    present = f"{expr} != ''"
    return Piece("%s%s%s", (_if(present, f"{indent}- **{key}**: `"), expr, _if(present, "`\n")))


def time(key: str, col: str, key_sql: str | None = None) -> Piece:
    """The bullet of a stored time (see time_plain) as fields.fmt_time writes it,
    '2026-01-14T04:20:54Z', only when there is one; `key_sql`: an SQL expression for the key.
    Seconds are cut, not rounded, as strftime() cuts a datetime's microseconds."""
    present = f"{col} IS NOT NULL"
    label = f"CASE WHEN {present} THEN '- **' || {key_sql} || '**: ' END" if key_sql else _if(present, f"- **{key}**: ")
    return Piece("%s%.10s%s%s%s", (label, col, _if(present, "T"), f"substr({col}, 12, 8)", _if(present, "Z\n")))


def text_plain(cols: list[str], code: list[str]) -> list[str]:
    """Conditions that hold when fields.fmt_text (fmt_code for `code`) writes every one of these
    columns as it is: printable ASCII with no space or '"' at its start and no space at its end
    (and no backtick in a path or command). Other text, Unicode included, is left to Python, which
    writes it plainly where it can and as a JSON string where it must."""
    out = []
    for c in cols + code:
        # one byte per character (ASCII, and no NUL, where SQLite's GLOB and printf stop), none a control
        # character, no space or '"' first, no space last; checked column by column (cheaper than one
        # check of them joined, which copies them)
        tests = [f"length({c}) = length(CAST({c} AS BLOB))", f"{c} NOT GLOB '*[^ -~]*'",
                 f"substr({c}, 1, 1) NOT IN (' ', '\"')", f"substr({c}, -1, 1) != ' '"]
        if c in code:
            tests.append(f"instr({c}, '`') = 0")
        out.append(f"{c} IS NULL OR {c} = '' OR ({' AND '.join(tests)})")
    return out


def title_plain(col: str) -> str:
    """A condition that holds when fields.fmt_title writes the title as it is: text_plain's, and
    none of the words a heading's marks end with (ATTEMPT, COMPLETED, QUEUED, HELD) anywhere in
    it; a title that has one is left to Python, which writes a JSON string only where it must."""
    words = " AND ".join(f"instr({col}, '{w}') = 0" for w in ("ATTEMPT", "COMPLETED", "QUEUED", "HELD"))
    return f"({text_plain([col], [])[0]}) AND {words}"


def time_plain(col: str) -> str:
    """NULL, or a time of the length and shape irq stores, naive UTC: '2026-01-14 04:20:54' with
    or without '.ffffff' (the ORM writes one). A time with an offset is left to Python."""
    return (f"CASE WHEN {col} IS NULL THEN 1 ELSE length({col}) IN (19, 26) "
            f"AND substr({col}, 20, 1) IN ('', '.') AND substr({col}, 11, 1) IN (' ', 'T') END")
