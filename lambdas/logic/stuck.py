"""The stuck-loop breaker: a model that sends the same failing tool call (same name, same
arguments) again and again, or the same reply again and again, is told so plainly after
PIXIE_STUCK_WARN_AFTER repeats; at PIXIE_STUCK_LIMIT (at most 5) the run ends StuckLoop before
another model call is paid for. Read from the conversation alone, so a retried or resumed step
decides the same."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lambdas.logic.truncate import bound_text

STUCK_LOOP = "StuckLoop"
SHOWN_CALL_CHARS = 300
NOT_RUN_PREFIX = "Error: not run."  # tool_calls.not_run_result  # how much of the repeated call the notice and the cause quote


def call_failed(result: str) -> bool:
    """Whether a tool result reports a failure: a tool error, a command that exited non-zero or
    was killed at its timeout."""
    first = result.split("\n", 1)[0]
    return result.startswith("Error:") or (first.startswith("exit code ") and first != "exit code 0") or first.startswith("killed after")


def _signature(call: dict[str, Any]) -> str:
    """A call as name and arguments, the arguments compared as JSON values when they parse."""
    function = call.get("function") or {}
    raw = function.get("arguments") or ""
    try:
        arguments = json.dumps(json.loads(raw), sort_keys=True)
    except (json.JSONDecodeError, TypeError):
        arguments = str(raw)
    return f"{function.get('name')} {arguments}"


@dataclass(frozen=True)
class Repeat:
    count: int  # in a row, up to the end of the conversation
    what: str  # the repeated call or reply, shortened for display
    kind: str  # "call" (a failing tool call) or "reply" (the same reply without tool calls)


def trailing_repeat(messages: list[dict[str, Any]]) -> Repeat | None:
    """The identical failing tool calls (or identical replies without calls) that end the
    conversation, counted; None when its last step was not a repeat of anything."""
    results = {m.get("tool_call_id"): str(m.get("content") or "") for m in messages if m.get("role") == "tool"}
    steps: list[tuple[str, str]] = []  # (kind, signature) in order
    for message in messages:
        if message.get("role") != "assistant":
            continue
        calls = message.get("tool_calls") or []
        if not calls:
            steps.append(("reply", str(message.get("content") or "").strip()))
        for call in calls:
            result = results.get(call.get("id"))
            if result is not None and result.startswith(NOT_RUN_PREFIX):
                continue  # pixie's answer to calls past the per-turn cap: nothing the model saw fail
            failed = result is not None and call_failed(result)
            steps.append(("call", _signature(call)) if failed else ("ok", call.get("id") or ""))
    if not steps or steps[-1][0] == "ok" or (steps[-1] == ("reply", "")):
        return None
    last = steps[-1]
    count = 0
    for step in reversed(steps):
        if step != last:
            break
        count += 1
    return Repeat(count, bound_text(last[1], SHOWN_CALL_CHARS), last[0]) if count > 1 else None


def stuck_notice(repeat: Repeat, limit: int) -> str:
    """What the model is told after a few repeats."""
    if repeat.kind == "call":
        said = f"You have made the same tool call {repeat.count} times in a row and it failed each time:\n{repeat.what}\n"
    else:
        said = f"You have sent the same reply {repeat.count} times in a row.\n"
    return (
        f"[pixie] {said}Repeating it will not change the result. Read the error, then try something different "
        f"(another command, fix the cause first, or write a <task_summary> saying what blocks you). "
        f"At {limit} identical repeats in a row the run is stopped."
    )


def stuck_cause(repeat: Repeat) -> str:
    what = "the same failing tool call" if repeat.kind == "call" else "the same reply"
    return (
        f"The model sent {what} {repeat.count} times in a row, so the run was stopped before another model call: "
        f"{repeat.what}"
    )
