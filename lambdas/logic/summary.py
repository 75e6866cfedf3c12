"""The onResponse hook: a <task_summary> in the assistant's reply ends the run."""

from __future__ import annotations

import re

from lambdas.logic.limits import MAX_SUMMARY_JSON_CHARS, MAX_TITLE_CHARS, fit_json

_SUMMARY = re.compile(r"<task_summary>(.*?)</task_summary>", re.DOTALL | re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
SUMMARY_CUT_NOTE = "\n[… summary cut by pixie: {omitted} more characters]"


def extract_summary(content: str | None) -> str | None:
    """The trimmed text of the last complete <task_summary> block, or None (also for an empty one)."""
    if not content:
        return None
    matches = _SUMMARY.findall(content)
    summary = matches[-1].strip() if matches else ""
    return bound_summary(summary) if summary else None


def bound_summary(summary: str) -> str:
    """The summary as the run keeps it: at most 4,000 characters as JSON (so the run's result
    stays a small state payload), with a note when it was cut."""
    return fit_json(summary, MAX_SUMMARY_JSON_CHARS, SUMMARY_CUT_NOTE)


def title_from_summary(summary: str) -> str:
    """A short title without another paid model call: the summary's first sentence,
    without markdown, cut at a word boundary."""
    text = re.sub(r"[`*_#>\[\]]", "", summary).strip()
    first_line = next((line.strip(" -") for line in text.splitlines() if line.strip(" -")), "")
    sentence = _SENTENCE_END.split(first_line, maxsplit=1)[0].rstrip(".!? ")
    if len(sentence) > MAX_TITLE_CHARS:  # cut between words where there is one, "…" included
        head = sentence[: MAX_TITLE_CHARS - 1]
        sentence = (head.rsplit(" ", 1)[0] if " " in head else head).rstrip(",;: ") + "…"
    return sentence[:1].upper() + sentence[1:] if sentence else "Untitled"
