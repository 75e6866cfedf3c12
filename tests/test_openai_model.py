"""OpenAIChatModel against a real HTTP stand-in on 127.0.0.1 (see openai_stub.py): the real SDK
builds the requests, parses the responses and does its own retries."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from openai_stub import OpenAIStub, chat_completion, error_body, stream_chunks

from lambdas.logic import cancellation

from lambdas.logic.errors import (
    ConfigurationError,
    ModelAuthFailed,
    ModelRequestRejected,
    ModelThrottled,
    ModelUnavailable,
    Interrupted,
)
from lambdas.logic.models.base import ChatModel, ModelReply, ToolCall, Usage
from lambdas.logic.models.openai_model import OpenAIChatModel

KEY = "sk-test-fake"
FAST_RETRY = {"retry-after-ms": "10"}  # the SDK honours it instead of its 0.5 s+ backoff
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file from the sandbox.",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "run",
            "description": "Run a shell command.",
            "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
        },
    },
]
USER = [{"role": "user", "content": "Build a todo app"}]


@pytest.fixture
def stub():
    server = OpenAIStub().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    # The developer's own settings must not leak into these tests.
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PIXIE_OPENAI_SECRET_NAME", "OPENAI_CUSTOM_HEADERS"):
        monkeypatch.delenv(name, raising=False)


def model_for(stub: OpenAIStub, **kwargs) -> OpenAIChatModel:
    kwargs.setdefault("max_retries", 2)
    return OpenAIChatModel("gpt-4.1", api_key=KEY, base_url=stub.base_url, **kwargs)


def test_plain_text_reply(stub):
    stub.reply(200, chat_completion("Hello!", usage=(12, 3)))
    model: ChatModel = model_for(stub)

    reply = model.complete(USER, [], turn=1)

    assert reply == ModelReply(content="Hello!", tool_calls=[], usage=Usage(12, 3))
    assert model.name == "openai:gpt-4.1"
    sent = stub.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    # Without tools, neither `tools` nor `parallel_tool_calls` is sent (some servers reject them).
    assert "tools" not in sent.body and "parallel_tool_calls" not in sent.body


def test_two_tool_calls_keep_raw_arguments(stub):
    malformed = '{"cmd": "npm test"'  # truncated JSON: must reach the agent untouched
    stub.reply(
        200,
        chat_completion(None, [("call_1", "read_file", '{"path": "app.js"}'), ("call_2", "run", malformed)]),
    )

    reply = model_for(stub).complete(USER, TOOLS, turn=1)

    assert reply.content is None
    assert reply.tool_calls == [
        ToolCall(id="call_1", name="read_file", arguments='{"path": "app.js"}'),
        ToolCall(id="call_2", name="run", arguments=malformed),
    ]


def test_request_carries_model_tools_and_tool_results(stub):
    stub.reply(200, chat_completion("Done."))
    messages = [
        {"role": "system", "content": "You are pixie."},
        {"role": "user", "content": "Build a todo app"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a"}'}},
                {"id": "call_2", "type": "function", "function": {"name": "run", "arguments": '{"cmd": "ls"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "hello"},
        {"role": "tool", "tool_call_id": "call_2", "content": "a\nb"},
    ]

    model_for(stub).complete(messages, TOOLS, turn=2)

    body = stub.requests[0].body
    assert body["model"] == "gpt-4.1"
    assert body["messages"] == messages
    assert body["tools"] == TOOLS
    assert body["parallel_tool_calls"] is True


def test_missing_usage_counts_as_zero(stub):
    stub.reply(200, chat_completion("ok", usage=None))

    assert model_for(stub).complete(USER, [], turn=1).usage == Usage(0, 0)


def test_throttled_once_then_ok_is_retried_by_the_sdk(stub):
    stub.reply(429, error_body("Rate limit reached", "requests", "rate_limit_exceeded"), FAST_RETRY)
    stub.reply(200, chat_completion("after the wait"))

    reply = model_for(stub).complete(USER, [], turn=1)

    assert reply.content == "after the wait"
    assert len(stub.requests) == 2


def test_throttled_forever_raises_model_throttled(stub):
    stub.always(429, error_body("Rate limit reached", "requests", "rate_limit_exceeded"), FAST_RETRY)

    with pytest.raises(ModelThrottled, match="429.*Rate limit reached"):
        model_for(stub).complete(USER, [], turn=1)
    assert len(stub.requests) == 3  # the first try + max_retries=2


def test_server_error_forever_raises_model_unavailable(stub):
    stub.always(500, error_body("The server had an error", "server_error"), FAST_RETRY)

    with pytest.raises(ModelUnavailable, match="500"):
        model_for(stub).complete(USER, [], turn=1)
    assert len(stub.requests) == 3


def test_request_timeout_408_forever_is_unavailable_not_rejected(stub):
    """408 is the server timing the request out: retried later, like a 5xx, not a bad request."""
    stub.always(408, error_body("Request timed out", "timeout"), FAST_RETRY)

    with pytest.raises(ModelUnavailable, match="408"):
        model_for(stub).complete(USER, [], turn=1)


def test_a_server_may_be_silent_for_120_s_between_pieces_by_default(stub):
    """The README's durability table: 120 s without a byte of the streamed reply is
    ModelUnavailable. The SDK client pixie builds holds that read timeout."""
    model = OpenAIChatModel("gpt-4.1", api_key=KEY, base_url=stub.base_url)
    assert model._client.timeout.read == 120


def test_non_json_gateway_error_is_unavailable_and_shows_the_body(stub):
    stub.always(502, "<html>Bad Gateway</html>", FAST_RETRY)

    with pytest.raises(ModelUnavailable, match="502.*Bad Gateway"):
        model_for(stub, max_retries=0).complete(USER, [], turn=1)


def test_ok_status_with_a_non_json_body_is_unavailable(stub):
    stub.reply(200, "<html>Please log in to the hotel wifi</html>")

    with pytest.raises(ModelUnavailable, match="not JSON"):
        model_for(stub).complete(USER, [], turn=1)


def test_auth_failure_never_shows_the_key(stub):
    # Some compatible servers echo the key they got; the message must not carry it on.
    echoed = error_body(f"Incorrect API key provided: {KEY}", code="invalid_api_key")
    stub.reply(401, echoed, {"x-request-id": "req_9"})
    model = model_for(stub)

    with pytest.raises(ModelAuthFailed) as caught:
        model.complete(USER, [], turn=1)

    assert "401" in str(caught.value) and "req_9" in str(caught.value)
    assert KEY not in str(caught.value)
    assert caught.value.__suppress_context__  # the SDK error (which holds the request) is not chained
    assert KEY not in repr(model)
    assert len(stub.requests) == 1  # 401 is not retried


def test_permission_denied_is_auth_failure(stub):
    stub.reply(403, error_body("Project does not have access to model gpt-4.1"))

    with pytest.raises(ModelAuthFailed, match="403"):
        model_for(stub).complete(USER, [], turn=1)


def test_bad_request_raises_model_request_rejected(stub):
    stub.reply(400, error_body("An assistant message with 'tool_calls' must be followed by tool messages"))

    with pytest.raises(ModelRequestRejected, match="400.*must be followed by tool messages"):
        model_for(stub).complete(USER, TOOLS, turn=1)
    assert len(stub.requests) == 1


def test_unknown_model_is_rejected(stub):
    stub.reply(404, error_body("The model `gpt-nope` does not exist", code="model_not_found"))

    with pytest.raises(ModelRequestRejected, match="openai:gpt-nope.*404"):
        OpenAIChatModel("gpt-nope", api_key=KEY, base_url=stub.base_url).complete(USER, [], turn=1)


def test_timeout_raises_model_unavailable(stub):
    stub.reply(200, chat_completion("too late"), delay_s=1.0)

    with pytest.raises(ModelUnavailable, match="timed out"):
        model_for(stub, max_retries=0, read_timeout_s=0.2).complete(USER, [], turn=1)


def test_connection_refused_raises_model_unavailable():
    with socket.socket() as sock:  # a loopback port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = OpenAIChatModel(api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)

    with pytest.raises(ModelUnavailable, match="cannot reach"):
        model.complete(USER, [], turn=1)


def test_missing_key_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        OpenAIChatModel()


def test_env_key_and_openai_base_url_are_honoured(stub, monkeypatch):
    # OPENAI_BASE_URL is how a local Ollama / vLLM server is selected.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
    stub.reply(200, chat_completion("via env"))

    reply = OpenAIChatModel("llama3.1").complete(USER, [], turn=1)

    assert reply.content == "via env"
    assert stub.requests[0].body["model"] == "llama3.1"
    assert stub.requests[0].headers["authorization"] == "Bearer sk-from-env"


# --- streaming ------------------------------------------------------------------------------------
def test_requests_ask_for_a_stream_with_usage(stub):
    stub.reply(200, chat_completion("Hi", usage=(7, 2)))

    reply = model_for(stub).complete(USER, TOOLS, turn=1)

    assert stub.requests[0].body["stream"] is True
    assert stub.requests[0].body["stream_options"] == {"include_usage": True}
    assert reply.usage == Usage(7, 2)  # from the last chunk, which has no choices


def test_cached_prompt_tokens_are_read_from_the_usage(stub):
    stub.reply(200, chat_completion("Hi", usage=(4096, 2), cached_tokens=3968))

    usage = model_for(stub).complete(USER, TOOLS, turn=1).usage

    # prompt_tokens counts the cached ones too: the whole prompt stays the input.
    assert usage == Usage(input_tokens=4096, output_tokens=2, cached_input_tokens=3968)


def test_pieces_reach_on_delta_in_order_and_the_reply_is_assembled(stub):
    stub.reply(
        200,
        chat_completion(
            "Let me write the files.",
            [("call_a", "createOrUpdateFiles", '{"files": [{"path": "a.js", "content": "x"}]}'), ("call_b", "terminal", '{"command": "ls"}')],
        ),
    )
    heard: list[tuple[str, dict]] = []

    reply = model_for(stub).complete(USER, TOOLS, turn=1, on_delta=lambda kind, data: heard.append((kind, data)))

    assert reply.content == "Let me write the files."
    assert reply.tool_calls == [
        ToolCall("call_a", "createOrUpdateFiles", '{"files": [{"path": "a.js", "content": "x"}]}'),
        ToolCall("call_b", "terminal", '{"command": "ls"}'),
    ]
    texts = [data["text"] for kind, data in heard if kind == "text"]
    assert len(texts) > 1 and "".join(texts) == "Let me write the files."  # in pieces, as they came
    pieces = [data for kind, data in heard if kind == "tool_call"]
    assert pieces[0] == {"index": 0, "name": "createOrUpdateFiles", "arguments": ""}
    assert "".join(p["arguments"] for p in pieces if p["index"] == 1) == '{"command": "ls"}'
    assert [p["name"] for p in pieces if p["name"]] == ["createOrUpdateFiles", "terminal"]


def test_a_failing_listener_does_not_fail_the_call(stub):
    stub.reply(200, chat_completion("fine"))

    def broken(kind, data):
        raise RuntimeError("display bug")

    assert model_for(stub).complete(USER, [], turn=1, on_delta=broken).content == "fine"


def test_a_slow_reply_that_keeps_coming_is_not_timed_out(stub):
    # Six chunks, 0.15 s apart: about 0.9 s in all, longer than the 0.5 s read timeout.
    stub.reply(200, chat_completion("a long answer"), chunk_delay_s=0.15)

    reply = model_for(stub, max_retries=0, read_timeout_s=0.5).complete(USER, [], turn=1)

    assert reply.content == "a long answer"


def test_a_stream_that_goes_quiet_is_unavailable(stub):
    stub.reply(200, chat_completion("stalls after the first chunk"), chunk_delay_s=2.0)

    started = time.monotonic()
    with pytest.raises(ModelUnavailable, match="stopped coming.*timed out mid-stream"):
        model_for(stub, max_retries=0, read_timeout_s=0.3).complete(USER, [], turn=1)
    assert time.monotonic() - started < 1.5


def test_calls_sent_whole_without_index_and_repeated_ids_are_kept_apart(stub):
    # Some compatible servers send each call whole, with no index, or repeat the id in every piece.
    base = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "llama3.1"}

    def chunk(delta):
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}

    stub.reply(
        200,
        [
            chunk({"role": "assistant", "tool_calls": [{"id": "x1", "type": "function", "function": {"name": "terminal", "arguments": '{"command": "ls"}'}}]}),
            chunk({"tool_calls": [{"id": "x2", "type": "function", "function": {"name": "readFiles", "arguments": '{"paths": ["a"]}'}}]}),
            chunk({"tool_calls": [{"index": 5, "id": "y", "type": "function", "function": {"name": "terminal", "arguments": '{"comm'}}]}),
            chunk({"tool_calls": [{"index": 5, "id": "y", "function": {"arguments": 'and": "pwd"}'}}]}),
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        ],
    )

    reply = model_for(stub).complete(USER, TOOLS, turn=1)

    assert reply.tool_calls == [
        ToolCall("x1", "terminal", '{"command": "ls"}'),
        ToolCall("x2", "readFiles", '{"paths": ["a"]}'),
        ToolCall("y", "terminal", '{"command": "pwd"}'),
    ]
    assert reply.usage == Usage(0, 0)  # this server sent none


def test_an_error_in_the_middle_of_the_stream_is_typed(stub):
    chunks = stream_chunks(chat_completion("half"))[:2] + [{"error": {"message": "overloaded", "type": "server_error"}}]
    stub.reply(200, chunks)

    with pytest.raises(ModelUnavailable, match="overloaded"):
        model_for(stub).complete(USER, [], turn=1)


def test_a_stream_with_no_choices_is_unavailable(stub):
    stub.reply(200, [{"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": []}])

    with pytest.raises(ModelUnavailable, match="no choices"):
        model_for(stub, max_retries=0).complete(USER, [], turn=1)


def test_cancel_all_ends_a_request_blocked_on_a_server_that_never_answers(stub):
    stub.hang()
    outcome: dict = {}

    def call():
        try:
            model_for(stub, max_retries=0).complete(USER, [], turn=1)
        except BaseException as exc:  # noqa: BLE001
            outcome["error"] = exc

    worker = threading.Thread(target=call)
    worker.start()
    while not stub.requests:  # the request is in flight
        time.sleep(0.01)
    try:
        started = time.monotonic()
        cancellation.cancel_all("pixie was interrupted (Ctrl-C)")
        worker.join(timeout=5)
        assert not worker.is_alive()
        assert time.monotonic() - started < 2
        assert isinstance(outcome["error"], Interrupted) and "Ctrl-C" in str(outcome["error"])
        with pytest.raises(Interrupted):  # and so is every call after it, until reset
            model_for(stub).complete(USER, [], turn=1)
    finally:
        cancellation.reset()


def test_on_lambda_the_call_runs_on_the_handler_thread(stub, monkeypatch):
    # Nobody cancels a deployed step; its X-Ray context and the like stay on the handler's thread.
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "pixie-agent-turn")
    stub.reply(200, chat_completion("inline"))
    threads: set[str] = set()

    reply = model_for(stub).complete(USER, [], turn=1, on_delta=lambda kind, data: threads.add(threading.current_thread().name))

    assert reply.content == "inline" and threads == {threading.current_thread().name}


def test_a_stream_cut_off_before_the_reply_finished_is_unavailable_not_half_saved(stub):
    # The server closes the connection after half a tool call: no finish_reason ever came.
    stub.reply(200, stream_chunks(chat_completion(None, [("c1", "terminal", '{"command": "rm -rf build && make"}')]))[:3])

    with pytest.raises(ModelUnavailable, match="ended before the reply was complete"):
        model_for(stub, max_retries=0).complete(USER, TOOLS, turn=1)
