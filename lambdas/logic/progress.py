"""Live progress from inside a step: the model's text as it streams, the command being run and
its output. Steps call `emit`; whoever watches (the CLI's live view, the console's event
stream) subscribes in the same process. On Lambda nobody subscribes, so `emit` costs a lookup.

This is how the app hears a step while it runs without the step knowing the app: imports go
app → engine → handlers → logic, and this module sits in logic."""

from __future__ import annotations

import threading
from typing import Any, Callable

Listener = Callable[[str, str, dict[str, Any]], None]  # (run_id, kind, data)

_listeners: list[Listener] = []
_lock = threading.Lock()

# Kinds emitted today (data keys in brackets):
#   model.text       [text]                      a piece of the model's reply as it streams
#   model.tool_call  [index, name, arguments]    a piece of a tool call as it streams
#   command.start    [command]                   a terminal command starts
#   command.output   [stream, text]              a piece of its output (stream: stdout|stderr)
#   command.end      [exitCode, timedOut]
#   retry.wait       [seconds]                   the embedded engine waits before a Retry attempt
#   approval.pending [iteration, calls, timeoutSeconds]  the run waits for a decision on these calls


def subscribe(listener: Listener) -> Callable[[], None]:
    """Adds a listener; returns the function that removes it."""
    with _lock:
        _listeners.append(listener)

    def unsubscribe() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return unsubscribe


def emit(run_id: str, kind: str, **data: Any) -> None:
    """Tells every listener; a failing listener never fails the step."""
    if not _listeners:
        return
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(run_id, kind, data)
        except Exception:  # noqa: BLE001 - watching must never break the work
            pass
