"""Bounds text sent back to the model: keeps the head and the tail, and says what was cut."""

from __future__ import annotations


def bound_text(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    marker = "\n[... {} characters omitted ...]\n"
    if limit < len(marker.format(len(text))):  # no room to say what was cut: a plain cut stays in bounds
        return text[: max(limit, 0)]
    keep = limit - len(marker.format(len(text)))
    head = keep * 2 // 3  # the start usually says what happened; the end says how it ended
    tail = keep - head
    omitted = len(text) - head - tail
    return text[:head] + marker.format(omitted) + (text[-tail:] if tail else "")
