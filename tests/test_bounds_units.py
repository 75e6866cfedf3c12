"""The pieces behind issue 8's bounds, one at a time: reply normalization, settings ranges, script
checks, storage in parts, sandbox release when a run cannot be recorded, and the preview server."""

from __future__ import annotations

import http.client
import json
import os
import re
import threading
from pathlib import Path

import pytest

from lambdas.dal.network_state import PART_BYTES, assistant_message_key
from lambdas.logic.config import InvalidSetting, Settings
from lambdas.logic.errors import InvalidEvent, InvalidScript
from lambdas.logic.events import check_prompt, parse_prompt
from lambdas.logic.limits import fit_json, json_size
from lambdas.logic.models.scripted import ScriptedModel
from lambdas.logic.sandboxes.local import stop_preview
from lambdas.logic.steps import create_sandbox as create_sandbox_step
from lambdas.logic.summary import bound_summary, title_from_summary
from lambdas.logic.tool_calls import normalize_reply, state_name


# --- reply normalization -------------------------------------------------------------------------------
def call(call_id, name="terminal", arguments='{"command": "true"}') -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_ids_are_made_unique_and_usable_keeping_the_models_where_possible():
    reply = {
        "role": "assistant",
        "content": "text \udcff",
        "tool_calls": [call("a"), call("a"), call(None), call(""), call("call_1_2"), call("\x1b[2J"), call("y" * 65)],
    }
    ids = [c["id"] for c in normalize_reply(reply, 1)["tool_calls"]]
    assert ids[0] == "a" and ids[4] == "call_1_2"  # usable and first: kept
    assert len(set(ids)) == len(ids) == 7
    assert all(len(i) <= 64 and i.isascii() and i.isprintable() for i in ids)
    assert normalize_reply(reply, 1)["content"] == "text \ufffd"  # storable and sendable


def test_names_and_arguments_are_bounded_and_made_text():
    reply = {"content": None, "tool_calls": [call("a", name="n" * 10_000, arguments=None), call("b", name=None, arguments={"x": 1})]}
    calls = normalize_reply(reply, 3)["tool_calls"]
    assert len(calls[0]["function"]["name"]) == 65  # still longer than any tool: an unknown tool
    assert calls[0]["function"]["arguments"] == "" and calls[1]["function"]["arguments"] == '{"x": 1}'
    assert calls[1]["function"]["name"] == ""
    assert state_name("terminal", {"terminal"}) == "terminal"
    assert state_name("\x1b]52;c;aGk=\x07" + "z" * 500, {"terminal"}).startswith("\\x1b]52")
    assert len(state_name("\U0001F600" * 500, {"terminal"})) == 40


def test_fit_json_cuts_by_the_escaped_size_and_says_so():
    text = '"\U0001F600' * 1_000
    cut = fit_json(text, 400, " [cut {omitted}]")
    assert json_size(cut) <= 400 and cut.endswith("]") and "cut" in cut
    assert fit_json("short", 400) == "short"
    assert bound_summary("ok \ud800") == "ok \ufffd"
    assert len(title_from_summary("word " * 100)) <= 80


# --- settings and prompts ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, value, message",
    [
        ("PIXIE_COMMAND_TIMEOUT", "0", "PIXIE_COMMAND_TIMEOUT must be from 1 to 720, got 0"),
        ("PIXIE_COMMAND_TIMEOUT", "-5", "got -5"),
        ("PIXIE_MAX_ITERATIONS", "51", "PIXIE_MAX_ITERATIONS must be from 1 to 50"),
        ("PIXIE_MAX_TOOL_CALLS", "0", "PIXIE_MAX_TOOL_CALLS must be from 1 to 64"),
        ("PIXIE_MAX_TOOL_OUTPUT_CHARS", "ten", "must be a whole number"),
        ("PIXIE_SANDBOX_TIMEOUT", "5", "from 60 to 86400"),
    ],
)
def test_settings_out_of_range_are_clear_errors(name, value, message):
    with pytest.raises(InvalidSetting, match=message):
        Settings.from_env({name: value})


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("PIXIE_BUDGET_USD", "five", "PIXIE_BUDGET_USD must be a number of US dollars above 0 and at most 10,000, got 'five'"),
        ("PIXIE_BUDGET_USD", "0", "above 0"),
        ("PIXIE_BUDGET_USD", "nan", "got 'nan'"),
        ("PIXIE_BUDGET_USD", "inf", "got 'inf'"),
        ("PIXIE_BUDGET_USD", "10000.01", "at most 10,000"),
        ("PIXIE_MAX_TOKENS", "1.5", "PIXIE_MAX_TOKENS must be a whole number above 0"),
        ("PIXIE_MAX_TOKENS", "-1", "got '-1'"),
        ("PIXIE_ISOLATION", "docker", "PIXIE_ISOLATION must be one of bwrap, none, got 'docker'"),
        ("PIXIE_APPROVE", "ALL", "PIXIE_APPROVE must be one of none, commands, all, got 'ALL'"),
        ("PIXIE_CHECK_COMMAND", "x" * 1001, "PIXIE_CHECK_COMMAND must be a shell command of at most 1000 characters"),
        ("PIXIE_CHECK_COMMAND", "npm test\x00rm -rf /", "PIXIE_CHECK_COMMAND must be a shell command"),
        ("PIXIE_ALLOW_HOSTS", "@no-such-preset", "PIXIE_ALLOW_HOSTS: unknown allow-host preset"),
    ],
)
def test_budgets_choices_check_commands_and_hosts_out_of_range_are_clear_errors(name, value, message):
    with pytest.raises(InvalidSetting, match=re.escape(message)):
        Settings.from_env({name: value})


def test_optional_settings_left_empty_mean_no_bound_and_flags_read_as_people_write_them():
    settings = Settings.from_env({"PIXIE_BUDGET_USD": " ", "PIXIE_MAX_TOKENS": "", "PIXIE_CHECK_COMMAND": "  "})
    assert (settings.budget_usd, settings.max_tokens, settings.check_command) == (None, None, None)
    settings = Settings.from_env({"PIXIE_BUDGET_USD": " 2.5 ", "PIXIE_MAX_TOKENS": "1000", "PIXIE_CHECK_COMMAND": " npm test "})
    assert (settings.budget_usd, settings.max_tokens, settings.check_command) == (2.5, 1000, "npm test")
    assert Settings.from_env({"PIXIE_CHECK": "Off"}).check is False
    assert Settings.from_env({"PIXIE_CHECK": "maybe"}).check is True  # only a clear no turns it off
    assert Settings.from_env({"PIXIE_ALLOW_NETWORK": " YES "}).allow_network is True
    assert Settings.from_env({"PIXIE_ALLOW_NETWORK": "2"}).allow_network is False  # only a clear yes turns it on
    # An allow-list wins over a whole-network flag left in the environment.
    hosts = Settings.from_env({"PIXIE_ALLOW_NETWORK": "1", "PIXIE_ALLOW_HOSTS": " example.com:443 , "})
    assert (hosts.allow_network, hosts.allow_hosts) == (False, ("example.com:443",))


def test_iterations_and_calls_together_must_fit_the_history():
    Settings.from_env({"PIXIE_MAX_ITERATIONS": "50", "PIXIE_MAX_TOOL_CALLS": "32"})
    with pytest.raises(InvalidSetting, match="history"):
        Settings.from_env({"PIXIE_MAX_ITERATIONS": "50", "PIXIE_MAX_TOOL_CALLS": "64"})
    with pytest.raises(InvalidSetting, match="at least PIXIE_MAX_FILE_BYTES"):
        Settings.from_env({"PIXIE_MAX_FILE_BYTES": "2000", "PIXIE_MAX_CALL_BYTES": "1000"})


@pytest.mark.parametrize("prompt, problem", [("", "empty"), (" \n", "empty"), ("a\udcffb", "not valid UTF-8"), ("x" * 11, "11 characters")])
def test_check_prompt_refuses_what_cannot_run(prompt, problem):
    with pytest.raises(InvalidEvent, match=problem):
        check_prompt(prompt, 10)
    assert check_prompt("  fine ", 10) == "fine"


def event_with(**changes) -> dict:
    from statemachine.engine import hello_world_event

    return {**hello_world_event("Build a page"), **changes}


@pytest.mark.parametrize(
    "event, problem",
    [
        (["not", "an", "object"], "the event must be a JSON object, got list"),
        ("Build a page", "the event must be a JSON object, got str"),
        (event_with(**{"detail-type": "other.app/started"}), "detail-type must be 'test/hello.world', got 'other.app/started'"),
        (event_with(detail={}), "not a test/hello.world event with a prompt in detail.value"),
        (event_with(detail={"value": 42}), "not a test/hello.world event with a prompt in detail.value"),
        (event_with(detail={"value": "   "}), "detail.value (the prompt) is empty"),
        (event_with(detail={"value": "x" * 11}), "detail.value (the prompt) is 11 characters; the limit is 10"),
    ],
)
def test_an_event_that_is_not_a_run_request_is_refused_saying_why(event, problem):
    with pytest.raises(InvalidEvent, match=re.escape(problem)):
        parse_prompt(event, 10)
    assert parse_prompt(event_with(detail={"value": " Build "}), 10) == "Build"


# --- scripts ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad_turn, problem",
    [
        ("text", "turn 2: must be an object"),
        ({"content": 5}, "turn 2: content must be a string or null"),
        ({"tool_calls": "terminal"}, "turn 2: tool_calls must be a list"),
        ({"tool_calls": [5]}, r"turn 2: tool_calls\[0\] must be an object"),
        ({"tool_calls": [{"arguments": {}}]}, r"turn 2: tool_calls\[0\].name must be a string"),
        ({"tool_calls": [{"name": "t", "id": 7}]}, r"turn 2: tool_calls\[0\].id must be a string or null"),
        ({"contents": "typo"}, "turn 2: unknown keys"),
    ],
)
def test_each_turn_of_a_script_is_checked_when_it_is_loaded(tmp_path, bad_turn, problem):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"turns": [{"content": "fine"}, bad_turn]}))
    with pytest.raises(InvalidScript, match=problem):
        ScriptedModel(path)


def test_a_script_may_send_null_and_empty_ids_as_some_servers_do(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"turns": [{"tool_calls": [{"name": "t", "id": None}, {"name": "t", "id": ""}, {"name": "t"}]}]}))
    reply = ScriptedModel(path).complete([], [], turn=1)
    assert [c.id for c in reply.tool_calls] == [None, "", "call_1_2"]


# --- storage in parts --------------------------------------------------------------------------------------
def test_messages_and_files_larger_than_an_item_are_stored_in_parts(table):
    big = "é\U0001F600" + "ab€" * 400_000  # multi-byte characters across part boundaries
    message = {"role": "assistant", "content": big + "\udcff"}
    table.put_message("r", assistant_message_key(1), message)
    table.put_message("r", "MSG#0001#2tool#000", {"role": "tool", "content": "small"})
    table.put_files("r", {"big.txt": big, "a#part#x": "tricky name"})

    assert table.get_message("r", assistant_message_key(1)) == message
    assert [m["content"] for m in table.list_messages("r")] == [big + "\udcff", "small"]
    assert table.list_files("r") == {"big.txt": big, "a#part#x": "tricky name"}
    assert table.list_file_paths("r") == ["a#part#x", "big.txt"]
    items, kwargs = [], {}
    while True:  # a scan answers at most 1 MB per page
        page = table.table.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    def item_bytes(item: dict) -> int:  # as DynamoDB counts: names and values, UTF-8
        return sum(len(k.encode()) + len(str(v).encode("utf-8", "surrogatepass")) for k, v in item.items())

    assert max(item_bytes(i) for i in items) < PART_BYTES + 2_000
    assert sum(1 for i in items if i["sk"].startswith("PART#")) >= 4


# --- a sandbox that exists is released when its run cannot be recorded ------------------------------------------
class _Sandbox:
    id = "sbx-1"
    killed = 0

    def kill(self) -> None:
        _Sandbox.killed += 1


class _Provider:
    released: list[str] = []

    def create(self, template, timeout_s, run_id=None, idempotency_key=None):
        return _Sandbox()

    def release_run(self, run_id):
        _Provider.released.append(run_id)
        return 1


def test_create_sandbox_releases_the_sandbox_when_the_run_cannot_be_recorded(table, monkeypatch):
    from statemachine.engine import hello_world_event

    monkeypatch.setattr(create_sandbox_step, "sandbox_provider", lambda kind, settings: _Provider())

    def refuse(**_):
        raise RuntimeError("the table is unavailable")

    monkeypatch.setattr(table, "create_run", refuse)
    _Sandbox.killed = 0
    with pytest.raises(RuntimeError, match="unavailable"):
        create_sandbox_step.create_sandbox("r", hello_world_event("hi"), Settings.from_env({}), table)
    assert _Sandbox.killed == 1


def test_cleanup_without_a_run_record_releases_the_sandboxes_tagged_with_the_run(table, monkeypatch):
    from lambdas.logic.steps import cleanup_sandbox as cleanup_step

    monkeypatch.setattr(cleanup_step, "sandbox_provider", lambda kind, settings: _Provider())
    _Provider.released = []
    result = cleanup_step.cleanup_sandbox("r-lost", {"Error": "Lambda.Timeout"}, Settings.from_env({}), table)
    assert result == {"runId": "r-lost", "cleaned": True, "firstReport": False} and _Provider.released == ["r-lost"]


def test_e2b_sandboxes_are_tagged_with_their_run_and_released_by_it():
    """Against the real SDK's signatures (bound, not called): create's metadata, list's query,
    the paginator, and kill by id."""
    import inspect

    import e2b

    from lambdas.logic.sandboxes.e2b_sandbox import RUN_ID_METADATA, E2BSandboxProvider

    calls: dict[str, list] = {"create": [], "list": [], "kill": []}

    class Info:
        def __init__(self, sandbox_id):
            self.sandbox_id = sandbox_id

    class Pages:
        def __init__(self):
            self.pages = [[Info("sbx-1"), Info("sbx-2")]]

        @property
        def has_next(self):
            return bool(self.pages)

        def next_items(self):
            return self.pages.pop(0)

    class FakeSdk:
        sandbox_id = "sbx-1"

        @classmethod
        def create(cls, **kwargs):
            inspect.signature(e2b.Sandbox.create).bind(**kwargs)
            calls["create"].append(kwargs)
            return cls()

        @classmethod
        def list(cls, **kwargs):
            inspect.signature(e2b.Sandbox.list).bind(**kwargs)
            calls["list"].append(kwargs)
            return Pages()

        @staticmethod
        def kill(sandbox_id, **kwargs):
            calls["kill"].append(sandbox_id)
            return True

    provider = E2BSandboxProvider(api_key="k", sandbox_cls=FakeSdk)
    provider.create("pixie", 60, run_id="run-7")
    assert calls["create"][0]["metadata"] == {RUN_ID_METADATA: "run-7"}
    assert provider.release_run("run-7") == 2
    assert calls["list"][0]["query"] == e2b.SandboxQuery(metadata={RUN_ID_METADATA: "run-7"})
    assert calls["kill"] == ["sbx-1", "sbx-2"]
    assert hasattr(e2b.Sandbox.list(query=None, api_key="k"), "next_items")  # a paginator (no request yet)


# --- the preview ------------------------------------------------------------------------------------------------
@pytest.fixture
def preview(local_sandbox):
    root = Path(local_sandbox.project_root)
    (root / ".env").write_text("SECRET=1")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]")
    (root / "empty").mkdir()
    (root / "site").mkdir()
    (root / "site" / "index.html").write_text("site page")
    os.mkfifo(root / "pipe")
    url = local_sandbox.get_url()
    yield int(url.rsplit(":", 1)[1].strip("/"))
    stop_preview(local_sandbox.id)


def get(port: int, path: str, host: str | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.putrequest("GET", path, skip_host=True)
    connection.putheader("Host", host if host is not None else f"127.0.0.1:{port}")
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


def test_the_preview_serves_pages_and_nothing_it_should_not(preview, capfd):
    assert get(preview, "/")[0] == 200
    assert get(preview, "/site/") == (200, b"site page")
    assert get(preview, "/site")[0] == 301
    assert get(preview, "/", host="localhost")[0] == 200
    for path in ("/.env", "/.git/config", "/site/../.env", "/%2eenv", "/empty/", "/%00", "/index.html%00.txt", "/pipe", "/index.html/"):
        assert get(preview, path)[0] == 404, path
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.nip.io", "localhost:1", ""])
def test_the_preview_refuses_a_foreign_host(preview, host):
    assert get(preview, "/", host=host)[0] == 403


def test_a_fifo_does_not_hold_the_preview(preview):
    done = threading.Event()
    threading.Thread(target=lambda: (get(preview, "/pipe"), done.set()), daemon=True).start()
    assert done.wait(5)


# --- the deployed stack's context ----------------------------------------------------------------------------
@pytest.mark.parametrize("key, value, message", [("maxIterations", 100_000, "from 1 to 50"), ("commandTimeout", 0, "from 1 to 720")])
def test_cdk_context_out_of_range_fails_the_synth_naming_the_key(key, value, message):
    from aws_cdk import App

    from infra.stack import PixieSettings

    with pytest.raises(ValueError, match=f"pixie:{key}.*{message}"):
        PixieSettings.from_context(App(context={f"pixie:{key}": value}))


# --- RunTool's identity: turn and position ---------------------------------------------------------------------
def test_run_tool_keys_a_call_by_position_so_a_repeated_id_still_runs(table, local_sandbox, monkeypatch):
    """A reply saved with two calls under one id (as a model sent it): the idempotency key must
    not make the second invocation return the first one's result."""
    from lambdas.handlers import run_tool as run_tool_handler
    from statemachine.engine import LambdaContext

    monkeypatch.setenv("PIXIE_SANDBOX", "local")
    table.create_run(run_id="r", prompt="p", sandbox_id=local_sandbox.id, sandbox_kind="local",
                     model="scripted:x", template="pixie", max_iterations=5)
    command = '{"command": "echo ran >> log.txt"}'
    table.put_message("r", assistant_message_key(1), {"role": "assistant", "content": None,
                                                        "tool_calls": [call("same", arguments=command)] * 2})
    for index in (0, 1):
        event = {"runId": "r", "iteration": 1, "index": index, "toolCallId": "same", "name": "terminal"}
        assert run_tool_handler.handler(event, LambdaContext(function_name="tool"))["ok"]
    assert (Path(local_sandbox.project_root) / "log.txt").read_text() == "ran\nran\n"
