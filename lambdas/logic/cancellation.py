"""Stopping work in flight when the user interrupts a local run: a model request blocked on a
server that never answers, say. The app (through the engine) calls `cancel_all`; a step's
blocking call runs through `call_cancellably`, which then raises `Interrupted` at once and
closes what it was waiting on. On Lambda nobody cancels, and the call simply runs.

Like progress.py, this lets the app reach into a running step without the step knowing the app."""

from __future__ import annotations

import os
import threading
from typing import Callable, TypeVar

from lambdas.logic.errors import Interrupted

T = TypeVar("T")

_lock = threading.Lock()
_waiting: set[threading.Event] = set()  # one per blocking call in flight
_reason: str | None = None  # set by cancel_all until reset()


def cancel_all(reason: str) -> None:
    """Ends every cancellable call in flight, and every one started later, with Interrupted."""
    global _reason
    with _lock:
        _reason = reason
        waiting = list(_waiting)
    for event in waiting:
        event.set()


def reset() -> None:
    """Calls may run again (a new run in the same process)."""
    global _reason
    with _lock:
        _reason = None


def cancelled() -> str | None:
    """The reason given to cancel_all, or None."""
    return _reason


def call_cancellably(function: Callable[[], T], on_cancel: Callable[[], None] | None = None) -> T:
    """function()'s result or exception; or, when cancel_all() is called first, Interrupted
    right away. The function runs on a daemon thread, so a call stuck in a socket read can be
    abandoned without holding the process; `on_cancel` (best effort) closes what it waits on, so
    it does not stay stuck either."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):  # deployed: nobody cancels, and no thread is needed
        return function()
    done = threading.Event()
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["value"] = function()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    with _lock:
        if _reason is not None:
            raise Interrupted(_reason)
        _waiting.add(done)
    try:
        threading.Thread(target=work, name="pixie-cancellable", daemon=True).start()
        done.wait()
    finally:
        with _lock:
            _waiting.discard(done)
    if "error" in outcome:
        raise outcome["error"]
    if "value" in outcome:
        return outcome["value"]
    # Woken by cancel_all before the call finished.
    if on_cancel is not None:
        try:
            on_cancel()
        except Exception:  # noqa: BLE001 - the call is abandoned either way
            pass
    raise Interrupted(_reason or "interrupted")
