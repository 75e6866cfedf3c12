"""What the model is sent of a long conversation: large tool results from long ago, and files read
again since, are replaced by a short note naming what was left out. Only the prompt changes: the
stored conversation (what `pixie show` and the console show, and what a resumed run reads) keeps
every result whole.

Prompt caching pays for what does not change: a provider bills a prompt's unchanged beginning at
a fraction of the price. So the line between "old" and "recent" moves in steps (every
`step_turns` turns), not every turn: between two steps the prompt only grows at its end, and
each step changes it once, at the oldest results it elides."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

DEFAULT_COMPACT_AFTER_TURNS = 6
DEFAULT_COMPACT_MIN_CHARS = 2000
NOTE_PREFIX = "[pixie left this out of the prompt to save tokens:"
_SHOWN_CHARS = 80  # of a command or a path the model sent: untrusted, so bounded
_SHOWN_PATHS = 5


@dataclass(frozen=True)
class Compaction:
    after_turns: int = DEFAULT_COMPACT_AFTER_TURNS  # 0: off, everything is sent whole
    min_chars: int = DEFAULT_COMPACT_MIN_CHARS  # results this long or shorter are always sent

    @property
    def step_turns(self) -> int:
        # Each step makes the provider re-read (at the full price) everything after the oldest
        # result it elides; a step as long as `after_turns` elides enough at once to pay that
        # back (measured by `make bench`: half as long a step cost more than no compaction).
        return max(1, self.after_turns)

    def cutoff(self, turn: int) -> int:
        """Results of this turn and earlier are old when `turn` is the turn being prompted: at
        least `after_turns` turns before it, at most `after_turns + step_turns - 1`."""
        if self.after_turns <= 0:
            return 0
        return max(0, (turn - self.after_turns) // self.step_turns * self.step_turns)


def message_turn(key: str) -> int:
    """The turn a message belongs to, from its sort key MSG#<turn:04d>#... (0: earlier runs)."""
    try:
        return int(key.split("#")[1])
    except (IndexError, ValueError):
        return 0


def _shown(text: Any) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= _SHOWN_CHARS else line[: _SHOWN_CHARS - 1] + "…"


def _arguments(raw: Any) -> dict[str, Any]:
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else raw
    except (json.JSONDecodeError, TypeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _read_paths(arguments: dict[str, Any]) -> tuple[str, ...]:
    files = arguments.get("files")
    if not isinstance(files, list) or not all(isinstance(p, str) for p in files):
        return ()
    return tuple(files)


def _paths_text(paths: tuple[str, ...]) -> str:
    shown = ", ".join(_shown(p) for p in paths[:_SHOWN_PATHS])
    more = len(paths) - _SHOWN_PATHS
    return shown + (f" and {more} more" if more > 0 else "")


def _note(name: str, arguments: dict[str, Any], turn: int, chars: int, read_again: bool) -> str:
    if read_again:
        paths = _paths_text(_read_paths(arguments))
        return f"{NOTE_PREFIX} the contents of {paths} as read at turn {turn}; they were read again later, see the newer result]"
    size = f"{chars:,} characters"
    if name == "terminal":
        what = f"the output of the command `{_shown(arguments.get('command', ''))}` at turn {turn} ({size})"
        return f"{NOTE_PREFIX} {what}; run it again if you need it]"
    if name == "readFiles":
        what = f"the contents of {_paths_text(_read_paths(arguments))} as read at turn {turn} ({size})"
        return f"{NOTE_PREFIX} {what}; read them again if you need them]"
    return f"{NOTE_PREFIX} the result of {_shown(name)} at turn {turn} ({size})]"


def compact(keyed: list[tuple[str, dict[str, Any]]], turn: int, compaction: Compaction) -> list[dict[str, Any]]:
    """The messages to send at `turn`, from the stored (sort key, message) pairs in order."""
    messages = [message for _, message in keyed]
    if compaction.after_turns <= 0:
        return messages
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    for message in messages:
        if message.get("role") != "assistant":
            continue
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            calls[call.get("id")] = (str(function.get("name") or ""), _arguments(function.get("arguments")))
    # Where each file was read last: an earlier read of every file a result holds is stale.
    last_read: dict[str, int] = {}
    for index, message in enumerate(messages):
        if message.get("role") != "tool":
            continue
        name, arguments = calls.get(message.get("tool_call_id"), ("", {}))
        if name == "readFiles":
            for path in _read_paths(arguments):
                last_read[path] = index
    cutoff = compaction.cutoff(turn)
    sent = []
    for index, (key, message) in enumerate(keyed):
        content = message.get("content")
        if message.get("role") != "tool" or not isinstance(content, str) or content.startswith(NOTE_PREFIX):
            sent.append(message)
            continue
        name, arguments = calls.get(message.get("tool_call_id"), ("", {}))
        paths = _read_paths(arguments) if name == "readFiles" else ()
        read_again = bool(paths) and all(last_read.get(path, index) > index for path in paths)
        old = message_turn(key) <= cutoff and len(content) > compaction.min_chars
        if read_again or old:
            note = _note(name, arguments, message_turn(key), len(content), read_again)
            if len(note) < len(content):
                message = {**message, "content": note}
        sent.append(message)
    return sent
