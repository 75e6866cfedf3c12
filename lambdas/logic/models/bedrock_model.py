"""Amazon Bedrock as a ChatModel: `bedrock:<model id or inference profile id>` through the
Converse API (ConverseStream), with IAM instead of an API key.

pixie stores the conversation in OpenAI Chat Completions shape; this adapter maps it to
Converse's (a system block; user/assistant messages that alternate; `toolUse` blocks in the
assistant's message and `toolResult` blocks in the next user message) on the way in, and the
streamed reply back to a ModelReply on the way out.

Live text: `complete(..., on_delta=callback)` hears each piece as it streams, with the contract
of lambdas/logic/models/base.py (OnDelta): ("text", {"text"}) and ("tool_call", {"index", "name",
"arguments"}). The call can be cancelled (Ctrl-C) like OpenAI's: lambdas/logic/cancellation.py.

Credentials and region come from the usual AWS configuration (environment, profile, SSO, the
Lambda role). botocore reads AWS_DEFAULT_REGION but not AWS_REGION; both are honoured here.
AWS_ENDPOINT_URL_BEDROCK_RUNTIME points the client at another Converse endpoint. The embedded
engine runs inside moto, which swaps fake credentials into the environment: it hands this module
the session it resolved before (`use_session`), so a local run signs with the user's own."""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Callable

import boto3
import urllib3.exceptions
from botocore.config import Config
from botocore.eventstream import ParserError as EventStreamParserError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError as BotoConnectionError,
    EventStreamError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    TokenRetrievalError,
)

from lambdas.logic.errors import (
    ConfigurationError,
    ModelAuthFailed,
    ModelRequestRejected,
    ModelThrottled,
    ModelUnavailable,
    PixieError,
)
from lambdas.logic.cancellation import call_cancellably
from lambdas.logic.models.base import ModelReply, OnDelta, ToolCall, Usage, safe_delta


# The SDK retries throttling and 5xx itself (standard mode: 3 attempts, jittered exponential
# backoff); what still fails becomes a typed error the state machine retries with longer waits.
# The read timeout is per read of the stream, not for the whole reply.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3},
    connect_timeout=10,
    read_timeout=180,
    user_agent_appid="pixie",
)

# Converse's own default output limit is small for some families (Llama: 512 tokens), too small
# for a createOrUpdateFiles call; asking for more than a model allows is a ValidationException.
# First matching fragment of the model id wins; other families keep their default.
MAX_OUTPUT_TOKENS: list[tuple[str, int]] = [
    ("anthropic.claude-3-5-haiku", 8192),
    ("anthropic.claude-3-", 4096),
    ("anthropic.claude", 16384),  # Claude 3.7 and 4.x allow far more
    ("amazon.nova", 10000),
    ("meta.llama", 2048),
]

# Models that take Converse `cachePoint` blocks (explicit prompt caching); others reject them.
# https://docs.aws.amazon.com/bedrock/latest/userguide/prompt-caching.html
CACHE_POINT_MODELS = (
    "anthropic.claude-3-7-sonnet",
    "anthropic.claude-3-5-haiku",
    "anthropic.claude-sonnet-4",
    "anthropic.claude-haiku-4-5",
    "anthropic.claude-opus-4",
    "amazon.nova",
)
CACHE_POINT = {"cachePoint": {"type": "default"}}

# Where Bedrock says the error is about access rather than the request.
ACCESS_HINT = (
    "check that this account may use the model in this region (Bedrock console: Model access / "
    "model catalog; Anthropic models first need the one-time use-case form) and that the "
    "credentials may call bedrock:InvokeModelWithResponseStream on it"
)
THROTTLED = {"throttlingexception", "servicequotaexceededexception"}
UNAVAILABLE = {
    "serviceunavailableexception",
    "modelnotreadyexception",
    "internalserverexception",
    "modeltimeoutexception",
    "modelerrorexception",
    "modelstreamerrorexception",
}
AUTH = {
    "accessdeniedexception",
    "unrecognizedclientexception",
    "invalidsignatureexception",
    "expiredtokenexception",
    "expiredtoken",
    "invalidclienttokenid",
}

_session: boto3.session.Session | None = None  # set by the embedded engine only
_endpoint_url: str | None = None  # likewise: the endpoint the user's configuration names
_clients: dict[tuple[str, ...], Any] = {}
_clients_lock = threading.Lock()
# An endpoint override is part of what a cached client was built with.
_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL")


def use_session(session: boto3.session.Session | None, endpoint_url: str | None = None) -> Callable[[], None]:
    """Makes every Bedrock client come from `session` (None: the default configuration), at
    `endpoint_url` if given (the engine resolves it before it clears the user's endpoint settings);
    returns the function that restores the previous ones."""
    global _session, _endpoint_url
    with _clients_lock:
        previous = _session, _endpoint_url
        _session, _endpoint_url = session, endpoint_url
        _clients.clear()

    def restore() -> None:
        global _session, _endpoint_url
        with _clients_lock:
            _session, _endpoint_url = previous
            _clients.clear()

    return restore


def aws_region(session: boto3.session.Session | None = None) -> str | None:
    """The region Bedrock is called in: AWS_REGION, AWS_DEFAULT_REGION, then the profile's."""
    env_region = os.environ.get("AWS_REGION", "").strip()
    if env_region:
        return env_region
    try:
        return (session or boto3.session.Session()).region_name
    except BotoCoreError:  # e.g. a profile named in AWS_PROFILE that does not exist
        return None


def _client() -> Any:
    with _clients_lock:  # creating clients from one session is not thread-safe
        session = _session
        # The engine's session carries the region the user configured (the engine's own
        # environment says us-east-1 for moto).
        region = session.region_name if session is not None and session.region_name else aws_region()
        if not region:
            raise ConfigurationError(
                "bedrock: no AWS region configured: set AWS_REGION or AWS_DEFAULT_REGION "
                "(or a region in your AWS profile)"
            )
        key = (region, _endpoint_url or "", *(os.environ.get(name, "") for name in _ENDPOINT_VARIABLES))
        client = _clients.get(key)
        if client is None:
            # Cached: building a client costs tens of ms, and a warm Lambda reuses it.
            client = (session or boto3.session.Session()).client(
                "bedrock-runtime", region_name=region, config=CLIENT_CONFIG, endpoint_url=_endpoint_url
            )
            _clients[key] = client
        return client


def supports_cache_points(model_id: str) -> bool:
    return any(fragment in model_id for fragment in CACHE_POINT_MODELS)


def max_output_tokens(model_id: str) -> int | None:
    for fragment, limit in MAX_OUTPUT_TOKENS:
        if fragment in model_id:
            return limit
    return None


class BedrockChatModel:
    def __init__(self, model_id: str, *, client: Any | None = None, max_tokens: int | None = None) -> None:
        self.model_id = model_id
        self.name = f"bedrock:{model_id}"  # same form as the PIXIE_MODEL spec
        self.max_tokens = max_tokens if max_tokens is not None else max_output_tokens(model_id)
        # Fail at construction (no region) rather than on the first turn of a run.
        self._client = client if client is not None else _client()

    def __repr__(self) -> str:
        return f"BedrockChatModel({self.model_id!r})"

    def complete(
        self,
        messages: list[dict],
        tools: list[dict],
        *,
        turn: int,
        on_delta: OnDelta | None = None,
    ) -> ModelReply:
        system, conversation = to_converse_messages(messages)
        if supports_cache_points(self.model_id):
            system, conversation = with_cache_points(system, conversation)
        request: dict[str, Any] = {"modelId": self.model_id, "messages": conversation}
        if system:
            request["system"] = system
        if tools:
            request["toolConfig"] = to_tool_config(tools)
        if self.max_tokens:
            request["inferenceConfig"] = {"maxTokens": self.max_tokens}
        try:
            in_flight: dict[str, Any] = {}

            def stream() -> ModelReply:
                response = self._client.converse_stream(**request)
                in_flight["stream"] = response["stream"]
                return assemble_reply(response["stream"], on_delta)

            def close_stream() -> None:  # on Ctrl-C: do not leave the reading thread stuck
                if "stream" in in_flight:
                    in_flight["stream"].close()

            return call_cancellably(stream, on_cancel=close_stream)
        except PixieError:
            raise
        except (ClientError, BotoCoreError) as err:  # EventStreamError is a ClientError
            raise self._typed_error(err) from None  # `from None`: the SDK error holds the request
        except (urllib3.exceptions.HTTPError, EventStreamParserError) as err:
            # The stream broke off or arrived corrupt after the response started: transient.
            raise ModelUnavailable(f"{self.name}: the reply stream broke off ({type(err).__name__})") from None

    def _typed_error(self, err: Exception) -> PixieError:
        if isinstance(err, ClientError):
            code = str(err.response.get("Error", {}).get("Code") or "")
            message = str(err.response.get("Error", {}).get("Message") or "").strip()[:500]
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            request_id = err.response.get("ResponseMetadata", {}).get("RequestId")
            where = " mid-stream" if isinstance(err, EventStreamError) else ""
            detail = f"{code or status}{where}: {message}" + (f" (request id {request_id})" if request_id else "")
            name = code.lower()
            if name in THROTTLED or (status == 429 and name not in UNAVAILABLE):
                return ModelThrottled(f"{self.name}: throttled after retries: {detail}")
            if name in UNAVAILABLE or (isinstance(status, int) and status >= 500):
                return ModelUnavailable(f"{self.name}: unavailable after retries: {detail}")
            if name in AUTH or status in (401, 403):
                return ModelAuthFailed(f"{self.name}: access denied ({detail}); {ACCESS_HINT}")
            if name == "resourcenotfoundexception":
                return ModelRequestRejected(
                    f"{self.name}: no such model or inference profile in this region ({detail})"
                )
            return ModelRequestRejected(f"{self.name}: request rejected ({detail})")
        if isinstance(err, (NoCredentialsError, PartialCredentialsError, TokenRetrievalError)):
            return ModelAuthFailed(f"{self.name}: no usable AWS credentials ({err}); configure them as for the AWS CLI")
        if isinstance(err, (BotoConnectionError, HTTPClientError, IncompleteReadError)):
            # Connection refused or reset, timeouts, a stream cut short: worth retrying later.
            return ModelUnavailable(f"{self.name}: cannot reach Bedrock ({type(err).__name__}: {err})")
        if isinstance(err, ParamValidationError):
            return ModelRequestRejected(f"{self.name}: request rejected by the SDK ({err})")
        # The rest is how the client is set up (endpoint, region, auth): retrying cannot help.
        return ConfigurationError(f"{self.name}: {type(err).__name__}: {err}")


# --- requests: OpenAI-shaped messages -> Converse ------------------------------------------------
def to_tool_config(tools: list[dict]) -> dict:
    """OpenAI function tools as Converse tool specs (the JSON Schema goes in unchanged)."""
    specs = []
    for tool in tools:
        function = tool.get("function") or {}
        spec: dict[str, Any] = {
            "name": function["name"],
            "inputSchema": {"json": function.get("parameters") or {"type": "object", "properties": {}}},
        }
        if function.get("description"):
            spec["description"] = function["description"]
        specs.append({"toolSpec": spec})
    return {"tools": specs}


def _tool_input(raw_arguments: Any) -> dict:
    """A stored call's arguments as Converse's `input` document, which must be a JSON object. A
    malformed call (its error already went back as the tool result) is kept as text."""
    if isinstance(raw_arguments, dict):
        return raw_arguments
    try:
        parsed = json.loads(raw_arguments or "{}")
    except (json.JSONDecodeError, TypeError):
        return {"unparsedArguments": str(raw_arguments)}
    return parsed if isinstance(parsed, dict) else {"unparsedArguments": str(raw_arguments)}


def _text_block(text: Any) -> list[dict]:
    # Converse rejects blank text blocks.
    return [{"text": text}] if isinstance(text, str) and text.strip() else []


def to_converse_messages(messages: list[dict]) -> tuple[list[dict], list[dict]]:
    """(system blocks, messages): system messages become system blocks; tool results go into a
    user message; consecutive messages of one role merge, so user and assistant alternate; the
    conversation starts with a user message, as Converse requires."""
    system: list[dict] = []
    conversation: list[dict] = []

    def append(role: str, blocks: list[dict]) -> None:
        if not blocks:
            return
        if conversation and conversation[-1]["role"] == role:
            conversation[-1]["content"].extend(blocks)
        else:
            conversation.append({"role": role, "content": list(blocks)})

    for message in messages:
        role = message.get("role")
        if role == "system":
            system.extend(_text_block(message.get("content")))
        elif role == "user":
            append("user", _text_block(message.get("content")) or [{"text": "(empty message)"}])
        elif role == "assistant":
            blocks = _text_block(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                blocks.append(
                    {
                        "toolUse": {
                            "toolUseId": call["id"],
                            "name": function.get("name") or "unknown",
                            "input": _tool_input(function.get("arguments")),
                        }
                    }
                )
            append("assistant", blocks or [{"text": "(no reply)"}])
        elif role == "tool":
            result = _text_block(message.get("content")) or [{"text": "(no output)"}]
            append("user", [{"toolResult": {"toolUseId": message["tool_call_id"], "content": result}}])
    if conversation and conversation[0]["role"] != "user":
        conversation.insert(0, {"role": "user", "content": [{"text": "(conversation start)"}]})
    return system, conversation


def with_cache_points(system: list[dict], conversation: list[dict]) -> tuple[list[dict], list[dict]]:
    """A cache point after the system prompt (tools and system come first in the prompt, so it
    caches both) and after each of the last two user messages: the earlier one ends where the
    previous turn's request ended, so this request reads that prefix from the cache, and the
    last one writes the cache the next turn reads. Three of the four a request may carry; a
    prefix below the model's minimum (1,024 tokens for most) is simply not cached."""
    if system:
        system = [*system, CACHE_POINT]
    users = [i for i, message in enumerate(conversation) if message["role"] == "user"][-2:]
    conversation = [
        {**message, "content": [*message["content"], CACHE_POINT]} if i in users else message
        for i, message in enumerate(conversation)
    ]
    return system, conversation


# --- replies: the ConverseStream events -> ModelReply ---------------------------------------------
def assemble_reply(events: Any, on_delta: OnDelta | None = None) -> ModelReply:
    """Folds the stream (messageStart, contentBlockStart/Delta/Stop, messageStop, metadata) into
    one reply: text blocks joined, each toolUse block a ToolCall with its input JSON as sent."""
    texts: dict[int, list[str]] = {}  # content block index -> pieces
    calls: dict[int, dict[str, Any]] = {}  # content block index -> {id, name, pieces, index}
    usage = Usage()
    stop_reason = None

    tell = safe_delta(on_delta)

    for event in events:
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            tool_use = (start.get("start") or {}).get("toolUse")
            if tool_use:
                index = len(calls)
                calls[start["contentBlockIndex"]] = {
                    "id": tool_use["toolUseId"], "name": tool_use["name"], "pieces": [], "index": index
                }
                tell("tool_call", {"index": index, "name": tool_use["name"], "arguments": ""})
        elif "contentBlockDelta" in event:
            block = event["contentBlockDelta"]
            delta = block.get("delta") or {}
            position = block["contentBlockIndex"]
            if "text" in delta:
                texts.setdefault(position, []).append(delta["text"])
                tell("text", {"text": delta["text"]})
            elif "toolUse" in delta and position in calls:
                piece = delta["toolUse"].get("input") or ""
                call = calls[position]
                call["pieces"].append(piece)
                tell("tool_call", {"index": call["index"], "name": call["name"], "arguments": piece})
            # reasoningContent and citations are not part of what pixie stores
        elif "messageStop" in event:
            stop_reason = event["messageStop"].get("stopReason")
        elif "metadata" in event:
            counted = event["metadata"].get("usage") or {}
            # inputTokens leaves out the tokens read from or written to the cache: the prompt
            # is all three (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_TokenUsage.html).
            cache_read = int(counted.get("cacheReadInputTokens") or 0)
            cache_write = int(counted.get("cacheWriteInputTokens") or 0)
            usage = Usage(
                input_tokens=int(counted.get("inputTokens") or 0) + cache_read + cache_write,
                output_tokens=int(counted.get("outputTokens") or 0),
                cached_input_tokens=cache_read,
                cache_write_tokens=cache_write,
            )
    if stop_reason is None:
        # The stream ended without messageStop: a half-received reply must not be stored.
        raise ModelUnavailable("bedrock: the reply stream ended before the message was complete")
    content = "\n".join("".join(texts[i]) for i in sorted(texts)) or None
    if content is None and stop_reason in ("content_filtered", "guardrail_intervened"):
        content = f"(the model's reply was stopped: {stop_reason})"  # so the transcript is not silent
    tool_calls = [
        ToolCall(id=call["id"], name=call["name"], arguments="".join(call["pieces"]) or "{}")
        for _, call in sorted(calls.items())
    ]
    return ModelReply(content=content, tool_calls=tool_calls, usage=usage)
