"""A run's event stream for the console: the execution's history events and the live progress of
its steps (lambdas/logic/progress.py), in order, kept so that a client connecting late, or
reconnecting with Last-Event-ID, first gets what it missed. Fed from engine threads, read by
asyncio server-sent-event responses."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, AsyncIterator

# Progress pieces (streamed model text, command output) kept per run; history is always kept.
MAX_PROGRESS_ITEMS = 20_000


class RunChannel:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.items: list[dict[str, Any]] = []  # item i has "seq" i + 1
        self.done = False
        self.progress_items = 0
        self.progress_dropped = 0
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def _publish(self, kind: str, data: dict[str, Any], final: bool = False) -> None:
        with self._lock:
            if self.done:
                return
            self.items.append({"seq": len(self.items) + 1, "type": kind, "data": data})
            self.done = final
            waiters = list(self._waiters)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that client's loop is gone
                pass

    def history(self, event: dict[str, Any]) -> None:
        """A Step Functions history event (made JSON-safe by the caller)."""
        self._publish("history", event)

    def progress(self, kind: str, data: dict[str, Any]) -> None:
        """A live progress event from inside a step; every kind is forwarded as it is."""
        if self.progress_items >= MAX_PROGRESS_ITEMS:
            self.progress_dropped += 1
            return
        self.progress_items += 1
        self._publish("progress", {"kind": kind, **data})

    def end(self, status: str, error: str | None = None) -> None:
        self._publish("end", {"status": status, "error": error, "progressDropped": self.progress_dropped}, final=True)

    async def stream(self, after: int = 0) -> AsyncIterator[dict[str, Any]]:
        """Every item after seq `after`, then each new one as it comes, until the run ended."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        waiter = (loop, wake)
        with self._lock:
            self._waiters.add(waiter)
        try:
            while True:
                wake.clear()
                with self._lock:
                    fresh = self.items[after:]
                    done = self.done
                for item in fresh:
                    yield item
                after += len(fresh)
                if done and not fresh:
                    return
                if not fresh:
                    await wake.wait()
        finally:
            with self._lock:
                self._waiters.discard(waiter)


def replay(run_id: str, history: list[dict[str, Any]], status: str, error: str | None) -> RunChannel:
    """The channel of a run that has ended: its whole history, then its end."""
    channel = RunChannel(run_id)
    for event in history:
        channel.history(event)
    channel.end(status, error)
    return channel
