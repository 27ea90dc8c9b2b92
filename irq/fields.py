"""Canonical text forms of the values queue.md holds, and their parsers.

Each ``fmt_*`` has a ``parse_*`` such that parse(fmt(v)) == v, which is what makes
export -> import -> export reproduce the same text. Parsers also accept the looser forms a
person writes by hand ("1e-4", "2.5 hours", "16GB RAM") and keep any trailing remark
("20 (20×20 matrices)") as an annotation so that no fact is lost.
"""
from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

Scalar = Any  # int | float | str | bool | None

_NUM = re.compile(
    r"^(?P<num>-?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|-?\.[0-9]+(?:[eE][-+]?[0-9]+)?)"
    r"(?:\s+(?P<rest>.+))?$"
)
# in free text, a word shaped as an experiment id usually is one ('Q-1', 'lr-01')
ID_SHAPED = re.compile(r"[A-Za-z][A-Za-z0-9_.]*-[0-9][A-Za-z0-9._-]*")


class FieldError(ValueError):
    """A value that does not read; the caller adds file:line."""


# -- scalars --------------------------------------------------------------------------
def finite(v: Any) -> float | None:
    """A JSON number as the float it is, or None: not a number (a boolean, text, null), NaN,
    infinite, or an integer past float's range (10**400 is valid JSON and no float)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def fmt_scalar(v: Scalar) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return repr(v)
    if v is None:
        return "null"
    return str(v)


def parse_scalar(text: str) -> tuple[Scalar, str | None]:
    """'100,000' -> 100000; '1e-4' -> 0.0001; '20 (20×20 matrices)' -> (20, '(20×20 matrices)'); 'nan' -> 'nan';
    a JSON string ('"100"', '"a\\nb"') -> that text exactly (fmt_list_value writes one where plain text would not read back)."""
    text = text.strip()
    if text[:1] == '"' and (quoted := _json_string(text)) is not None:
        return quoted, None
    if text in ("true", "false"):
        return text == "true", None
    if text == "null":
        return None, None
    m = _NUM.match(text)
    if m:
        num = m.group("num")
        rest = m.group("rest")
        plain = num.replace(",", "")
        if re.fullmatch(r"-?\d+", plain):
            return int(plain), rest
        if math.isfinite(f := float(plain)):
            return f, rest
    return text, None  # 'nan', 'inf' and '1e400' too: JSON has no such number, and SQLite's JSON cannot read one


def _json_string(text: str) -> str | None:
    """The text of a JSON string ('"a\\nb"'); None for anything else, and for one holding a NUL
    (\\u0000: no shell or C string keeps it), which then stays the literal text written."""
    try:
        v = json.loads(text)
    except ValueError:
        return None
    return v if type(v) is str and "\x00" not in v else None


def quoted(text: str) -> str:
    """A JSON string on one printable line (non-printable characters as \\u escapes)."""
    out = json.dumps(text, ensure_ascii=False)
    return out if out.isprintable() else json.dumps(text)


def _one_plain_line(text: str) -> bool:
    """Printable (no line break, no control character) and no space at either end: import strips values."""
    return text.isprintable() and text == text.strip()


def fmt_text(text: str) -> str:
    """A free-text bullet's value (notes, a hypothesis, a job's error) as queue.md writes it: as it
    is when it is one printable line that reads back as itself, else as a JSON string (a note of
    two lines, one holding '### Q-999: …', must not become a heading)."""
    if _one_plain_line(text) and text[:1] != '"':
        return text
    return quoted(text)


# what queue.md's headings add after a title: an attempt's number, DONE's mark, the local queue's mark
HEADING_MARK = re.compile(r"(?:\s-\s+ATTEMPT\s+\d+|\s*✓\s*COMPLETED|\s*\((?:QUEUED|HELD)[^)]*\))\s*$")


def fmt_title(title: str) -> str:
    """A title as a heading writes it: as it is, unless it would read back as something else (it
    ends as a heading's mark does, 'Eval (HELD-OUT split)', or starts with '"'): a JSON string then."""
    if _one_plain_line(title) and title[:1] != '"' and not HEADING_MARK.search(title):
        return title
    return quoted(title)


def fmt_code(text: str) -> str:
    """A path or a command in backticks, or as a JSON string when backticks cannot hold it
    (a command with `date` in it, a line break)."""
    if text and "`" not in text and _one_plain_line(text):
        return f"`{text}`"
    return quoted(text)


def parse_code(value: str) -> str:
    """A path or command: in backticks as the seed writes it, or a JSON string (fmt_code)."""
    text, exact = parse_free_text(value)
    return text if exact else strip_backticks(text)


def parse_text_field(value: str) -> str:
    """A free-text value (notes, a job's error): as written, or a JSON string's text (fmt_text)."""
    return parse_free_text(value)[0]


def parse_free_text(text: str) -> tuple[str, bool]:
    """A bullet's value, and whether it was a JSON string (the exact text, then: no backticks to strip)."""
    text = text.strip()
    if text[:1] == '"' and (got := _json_string(text)) is not None:
        return got, True
    return text, False


_PLAIN_KEY = re.compile(r"[^\s:\"`*\-][^:]*")


@lru_cache(maxsize=4096)
def fmt_list_key(key: str) -> str:
    """A key of a nested list (Results, a parameter) as queue.md writes it: as it is when it reads
    back as itself, else as a JSON string (a job's metrics.json may name a metric 'a: b' or 'x\\ny')."""
    if _PLAIN_KEY.fullmatch(key) and key == key.rstrip() and key.isprintable():
        return key
    return quoted(key)


def fmt_list_value(v: Scalar) -> str:
    """A value of a nested list: fmt_scalar() when it reads back as the same value and type, else a
    JSON string (the text '100' stays text, a line break cannot end the line)."""
    text = fmt_scalar(v)
    if type(v) is not str:
        return text
    if text[:1] == "`" or not text.isprintable() or parse_scalar(text) != (v, None):
        return quoted(v)
    return text


def join_annotation(text: str, annotation: str | None) -> str:
    return f"{text} {annotation}" if annotation else text


# -- times ----------------------------------------------------------------------------
def fmt_time(t: datetime | None) -> str:
    if t is None:
        return ""
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    text = text.strip()
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise FieldError(f"not a UTC time: {text!r} (expected e.g. 2026-01-14T04:20:54Z)") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).replace(microsecond=0)


# -- durations and memory -------------------------------------------------------------
def fmt_minutes(m: int) -> str:
    if m % 60 == 0:
        h = m // 60
        return f"{h} hour" if h == 1 else f"{h} hours"
    if m > 60 and m % 30 == 0:
        return f"{m / 60:g} hours"
    return f"{m} minute" if m == 1 else f"{m} minutes"


def parse_minutes(text: str) -> int:
    """A duration as whole minutes, rounded up: a time limit is never shorter than asked for
    (00:01:30 and '1.5 minutes' are 2 minutes, 45 seconds is 1). SLURM's forms: MM:SS, HH:MM:SS,
    D-HH:MM:SS; or a number and a unit."""
    t = text.strip().lower()
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*(days?|d|hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)", t)
    if m:
        seconds = float(m.group(1)) * {"d": 86400, "h": 3600, "m": 60, "s": 1}[m.group(2)[0]]
        return math.ceil(round(seconds, 6) / 60)  # round(): 0.1 hours is 6 minutes, not 6.000000000000001
    m = re.fullmatch(r"(?:([0-9]+)-)?([0-9]+):([0-9]{2})(?::([0-9]{2}))?", t)
    if m:
        days = int(m.group(1) or 0)
        if m.group(4) is not None:
            h, mi, sec = int(m.group(2)), int(m.group(3)), int(m.group(4))
        else:  # MM:SS, as SLURM reads it
            h, mi, sec = 0, int(m.group(2)), int(m.group(3))
        if sec >= 60 or (mi >= 60 and (m.group(4) is not None or days)):
            raise FieldError(f"not a duration: {text!r} (minutes and seconds run 00 to 59)")
        return days * 1440 + h * 60 + mi + (1 if sec else 0)
    raise FieldError(f"not a duration: {text!r} (expected e.g. '2 hours', '15 minutes', '1 day', '02:30:00')")


def slurm_time(minutes: int) -> str:
    """The --time value: D-HH:MM:SS."""
    d, rem = divmod(minutes, 1440)
    h, m = divmod(rem, 60)
    return f"{d}-{h:02d}:{m:02d}:00" if d else f"{h:02d}:{m:02d}:00"


def fmt_memory(mb: int) -> str:
    return f"{mb // 1024}GB" if mb % 1024 == 0 else f"{mb}MB"


def parse_memory(text: str) -> int:
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*(TB|T|GB|G|MB|M)", text.strip(), re.I)
    if not m:
        raise FieldError(f"not an amount of memory: {text!r} (expected e.g. 16GB or 512MB)")
    n, unit = float(m.group(1)), m.group(2).upper()[0]
    return int(round(n * {"T": 1024 * 1024, "G": 1024, "M": 1}[unit]))


def slurm_memory(mb: int) -> str:
    return f"{mb // 1024}G" if mb % 1024 == 0 else f"{mb}M"


# -- resources: "1 GPU, 16GB RAM, 2 hours, gpu_test partition" ------------------------
RESOURCE_KEYS = ("gpus", "cpus", "memory_mb", "time_minutes", "partition")


def fmt_resources(r: dict[str, Any]) -> str:
    parts = []
    if r.get("gpus") is not None:
        parts.append(f"{r['gpus']} GPU" + ("" if r["gpus"] == 1 else "s"))
    if r.get("cpus") is not None:
        parts.append(f"{r['cpus']} CPU" + ("" if r["cpus"] == 1 else "s"))
    if r.get("memory_mb") is not None:
        parts.append(f"{fmt_memory(r['memory_mb'])} RAM")
    if r.get("time_minutes") is not None:
        parts.append(fmt_minutes(r["time_minutes"]))
    if r.get("partition"):
        parts.append(f"{r['partition']} partition")
    return ", ".join(parts)


SBATCH_UNSAFE = "\"'`\n\r\x00 \t;$\\"  # what a value on an #SBATCH line may not hold


def parse_resources(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        low = part.lower()
        if m := re.fullmatch(r"([0-9]+)\s*gpus?", low):
            out["gpus"] = int(m.group(1))
        elif m := re.fullmatch(r"([0-9]+)\s*(?:cpus?|cores?)", low):
            out["cpus"] = int(m.group(1))
        elif m := re.fullmatch(r"([0-9]+(?:\.[0-9]+)?\s*(?:tb|t|gb|g|mb|m))\s*(?:ram|memory|mem)", low):
            out["memory_mb"] = parse_memory(m.group(1))
        elif m := re.fullmatch(r"(\S+)\s+partition", part):
            out["partition"] = m.group(1)
        else:
            try:
                out["time_minutes"] = parse_minutes(part)
            except FieldError:
                raise FieldError(
                    f"cannot read resource {part!r} (expected e.g. '1 GPU, 4 CPUs, 16GB RAM, 2 hours, gpu_test partition')"
                ) from None
    return out


# -- seeds: "0-9" or "0, 2, 5" ---------------------------------------------------------
def fmt_seeds(seeds: list[int]) -> str:
    if not seeds:
        return ""
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


MAX_SEEDS = 10_000  # seeds of one experiment: one job array (SLURM's MaxArraySize is 1,001 by default)
MAX_SEED = 2**31 - 1  # a seed every RNG takes (numpy, torch, Python) and SLURM can index


def parse_seeds(text: str) -> list[int]:
    """'0-9' or '0, 1, 2' (or both, comma-separated): at most MAX_SEEDS distinct seeds, each at most MAX_SEED."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if m := re.fullmatch(r"([0-9]+)\s*-\s*([0-9]+)", part):
            a, b = int(m.group(1)), int(m.group(2))
            if b < a:
                raise FieldError(f"empty seed range {part!r}")
            if len(seeds) + b - a + 1 > MAX_SEEDS:  # checked before the list is made: '0-100000000' is 10^8 seeds
                raise FieldError(f"seeds {text!r} are {len(seeds) + b - a + 1:,}: an experiment runs at most "
                                 f"{MAX_SEEDS:,} (one job array); split them over several experiments")
            seeds.extend(range(a, b + 1))
        elif re.fullmatch("[0-9]+", part):
            seeds.append(int(part))
        else:
            raise FieldError(f"cannot read seeds {text!r} (expected e.g. '0-9' or '0, 1, 2')")
    if len(set(seeds)) != len(seeds):
        raise FieldError(f"repeated seed in {text!r}")
    if len(seeds) > MAX_SEEDS:
        raise FieldError(f"seeds {text!r} are {len(seeds):,}: an experiment runs at most {MAX_SEEDS:,} "
                         "(one job array); split them over several experiments")
    if seeds and max(seeds) > MAX_SEED:
        raise FieldError(f"seed {max(seeds)} is too large: seeds go up to {MAX_SEED:,} (2^31 - 1)")
    return seeds


# -- dependencies: "Run after for fair comparison" ---------------------
def words_in(text: str) -> list[str]:
    """The words of free text that could be experiment ids, in order, each once ('Q-001.' -> 'Q-001')."""
    return list(dict.fromkeys(w.rstrip("._-") for w in re.findall(r"[A-Za-z][A-Za-z0-9._-]*", text)))


def fmt_dependencies(ids: list[str], raw: str | None) -> str:
    """The dependencies as written by hand when that text names exactly them (import reads the
    experiments a text names), else 'Run after A, B and C'."""
    if raw:
        words = words_in(raw)
        if [w for w in words if w in ids] == ids and not any(w not in ids and ID_SHAPED.fullmatch(w) for w in words):
            return raw
    if not ids:
        return ""
    joined = ids[0] if len(ids) == 1 else ", ".join(ids[:-1]) + " and " + ids[-1]
    return f"Run after {joined}"


# -- parameter labels ------------------------------------------------------------------
PARAM_LABELS = {
    "rank": "Rank",
    "diffusion_steps": "Diffusion steps",
    "train_steps": "Training steps",
    "batch_size": "Batch size",
    "learning_rate": "Learning rate",
}
_LABEL_TO_KEY = {v.lower(): k for k, v in PARAM_LABELS.items()}


PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")  # a parameter's name: what a command's {placeholder} may say


def param_key(label: str) -> str:
    """The parameter a queue.md label names: a backticked name as it is (`LR`), the seed's words
    for the trainer's keys, else the words joined by '_' in lower case ("Mining opt steps")."""
    text = label.strip()
    if len(text) > 2 and text[0] == "`" == text[-1] and PARAM_NAME.fullmatch(text[1:-1]):
        return text[1:-1]
    low = text.lower()
    if low in _LABEL_TO_KEY:
        return _LABEL_TO_KEY[low]
    return re.sub(r"[^0-9a-z]+", "_", low).strip("_")


@lru_cache(maxsize=4096)
def param_label(key: str) -> str:
    """The queue.md label of a parameter: words ("Rank", "Mining opt steps") when they read back as
    the key, else the name itself in backticks (`LR`, `lr.max`), else (a key from before names were
    checked) a JSON string, so an import gives back every key."""
    label = PARAM_LABELS.get(key) or key.replace("_", " ").capitalize()
    if param_key(label) == key:
        return label
    return f"`{key}`" if PARAM_NAME.fullmatch(key) else quoted(key)


def backticked(v: str) -> str:
    return f"`{v}`" if re.fullmatch(r"[\w./@+-]+", v) else v


def strip_backticks(v: str) -> str:
    v = v.strip()
    if len(v) >= 2 and v.startswith("`") and v.endswith("`") and "`" not in v[1:-1]:
        return v[1:-1]
    return v
