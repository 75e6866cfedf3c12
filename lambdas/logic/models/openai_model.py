"""OpenAI Chat Completions as a ChatModel. Works with any OpenAI-compatible server (Ollama,
vLLM, LM Studio, ...) through `base_url` or the OPENAI_BASE_URL environment variable.

The SDK already retries 408/409/429/5xx and timeouts (with backoff, honouring Retry-After);
whatever still fails afterwards is turned into one of pixie's typed errors, whose class name
the state machine's Retry/Catch rules match."""

from __future__ import annotations

import json

import openai

from lambdas.logic.errors import (
    ModelAuthFailed,
    ModelRequestRejected,
    ModelThrottled,
    ModelUnavailable,
    PixieError,
)
from lambdas.logic.models.base import ModelReply, ToolCall, Usage
from lambdas.logic.secrets import get_api_key


class OpenAIChatModel:
    def __init__(
        self,
        model: str = "gpt-4.1",
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        max_retries: int = 2,
        # Per HTTP attempt. With the SDK's 2 retries this stays inside AgentTurn's 600 s Lambda
        # timeout, so a hung request ends as ModelUnavailable (retried by the state machine).
        timeout_s: float = 180,
        client: openai.OpenAI | None = None,
    ) -> None:
        self.model = model
        self.name = f"openai:{model}"  # same form as the PIXIE_MODEL spec
        if client is None:
            if api_key is None:
                # Fail here, at construction, rather than on the first turn of a run.
                api_key = get_api_key("OPENAI_API_KEY", "PIXIE_OPENAI_SECRET_NAME")
            # base_url=None lets the SDK fall back to OPENAI_BASE_URL, then api.openai.com.
            client = openai.OpenAI(
                api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout_s
            )
        self._client = client
        # Kept only to scrub it from error text: a server may echo what it was sent.
        self._api_key = api_key or getattr(client, "api_key", None) or None

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIChatModel({self.model!r})"

    def complete(self, messages: list[dict], tools: list[dict], *, turn: int) -> ModelReply:
        kwargs: dict = {"model": self.model, "messages": messages}
        if tools:
            # Some compatible servers reject `tools: []` or parallel_tool_calls without tools.
            kwargs["tools"] = tools
            kwargs["parallel_tool_calls"] = True
        try:
            completion = self._client.chat.completions.create(**kwargs)
        except openai.APIError as err:
            raise self._typed_error(err) from None  # `from None`: the SDK error holds the request
        except json.JSONDecodeError:
            # A 200 that is not JSON (a captive proxy, a half-started local server): transient.
            raise ModelUnavailable(f"{self.name}: the API answered with a body that is not JSON") from None
        return self._to_reply(completion)

    def _to_reply(self, completion) -> ModelReply:
        if not completion.choices:
            # Seen from overloaded compatible servers; worth retrying.
            raise ModelUnavailable(f"{self.name} returned no choices")
        message = completion.choices[0].message
        calls = [
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
            for c in (message.tool_calls or [])
            if c.type == "function"  # we only offer function tools
        ]
        usage = completion.usage
        return ModelReply(
            # A refusal arrives instead of content; pass it on so the transcript is not silent.
            content=message.content if message.content is not None else message.refusal,
            tool_calls=calls,
            usage=Usage(
                input_tokens=(usage.prompt_tokens or 0) if usage else 0,
                output_tokens=(usage.completion_tokens or 0) if usage else 0,
            ),
        )

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
