"""Bounds text sent back to the model: keeps the head and the tail, and says what was cut."""

from __future__ import annotations


def bound_text(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    marker = "\n[... {} characters omitted ...]\n"
    keep = max(limit - len(marker.format(len(text))), 0)
    head = keep * 2 // 3  # the start usually says what happened; the end says how it ended
    tail = keep - head
    omitted = len(text) - head - tail
    return text[:head] + marker.format(omitted) + (text[-tail:] if tail else "")
