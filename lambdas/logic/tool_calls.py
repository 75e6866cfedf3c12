"""A model's reply made safe to store, route and send back: every tool call gets an id of its own,
names and ids are bounded, and the calls past the per-turn cap are answered without running.

pixie identifies a call by its turn and position (the Map's index, the idempotency key, the
DynamoDB key of its result); the id matters only to the model, which pairs each result with its
call. So an id that is missing, empty, null, oversized, oddly shaped or a duplicate is replaced in
the saved reply, and the next request to the model stays valid."""

from __future__ import annotations

import json
import re
from typing import Any

from lambdas.logic.limits import MAX_TOOL_CALL_ID_CHARS, MAX_TOOL_NAME_CHARS, json_size, replace_lone_surrogates
from lambdas.logic.truncate import bound_text

# What OpenAI and the compatible servers we know send (call_…, toolu_…, functions.x:0, 9-char ids).
_USABLE_ID = re.compile(rf"[A-Za-z0-9_.:\-]{{1,{MAX_TOOL_CALL_ID_CHARS}}}")
_SUMMARY_TAG = re.compile("task_summary", re.IGNORECASE)
# How much of a too-large reply's text is kept, so the conversation shows what happened.
TOO_LARGE_CONTENT_CHARS = 2_000
# A name as the state payload carries it (for the display and metrics): printable ASCII, short.
STATE_NAME_CHARS = 40


def clean_text(text: Any) -> str:
    """`text` as a str every store and API accepts: lone surrogates become U+FFFD."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    return replace_lone_surrogates(text)


def normalize_reply(message: dict[str, Any], turn: int) -> dict[str, Any]:
    """The assistant message with clean text and one usable, unique id per tool call."""
    content = message.get("content")
    normalized: dict[str, Any] = {"role": "assistant", "content": None if content is None else clean_text(content)}
    raw_calls = message.get("tool_calls") or []
    if not raw_calls:
        return normalized
    ids = [call.get("id") for call in raw_calls]
    # The model's own ids are kept where usable and not taken by an earlier call...
    kept: list[str | None] = []
    taken: set[str] = set()
    for call_id in ids:
        if isinstance(call_id, str) and _USABLE_ID.fullmatch(call_id) and call_id not in taken:
            kept.append(call_id)
            taken.add(call_id)
        else:
            kept.append(None)
    # ...and the others get pixie's, named by turn and position, unique among all of them.
    calls = []
    for index, (call, call_id) in enumerate(zip(raw_calls, kept)):
        if call_id is None:
            call_id = f"call_{turn}_{index}"
            while call_id in taken:
                call_id += "x"
            taken.add(call_id)
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        calls.append(
            {
                "id": call_id,
                "type": "function",
                "function": {
                    # Longer than any tool name can be: cut (it runs as an unknown tool either way).
                    "name": clean_text(function.get("name"))[:MAX_TOOL_NAME_CHARS + 1],
                    "arguments": clean_text(arguments),
                },
            }
        )
    normalized["tool_calls"] = calls
    return normalized


def stored_size(message: dict[str, Any]) -> int:
    """Characters the message takes as stored (JSON, non-ASCII escaped)."""
    return json_size(message)


def too_large_reply(message: dict[str, Any], size: int, limit: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """What is saved instead of a reply over the limit: its head, without tool calls, and a user
    message telling the model what happened and what to do."""
    calls = message.get("tool_calls") or []
    kept = bound_text(message.get("content") or "", TOO_LARGE_CONTENT_CHARS)
    kept = _SUMMARY_TAG.sub("task-summary", kept)  # a reply that was not carried out ends nothing
    saved = {"role": "assistant", "content": kept or None}
    notice = {
        "role": "user",
        "content": (
            f"Your last reply was {size:,} characters with {len(calls)} tool calls, over pixie's limit of "
            f"{limit:,}; none of it was carried out. Send smaller replies: fewer or smaller files per "
            "createOrUpdateFiles call, split over several turns."
        ),
    }
    return saved, notice


def not_run_result(call_id: str, position: int, total: int, cap: int) -> dict[str, Any]:
    """The result of a call past the per-turn cap."""
    return {
        "role": "tool",
        "tool_call_id": call_id,
        "content": (
            f"Error: not run. This reply has {total} tool calls and at most {cap} run per turn "
            f"(this was call {position + 1}). Send the calls that still matter in your next reply."
        ),
    }


def state_name(name: str, known: set[str] | frozenset[str]) -> str:
    """The call's tool name as state payloads carry it: a known tool as is, anything else
    escaped to printable ASCII and cut short (it is only shown and counted)."""
    if name in known:
        return name
    return ascii(name)[1:-1][:STATE_NAME_CHARS]
