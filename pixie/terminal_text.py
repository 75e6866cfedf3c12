"""Text from a model, a tool or a command, made safe to print: control characters and escape
sequences are shown (`\\x1b`), never interpreted by the terminal. A model's reply is untrusted
input, and an `ESC]52` (clipboard write) or `ESC[2K` (line erase) in a file it wrote must not
reach the user's terminal raw. Every place pixie prints such text goes through `visible`."""

from __future__ import annotations

import logging
import re

# C0 controls but tab and newline, DEL, C1 controls (8-bit CSI/OSC...), and the bidirectional
# overrides and isolates that make text read differently from what it is ("Trojan Source").
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object, *, one_line: bool = False) -> str:
    """`text` as str with every control character written out as an escape (`\\x1b`, `\\u202e`).
    Tabs and newlines stay unless `one_line`, where they are escaped too (a name, a status)."""
    if text is None:
        return ""
    return (_UNSAFE_ONE_LINE if one_line else _UNSAFE).sub(_escape, str(text))


class VisibleLogText(logging.Filter):
    """For the handlers' logs on a terminal (`pixie run --verbose`): every text field of a record
    passes through `visible` first. Their JSON already escapes C0 controls; this also catches the
    8-bit ones and bidi overrides a model could put in, say, a tool name."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in list(vars(record).items()):
            if isinstance(value, str):
                setattr(record, key, visible(value, one_line=True))
        return True
