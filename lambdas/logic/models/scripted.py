"""A scripted model: replays a JSON file of turns. For tests, demos and prompt experiments.

    {"turns": [
      {"content": "text or null",
       "tool_calls": [{"name": "createOrUpdateFiles", "arguments": {"files": [...]}}]},
      {"content": "Done. <task_summary>Built a page</task_summary>"}
    ]}

Turn N of the run (1-based) plays turns[N-1], so a retried step replays the same turn.
`arguments` may be a string, sent as-is (to script malformed calls)."""

from __future__ import annotations

import json
from pathlib import Path

from lambdas.logic.errors import InvalidScript, ScriptExhausted
from lambdas.logic.models.base import ModelReply, OnDelta, ToolCall, Usage, safe_delta


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)  # the usual rule of thumb; scripts cost nothing anyway


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
        if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
            raise InvalidScript(f'script file {self.path} must hold {{"turns": [{{...}}, ...]}}')
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
                    id=call.get("id") or f"call_{turn}_{index}",
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
        return ModelReply(
            content=content,
            tool_calls=calls,
            usage=Usage(input_tokens=_estimate_tokens(prompt_text), output_tokens=_estimate_tokens(reply_text)),
        )
