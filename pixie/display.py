"""The live view of an execution on stderr: one line as a state starts and one as it ends, with
its duration, the turn's tool calls, and errors. Works on history events from moto or AWS."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import TextIO


def _details(event: dict) -> dict:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def _timestamp(event: dict) -> datetime | None:
    value = event.get("timestamp")
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def lambda_error_message(cause: str | None) -> str | None:
    """Lambda reports errors as a JSON cause; the human part is its errorMessage."""
    if not cause:
        return cause
    try:
        parsed = json.loads(cause)
    except (json.JSONDecodeError, TypeError):
        return cause
    return parsed.get("errorMessage", cause) if isinstance(parsed, dict) else cause


class LiveDisplay:
    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.started: dict[str, datetime | None] = {}  # state name -> when it was last entered
        self.depth = 0
        self.tool_name: str | None = None

    def _print(self, text: str) -> None:
        self.stream.write("  " * self.depth + text + "\n")
        self.stream.flush()

    def __call__(self, event: dict) -> None:
        kind = event.get("type", "")
        details = _details(event)
        if kind.endswith("StateEntered"):
            self.started[details.get("name", "?")] = _timestamp(event)
            if kind == "MapStateEntered":
                self._print(f"▸ {details.get('name')}")
                self.depth += 1
        elif kind == "TaskScheduled":
            parameters = json.loads(details.get("parameters") or "{}")
            self.tool_name = (parameters.get("Payload") or {}).get("name")
        elif kind.endswith("StateExited"):
            self._exited(event, kind, details)
        elif kind in ("TaskFailed", "ExecutionFailed", "LambdaFunctionFailed"):
            message = lambda_error_message(details.get("cause"))
            self._print(f"✗ {details.get('error')}: {message}")

    def _exited(self, event: dict, kind: str, details: dict) -> None:
        name = details.get("name", "?")
        start, end = self.started.get(name), _timestamp(event)
        duration = f"{(end - start).total_seconds():.2f}s" if start and end else ""
        if kind == "MapStateExited":
            self.depth = max(self.depth - 1, 0)
            return
        if kind in ("ChoiceStateExited", "SucceedStateExited", "PassStateExited"):
            return
        note = ""
        try:
            output = json.loads(details.get("output") or "null")
        except json.JSONDecodeError:
            output = None
        if name == "AgentTurn" and isinstance(output, dict):
            calls = [c.get("name") for c in output.get("toolCalls") or []]
            note = f"turn {output.get('iteration')}"
            note += f" → {', '.join(calls)}" if calls else (" → summary" if output.get("hasSummary") else " → text")
        elif name == "RunTool":
            note = f"{self.tool_name or ''}{'' if not isinstance(output, dict) or output.get('ok') else ' (error)'}"
        elif name == "GetSandboxUrl" and isinstance(output, dict):
            note = str(output.get("url", ""))
        self._print(f"✓ {name:<14} {duration:>7}  {note}".rstrip())
