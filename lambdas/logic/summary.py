"""The onResponse hook: a <task_summary> in the assistant's reply ends the run."""

from __future__ import annotations

import re

_SUMMARY = re.compile(r"<task_summary>(.*?)</task_summary>", re.DOTALL | re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
MAX_TITLE_CHARS = 60


def extract_summary(content: str | None) -> str | None:
    """The trimmed text of the last complete <task_summary> block, or None (also for an empty one)."""
    if not content:
        return None
    matches = _SUMMARY.findall(content)
    summary = matches[-1].strip() if matches else ""
    return summary or None


def title_from_summary(summary: str) -> str:
    """A short title without another paid model call: the summary's first sentence,
    without markdown, cut at a word boundary."""
    text = re.sub(r"[`*_#>\[\]]", "", summary).strip()
    first_line = next((line.strip(" -") for line in text.splitlines() if line.strip(" -")), "")
    sentence = _SENTENCE_END.split(first_line, maxsplit=1)[0].rstrip(".!? ")
    if len(sentence) > MAX_TITLE_CHARS:
        sentence = sentence[:MAX_TITLE_CHARS].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return sentence[:1].upper() + sentence[1:] if sentence else "Untitled"
