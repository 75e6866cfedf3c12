"""The four handlers, called as Lambda calls them, against moto's DynamoDB, the local sandbox and
scripted models; plus the small pure helpers they rely on (summary, truncate)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from lambdas.dal.network_state import assistant_message_key, tool_message_key, user_message_key
from lambdas.handlers import agent_turn as agent_turn_handler
from lambdas.handlers import create_sandbox as create_sandbox_handler
from lambdas.handlers import get_sandbox_url as get_sandbox_url_handler
from lambdas.handlers import run_tool as run_tool_handler
from lambdas.logic.config import Settings
from lambdas.logic.errors import InvalidEvent, RunNotFound, ScriptExhausted
from lambdas.logic.prompts import CONTINUE_PROMPT
from lambdas.logic.sandboxes.local import stop_all_previews
from lambdas.logic.steps import agent_turn as agent_turn_step
from lambdas.logic.steps.agent_turn import agent_turn
from lambdas.logic.steps.create_sandbox import create_sandbox
from lambdas.logic.steps.run_tool import run_tool
from lambdas.logic.summary import MAX_TITLE_CHARS, extract_summary, title_from_summary
from lambdas.logic.truncate import bound_text
from statemachine.engine import LambdaContext

RUN = "run-0001"
PROMPT = "Build a todo app"


def event(value: Any = PROMPT, **overrides: Any) -> dict:
    """An EventBridge test/hello.world event as the rule delivers it."""
    base = {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "test/hello.world",
        "source": "pixie.test",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"value": value},
    }
    base.update(overrides)
    return base


def ctx(name: str) -> LambdaContext:
    return LambdaContext(function_name=name)


def create(run_id: str = RUN, evt: Any = None) -> dict:
    return create_sandbox_handler.handler({"runId": run_id, "event": evt if evt is not None else event()}, ctx("create"))


def turn(iteration: int, run_id: str = RUN, max_iterations: int = 15) -> dict:
    return agent_turn_handler.handler(
        {"runId": run_id, "iteration": iteration, "maxIterations": max_iterations}, ctx("turn")
    )


def tool(iteration: int, index: int, call_id: str, name: str = "terminal", run_id: str = RUN) -> dict:
    return run_tool_handler.handler(
        {"runId": run_id, "iteration": iteration, "index": index, "toolCallId": call_id, "name": name}, ctx("tool")
    )


def sandbox_dirs(home: Path) -> list[Path]:
    base = home / "sandboxes"
    return sorted(base.iterdir()) if base.exists() else []


@pytest.fixture
def env(table, pixie_home, monkeypatch, write_script):
    """Everything a handler needs; `script(turns)` points PIXIE_MODEL at a new script."""
    monkeypatch.setenv("PIXIE_SANDBOX", "local")
    monkeypatch.setenv("PIXIE_MAX_ITERATIONS", "6")
    monkeypatch.setenv("PIXIE_COMMAND_TIMEOUT", "10")

    class Env:
        state = table
        home = pixie_home

        @staticmethod
        def script(turns: list[dict], name: str = "script.json") -> Path:
            path = write_script(turns, name)
            monkeypatch.setenv("PIXIE_MODEL", f"scripted:{path}")
            return path

    Env.script([{"content": "<task_summary>Nothing to do</task_summary>"}])
    yield Env
    stop_all_previews()


@pytest.fixture
def model_calls(monkeypatch) -> list[dict]:
    """Records every model call the AgentTurn step makes (what the model was sent)."""
    calls: list[dict] = []
    real = agent_turn_step.model_from_spec

    def recording(spec: str):
        model = real(spec)

        class Recorder:
            name = model.name

            def complete(self, messages, tools, *, turn, on_delta=None):
                calls.append({"messages": messages, "tools": tools, "turn": turn})
                return model.complete(messages, tools, turn=turn, on_delta=on_delta)

        return Recorder()

    monkeypatch.setattr(agent_turn_step, "model_from_spec", recording)
    return calls


def write_call(path: str, content: str) -> dict:
    return {"name": "createOrUpdateFiles", "arguments": {"files": [{"path": path, "content": content}]}}


def terminal_call(command: str) -> dict:
    return {"name": "terminal", "arguments": {"command": command}}


# --- CreateSandbox -------------------------------------------------------------------------------
def test_create_sandbox_returns_the_loop_state_and_records_the_run(env):
    result = create(evt=event("  Build a todo app \n"))
    assert result == {"runId": RUN, "iteration": 0, "maxIterations": 6}

    run = env.state.get_run(RUN)
    assert run.prompt == "Build a todo app"
    assert run.sandbox_kind == "local" and run.status == "RUNNING" and run.iteration == 0
    assert run.model.startswith("scripted:")
    assert run.max_iterations == 6
    assert env.state.list_messages(RUN) == [{"role": "user", "content": "Build a todo app"}]
    dirs = sandbox_dirs(env.home)
    assert [d.name for d in dirs] == [run.sandbox_id]
    assert (dirs[0] / "index.html").is_file()


def test_create_sandbox_twice_for_one_run_creates_one_sandbox(env):
    first = create()
    second = create()
    assert first == second
    # the step itself also refuses a second sandbox (a retry after the run was recorded)
    again = create_sandbox(RUN, event(), Settings.from_env(), env.state)
    assert again == first
    assert len(sandbox_dirs(env.home)) == 1
    assert len(env.state.list_messages(RUN)) == 1


def test_two_runs_get_two_sandboxes(env):
    create("run-a", event(id="event-a"))
    create("run-b", event(id="event-b"))
    a, b = env.state.get_run("run-a"), env.state.get_run("run-b")
    assert a.sandbox_id != b.sandbox_id
    assert len(sandbox_dirs(env.home)) == 2


def _without_detail():
    evt = event()
    del evt["detail"]
    return evt


@pytest.mark.parametrize(
    "bad_event, message",
    [
        (_without_detail(), "detail"),
        (event(detail={}), "value"),
        (event(value=5), "value"),
        (event(value=None), "value"),
        (event(value=["Build"]), "value"),
        (event(value=""), "empty"),
        (event(value="  \n\t "), "empty"),
        (event(value="x" * 101), "limit is 100"),
        (event(**{"detail-type": "test/other"}), "detail-type"),
        (event(detail={"value": PROMPT, "extra": 1}), "extra"),
        ("Build a todo app", "JSON object"),
        ([PROMPT], "JSON object"),
        (42, "JSON object"),
        # The id becomes a table key (one run per event): bounded like the prompt.
        (event(id=""), "the event id must be 1 to 256 characters, got 0"),
        (event(id="e" * 257), "the event id must be 1 to 256 characters, got 257"),
    ],
)
def test_invalid_events_raise_invalid_event_and_create_nothing(env, monkeypatch, bad_event, message):
    monkeypatch.setenv("PIXIE_MAX_PROMPT_CHARS", "100")
    with pytest.raises(InvalidEvent, match=message):
        create_sandbox_handler.handler({"runId": RUN, "event": bad_event}, ctx("create"))
    assert env.state.find_run(RUN) is None
    assert env.state.list_messages(RUN) == []
    assert sandbox_dirs(env.home) == []


def test_a_payload_without_an_event_is_invalid(env):
    with pytest.raises(InvalidEvent):
        create_sandbox_handler.handler({"runId": RUN}, ctx("create"))
    assert sandbox_dirs(env.home) == []


def test_an_invalid_event_can_be_corrected_on_the_same_run_id(env):
    with pytest.raises(InvalidEvent):
        create(evt=event(value=""))
    assert create()["iteration"] == 0  # the failure was not remembered as this run's result


def test_a_deployment_with_an_unknown_sandbox_kind_fails_saying_which_and_creates_nothing(env, monkeypatch):
    from lambdas.logic.errors import ConfigurationError

    monkeypatch.setenv("PIXIE_SANDBOX", "docker")
    with pytest.raises(ConfigurationError, match="unknown sandbox kind 'docker': use local or e2b"):
        create()
    assert env.state.find_run(RUN) is None and sandbox_dirs(env.home) == []


def test_a_prompt_at_the_limit_is_accepted(env, monkeypatch):
    monkeypatch.setenv("PIXIE_MAX_PROMPT_CHARS", "100")
    create(evt=event("y" * 100))
    assert env.state.get_run(RUN).prompt == "y" * 100


# --- AgentTurn ---------------------------------------------------------------------------------------
def test_agent_turn_saves_the_reply_and_returns_its_tool_calls(env, model_calls):
    env.script(
        [
            {"content": "Writing the page", "tool_calls": [write_call("index.html", "<h1>Todo</h1>"), terminal_call("ls")]},
            {"content": "<task_summary>Done</task_summary>"},
        ]
    )
    create()
    result = turn(0, max_iterations=6)
    assert result["runId"] == RUN
    assert result["iteration"] == 1
    assert result["maxIterations"] == 6
    assert result["hasSummary"] is False
    assert result["toolCalls"] == [
        {"id": "call_1_0", "name": "createOrUpdateFiles"},
        {"id": "call_1_1", "name": "terminal"},
    ]
    assert env.state.get_run(RUN).iteration == 1

    saved = env.state.get_message(RUN, assistant_message_key(1))
    assert saved["role"] == "assistant" and saved["content"] == "Writing the page"
    assert [c["function"]["name"] for c in saved["tool_calls"]] == ["createOrUpdateFiles", "terminal"]
    assert json.loads(saved["tool_calls"][1]["function"]["arguments"]) == {"command": "ls"}

    # the model saw the system prompt, then the user's prompt, and the three tools
    (sent,) = model_calls
    assert sent["turn"] == 1
    assert sent["messages"][0]["role"] == "system" and "<task_summary>" in sent["messages"][0]["content"]
    assert sent["messages"][1:] == [{"role": "user", "content": PROMPT}]
    assert [t["function"]["name"] for t in sent["tools"]] == ["terminal", "createOrUpdateFiles", "readFiles"]
    # the system prompt is not stored as part of the conversation
    assert [m["role"] for m in env.state.list_messages(RUN)] == ["user", "assistant"]
    # the state machine's payload stays small: ids, counters, flags
    assert len(json.dumps(result)) < 1000


def test_a_retried_agent_turn_does_not_call_the_model_again(env, model_calls):
    script = env.script([{"content": "first", "tool_calls": [terminal_call("echo one")]}])
    create()
    first = turn(0)
    # The script now says something else for turn 1: a second model call would show it.
    script.write_text(json.dumps({"turns": [{"content": "second", "tool_calls": [terminal_call("echo two")]}]}))
    again = turn(0)
    assert again["toolCalls"] == first["toolCalls"] and again["hasSummary"] == first["hasSummary"]
    # the step itself, below any handler-level idempotency, also reuses the saved reply
    direct = agent_turn(RUN, 0, env.state)
    assert {k: direct[k] for k in ("iteration", "toolCalls", "hasSummary")} == {
        k: first[k] for k in ("iteration", "toolCalls", "hasSummary")
    }
    assert len(model_calls) == 1
    assert env.state.get_message(RUN, assistant_message_key(1))["content"] == "first"
    assert env.state.get_run(RUN).iteration == 1


def test_a_summary_ends_the_run_with_a_title(env):
    env.script(
        [
            {
                "content": "All done.\n<task_summary>\n  Built a **todo app** with filters. It saves to localStorage.\n</task_summary>\n",
            }
        ]
    )
    create()
    result = turn(0)
    assert result["hasSummary"] is True and result["toolCalls"] == []
    run = env.state.get_run(RUN)
    assert run.summary == "Built a **todo app** with filters. It saves to localStorage."
    assert run.title == "Built a todo app with filters"


def test_tool_calls_with_a_summary_run_the_tools_first(env):
    env.script(
        [
            {
                "content": "<task_summary>Wrote the page</task_summary>",
                "tool_calls": [write_call("index.html", "<h1>Final</h1>")],
            },
            {"content": "Finished."},
        ]
    )
    create()
    result = turn(0)
    assert result["hasSummary"] is False
    assert result["toolCalls"] == [{"id": "call_1_0", "name": "createOrUpdateFiles"}]
    assert env.state.get_run(RUN).summary == "Wrote the page"
    assert tool(1, 0, "call_1_0", "createOrUpdateFiles")["ok"] is True
    assert env.state.list_files(RUN) == {"index.html": "<h1>Final</h1>"}
    # once the tools ran, the summary ends the run (the files written with it are kept)
    after = turn(1)
    assert after["hasSummary"] is True
    assert env.state.get_run(RUN).summary == "Wrote the page"


def test_a_text_only_reply_gets_a_nudge_before_the_next_turn(env, model_calls):
    env.script([{"content": "I will plan first."}, {"content": "<task_summary>ok</task_summary>"}])
    create()
    first = turn(0)
    assert first["hasSummary"] is False and first["toolCalls"] == []
    second = turn(1)
    assert second["hasSummary"] is True and second["iteration"] == 2

    nudge = {"role": "user", "content": CONTINUE_PROMPT}
    assert env.state.get_message(RUN, user_message_key(2)) == nudge
    assert env.state.list_messages(RUN) == [
        {"role": "user", "content": PROMPT},
        {"role": "assistant", "content": "I will plan first."},
        nudge,
        {"role": "assistant", "content": "<task_summary>ok</task_summary>"},
    ]
    assert model_calls[1]["messages"][-1] == nudge  # the conversation never ends on the model's own reply
    assert [m["role"] for m in model_calls[1]["messages"]] == ["system", "user", "assistant", "user"]


def test_running_past_the_script_raises_script_exhausted(env):
    env.script([{"content": "only turn"}])
    create()
    turn(0)
    with pytest.raises(ScriptExhausted, match="1 turns"):
        turn(1)
    assert env.state.get_message(RUN, assistant_message_key(2)) is None
    assert env.state.get_run(RUN).iteration == 1


def test_agent_turn_for_an_unknown_run_is_run_not_found(env):
    with pytest.raises(RunNotFound):
        turn(0, run_id="ghost")


def test_the_model_sees_tool_results_after_its_tool_calls(env, model_calls):
    env.script(
        [
            {"content": None, "tool_calls": [terminal_call("echo first"), terminal_call("echo second")]},
            {"content": "<task_summary>ok</task_summary>"},
        ]
    )
    create()
    calls = turn(0)["toolCalls"]
    for index, call in enumerate(calls):
        tool(1, index, call["id"])
    turn(1)
    sent = model_calls[1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "tool"]
    assert [m["tool_call_id"] for m in sent[3:]] == ["call_1_0", "call_1_1"]
    assert "first" in sent[3]["content"] and "second" in sent[4]["content"]


# --- RunTool -----------------------------------------------------------------------------------------
def test_run_tool_stores_one_result_per_call_and_a_retry_does_not_rerun(env):
    env.script(
        [
            {
                "content": None,
                "tool_calls": [write_call("index.html", "<h1>Todo</h1>"), terminal_call("echo x >> log.txt; wc -l < log.txt")],
            }
        ]
    )
    create()
    calls = turn(0)["toolCalls"]
    results = [tool(1, i, c["id"], c["name"]) for i, c in enumerate(calls)]
    assert results == [{"toolCallId": "call_1_0", "ok": True}, {"toolCallId": "call_1_1", "ok": True}]

    # retried, via the handler and via the step itself
    assert tool(1, 1, "call_1_1") == results[1]
    assert run_tool(RUN, 1, 1, "call_1_1", Settings.from_env(), env.state) == results[1]

    sandbox_root = env.home / "sandboxes" / env.state.get_run(RUN).sandbox_id
    assert (sandbox_root / "log.txt").read_text() == "x\n"
    assert (sandbox_root / "index.html").read_text() == "<h1>Todo</h1>"
    assert env.state.list_files(RUN) == {"index.html": "<h1>Todo</h1>"}

    tool_messages = [m for m in env.state.list_messages(RUN) if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["call_1_0", "call_1_1"]
    assert "index.html" in tool_messages[0]["content"]
    assert tool_messages[1]["content"].startswith("exit code 0") and "\n1\n" in tool_messages[1]["content"]
    assert env.state.get_message(RUN, tool_message_key(1, 1)) == tool_messages[1]


def test_an_unknown_tool_call_id_is_an_error_result(env):
    env.script([{"content": None, "tool_calls": [terminal_call("echo hi")]}])
    create()
    turn(0)
    result = tool(1, 0, "call_nope")
    assert result == {"toolCallId": "call_nope", "ok": False}
    saved = env.state.get_message(RUN, tool_message_key(1, 0))
    assert saved["tool_call_id"] == "call_nope"
    assert saved["content"].startswith("Error: no tool call 'call_nope'")


def test_bad_tool_calls_become_error_results_and_the_run_goes_on(env):
    bad_calls = [
        ({"name": "terminal", "arguments": '{"command": "ls"'}, "not valid JSON"),
        ({"name": "deleteEverything", "arguments": {}}, "unknown tool"),
        ({"name": "createOrUpdateFiles", "arguments": {"files": [{"path": "../../x", "content": "x"}]}}, "escapes"),
        ({"name": "terminal", "arguments": {"cmd": "ls"}}, "command"),
        ({"name": "readFiles", "arguments": {"files": "index.html"}}, "files"),
    ]
    env.script(
        [
            {"content": None, "tool_calls": [call for call, _ in bad_calls] + [terminal_call("echo still fine")]},
            {"content": "<task_summary>ok</task_summary>"},
        ]
    )
    create()
    calls = turn(0)["toolCalls"]
    assert len(calls) == len(bad_calls) + 1
    results = [tool(1, i, c["id"], c["name"]) for i, c in enumerate(calls)]
    assert [r["ok"] for r in results] == [False] * len(bad_calls) + [True]

    tool_messages = [m for m in env.state.list_messages(RUN) if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == [c["id"] for c in calls]  # exactly one result each
    for message, (_, expected) in zip(tool_messages, bad_calls, strict=False):  # the last call is a good one
        assert message["content"].startswith("Error: ") and expected in message["content"]
    assert "still fine" in tool_messages[-1]["content"]
    # a retry of a failed call reports the same failure from the saved result
    assert run_tool(RUN, 1, 0, calls[0]["id"], Settings.from_env(), env.state)["ok"] is False
    assert len([m for m in env.state.list_messages(RUN) if m["role"] == "tool"]) == len(calls)
    assert turn(1)["hasSummary"] is True


def test_tool_output_sent_to_the_model_is_bounded(env, monkeypatch):
    monkeypatch.setenv("PIXIE_MAX_TOOL_OUTPUT_CHARS", "500")
    env.script([{"content": None, "tool_calls": [terminal_call("seq 1 100000")]}])
    create()
    turn(0)
    tool(1, 0, "call_1_0")
    content = env.state.get_message(RUN, tool_message_key(1, 0))["content"]
    assert len(content) <= 500 and "omitted" in content and content.startswith("exit code 0")


# --- GetSandboxUrl -----------------------------------------------------------------------------------
def test_get_sandbox_url_returns_the_result_and_marks_the_run_succeeded(env):
    env.script(
        [
            {
                "content": None,
                "tool_calls": [
                    write_call("index.html", "<h1>Todo list</h1>"),
                    write_call("src/app.js", "console.log('todo')"),
                    write_call("b.css", "body{}"),
                ],
            },
            {"content": "<task_summary>Built a todo list page.</task_summary>"},
        ]
    )
    create()
    for index, call in enumerate(turn(0)["toolCalls"]):
        tool(1, index, call["id"], call["name"])
    assert turn(1)["hasSummary"] is True

    result = get_sandbox_url_handler.handler({"runId": RUN}, ctx("url"))
    assert set(result) == {"runId", "url", "title", "summary", "files", "fileCount", "iterations"}
    assert result["runId"] == RUN
    assert result["iterations"] == 2
    assert result["summary"] == "Built a todo list page."
    assert result["title"] == "Built a todo list page"
    assert result["files"] == ["b.css", "index.html", "src/app.js"]
    assert result["url"].startswith("http://127.0.0.1:")
    with urllib.request.urlopen(result["url"], timeout=5) as response:
        assert response.read() == b"<h1>Todo list</h1>"

    run = env.state.get_run(RUN)
    assert run.status == "SUCCEEDED" and run.url == result["url"]


def test_get_sandbox_url_for_an_unknown_run_is_run_not_found(env):
    with pytest.raises(RunNotFound):
        get_sandbox_url_handler.handler({"runId": "ghost"}, ctx("url"))


# --- summary --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content, expected",
    [
        (None, None),
        ("", None),
        ("no summary here", None),
        ("<task_summary></task_summary>", None),
        ("<task_summary>  \n </task_summary>", None),
        ("<task_summary>never closed", None),
        ("<task_summary>Built it</task_summary>", "Built it"),
        ("Done!\n<task_summary>\n  Line one.\n  Line two.\n</task_summary>\nBye", "Line one.\n  Line two."),
        ("<TASK_SUMMARY>Upper</Task_Summary>", "Upper"),
        ("<task_summary>draft</task_summary> then <task_summary>final</task_summary>", "final"),
    ],
)
def test_extract_summary(content, expected):
    assert extract_summary(content) == expected


@pytest.mark.parametrize(
    "summary, expected",
    [
        ("Built a todo app. It has filters.", "Built a todo app"),
        ("built a **todo** app", "Built a todo app"),
        ("## Todo app\nWith filters", "Todo app"),
        ("- added a header\n- fixed the footer", "Added a header"),
        ("What a page! Really.", "What a page"),
        ("   ", "Untitled"),
        ("v1.2 released", "V1.2 released"),
    ],
)
def test_title_from_summary(summary, expected):
    assert title_from_summary(summary) == expected


def test_a_long_title_is_cut_at_a_word_boundary():
    summary = "Implemented a collaborative kanban board with drag and drop columns, persistent storage and keyboard shortcuts"
    title = title_from_summary(summary)
    assert title.endswith("…")
    body = title[:-1]
    assert len(body) <= MAX_TITLE_CHARS
    assert summary.startswith(body)
    assert summary[len(body) :].startswith((" ", ", "))  # cut between words, not inside one
    assert not body.endswith((",", " "))


def test_a_title_that_fits_is_not_cut():
    summary = "a" * MAX_TITLE_CHARS
    assert title_from_summary(summary) == "A" + "a" * (MAX_TITLE_CHARS - 1)


# --- truncate -------------------------------------------------------------------------------------------
def test_bound_text_leaves_short_text_alone():
    assert bound_text("hello", 5) == "hello"
    assert bound_text("", 0) == ""


@pytest.mark.parametrize("length, limit", [(10_000, 1_000), (101, 100), (1_000_000, 10_000), (5_000, 200)])
def test_bound_text_keeps_head_and_tail_and_says_what_was_cut(length, limit):
    text = "".join(chr(ord("a") + i % 26) for i in range(length))
    bounded = bound_text(text, limit)
    assert len(bounded) <= limit
    head, rest = bounded.split("\n[... ", 1)
    omitted, tail = rest.split(" characters omitted ...]\n", 1)
    assert text.startswith(head) and text.endswith(tail)
    assert len(head) + int(omitted) + len(tail) == length
    assert len(head) >= len(tail) > 0  # the start weighs more, but the end is kept too


def test_bound_text_never_exceeds_its_limit():
    text = "0123456789" * 50
    for limit in range(0, 520):
        bounded = bound_text(text, limit)
        assert len(bounded) <= limit, limit
        assert bounded == text if limit >= len(text) else bounded != text


# --- known bugs, reported to the owners of the steps and handlers ----------------------------------------
def test_a_summary_given_with_tool_calls_ends_the_run_once_the_tools_ran_without_another_model_call(env, model_calls):
    env.script([{"content": "<task_summary>Wrote it</task_summary>", "tool_calls": [write_call("index.html", "x")]}])
    create()
    turn(0)
    tool(1, 0, "call_1_0", "createOrUpdateFiles")
    assert turn(1)["hasSummary"] is True
    assert len(model_calls) == 1


def test_a_tool_call_id_reused_in_a_later_turn_still_gets_its_own_result(env):
    env.script(
        [
            {"content": None, "tool_calls": [{"id": "call_0", **terminal_call("echo one")}]},
            {"content": None, "tool_calls": [{"id": "call_0", **terminal_call("echo two")}]},
        ]
    )
    create()
    turn(0)
    tool(1, 0, "call_0")
    turn(1)
    tool(2, 0, "call_0")
    second = env.state.get_message(RUN, tool_message_key(2, 0))
    assert second is not None and "two" in second["content"]


def test_a_redriven_run_whose_sandbox_the_cleanup_released_gets_it_back_with_its_files(env, model_calls):
    """AWS redrives an execution from its failed state, after CreateSandbox; the status-change
    cleanup has released the sandbox by then. The next step that needs it restores it from the
    table and records it, and the turns already answered are not asked of the model again."""
    import shutil

    env.script([
        {"content": None, "tool_calls": [write_call("index.html", "<h1>Kept</h1>")]},
        {"content": None, "tool_calls": [terminal_call("cat index.html")]},
        {"content": "<task_summary>Checked</task_summary>"},
    ])
    create()
    first = turn(0)["toolCalls"]
    assert tool(1, 0, first[0]["id"]) == {"toolCallId": first[0]["id"], "ok": True}
    second = turn(1)["toolCalls"]
    released = env.state.get_run(RUN).sandbox_id
    shutil.rmtree(env.home / "sandboxes" / released)  # what the cleanup's release leaves: no sandbox
    calls_before = len(model_calls)

    assert tool(2, 0, second[0]["id"], "terminal")["ok"] is True  # the redriven execution's next step
    run = env.state.get_run(RUN)
    assert run.sandbox_id != released and (env.home / "sandboxes" / run.sandbox_id / "index.html").exists()
    result = env.state.get_message(RUN, tool_message_key(2, 0))["content"]
    assert "<h1>Kept</h1>" in result
    assert turn(2)["hasSummary"] is True
    shutil.rmtree(env.home / "sandboxes" / run.sandbox_id)  # released once more, before GetSandboxUrl
    output = get_sandbox_url_handler.handler({"runId": RUN}, ctx("url"))
    assert output["url"] and output["files"] == ["index.html"]
    assert len(model_calls) == calls_before + 1  # only turn 3, which had not been answered
