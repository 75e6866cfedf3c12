"""`pixie run --approve` on a terminal: when the run waits for a decision (AwaitApproval), the
pending calls are shown and the user answers here: y to run them, anything else to deny them,
with a reason for the model. The answer goes through the same seam as `pixie approve` / `deny`
from another shell (pixie/local_run.py: request_decision), which may also decide first."""

from __future__ import annotations

import queue
import sys
import threading
from pathlib import Path
from typing import Any, Callable, TextIO

from lambdas.logic import progress
from pixie.terminal_text import visible

SHOWN_ARGUMENT_CHARS = 300  # of each call's arguments, on the terminal


def describe_calls(calls: list[dict[str, Any]]) -> list[str]:
    """One line per pending call, escaped (a model wrote them)."""
    lines = []
    for call in calls:
        arguments = visible(str(call.get("arguments") or ""), one_line=True)
        if len(arguments) > SHOWN_ARGUMENT_CHARS:
            arguments = arguments[:SHOWN_ARGUMENT_CHARS] + "…"
        lines.append(f"  → {visible(str(call.get('name')), one_line=True)}({arguments})")
    return lines


class InlineApprovals:
    """Listens for `approval.pending` progress events and asks on the terminal, one at a time."""

    def __init__(self, display: Any, pixie_home: Path, stdin: TextIO | None = None) -> None:
        self.display = display
        self.pixie_home = Path(pixie_home)
        self.stdin = stdin or sys.stdin
        self._pending: "queue.Queue[tuple[str, dict[str, Any]]]" = queue.Queue()
        self._thread = threading.Thread(target=self._ask_each, name="pixie-approvals", daemon=True)

    def listen(self) -> Callable[[], None]:
        def on_progress(run_id: str, kind: str, data: dict[str, Any]) -> None:
            if kind == "approval.pending":
                self._pending.put((run_id, data))

        unsubscribe = progress.subscribe(on_progress)
        self._thread.start()
        return unsubscribe

    def _ask_each(self) -> None:
        while True:
            run_id, data = self._pending.get()
            try:
                self._ask(run_id, data)
            except (OSError, ValueError, EOFError):  # no terminal after all: pixie approve / deny still work
                return

    def _read(self, prompt: str) -> str:
        self.display.notice(prompt)
        self.display.pause()
        try:
            line = self.stdin.readline()
        finally:
            self.display.pause(False)
        if not line:
            raise EOFError
        return line.strip()

    def _ask(self, run_id: str, data: dict[str, Any]) -> None:
        from pixie.local_run import NothingToDecide, request_decision

        calls = data.get("calls") or []
        self.display.notice(f"pixie: run {run_id} waits for your approval of {len(calls)} tool call(s):")
        for line in describe_calls(calls):
            self.display.notice(line)
        answer = self._read("pixie: run them? y = yes, n = no (or type the reason for no), then Enter")
        approve = answer.lower() in ("y", "yes")
        reason = None
        if not approve:
            reason = answer if answer.lower() not in ("", "n", "no") else self._read("pixie: why not? (the model is told)")
        try:
            iteration = data.get("iteration")  # the turn whose calls were shown: never a later one
            result = request_decision(self.pixie_home, run_id, approve, reason,
                                      iteration=iteration if isinstance(iteration, int) else None)
        except (NothingToDecide, TimeoutError) as exc:
            self.display.notice(f"pixie: {exc}")
            return
        self.display.notice(f"pixie: {result['calls']} tool call(s) {result['decision']}")
