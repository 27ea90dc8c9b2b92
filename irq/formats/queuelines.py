"""queue.md, line by line: each kind of line (comment, title, section, checklist item, heading,
bullet, nested item) has its own handler, and every error names the file and line.

The result is the document's shape (title, preamble, blocks of key/value items); what the
blocks mean as experiments and attempts is ``queuefile``'s job.
"""
from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from irq import errors
from irq.fields import parse_free_text
from irq.formats.queue_layout import FORMAT_MARKER, is_irq_export
from irq.ledger.drafts import Draft
from irq.ledger.states import AttemptState, State, normalize_scheduler_state

JOB_STATES = frozenset(a.value for a in AttemptState)
EXPERIMENT_ONLY = frozenset(s.value for s in State) - JOB_STATES  # READY, DONE, …: never a job's state
SECTIONS = {"READY": State.READY, "IN_PROGRESS": State.IN_PROGRESS, "DONE": State.DONE, "FAILED": State.FAILED,
            "RETIRED": State.RETIRED}

_HEADING = re.compile(r"^###\s+(?P<id>\S+?):\s*(?P<rest>.*)$")
_BULLET = re.compile(r"^(?P<indent>\s*)[-*]\s+\*\*(?P<key>[^*]+?)\*\*:\s?(?P<value>.*)$")
_SUBITEM = re.compile(r"^(?P<indent>\s+)[-*]\s+(?P<text>.+)$")
_CHECK = re.compile(r"^[-*]\s+\[(?P<mark>[ xX])\]\s+\*\*(?P<id>[^*]+)\*\*:?\s*(?P<title>.*)$")
_ATTEMPT_SUFFIX = re.compile(r"\s+-\s+ATTEMPT\s+([0-9]+)\s*$")
_COMPLETED_SUFFIX = re.compile(r"\s*✓\s*COMPLETED\s*$")
_QUEUED_SUFFIX = re.compile(r"\s*\(((?:QUEUED|HELD)[^)]*)\)\s*$")


@dataclass
class Item:
    key: str
    value: str
    line: int
    children: list["Item"] = field(default_factory=list)
    key_exact: bool = False  # a nested list's key written as a JSON string: the name itself, not words for it
    bold: bool = False  # a nested item written as a bullet, '- **Notes**: …': a block's bullet indented by mistake


def _json_key(text: str) -> tuple[str, str] | None:
    """'"a: b": 1.0' -> ('a: b', '1.0'): a key fields.fmt_list_key wrote as a JSON string."""
    try:
        key, end = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return None
    rest = text[end:]
    if type(key) is not str or not rest.startswith(":"):
        return None
    return key, rest[1:].strip()


@dataclass
class Block:
    section: str
    line: int
    exp_id: str
    title: str
    attempt_no: int | None = None
    completed_mark: bool = False
    queued_mark: str | None = None
    items: list[Item] = field(default_factory=list)
    checklist: bool = False
    checked: bool = False

    @property
    def status(self) -> str:
        return next((i.value for i in self.items if i.key == "Status"), "")

    def own_state(self) -> bool:
        """'Status: READY' on a block without '- ATTEMPT N': the experiment's own state (as its
        section says), not an attempt's (it made an attempt in state READY, and the experiment FAILED)."""
        return self.attempt_no is None and normalize_scheduler_state(self.status) in EXPERIMENT_ONLY

    def refuse_repeats(self, src: str, free: Collection[str] = ()) -> None:
        """A key given twice would keep one of its values and drop the other: refused (`free`: keys
        kept as a list of free text, where each one stays)."""
        first: dict[str, Item] = {}
        for it in self.items:
            if it.key in first and it.key not in free:
                raise errors.ParseError(src, it.line, f"{it.key!r} is given twice in this block of {self.exp_id} "
                                        f"(also line {first[it.key].line}): only one value can be kept",
                                        "merge them into one bullet")
            first.setdefault(it.key, it)

    def nested_error(self, src: str, it: Item) -> errors.ParseError:
        """A nested list under a bullet that takes none; said as an indented bullet when it is one."""
        child = it.children[0]
        if child.bold:
            return errors.ParseError(src, child.line, f"'{child.key}' is indented under {it.key!r}",
                                     "start a block's bullets at the beginning of the line: - **Key**: value")
        return errors.ParseError(src, child.line, f"{it.key!r} takes no nested list")

    def misplaced(self) -> tuple[str, int] | None:
        """A definition's Status naming another state than its section does: (that state, its line)."""
        item = next((i for i in self.items if i.key == "Status"), None)
        said = normalize_scheduler_state(item.value) if item is not None else None
        return (said, item.line) if item and said != ("PROPOSED" if self.checklist else self.section) else None


@dataclass
class QueueDoc:
    """What one queue.md says, as ledger rows not yet written."""

    title: str = ""
    preamble: str = ""
    future_heading: str = ""
    experiments: list[Draft] = field(default_factory=list)  # rows of Experiment, not yet written
    attempts: list[Draft] = field(default_factory=list)  # rows of Attempt
    repaired_lines: int = 0
    irq_format: bool = False
    order: list[str] = field(default_factory=list)  # queue order, as irq's export records it


# -- reading text ------------------------------------------------------------------------
def read_text(path: Path) -> tuple[str, int]:
    """The file's text (a byte order mark dropped, Windows line ends read as line ends) with
    double-encoded UTF-8 repaired; and how many lines needed it. A file
    irq exported (its marker on the second line) is read as it is: irq wrote it as UTF-8, so
    text that merely looks double-encoded (a job's error quoting 'Ã©') is what was stored."""
    from irq.inputs import MB, read_at_most

    # 10,000 experiments with 40,000 attempts export to some 12 MB
    raw = read_at_most(path, 512 * MB, "a queue.md",
                       "check the path; `irq export FILE` writes a queue.md to start from")
    bom = raw.startswith(b"\xef\xbb\xbf")  # an editor's byte order mark, which UTF-8 does not need
    try:
        text = raw[3 if bom else 0:].decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start + (3 if bom else 0)].count(b"\n") + 1
        raise errors.ParseError(str(path), line, "not UTF-8 text", "save the file as UTF-8") from exc
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # saved on Windows (or an old Mac): lines end as elsewhere
    if is_irq_export(text):
        return text, 0
    import ftfy  # only reading a queue file needs it: keep other commands quick

    fixed_lines, repaired = [], 0
    for line in text.split("\n"):
        fixed = line if line.isascii() else ftfy.fix_encoding(line)  # only non-ASCII text can be mojibake
        repaired += fixed != line
        fixed_lines.append(fixed)
    return "\n".join(fixed_lines), repaired


# -- structure ----------------------------------------------------------------------------
class _Reader:
    """Feeds lines to the handler for their kind; holds where in the document we are."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.doc = QueueDoc()
        self.preamble: list[str] = []
        self.section: str | None = None
        self.blocks: list[Block] = []
        self.cur: Block | None = None
        self.last_item: Item | None = None
        self.in_comment = 0  # the line an open HTML comment started on (0: none open)

    def err(self, n: int, msg: str, hint: str | None = None) -> errors.ParseError:
        return errors.ParseError(self.src, n, msg, hint)

    def feed(self, n: int, line: str) -> None:
        line = self.uncommented(n, line)
        if line is None:
            return
        stripped = line.strip()
        for handler in (self.title, self.section_heading, self.preamble_line):
            if handler(n, line, stripped):
                return
        if not stripped or stripped == "---":
            return
        if self.section == "FUTURE" and self.checklist_item(n, line, stripped):
            return
        if stripped.startswith("#"):
            self.heading(n, stripped)
        elif not self.bullet(n, line) and not self.subitem(n, line) and not self.continuation(line, stripped):
            raise self.err(n, f"expected a bullet '- **Key**: value', got {stripped[:60]!r}")

    def uncommented(self, n: int, line: str) -> str | None:
        """The line without the HTML comments that start it or that it closes (None: nothing is
        left to read); irq's format marker (and its queue order) is read. Text after a comment's
        end is read as the line's."""
        had = bool(self.in_comment)
        if self.in_comment:
            end = line.find("-->")
            if end < 0:
                return None
            self.in_comment, line = 0, line[:len(line) - len(line.lstrip())] + line[end + 3:].lstrip()
        while line.lstrip().startswith("<!--"):
            had, stripped = True, line.strip()
            if stripped.startswith(FORMAT_MARKER):
                self.doc.irq_format = True
                if m := re.search(r"order:\s*([^>]*?)\s*-->", stripped):
                    self.doc.order = m.group(1).split()
            end = line.find("-->", line.find("<!--") + 4)
            if end < 0:
                self.in_comment = n
                return None
            line = line[:len(line) - len(line.lstrip())] + line[end + 3:].lstrip()
        return None if had and not line.strip() else line

    def title(self, n: int, line: str, stripped: str) -> bool:
        if self.section is None and not self.doc.title and stripped.startswith("# "):
            self.doc.title = stripped[2:].strip()
            return True
        return False

    def section_heading(self, n: int, line: str, stripped: str) -> bool:
        if not stripped.startswith("## "):
            return False
        name = stripped[3:].strip()
        key = re.sub(r"[\s-]+", "_", name.upper())  # '## Ready', '## In progress' as a person writes them
        if key in SECTIONS or name.lower().startswith(("future extensions", "proposed")):
            self.section, self.cur, self.last_item = key if key in SECTIONS else "FUTURE", None, None
            if self.section == "FUTURE":
                self.doc.future_heading = name
            return True
        if self.section is None:
            return False  # a heading in the free preamble
        raise self.err(n, f"unknown section {name!r}",
                       "sections are READY, IN_PROGRESS, DONE, FAILED, RETIRED and Future Extensions")

    def preamble_line(self, n: int, line: str, stripped: str) -> bool:
        if self.section is None:
            self.preamble.append(line)
            return True
        return False

    def checklist_item(self, n: int, line: str, stripped: str) -> bool:
        """'- [ ] **Q-NNN**: title' starts a proposed experiment; indented lines belong to it."""
        m = _CHECK.match(stripped) if not line[:1].isspace() else None
        if m:
            self._start(Block("FUTURE", n, m.group("id").strip(), parse_free_text(m.group("title"))[0],
                              checklist=True, checked=m.group("mark") != " "))
            return True
        if self.cur is None or not line[:1].isspace():
            raise self.err(n, f"expected a checklist item '- [ ] **Q-NNN**: title', got {stripped[:60]!r}")
        return False

    def heading(self, n: int, stripped: str) -> None:
        if not stripped.startswith("### "):
            raise self.err(n, f"unexpected heading {stripped[:60]!r} inside section {self.section}")
        m = _HEADING.match(stripped)
        if not m or not m.group("rest").strip():
            raise self.err(n, f"expected a heading '### Q-NNN: Title', got {stripped[:60]!r}")
        self._start(_heading_block(self.section or "", n, m.group("id"), m.group("rest")))

    def _start(self, block: Block) -> None:
        self.cur = block
        self.blocks.append(block)
        self.last_item = None

    def _block(self, n: int, line: str) -> Block:
        if self.cur is None:
            raise self.err(n, f"text outside an experiment block: {line.strip()[:60]!r}",
                           "each entry starts with '### Q-NNN: Title'")
        return self.cur

    def bullet(self, n: int, line: str) -> bool:
        """'- **Key**: value' at the block's own level (a checklist item's bullets are indented)."""
        cur = self._block(n, line)
        indent = len(line) - len(line.lstrip())
        bm = _BULLET.match(line)
        if bm and (indent == 0 or (cur.checklist and (self.last_item is None or indent <= 2))):
            self.last_item = Item(bm.group("key").strip(), bm.group("value").strip(), n)
            cur.items.append(self.last_item)
            return True
        return False

    def subitem(self, n: int, line: str) -> bool:
        """A nested '- Name: value' (or '- **Name**: value') under the last bullet."""
        sm = _SUBITEM.match(line)
        if not sm or self.last_item is None or not line[:1].isspace():
            return False
        text = sm.group("text").strip()
        exact = bold = False
        if text[:1] == '"' and (got := _json_key(text)) is not None:
            key, value, exact = *got, True
        elif bm := _BULLET.match(line):
            key, value, bold = bm.group("key").strip(), bm.group("value").strip(), True
        elif ": " in text or text.endswith(":"):
            key, _, value = text.partition(":")
            key, value = key.strip(), value.strip()
        else:
            raise self.err(n, f"expected 'Name: value' in the list under {self.last_item.key!r}, got {text[:60]!r}")
        self.last_item.children.append(Item(key, value, n, key_exact=exact, bold=bold))
        return True

    def continuation(self, line: str, stripped: str) -> bool:
        """An indented line of text under a bullet continues its value, as in Markdown (a note
        wrapped by hand): joined with a space."""
        if not line[:1].isspace() or self.last_item is None or stripped.startswith(("-", "*", "#")):
            return False
        item = self.last_item.children[-1] if self.last_item.children else self.last_item
        item.value = f"{item.value} {stripped}" if item.value else stripped
        return True

    def finish(self) -> tuple[QueueDoc, list[Block]]:
        if self.in_comment:
            raise self.err(self.in_comment, "an HTML comment starts here and is never closed: everything after it "
                           "would be skipped", "close it with -->")
        pre = self.preamble
        while pre and pre[-1].strip() in ("", "---"):
            pre.pop()  # the separator before the first section belongs to the layout
        while pre and not pre[0].strip():
            pre.pop(0)
        self.doc.preamble = "\n".join(pre)
        return self.doc, self.blocks


def read_blocks(text: str, src: str) -> tuple[QueueDoc, list[Block]]:
    """The document's title, preamble and experiment blocks, in file order."""
    reader = _Reader(src)
    for n, line in enumerate(text.split("\n"), start=1):
        reader.feed(n, line)
    return reader.finish()


def _heading_block(section: str, n: int, exp_id: str, rest: str) -> Block:
    title, attempt_no, completed, queued = rest.strip(), None, False, None
    if m := _COMPLETED_SUFFIX.search(title):
        completed, title = True, title[: m.start()]
    if m := _QUEUED_SUFFIX.search(title):
        queued, title = m.group(1), title[: m.start()]
    if m := _ATTEMPT_SUFFIX.search(title):
        attempt_no, title = int(m.group(1)), title[: m.start()]
    # a title that would read back as something else is written as a JSON string (fields.fmt_title)
    return Block(section, n, exp_id, parse_free_text(title)[0], attempt_no, completed, queued)
