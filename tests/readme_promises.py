"""The promises of the README's Security model, Durability, Bounds, Console and CLI sections, as
(section, label) pairs, and which of them a named mutant (tools/mutations*.py) breaks.

A promise is:
- a bullet whose text begins with a bold label (`- **No capabilities, not root:** ...`): the label;
- a paragraph that begins with a bold label (`**Stopping a run.** ...`): the label;
- a table row: its first cell's first code span (`Lambda.Unknown`, `POST /api/runs`), a command
  cut at its first option list (`pixie run [--model ...]` -> `pixie run`, placeholders such as
  RUN_ID left out), or, with no code span first, the cell's words up to the first `:`, `,` or `(`.

A mutant names a promise when its `promise="Section: label..."` has that section and its label
starts with the promise's label (case, backticks and spacing ignored, ending at a word boundary);
when several labels fit, the longest (`pixie run --continue` over `pixie run`)."""

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

_BOLD_LEAD = re.compile(r"^(?:- )?\*\*(.+?)\*\*")
_PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*…?$")


@dataclass(frozen=True)
class Promise:
    section: str
    label: str

    def __str__(self) -> str:
        return f"{self.section}: {self.label}"


def normalized(label: str) -> str:
    return " ".join(label.replace("`", "").strip().rstrip(".:").lower().split())


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


def _paragraphs(text: str) -> list[str]:
    """Bullets and paragraphs, each joined into one line; tables and code blocks left out."""
    blocks: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("|"):
            continue
        if not line.strip():
            blocks.append("")
        elif line.startswith("- ") or not blocks or not blocks[-1]:
            blocks.append(line)
        else:
            blocks[-1] += " " + line.strip()
    return [b for b in blocks if b]


def _table_rows(text: str) -> list[str]:
    """The first cell of every row of every table in `text` (headers and separators left out)."""
    cells: list[str] = []
    previous = ""
    for line in text.splitlines():
        if line.startswith("|") and not re.match(r"^\|\s*-", line):
            first = re.split(r"(?<!\\)\|", line.strip())[1].strip()
            if previous.startswith("|"):  # not a header: the line above is a row or a separator
                cells.append(first)
        previous = line
    return cells


def readme_promises(text: str | None = None) -> list[Promise]:
    found: list[Promise] = []
    for section, heading in SECTIONS.items():
        body = readme_section(heading, text)
        labels = [m.group(1) for p in _paragraphs(body) if (m := _BOLD_LEAD.match(p))]
        labels += [_row_label(cell) for cell in _table_rows(body)]
        for label in labels:
            promise = Promise(section, " ".join(label.replace("`", "").strip().rstrip(".:").split()))
            if promise.label and promise not in found:
                found.append(promise)
    return found


def promise_named(mutant_promise: str, promises: list[Promise]) -> Promise | None:
    """The README promise a mutant's `promise=` names, or None."""
    section, _, label = mutant_promise.partition(":")
    said = normalized(label)
    fitting = [
        p for p in promises
        if p.section == section.strip()
        and said.startswith(normalized(p.label))
        and not said[len(normalized(p.label)):][:1].isalnum()
    ]
    return max(fitting, key=lambda p: len(p.label), default=None)


def readme_headings(text: str | None = None) -> list[str]:
    text = README.read_text(encoding="utf-8") if text is None else text
    return re.findall(r"^#+ (.+?)\s*$", text, re.MULTILINE)
