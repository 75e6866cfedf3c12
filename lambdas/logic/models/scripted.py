"""A scripted model: replays a JSON file of turns. For tests, demos and prompt experiments.

    {"turns": [
      {"content": "text or null",
       "tool_calls": [{"name": "createOrUpdateFiles", "arguments": {"files": [...]}}]},
      {"content": "Done. <task_summary>Built a page</task_summary>"}
    ]}

Turn N of the run (1-based) plays turns[N-1], so a retried step replays the same turn.
`arguments` may be a string, sent as-is (to script malformed calls)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from pathlib import Path

from lambdas.logic.errors import InvalidScript, ScriptExhausted
from lambdas.logic.models.base import ModelReply, OnDelta, ToolCall, Usage, safe_delta


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)  # the usual rule of thumb; scripts cost nothing anyway


# A stand-in for a provider's automatic prompt cache (OpenAI's rules: prompts of 1,024 tokens and
# more, hits in steps of 128 tokens, an exact prefix match), so scripted runs report cached tokens
# as a real model would and the bench can price caching offline. Prefixes are matched at message
# boundaries only (a real cache also matches inside a message): an estimate on the low side.
CACHE_MIN_TOKENS = 1024
CACHE_STEP_TOKENS = 128
_CACHE_ENTRIES = 4096
_cached_prefixes: OrderedDict[bytes, None] = OrderedDict()
_cache_lock = threading.Lock()


def forget_cached_prefixes() -> None:
    """Empties the simulated cache (the bench starts each measured run cold)."""
    with _cache_lock:
        _cached_prefixes.clear()


def _cached_tokens(messages: list[dict], tools: list[dict]) -> int:
    """Tokens of the longest prefix (tools, then whole messages) an earlier call sent; remembers
    this call's prefixes for the next."""
    digest = hashlib.sha256(json.dumps(tools).encode())
    chars = len(json.dumps(tools))
    boundaries = []
    for message in messages:
        text = json.dumps(message)
        digest.update(text.encode())
        chars += len(text)
        boundaries.append((digest.copy().digest(), chars // 4))
    hit = 0
    with _cache_lock:
        for key, tokens in boundaries:
            if key in _cached_prefixes:
                _cached_prefixes.move_to_end(key)
                hit = tokens
        for key, tokens in boundaries:
            if tokens >= CACHE_MIN_TOKENS:
                _cached_prefixes[key] = None
        while len(_cached_prefixes) > _CACHE_ENTRIES:
            _cached_prefixes.popitem(last=False)
    return (hit // CACHE_STEP_TOKENS) * CACHE_STEP_TOKENS if hit >= CACHE_MIN_TOKENS else 0


_TURN_KEYS = {"content", "tool_calls"}
_CALL_KEYS = {"id", "name", "arguments"}


def _turn_problem(turn: object) -> str | None:
    """What is wrong with one turn of a script, or None."""
    if not isinstance(turn, dict):
        return f"must be an object, got {type(turn).__name__}"
    unknown = set(turn) - _TURN_KEYS
    if unknown:
        return f"unknown keys {sorted(unknown)}; a turn has content and tool_calls"
    if turn.get("content") is not None and not isinstance(turn["content"], str):
        return f"content must be a string or null, got {type(turn['content']).__name__}"
    calls = turn.get("tool_calls")
    if calls is None:
        return None
    if not isinstance(calls, list):
        return f"tool_calls must be a list, got {type(calls).__name__}"
    for index, call in enumerate(calls):
        where = f"tool_calls[{index}]"
        if not isinstance(call, dict):
            return f"{where} must be an object, got {type(call).__name__}"
        unknown = set(call) - _CALL_KEYS
        if unknown:
            return f"{where} has unknown keys {sorted(unknown)}; a call has id, name and arguments"
        if not isinstance(call.get("name"), str):
            return f"{where}.name must be a string"
        if call.get("id") is not None and not isinstance(call["id"], str):
            return f"{where}.id must be a string or null"
    return None


class ScriptedModel:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"scripted:{self.path}"
        try:
            script = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidScript(f"script file {self.path} does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidScript(f"script file {self.path} is not valid JSON: {exc}") from None
        turns = script.get("turns") if isinstance(script, dict) else None
        if not isinstance(turns, list):
            raise InvalidScript(f'script file {self.path} must hold {{"turns": [{{...}}, ...]}}')
        for number, turn in enumerate(turns, start=1):
            problem = _turn_problem(turn)
            if problem:
                raise InvalidScript(f"script file {self.path}, turn {number}: {problem}")
        self.turns = turns

    def complete(
        self, messages: list[dict], tools: list[dict], *, turn: int, on_delta: OnDelta | None = None
    ) -> ModelReply:
        if turn > len(self.turns):
            raise ScriptExhausted(
                f"the script {self.path.name} has {len(self.turns)} turns and turn {turn} was requested"
            )
        spec = self.turns[turn - 1]
        calls = []
        for index, call in enumerate(spec.get("tool_calls") or []):
            arguments = call.get("arguments", {})
            calls.append(
                ToolCall(
                    # An id given is sent as it is (even null or "", as some servers do).
                    id=call["id"] if "id" in call else f"call_{turn}_{index}",
                    name=str(call.get("name", "")),
                    arguments=arguments if isinstance(arguments, str) else json.dumps(arguments),
                )
            )
        content = spec.get("content")
        # Played back as one piece each, so a live view shows a scripted run as it would a model's.
        delta = safe_delta(on_delta)
        if isinstance(content, str) and content:
            delta("text", {"text": content})
        for index, call in enumerate(calls):
            delta("tool_call", {"index": index, "name": call.name, "arguments": call.arguments})
        prompt_text = json.dumps(messages) + json.dumps(tools)
        reply_text = (content or "") + "".join(c.arguments for c in calls)
        input_tokens = _estimate_tokens(prompt_text)
        return ModelReply(
            content=content,
            tool_calls=calls,
            usage=Usage(
                input_tokens=input_tokens,
                output_tokens=_estimate_tokens(reply_text),
                cached_input_tokens=min(input_tokens, _cached_tokens(messages, tools)),
            ),
        )
