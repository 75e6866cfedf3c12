"""Execution history events as plain JSON. A light module (no moto), so the AWS client can use it
without loading the embedded engine."""

from __future__ import annotations

import json
from typing import Any

# AwaitApproval passes "taskToken.$": "$$.Task.Token" in its Payload, so the live token sits in the
# TaskScheduled event's `parameters` (a JSON string). Anyone holding it and states:SendTaskSuccess
# decides the run, so no history event pixie prints or saves keeps it.
TASK_TOKEN_KEY = "taskToken"
REDACTED = "[redacted]"


def _tokens_in(value: Any, found: set[str]) -> Any:
    """`value` with every taskToken replaced (JSON strings inside it too), collecting the tokens."""
    if isinstance(value, dict):
        redacted = {}
        for key, item in value.items():
            if key == TASK_TOKEN_KEY and isinstance(item, str):
                found.add(item)
                redacted[key] = REDACTED
            else:
                redacted[key] = _tokens_in(item, found)
        return redacted
    if isinstance(value, list):
        return [_tokens_in(item, found) for item in value]
    if isinstance(value, str) and TASK_TOKEN_KEY in value and value.lstrip()[:1] in ("{", "["):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return json.dumps(_tokens_in(parsed, found))
    return value


def redact_task_tokens(value: Any) -> Any:
    """`value` (plain JSON) without any task token: keys named taskToken, and the same token's
    value wherever else it appears (an error cause, a state's input)."""
    found: set[str] = set()
    redacted = _tokens_in(value, found)
    if not found:
        return redacted
    text = json.dumps(redacted)
    for token in found:
        if token and token != REDACTED:
            text = text.replace(json.dumps(token)[1:-1], REDACTED)
    return json.loads(text)


def jsonable(value: Any) -> Any:
    """History events as plain JSON (timestamps as ISO strings), task tokens redacted."""
    return redact_task_tokens(json.loads(json.dumps(value, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v))))
