"""The stuck-loop breaker: the same failing tool call again and again is told to the model after
a few repeats and ends the run StuckLoop at the limit, well before the iteration cap."""

from __future__ import annotations

from lambdas.logic.sandboxes.local import stop_all_previews
from lambdas.logic.stuck import trailing_repeat
from conftest import write_script_file
from pixie.local_run import RunOptions, run_locally


def terminal(command):
    return {"name": "terminal", "arguments": {"command": command}}


def run(tmp_path, turns, max_iterations=15, **env):
    script = write_script_file(tmp_path / "s.json", turns)
    options = RunOptions(model=f"scripted:{script}", pixie_home=tmp_path / "home", max_iterations=max_iterations,
                         extra_env=tuple(env.items()))
    try:
        return run_locally("Build", options)
    finally:
        stop_all_previews()


def test_a_model_repeating_one_failing_command_is_told_then_stopped(tmp_path):
    failing = {"content": None, "tool_calls": [terminal("npm run nope")]}
    record = run(tmp_path, [failing] * 12)

    assert record["status"] == "FAILED" and record["error"] == "StuckLoop", record["cause"]
    assert "5 times in a row" in record["cause"] and "npm run nope" in record["cause"]
    assert record["iterations"] == 5  # stopped well before its 15 turns, with no sixth model call
    notices = [m["content"] for m in record["conversation"] if m["role"] == "user" and "[pixie]" in str(m["content"])]
    assert notices and "3 times in a row" in notices[0] and "At 5 identical repeats" in notices[0]
    states = [e["stateEnteredEventDetails"]["name"] for e in record["history"] if "stateEnteredEventDetails" in e]
    assert states[-3:] == ["StuckLoop", "CleanupSandbox", "RunFailed"]


def test_the_limit_is_configurable(tmp_path):
    failing = {"content": None, "tool_calls": [terminal("exit 3")]}
    record = run(tmp_path, [failing] * 6, PIXIE_STUCK_WARN_AFTER="1", PIXIE_STUCK_LIMIT="2")
    assert record["error"] == "StuckLoop" and record["iterations"] == 2


def test_a_model_that_changes_its_command_after_failures_is_not_stopped(tmp_path):
    turns = [{"content": None, "tool_calls": [terminal("exit 1")]}] * 4 + [
        {"content": None, "tool_calls": [terminal("echo fixed")]},
        {"content": "<task_summary>fixed</task_summary>"},
    ]
    record = run(tmp_path, turns)
    assert record["status"] == "SUCCEEDED", record["cause"]


def call(call_id, command):
    return {"id": call_id, "type": "function", "function": {"name": "terminal", "arguments": f'{{"command": "{command}"}}'}}


def test_only_identical_failing_calls_in_a_row_count():
    def turn(i, command, result):
        return [{"role": "assistant", "content": None, "tool_calls": [call(f"c{i}", command)]},
                {"role": "tool", "tool_call_id": f"c{i}", "content": result}]

    failing = [m for i in range(3) for m in turn(i, "make", "exit code 2\n--- stdout ---\n")]
    assert trailing_repeat(failing).count == 3
    # Same arguments written differently are the same call.
    spaced = [{"role": "assistant", "content": None, "tool_calls": [call("d", "make")]}]
    spaced[0]["tool_calls"][0]["function"]["arguments"] = '{ "command" : "make" }'
    assert trailing_repeat(failing + spaced + [{"role": "tool", "tool_call_id": "d", "content": "Error: x"}]).count == 4
    assert trailing_repeat(failing + turn(9, "make", "exit code 0\n")) is None  # it worked this time
    assert trailing_repeat(failing + turn(9, "make test", "exit code 2\n")) is None  # a different call
