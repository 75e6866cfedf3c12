"""OpenAI Chat Completions as a ChatModel. Works with any OpenAI-compatible server (Ollama,
vLLM, LM Studio, ...) through `base_url` or the OPENAI_BASE_URL environment variable.

The reply is streamed (`stream=True`, usage in the last chunk): its pieces reach `on_delta` as
they arrive, and the timeout is per read, so a long reply that keeps coming never times out while
a server that goes quiet does. The SDK already retries 408/409/429/5xx and timeouts before the
stream starts (with backoff, honouring Retry-After); whatever still fails is turned into one of
pixie's typed errors, whose class name the state machine's Retry/Catch rules match."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import openai

from lambdas.logic.errors import (
    ModelAuthFailed,
    ModelRequestRejected,
    ModelThrottled,
    ModelUnavailable,
    PixieError,
)
from lambdas.logic.cancellation import call_cancellably
from lambdas.logic.models.base import ModelReply, OnDelta, ToolCall, Usage, safe_delta
from lambdas.logic.secrets import get_api_key

CONNECT_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 60.0  # a long conversation is a large request body


class OpenAIChatModel:
    def __init__(
        self,
        model: str = "gpt-4.1",
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        max_retries: int = 2,
        # Longest silence between two pieces of the reply (the first one included): a reply may
        # take as long as it needs while it keeps coming; a server gone quiet is ModelUnavailable
        # (retried by the state machine).
        read_timeout_s: float = 120,
        client: openai.OpenAI | None = None,
    ) -> None:
        self.model = model
        self.name = f"openai:{model}"  # same form as the PIXIE_MODEL spec
        if client is None:
            if api_key is None:
                # Fail here, at construction, rather than on the first turn of a run.
                api_key = get_api_key("OPENAI_API_KEY", "PIXIE_OPENAI_SECRET_NAME")
            # base_url=None lets the SDK fall back to OPENAI_BASE_URL, then api.openai.com.
            timeout = openai.Timeout(
                connect=min(CONNECT_TIMEOUT_S, read_timeout_s), read=read_timeout_s, write=WRITE_TIMEOUT_S, pool=CONNECT_TIMEOUT_S
            )
            client = openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout)
        self._client = client
        # Kept only to scrub it from error text: a server may echo what it was sent.
        self._api_key = api_key or getattr(client, "api_key", None) or None

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIChatModel({self.model!r})"

    def complete(
        self, messages: list[dict], tools: list[dict], *, turn: int, on_delta: OnDelta | None = None
    ) -> ModelReply:
        kwargs: dict = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            # Some compatible servers reject `tools: []` or parallel_tool_calls without tools.
            kwargs["tools"] = tools
            kwargs["parallel_tool_calls"] = True
        in_flight: dict = {}

        def close_stream() -> None:  # from the interrupting thread: the blocked read ends
            stream = in_flight.get("stream")
            if stream is not None:
                stream.close()

        return call_cancellably(lambda: self._stream(kwargs, safe_delta(on_delta), in_flight), on_cancel=close_stream)

    def _stream(self, kwargs: dict, on_delta: OnDelta, in_flight: dict) -> ModelReply:
        reply = _Assembly()
        try:
            stream = self._client.chat.completions.create(**kwargs)
            in_flight["stream"] = stream
            with stream:
                for chunk in stream:
                    reply.add(chunk, on_delta)
        except openai.APITimeoutError:
            if "stream" in in_flight:  # mid-reply: the SDK does not retry a stream that started
                raise ModelUnavailable(f"{self.name}: the reply stopped coming (read timed out mid-stream)") from None
            raise ModelUnavailable(f"{self.name}: request timed out after retries") from None
        except openai.APIError as err:
            raise self._typed_error(err) from None  # `from None`: the SDK error holds the request
        except json.JSONDecodeError:
            # A 200 that is not JSON (a captive proxy, a half-started local server): transient.
            raise ModelUnavailable(f"{self.name}: the API answered with a body that is not JSON") from None
        if not reply.chunks:
            # A 200 without a single event: not a stream (a captive portal's page, say). Transient.
            raise ModelUnavailable(f"{self.name}: the API answered with a body that is not JSON events")
        if not reply.saw_choice:
            # Seen from overloaded compatible servers; worth retrying.
            raise ModelUnavailable(f"{self.name} returned no choices")
        if not reply.finished:
            # The connection ended mid-reply: saving half a reply (half a tool call) would be worse.
            raise ModelUnavailable(f"{self.name}: the stream ended before the reply was complete")
        return reply.to_reply()

    def _typed_error(self, err: openai.APIError) -> PixieError:
        detail = self._redact(_detail(err))
        if isinstance(err, openai.APITimeoutError):  # before APIConnectionError: it is a subclass
            return ModelUnavailable(f"{self.name}: request timed out after retries")
        if isinstance(err, openai.APIConnectionError):
            return ModelUnavailable(f"{self.name}: cannot reach the API ({detail})")
        if isinstance(err, openai.APIStatusError):
            status = err.status_code
            if err.request_id:  # what the provider's support asks for
                detail += f" (request id {err.request_id})"
            if status == 429:
                return ModelThrottled(f"{self.name}: rate limited (429) after retries: {detail}")
            if status >= 500 or status == 408:  # 408 is a server-side timeout, so transient too
                return ModelUnavailable(f"{self.name}: server error ({status}) after retries: {detail}")
            if status in (401, 403):
                return ModelAuthFailed(f"{self.name}: API key rejected ({status}): {detail}")
            return ModelRequestRejected(f"{self.name}: request rejected ({status}): {detail}")
        # Anything else from the SDK (e.g. an unparsable response) is treated as transient.
        return ModelUnavailable(f"{self.name}: {type(err).__name__}: {detail}")

    def _redact(self, text: str) -> str:
        if self._api_key and isinstance(self._api_key, str):
            text = text.replace(self._api_key, "[redacted]")
        return text


def _detail(err: openai.APIError) -> str:
    """The server's own explanation, without the SDK's "Error code: N - " prefix (we say the
    status ourselves); a non-JSON body (say, a proxy's HTML page) is cut short."""
    body = err.body
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]:
        return body["message"]
    if isinstance(body, str) and body.strip():
        return body.strip()[:200]
    return err.message


@dataclass
class _Assembly:
    """A streamed reply put back together: text pieces joined, tool calls by their index (id and
    name come in a call's first piece, its arguments in pieces), usage from the last chunk."""

    chunks: int = 0
    saw_choice: bool = False
    finished: bool = False  # a finish_reason arrived
    text: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    calls: dict[int, dict] = field(default_factory=dict)
    usage: Usage | None = None

    def add(self, chunk, on_delta: OnDelta) -> None:
        self.chunks += 1
        if chunk.usage is not None:
            # prompt_tokens counts the cached ones too; compatible servers may leave the details out.
            details = getattr(chunk.usage, "prompt_tokens_details", None)
            self.usage = Usage(
                input_tokens=chunk.usage.prompt_tokens or 0,
                output_tokens=chunk.usage.completion_tokens or 0,
                cached_input_tokens=int(getattr(details, "cached_tokens", 0) or 0),
            )
        for choice in chunk.choices or []:
            if choice.index not in (0, None):
                continue  # we ask for one choice
            self.saw_choice = True
            if choice.finish_reason:
                self.finished = True
            delta = choice.delta
            if delta is None:
                continue
            if delta.content:
                self.text.append(delta.content)
                on_delta("text", {"text": delta.content})
            if getattr(delta, "refusal", None):
                self.refusal.append(delta.refusal)
            for piece in delta.tool_calls or []:
                self._add_call_piece(piece, on_delta)

    def _add_call_piece(self, piece, on_delta: OnDelta) -> None:
        # Servers that omit the index send each call whole (Ollama): a new call per piece.
        index = piece.index if piece.index is not None else len(self.calls)
        call = self.calls.setdefault(index, {"id": "", "type": "function", "name": "", "arguments": ""})
        if piece.id:
            call["id"] = piece.id  # some servers repeat it in every piece: never concatenate
        if piece.type:
            call["type"] = piece.type
        function = piece.function
        name = (function.name or "") if function else ""
        arguments = (function.arguments or "") if function else ""
        if name and name != call["name"]:
            call["name"] += name
        call["arguments"] += arguments
        if name or arguments:
            on_delta("tool_call", {"index": index, "name": name, "arguments": arguments})

    def to_reply(self) -> ModelReply:
        content = "".join(self.text) if self.text else None
        if content is None and self.refusal:
            # A refusal arrives instead of content; pass it on so the transcript is not silent.
            content = "".join(self.refusal)
        calls = [
            ToolCall(id=call["id"], name=call["name"], arguments=call["arguments"])
            for _, call in sorted(self.calls.items())
            if call["type"] == "function"  # we only offer function tools
        ]
        return ModelReply(content=content, tool_calls=calls, usage=self.usage or Usage())
