"""BedrockChatModel against a real HTTP stand-in for ConverseStream on 127.0.0.1 (see
bedrock_stub.py): the real boto3 client signs, sends, retries and decodes the event stream. Also
the embedded engine letting Bedrock calls past moto with the user's credentials, and a whole
`pixie run --model bedrock:…` as a user runs it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from bedrock_stub import ConverseStub, Error, Stream, converse_reply, event, exception_event

from lambdas.logic.errors import (
    ConfigurationError,
    ModelAuthFailed,
    ModelRequestRejected,
    ModelThrottled,
    ModelUnavailable,
)
from lambdas.logic.models import bedrock_model, model_from_spec
from lambdas.logic.models.base import ModelReply, ToolCall, Usage
from lambdas.logic.models.bedrock_model import BedrockChatModel, to_converse_messages
from lambdas.logic.models.prices import estimate_cost, price_for
from lambdas.logic.tools import tool_definitions

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
PIXIE = Path(sys.executable).parent / "pixie"
SYSTEM = {"role": "system", "content": "You are pixie."}
USER = {"role": "user", "content": "Build a todo app"}


@pytest.fixture
def stub(monkeypatch):
    server = ConverseStub().start()
    # The user's own AWS settings must not leak into these tests; the client finds the stand-in
    # the way any boto3 client would.
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTESTBEDROCK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.endpoint_url)
    yield server
    server.stop()


def test_tool_use_reply_streams_text_and_calls_and_reports_usage(stub):
    stub.reply(
        converse_reply(
            "I'll create the files.",
            [
                ("tooluse_a", "createOrUpdateFiles", json.dumps({"files": [{"path": "a.txt", "content": "A"}]})),
                ("tooluse_b", "terminal", json.dumps({"command": "ls -la"})),
            ],
            usage=(1234, 56),
        )
    )
    deltas: list[dict] = []

    reply = model_from_spec(f"bedrock:{HAIKU}").complete([SYSTEM, USER], tool_definitions(), turn=1, on_delta=lambda kind, data: deltas.append({"kind": f"model.{kind}", **data}))

    assert reply == ModelReply(
        content="I'll create the files.",
        tool_calls=[
            ToolCall("tooluse_a", "createOrUpdateFiles", '{"files": [{"path": "a.txt", "content": "A"}]}'),
            ToolCall("tooluse_b", "terminal", '{"command": "ls -la"}'),
        ],
        usage=Usage(input_tokens=1234, output_tokens=56),
    )
    assert reply.to_message()["tool_calls"][1]["function"] == {"name": "terminal", "arguments": '{"command": "ls -la"}'}
    # Live pieces, in order (as AgentTurn forwards them to progress.py): the text, then each call's JSON.
    assert "".join(d["text"] for d in deltas if d["kind"] == "model.text") == "I'll create the files."
    pieces = [d for d in deltas if d["kind"] == "model.tool_call"]
    assert {d["index"] for d in pieces} == {0, 1}
    assert "".join(d["arguments"] for d in pieces if d["index"] == 1) == '{"command": "ls -la"}'
    assert all(d["name"] == "terminal" for d in pieces if d["index"] == 1)

    (request,) = stub.requests
    assert request.model_id == HAIKU
    assert "/eu-west-1/bedrock/aws4_request" in request.headers["authorization"]  # AWS_REGION honoured
    assert "Credential=AKIDTESTBEDROCK/" in request.headers["authorization"]
    body = request.body
    # Claude 3.5 Haiku takes cache points: after the system prompt and after the last user message.
    assert body["system"] == [{"text": "You are pixie."}, {"cachePoint": {"type": "default"}}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "Build a todo app"}, {"cachePoint": {"type": "default"}}]}]
    assert body["inferenceConfig"] == {"maxTokens": 8192}
    specs = [tool["toolSpec"] for tool in body["toolConfig"]["tools"]]
    assert [s["name"] for s in specs] == ["terminal", "createOrUpdateFiles", "readFiles"]
    for spec, definition in zip(specs, tool_definitions()):
        assert spec["inputSchema"] == {"json": definition["function"]["parameters"]}
        assert spec["description"] == definition["function"]["description"]


def test_a_failing_live_view_never_fails_the_turn(stub):
    stub.reply(converse_reply("still here", [("tu", "terminal", '{"command": "true"}')]))

    def broken(kind: str, data: dict) -> None:
        raise RuntimeError("display crashed")

    reply = BedrockChatModel(HAIKU).complete([USER], tool_definitions(), turn=1, on_delta=broken)
    assert reply.content == "still here" and reply.tool_calls[0].arguments == '{"command": "true"}'


def test_tool_results_go_back_as_tool_result_blocks_in_alternating_messages(stub):
    stub.reply(converse_reply("Done. <task_summary>Built it</task_summary>", usage=(300, 9)))
    conversation = [
        SYSTEM,
        USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "tu_1", "type": "function", "function": {"name": "terminal", "arguments": '{"command": "ls"}'}},
                {"id": "tu_2", "type": "function", "function": {"name": "readFiles", "arguments": '{"files": ['}},
            ],
        },
        {"role": "tool", "tool_call_id": "tu_1", "content": "index.html\n[exit code 0]"},
        {"role": "tool", "tool_call_id": "tu_2", "content": "Error: arguments are not valid JSON"},
        {"role": "assistant", "content": "Let me think."},
        {"role": "user", "content": "Continue; end with a <task_summary>."},
    ]

    reply = BedrockChatModel(HAIKU).complete(conversation, tool_definitions(), turn=3)

    assert reply.content == "Done. <task_summary>Built it</task_summary>" and reply.tool_calls == []
    assert reply.usage == Usage(300, 9)
    assert stub.requests[0].body["messages"] == [
        {"role": "user", "content": [{"text": "Build a todo app"}]},
        {
            "role": "assistant",
            "content": [
                {"toolUse": {"toolUseId": "tu_1", "name": "terminal", "input": {"command": "ls"}}},
                # A malformed call stays in the transcript as text (input must be an object).
                {"toolUse": {"toolUseId": "tu_2", "name": "readFiles", "input": {"unparsedArguments": '{"files": ['}}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "tu_1", "content": [{"text": "index.html\n[exit code 0]"}]}},
                {"toolResult": {"toolUseId": "tu_2", "content": [{"text": "Error: arguments are not valid JSON"}]}},
                # The previous request ended here: this turn reads its cache.
                {"cachePoint": {"type": "default"}},
            ],
        },
        {"role": "assistant", "content": [{"text": "Let me think."}]},
        # And writes the one the next turn reads.
        {"role": "user", "content": [{"text": "Continue; end with a <task_summary>."}, {"cachePoint": {"type": "default"}}]},
    ]


def test_cache_reads_and_writes_are_counted_as_part_of_the_prompt(stub):
    stub.reply(converse_reply("ok", usage=(40, 9), cache=(3000, 500)))

    usage = BedrockChatModel(HAIKU).complete([SYSTEM, USER], [], turn=2).usage

    assert usage == Usage(input_tokens=3540, output_tokens=9, cached_input_tokens=3000, cache_write_tokens=500)


def test_models_without_prompt_caching_get_no_cache_points(stub):
    stub.reply(converse_reply("ok"))

    BedrockChatModel("us.meta.llama3-3-70b-instruct-v1:0").complete([SYSTEM, USER], tool_definitions(), turn=1)

    body = stub.requests[0].body
    assert "cachePoint" not in json.dumps(body)
    assert body["system"] == [{"text": "You are pixie."}]


def test_consecutive_messages_of_one_role_merge_and_blank_text_is_never_sent():
    system, messages = to_converse_messages(
        [
            SYSTEM,
            {"role": "assistant", "content": "  "},  # a conversation must start with the user
            {"role": "user", "content": "a"},
            {"role": "user", "content": ""},
            {"role": "tool", "tool_call_id": "t", "content": ""},
        ]
    )
    assert system == [{"text": "You are pixie."}]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert all(block.get("text", "x").strip() for m in messages for block in m["content"])
    assert messages[2]["content"][-1] == {"toolResult": {"toolUseId": "t", "content": [{"text": "(no output)"}]}}


def test_throttle_then_success_is_retried_by_the_sdk(stub):
    stub.reply(Error(429, "ThrottlingException", "Too many requests, please wait"), converse_reply("ok"))

    reply = BedrockChatModel(HAIKU).complete([USER], [], turn=1)

    assert reply.content == "ok"
    assert len(stub.requests) == 2
    assert "toolConfig" not in stub.requests[1].body  # no tools, no empty toolConfig


def test_throttled_past_the_sdk_retries_is_model_throttled(stub):
    stub.reply(*[Error(429, "ThrottlingException", "Too many tokens per minute")] * 3)

    with pytest.raises(ModelThrottled, match="Too many tokens per minute"):
        BedrockChatModel(HAIKU).complete([USER], [], turn=1)
    assert len(stub.requests) == 3  # standard retry mode: 3 attempts


def test_access_denied_is_model_auth_failed_with_a_model_access_hint_and_no_retry(stub):
    stub.reply(Error(403, "AccessDeniedException", "You don't have access to the model with the specified model ID."))

    with pytest.raises(ModelAuthFailed) as raised:
        BedrockChatModel(HAIKU).complete([USER], [], turn=1)
    message = str(raised.value)
    assert "don't have access" in message and "Model access" in message and "Bedrock console" in message
    assert "test-secret" not in message
    assert len(stub.requests) == 1


@pytest.mark.parametrize(
    ("status", "error_type", "expected"),
    [
        (400, "ValidationException", ModelRequestRejected),
        (404, "ResourceNotFoundException", ModelRequestRejected),
        (503, "ServiceUnavailableException", ModelUnavailable),
        (500, "InternalServerException", ModelUnavailable),
        (502, "SomeFutureGatewayException", ModelUnavailable),  # any 5xx, even a code pixie never heard of
        (429, "ModelNotReadyException", ModelUnavailable),
        (400, "ServiceQuotaExceededException", ModelThrottled),
    ],
)
def test_errors_map_to_the_typed_errors_the_state_machine_retries_or_not(stub, status, error_type, expected):
    stub.reply(*[Error(status, error_type, f"{error_type} from the stand-in")] * 3)

    with pytest.raises(expected, match=error_type):
        BedrockChatModel(HAIKU).complete([USER], [], turn=1)


@pytest.mark.parametrize(
    ("exception_type", "expected"),
    [("throttlingException", ModelThrottled), ("modelStreamErrorException", ModelUnavailable)],
)
def test_an_error_in_the_middle_of_the_stream_is_typed_too(stub, exception_type, expected):
    stub.reply(
        Stream(
            [
                event("messageStart", {"role": "assistant"}),
                event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Half a rep"}}),
                exception_event(exception_type, "stream broke"),
            ]
        )
    )
    with pytest.raises(expected, match="mid-stream"):
        BedrockChatModel(HAIKU).complete([USER], [], turn=1)


def test_a_corrupt_stream_is_unavailable_and_retried_not_a_rejected_request(stub):
    """A frame whose checksum does not match: the stream broke in transit, so the state machine
    must retry the turn (ModelUnavailable), not fail the run as a bad request."""
    corrupt = bytearray(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Half"}}))
    corrupt[-1] ^= 0xFF
    stub.reply(Stream([event("messageStart", {"role": "assistant"}), bytes(corrupt)]))

    with pytest.raises(ModelUnavailable, match="broke off"):
        BedrockChatModel(HAIKU).complete([USER], [], turn=1)


def test_a_stream_that_ends_before_message_stop_is_not_taken_as_a_reply(stub):
    stub.reply(Stream([event("messageStart", {"role": "assistant"}), event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hal"}})]))
    with pytest.raises(ModelUnavailable, match="before the message was complete"):
        BedrockChatModel(HAIKU).complete([USER], [], turn=1)


def test_unreachable_endpoint_is_model_unavailable(stub, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", f"http://127.0.0.1:{port}")
    with pytest.raises(ModelUnavailable, match="cannot reach Bedrock"):
        BedrockChatModel(HAIKU).complete([USER], [], turn=1)


def test_no_region_fails_at_construction(monkeypatch):
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(ConfigurationError, match="AWS_REGION"):
        BedrockChatModel(HAIKU)


def test_output_token_limits_fit_each_family():
    assert BedrockChatModel(HAIKU, client=object()).max_tokens == 8192
    assert BedrockChatModel("us.meta.llama3-3-70b-instruct-v1:0", client=object()).max_tokens == 2048
    assert BedrockChatModel("mistral.mistral-large-2407-v1:0", client=object()).max_tokens is None


def test_prices_cover_bedrock_models_and_inference_profiles():
    assert price_for(f"bedrock:{HAIKU}")[:2] == (0.80, 4.00)
    sonnet = "anthropic.claude-sonnet-4-5-20250929-v1:0"
    for prefix in ("", "us.", "eu.", "apac.", "global."):
        assert price_for(f"bedrock:{prefix}{sonnet}")[:2] == (3.00, 15.00), prefix
    assert estimate_cost("bedrock:us.amazon.nova-micro-v1:0", 1_000_000, 1_000_000) == pytest.approx(0.175)


def test_cached_tokens_are_priced_at_their_own_rates():
    sonnet = "bedrock:us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    # A million prompt tokens: 600k read from the cache (10 %), 100k written to it (125 %), the rest plain.
    assert estimate_cost(sonnet, 1_000_000, 0, cached_input_tokens=600_000, cache_write_tokens=100_000) == pytest.approx(
        0.3 * 3.00 + 0.6 * 0.30 + 0.1 * 3.75
    )
    # OpenAI: cached input at a quarter of the price, no write surcharge.
    assert estimate_cost("openai:gpt-4.1", 1_000_000, 0, cached_input_tokens=1_000_000) == pytest.approx(0.50)
    assert estimate_cost("openai:gpt-4.1", 1_000_000, 0, cache_write_tokens=1_000_000) == pytest.approx(2.00)
    # A model without caching bills cached tokens as input; counts past the prompt are clamped.
    llama = "bedrock:meta.llama3-3-70b-instruct-v1:0"
    assert estimate_cost(llama, 1_000_000, 0, cached_input_tokens=5_000_000) == pytest.approx(0.72)
    assert price_for("bedrock:some.unknown-model-v1:0") is None


# --- the embedded engine: Bedrock calls go past moto, signed with the user's credentials -----------
def test_inside_the_engine_bedrock_uses_the_users_region_and_credentials_not_motos(monkeypatch):
    from botocore.awsrequest import AWSResponse

    from statemachine.engine import LocalEngine

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDUSERSOWN")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "users-secret")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    sent: list = []

    def answer(request, **_):  # registered after moto's stubber: reached only if moto let it pass
        sent.append(request)
        body = b"".join(converse_reply("hi from Bedrock").events)
        return AWSResponse(request.url, 200, {"content-type": "application/vnd.amazon.eventstream"}, _Raw(body))

    with LocalEngine({"PIXIE_MODEL": f"bedrock:{HAIKU}"}):
        assert os.environ["AWS_ACCESS_KEY_ID"] != "AKIDUSERSOWN"  # moto's fake keys, inside
        model = model_from_spec(f"bedrock:{HAIKU}")
        model._client.meta.events.register_last("before-send", answer)
        reply = model.complete([USER], [], turn=1)
        # moto's own DynamoDB still answers the engine's calls
        assert "TableNames" in boto3.client("dynamodb").list_tables()

    assert reply.content == "hi from Bedrock"
    (request,) = sent
    assert request.url.startswith("https://bedrock-runtime.eu-central-1.amazonaws.com/model/")
    authorization = request.headers["Authorization"]
    authorization = authorization.decode() if isinstance(authorization, bytes) else authorization
    assert "Credential=AKIDUSERSOWN/" in authorization
    assert bedrock_model._session is None  # handed back when the engine closed


class _Raw:
    """The raw urllib3 response botocore streams an event stream from."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, amt: int = 1024, decode_content: bool = False):
        yield self.data

    def read(self, amt: int | None = None) -> bytes:
        data, self.data = self.data, b""
        return data


# --- a whole run, as a user starts it -----------------------------------------------------------
def test_pixie_run_with_a_bedrock_model_runs_the_tool_loop_to_a_summary(stub, tmp_path):
    page = "<h1>Hello from Bedrock</h1>"
    stub.reply(
        converse_reply(
            "Writing the page.",
            [("tooluse_write", "createOrUpdateFiles", json.dumps({"files": [{"path": "index.html", "content": page}]}))],
        ),
        converse_reply(None, [("tooluse_cat", "terminal", json.dumps({"command": "cat index.html"}))]),
        converse_reply("Done. <task_summary>Built a hello page</task_summary>", usage=(900, 20)),
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["PIXIE_HOME"] = str(tmp_path)

    result = subprocess.run(
        [str(PIXIE), "run", "--json", "--no-serve", "--model", f"bedrock:{HAIKU}", "Build a hello page"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )

    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["status"] == "SUCCEEDED"
    assert output["summary"] == "Built a hello page"
    assert output["files"] == {"index.html": page}
    assert len(stub.requests) == 3
    for request in stub.requests:  # the stand-in saw the user's credentials and region, not moto's
        assert request.model_id == HAIKU
        assert "Credential=AKIDTESTBEDROCK/" in request.headers["authorization"]
        assert "/eu-west-1/bedrock/" in request.headers["authorization"]
    results = [
        block["toolResult"]
        for message in stub.requests[2].body["messages"]
        for block in message["content"]
        if "toolResult" in block
    ]
    assert [r["toolUseId"] for r in results] == ["tooluse_write", "tooluse_cat"]
    assert page in results[1]["content"][0]["text"]  # the command really ran in the sandbox


def test_pixie_run_with_a_bedrock_model_and_no_region_exits_2_at_once(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PIXIE_HOME=str(tmp_path), AWS_CONFIG_FILE="/nonexistent")
    result = subprocess.run(
        [str(PIXIE), "run", "--json", "--no-serve", "--model", f"bedrock:{HAIKU}", "x"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert "AWS_REGION" in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
