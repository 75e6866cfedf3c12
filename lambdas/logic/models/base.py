"""What the agent needs from a language model: one chat turn with tools."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

# Live pieces of a reply while it streams: on_delta(kind, data), with
#   kind "text"       data {"text": piece of the reply's text}
#   kind "tool_call"  data {"index": position of the call in the reply, "name": the tool's name
#                           (in the call's first piece, "" after), "arguments": piece of its JSON}
# Called on the thread making the call, in order, as pieces arrive; it must return quickly. Only
# for watching (AgentTurn forwards them to lambdas.logic.progress): the reply complete() returns
# is the one that counts, and a failing on_delta never fails the call.
OnDelta = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text, exactly as the model produced it (may be malformed)


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0  # the whole prompt, cached or not
    output_tokens: int = 0
    # Parts of input_tokens: read from the provider's prompt cache (billed at a discount), and
    # written to it (Bedrock's Claude bills these above the input price; OpenAI does not).
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True)
class ModelReply:
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)

    def to_message(self) -> dict:
        """The reply as an OpenAI Chat Completions assistant message (how we store it)."""
        message: dict = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        return message


class ChatModel(Protocol):
    name: str

    def complete(
        self, messages: list[dict], tools: list[dict], *, turn: int, on_delta: OnDelta | None = None
    ) -> ModelReply:
        """One model call. `messages` and `tools` are in OpenAI Chat Completions format;
        `turn` is the 1-based turn number within the run (scripted models use it); `on_delta`
        hears the reply as it streams (see OnDelta). A call blocked on the network ends with
        `Interrupted` when lambdas.logic.cancellation.cancel_all() is called."""
        ...


def safe_delta(on_delta: OnDelta | None) -> OnDelta:
    """on_delta, or nothing, never raising into the model call."""

    def call(kind: str, data: dict[str, Any]) -> None:
        if on_delta is None:
            return
        try:
            on_delta(kind, data)
        except Exception:  # noqa: BLE001 - watching must never break the work
            pass

    return call
