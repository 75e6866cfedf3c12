"""The promises of the README's Security model, Durability, Bounds, Console and CLI sections, as
(section, label) pairs, and which of them a named mutant (tools/mutations*.py) breaks.

A promise is, in any Markdown form a README editor may use (fenced code left out, as CommonMark
fences it; blockquotes and GitHub alerts read as plain text):
- a list item (`-`, `*`, `+` or `1.`, however spaced or nested) whose text begins with a bold
  label (`- **No capabilities, not root:** ...`): the label (bullets sharing one are told apart
  by their words, as rows are);
- a paragraph that begins with a bold label (`**Stopping a run.** ...`): the label;
- a row of a table (with or without outer pipes, indented or not; the header row left out),
  labelled by its first cell (an empty one: the first cell with words; bold marks dropped): the
  cell's first code span (`Lambda.Unknown`,
  `GET /api/runs/RUN_ID`), a command cut at its first option list (`pixie run [--model ...]` ->
  `pixie run`, placeholders such as RUN_ID left out), or, with no code span first, the cell's
  words up to the first `:`, `,` or `(`. Every row is a promise of its own: when two rows of a
  section would get the same label, each is labelled by its first cell's words up to the first
  word that tells it from the others (`POST /api/runs {"prompt"` and `POST /api/runs {"rerunOf"`).

A mutant names a promise when its `promise="Section: label..."` has that section and its label
starts with the promise's label (case, backticks and spacing ignored) followed by the end, a dash
(`—`, `–`) or one of `: , ; (` — not by more words, `/` or `-`: `POST /api/runs/{id}/stop` does not
name `POST /api/runs`, and with the `pixie run --continue` row gone its mutants name nothing rather
than `pixie run`; when several labels fit, the longest. A mutant's section must be a README
heading, or its leading words (`Deploy` for "Deploy to AWS"); a checked section however spelt
(`Bounds on what a model sends`, `Security`) is that section."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.promises import README, readme_section

# The README sections whose promises must each have a mutant: the name mutants use, the heading.
SECTIONS = {
    "Security model": "Security model",
    "Durability": "Durability",
    "Bounds": "Bounds on what a model sends",
    "CLI": "CLI",
    "Console": "Console",
}

_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])\s+")
_BOLD_LEAD = re.compile(r"^(\*\*|__)(.+?)\1")
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
# A blockquote's markers (`> `, `>> `): a quoted promise, or a GitHub alert's, is still one.
_QUOTE = re.compile(r"^\s*(?:>\s?)+")
_ALERT = re.compile(r"^\[![A-Z]+\]\s*$")


def fence_after(fence: str | None, line: str) -> str | None:
    """The open code fence after `line` (None: not in code). As CommonMark: a fence closes only
    with the same character, at least as long, and nothing after it."""
    match = _FENCE.match(line)
    if fence is None:
        return match.group(1) if match else None
    if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) and not line[match.end():].strip():
        return None
    return fence
# A table's delimiter row: `|---|:--:|`, `--- | ---`, indented or not; it needs a pipe.
_DELIMITER = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*…?$")
# What may follow a promise's label in a mutant's label: the end, a dash, or one of these.
_LABEL_END = ":,;("


@dataclass(frozen=True)
class Promise:
    section: str
    label: str

    def __str__(self) -> str:
        return f"{self.section}: {self.label}"


def normalized(label: str) -> str:
    return " ".join(label.replace("`", "").strip().rstrip(".:").lower().split())


def _clean(label: str) -> str:
    label = re.sub(r"(\*\*|__)(.+?)\1", r"\2", label)  # a bold cell is labelled by its words
    return " ".join(label.replace("`", "").replace("\\|", "|").strip().rstrip(".:,;").split())


def _row_label(cell: str) -> str:
    if cell.startswith("`"):
        code = cell[1:].split("`", 1)[0].replace("\\|", "|")
        if not code.startswith("pixie"):
            return code
        words = []
        for word in code.split():
            if word.startswith(("[", "|")):
                break
            if not _PLACEHOLDER.match(word):
                words.append(word)
        return " ".join(words)
    return re.split(r"[:,(]", cell, maxsplit=1)[0]


def _is_table_start(lines: list[str], at: int) -> bool:
    return (at + 1 < len(lines) and "|" in lines[at] and "|" in lines[at + 1] and "-" in lines[at + 1]
            and bool(_DELIMITER.match(lines[at + 1])))


def _first_cell(line: str) -> str:
    row = line.strip()
    if row.startswith("|"):
        row = row[1:]
    cells = [cell.strip() for cell in _CELL_SPLIT.split(row)]
    return next((cell for cell in cells if cell), "")  # an empty first cell: the row's first words


def _blocks(text: str) -> tuple[list[str], list[str]]:
    """(paragraphs and list items, each joined into one line with its list marker removed; the
    first cell of every table row), fenced code left out."""
    lines = text.splitlines()
    blocks: list[str] = []
    cells: list[str] = []
    open_block = False  # the next line continues blocks[-1]
    fence: str | None = None
    lines = [_QUOTE.sub("", line) for line in lines]
    at = 0
    while at < len(lines):
        line = lines[at]
        if fence is not None or _FENCE.match(line):
            fence, open_block = fence_after(fence, line), False
        elif _ALERT.match(line.strip()):
            open_block = False  # `[!IMPORTANT]` stands alone; the promise starts on the next line
        elif not line.strip():
            open_block = False
        elif _is_table_start(lines, at):
            at += 2  # the header row and the delimiter row
            while at < len(lines) and lines[at].strip() and not _FENCE.match(lines[at]):
                cells.append(_first_cell(lines[at]))
                at += 1
            open_block = False
            continue
        elif (item := _LIST_ITEM.match(line)) or not open_block or line.lstrip().startswith("#"):
            blocks.append(line[item.end():] if item else line.strip())
            open_block = not line.lstrip().startswith("#")
        else:
            blocks[-1] += " " + line.strip()
        at += 1
    return blocks, cells


def _row_labels(cells: list[str]) -> list[str]:
    """Each row's label: its short label, or where rows share that, their first cell's words up
    to the first one that differs."""
    short = [_clean(_row_label(cell)) for cell in cells]
    words = [[_clean(w) for w in cell.replace("`", "").replace("\\|", "|").split()] for cell in cells]
    labels = []
    for i, cell in enumerate(cells):
        alike = [j for j in range(len(cells)) if j != i and normalized(short[j]) == normalized(short[i])]
        if not alike:
            labels.append(short[i])
            continue
        length = 1
        while length < len(words[i]) and any(
                [w.lower() for w in words[j][:length]] == [w.lower() for w in words[i][:length]] for j in alike):
            length += 1
        labels.append(_clean(" ".join(cell.replace("`", "").replace("\\|", "|").split()[:length])))
    return labels


def readme_promises(text: str | None = None) -> list[Promise]:
    found: list[Promise] = []
    for section, heading in SECTIONS.items():
        blocks, cells = _blocks(readme_section(heading, text))
        # Bullets sharing a bold label are told apart as rows are: by their words up to the first
        # that differs (`Files: downloads ...`).
        bold = [(m.group(2), b[m.end():]) for b in blocks if (m := _BOLD_LEAD.match(b))]
        labels: list[str] = []
        grouped: set[str] = set()
        for label, _ in bold:
            alike = [f"{other.rstrip(':')}: {rest}" for other, rest in bold if normalized(other) == normalized(label)]
            if len(alike) == 1:
                labels.append(label)
            elif normalized(label) not in grouped:  # the group's labels, once
                grouped.add(normalized(label))
                labels += _row_labels(alike)
        labels += _row_labels(cells)
        for label in labels:
            promise = Promise(section, _clean(label))
            if promise.label and promise not in found:
                found.append(promise)
    return found


def promise_named(mutant_promise: str, promises: list[Promise]) -> Promise | None:
    """The README promise a mutant's `promise=` names, or None."""
    section, _, label = mutant_promise.partition(":")
    section = checked_section(section)
    said = normalized(label)

    def fits(promise: Promise) -> bool:
        own = normalized(promise.label)
        after = said[len(own):].lstrip()[:1]
        # Only a separator may follow: `pixie run --continue` must not name `pixie run` (its own row
        # gone, such a mutant names nothing rather than a shorter promise).
        return said.startswith(own) and (not after or after in _LABEL_END or after in "—–")

    fitting = [p for p in promises if p.section == section and fits(p)]
    return max(fitting, key=lambda p: len(p.label), default=None)


def readme_headings(text: str | None = None) -> list[str]:
    """Every heading of the README (a `#` line inside fenced code is not one)."""
    text = README.read_text(encoding="utf-8") if text is None else text
    headings: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        if fence is not None or _FENCE.match(line):
            fence = fence_after(fence, line)
        elif heading := re.match(r"^#+ (.+?)\s*$", line):
            headings.append(heading.group(1))
    return headings


def heading_named(section: str, headings: list[str]) -> str | None:
    """The README heading a mutant's section names: the heading itself, or its leading words."""
    section = section.strip()
    for heading in headings:
        if heading == section or (heading.startswith(section) and not heading[len(section)].isalnum()):
            return heading
    return None


def checked_section(section: str) -> str:
    """The SECTIONS name a mutant's section means, however spelt (`Bounds on what a model sends`,
    `Security`), or the section as written when it is no checked one."""
    section = section.strip()
    if section in SECTIONS:
        return section
    heading = heading_named(section, list(SECTIONS.values()))
    return next((name for name, title in SECTIONS.items() if title == heading), section)
