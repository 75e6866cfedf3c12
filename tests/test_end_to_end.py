"""Whole runs of statemachine/agent.asl.json on the embedded engine, with scripted models and
the local sandbox: the same definition, handlers and tools that run on AWS."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from lambdas.logic.sandboxes.local import stop_all_previews
from statemachine.engine import hello_world_event
from pixie.local_run import RunOptions, run_locally


def write_script(directory: Path, turns: list[dict], name: str = "script.json") -> Path:
    path = directory / name
    path.write_text(json.dumps({"turns": turns}))
    return path


def options(home: Path, script: Path, **overrides) -> RunOptions:
    return RunOptions(model=f"scripted:{script}", sandbox="local", pixie_home=home, **overrides)


def entered_states(record: dict) -> list[str]:
    return [
        e["stateEnteredEventDetails"]["name"] for e in record["history"] if e["type"].endswith("StateEntered")
    ]


def tool_results(record: dict) -> dict[str, str]:
    return {m["tool_call_id"]: m["content"] for m in record["conversation"] if m["role"] == "tool"}


@pytest.fixture(autouse=True)
def _stop_previews():
    yield
    stop_all_previews()


def test_successful_run_returns_files_summary_and_a_working_preview(tmp_path):
    script = write_script(
        tmp_path,
        [
            {
                "content": "Writing the page.",
                "tool_calls": [
                    {
                        "name": "createOrUpdateFiles",
                        "arguments": {"files": [{"path": "index.html", "content": "<h1>Hello pixie</h1>"}]},
                    },
                    {"name": "terminal", "arguments": {"command": "cat index.html"}},
                ],
            },
            {"content": "All done.\n<task_summary>\n  Built a hello page.\n</task_summary>"},
        ],
    )
    record = run_locally("Build a hello page", options(tmp_path, script))

    assert record["status"] == "SUCCEEDED", record["cause"]
    assert record["summary"] == "Built a hello page."
    assert record["title"] == "Built a hello page"
    assert record["files"] == {"index.html": "<h1>Hello pixie</h1>"}
    states = entered_states(record)
    for name in ("CreateSandbox", "AgentTurn", "Router", "RunTools", "RunTool", "GetSandboxUrl", "Done"):
        assert name in states
    assert states.count("AgentTurn") == 2
    # The terminal saw the file the first call wrote: calls run in order.
    assert "Hello pixie" in tool_results(record)["call_1_1"]
    with urllib.request.urlopen(record["url"], timeout=5) as response:
        assert "Hello pixie" in response.read().decode()
    # The run is saved for `pixie show`, with its conversation and history.
    saved = json.loads((tmp_path / "runs" / f"{record['runId']}.json").read_text())
    assert saved["conversation"] == record["conversation"]
    assert [m["role"] for m in saved["conversation"]] == ["user", "assistant", "tool", "tool", "assistant"]


def test_model_that_never_summarizes_fails_with_max_iterations_reached(tmp_path):
    turn = {"content": "Still working.", "tool_calls": [{"name": "terminal", "arguments": {"command": "echo step >> steps.txt"}}]}
    script = write_script(tmp_path, [turn] * 10)
    record = run_locally("Loop forever", options(tmp_path, script, max_iterations=3))

    assert record["status"] == "FAILED"
    assert record["error"] == "MaxIterationsReached"
    assert "task_summary" in record["cause"]
    assert entered_states(record).count("AgentTurn") == 3
    # Its last turn asked for tools: the cause says so (that turn's calls did not run).
    assert entered_states(record)[-3:] == ["LastTurnCalledTools", "CleanupSandbox", "RunFailed"]
    assert "last allowed turn asked for tool calls" in record["cause"]
    # State kept for inspection: the conversation up to the limit is saved.
    assert record["iterations"] == 3
    assert len([m for m in record["conversation"] if m["role"] == "assistant"]) == 3


def test_text_only_replies_get_another_turn_with_a_nudge(tmp_path):
    script = write_script(
        tmp_path, [{"content": "Let me think."}, {"content": "<task_summary>Thought it through</task_summary>"}]
    )
    record = run_locally("Think", options(tmp_path, script))

    assert record["status"] == "SUCCEEDED"
    roles = [m["role"] for m in record["conversation"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert "task_summary" in record["conversation"][2]["content"]
    assert "RunTools" not in entered_states(record)


def test_bad_tool_calls_return_errors_to_the_model_and_the_run_goes_on(tmp_path, monkeypatch):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    script = write_script(
        tmp_path,
        [
            {
                "content": None,
                "tool_calls": [
                    {"name": "terminal", "arguments": "{not json"},
                    {"name": "deployToProd", "arguments": {}},
                    {"name": "terminal", "arguments": {}},
                    {"name": "createOrUpdateFiles", "arguments": {"files": [{"path": "../escape.html", "content": "x"}]}},
                    {"name": "readFiles", "arguments": {"files": [str(outside)]}},
                    {"name": "readFiles", "arguments": {"files": ["missing.txt"]}},
                    {"name": "terminal", "arguments": {"command": "exit 3"}},
                ],
            },
            {"content": "<task_summary>Recovered from bad calls</task_summary>"},
        ],
    )
    record = run_locally("Be clumsy", options(tmp_path, script))

    assert record["status"] == "SUCCEEDED", record["cause"]
    results = tool_results(record)
    assert len(results) == 7  # every call got exactly one result
    assert "not valid JSON" in results["call_1_0"]
    assert "unknown tool 'deployToProd'" in results["call_1_1"]
    assert "command" in results["call_1_2"] and results["call_1_2"].startswith("Error:")
    assert "escapes the project root" in results["call_1_3"]
    assert "outside the project" in results["call_1_4"] and "secret" not in results["call_1_4"]
    assert "does not exist" in results["call_1_5"]
    assert results["call_1_6"].startswith("exit code 3")
    assert not (tmp_path / "sandboxes" / "escape.html").exists()
    assert record["files"] == {}


def test_malformed_event_fails_with_invalid_event_and_a_clear_cause(tmp_path):
    script = write_script(tmp_path, [{"content": "<task_summary>never reached</task_summary>"}])
    event = hello_world_event("x")
    del event["detail"]["value"]
    record = run_locally(event, options(tmp_path, script))

    assert record["status"] == "FAILED"
    assert record["error"] == "InvalidEvent"
    assert "detail.value" in record["cause"]
    assert entered_states(record) == ["CreateSandbox", "InvalidEvent"]
    assert not (tmp_path / "sandboxes").exists()  # nothing was created for a bad event


def test_exhausted_script_fails_the_run_clearly(tmp_path):
    script = write_script(tmp_path, [{"content": "no summary here"}])
    record = run_locally("Run out", options(tmp_path, script))

    assert record["status"] == "FAILED"
    assert record["error"] == "ScriptExhausted"
    assert "has 1 turns and turn 2 was requested" in record["cause"]


def test_state_payloads_stay_small_when_tool_output_is_large(tmp_path):
    big_turn = {"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": "head -c 200000 /dev/zero | tr '\\0' a"}}]}
    script = write_script(tmp_path, [big_turn] * 6 + [{"content": "<task_summary>big</task_summary>"}])
    record = run_locally("Print a lot", options(tmp_path, script))

    assert record["status"] == "SUCCEEDED"
    sizes = []
    for event in record["history"]:
        for details in event.values():
            if isinstance(details, dict):
                sizes += [len(details[k]) for k in ("input", "output") if isinstance(details.get(k), str)]
    assert max(sizes) < 2_000
    # The model saw a bounded result that says what was cut.
    assert all("omitted" in content and len(content) <= 10_000 for content in tool_results(record).values())


def test_interrupted_run_kills_its_command_fails_through_cleanup_and_is_saved(tmp_path):
    import os
    import signal
    import time

    from pixie.local_run import RunInterrupted

    turn = {"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": "echo $$ > pid; sleep 30"}}]}
    script = write_script(tmp_path, [turn, {"content": "<task_summary>never</task_summary>"}])
    sandboxes = tmp_path / "sandboxes"

    def ctrl_c_once_the_command_runs(signum, frame):
        if any((box / "pid").exists() for box in sandboxes.glob("*")):
            signal.setitimer(signal.ITIMER_REAL, 0)
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, ctrl_c_once_the_command_runs)
    signal.setitimer(signal.ITIMER_REAL, 0.2, 0.2)
    started = time.monotonic()
    try:
        with pytest.raises(RunInterrupted) as interrupted:
            run_locally("Sleep", options(tmp_path, script))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    assert time.monotonic() - started < 15  # not the 30 s of the command
    record = interrupted.value.record
    assert record["status"] == "FAILED" and record["error"] == "Interrupted"
    assert entered_states(record)[-2:] == ["CleanupSandbox", "RunFailed"]
    pgid = int(next(sandboxes.glob("*/pid")).read_text())
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)  # the command's whole process group is gone
    saved = json.loads((tmp_path / "runs" / f"{record['runId']}.json").read_text())
    assert saved["error"] == "Interrupted"
