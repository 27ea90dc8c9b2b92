"""How the results cache writes its entries: doubles as base64 of their IEEE bits (exact to the
bit, and read back far faster than decimal text), a summary or a comparison as one short list, a
whole table as one entry of columns; and what reads each back, None for anything else (a foreign
or damaged entry is recomputed, never trusted)."""
from __future__ import annotations

import base64
import json
import struct
from binascii import a2b_base64
from collections.abc import Sequence


def floats(values: Sequence[float]) -> bytes:
    """The values exactly, as the statistics see them (IEEE doubles, in order)."""
    return struct.pack(f"<{len(values)}d", *values)


def to_text(values: Sequence[float]) -> str:
    """Doubles as base64 text: exact to the bit, and read back far faster than JSON's decimal numbers."""
    return base64.b64encode(floats(values)).decode("ascii")


def from_text(text: object, n: int) -> tuple[float, ...] | None:
    """to_text()'s `n` doubles, or None for anything else."""
    if type(text) is not str:
        return None
    try:
        raw = a2b_base64(text)  # not base64.b64decode: its checks cost more than the decoding (a part's CRC did them)
    except ValueError:
        return None
    return struct.unpack(f"<{n}d", raw) if len(raw) == 8 * n else None


def encode(entries: dict[str, list]) -> bytes:
    return json.dumps(entries, separators=(",", ":")).encode()


def decode(data: bytes) -> dict[str, list]:
    """A part's entries; {} for an empty or undecodable part."""
    if not data:
        return {}
    try:
        entries = json.loads(data)
    except (ValueError, RecursionError):
        return {}
    return entries if type(entries) is dict else {}


def pack(ints: list[int], values: list[float | None], note: str) -> list:
    """An entry: [*ints, which values are present (a bit each), the present ones as base64 of IEEE
    doubles, note]: exact to the bit, and read back without parsing decimal text."""
    mask = sum(1 << i for i, v in enumerate(values) if v is not None)
    present = [float(v) for v in values if v is not None]
    return [*ints, mask, base64.b64encode(struct.pack(f"<{len(present)}d", *present)).decode("ascii"), note]


def unpack(entry: object, ints: int, size: int) -> tuple[list[int], list[float | None], str] | None:
    """pack()'s parts (`ints` integers, `size` values), or None for anything that is not such an entry."""
    if type(entry) is not list or len(entry) != ints + 3:
        return None
    *head, mask, data, note = entry
    if any(type(i) is not int for i in head) or type(mask) is not int or type(note) is not str:
        return None
    if mask < 0 or mask >> size:
        return None
    got = from_text(data, mask.bit_count())
    if got is None:
        return None
    if mask == (1 << size) - 1:
        return head, list(got), note
    present = iter(got)
    return head, [next(present) if mask >> i & 1 else None for i in range(size)], note


def pack_table(rows: Sequence[tuple[Sequence[int], Sequence[float | None], str]]) -> list:
    """A whole table in one entry: [rows, their integers, each row's mask of present values, the
    present values, the notes]; integers and doubles as base64 of their 64-bit forms."""
    ints = [i for r in rows for i in r[0]]
    masks = [sum(1 << k for k, v in enumerate(r[1]) if v is not None) for r in rows]
    present = [float(v) for r in rows for v in r[1] if v is not None]
    b64 = base64.b64encode
    return [len(rows), b64(struct.pack(f"<{len(ints)}q", *ints)).decode("ascii"),
            b64(struct.pack(f"<{len(masks)}q", *masks)).decode("ascii"),
            b64(struct.pack(f"<{len(present)}d", *present)).decode("ascii"), [r[2] for r in rows]]


def unpack_table(entry: object, count: int, ints: int, size: int) \
        -> list[tuple[tuple[int, ...], tuple[float | None, ...], str]] | None:
    """pack_table()'s rows (`count` of them, each `ints` integers and `size` values), or None for
    anything that is not such an entry."""
    if type(entry) is not list or len(entry) != 5 or entry[0] != count or type(entry[0]) is not int:
        return None
    _n, int_text, mask_text, value_text, notes = entry
    if type(notes) is not list or len(notes) != count or any(type(n) is not str for n in notes):
        return None
    try:
        numbers = struct.unpack(f"<{count * ints}q", a2b_base64(int_text))
        masks = struct.unpack(f"<{count}q", a2b_base64(mask_text))
        raw = a2b_base64(value_text)
    except (TypeError, ValueError, struct.error):
        return None
    full = (1 << size) - 1
    if any(m < 0 or m > full for m in masks) or len(raw) != 8 * sum(m.bit_count() for m in masks):
        return None
    values = struct.unpack(f"<{len(raw) // 8}d", raw)
    out, at = [], 0
    for k, (mask, note) in enumerate(zip(masks, notes)):
        if mask == full:
            row = values[at:at + size]
            at += size
        else:
            got = []
            for i in range(size):
                if mask >> i & 1:
                    got.append(values[at])
                    at += 1
                else:
                    got.append(None)
            row = tuple(got)
        out.append((numbers[k * ints:(k + 1) * ints], row, note))
    return out
