"""The last allowed turn: a reply with tool calls and a <task_summary> runs its tools and finishes;
one with calls and no summary fails saying exactly that (not "no summary was written" in general)."""

from __future__ import annotations

from lambdas.logic.sandboxes.local import stop_all_previews
from pixie.local_run import RunOptions, run_locally
from conftest import write_script_file

FIRST = {"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": "echo one > one.txt"}}]}
WRITE_LAST = [{"name": "createOrUpdateFiles", "arguments": {"files": [{"path": "index.html", "content": "<h1>last</h1>"}]}}]


def run(tmp_path, turns, max_iterations=2):
    script = write_script_file(tmp_path / "s.json", turns)
    try:
        return run_locally("Build", RunOptions(model=f"scripted:{script}", pixie_home=tmp_path / "home", max_iterations=max_iterations))
    finally:
        stop_all_previews()


def test_a_last_turn_that_writes_a_file_and_summarizes_runs_its_tools_and_succeeds(tmp_path):
    record = run(tmp_path, [FIRST, {"content": "Done. <task_summary>Wrote the page</task_summary>", "tool_calls": WRITE_LAST}])
    assert record["status"] == "SUCCEEDED", record["cause"]
    assert record["summary"] == "Wrote the page"
    assert record["files"].get("index.html") == "<h1>last</h1>"
    # Two model calls: the AgentTurn after the last tools closes the run without asking the model.
    assert sum(1 for m in record["conversation"] if m["role"] == "assistant") == 2


def test_the_same_reply_on_an_earlier_turn_also_runs_its_tools_and_finishes(tmp_path):
    turns = [{"content": "<task_summary>early</task_summary>", "tool_calls": WRITE_LAST},
             {"content": "<task_summary>never asked for</task_summary>"}]
    record = run(tmp_path, turns, max_iterations=5)
    assert record["status"] == "SUCCEEDED", record["cause"]
    assert record["summary"] == "early" and record["files"].get("index.html") == "<h1>last</h1>"
    assert sum(1 for m in record["conversation"] if m["role"] == "assistant") == 1  # one model call


def test_a_last_turn_with_calls_and_no_summary_fails_saying_so_and_runs_nothing(tmp_path):
    last = {"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": "echo two > two.txt"}}]}
    record = run(tmp_path, [FIRST, last])
    assert record["status"] == "FAILED" and record["error"] == "MaxIterationsReached"
    assert "last allowed turn asked for tool calls and wrote no <task_summary>" in record["cause"]
    project = tmp_path / "home" / "sandboxes" / record["sandboxId"]
    assert (project / "one.txt").exists() and not (project / "two.txt").exists()


def test_the_closing_turn_is_in_the_history_arithmetic(tmp_path):
    from lambdas.logic.limits import HISTORY_EVENTS_FIXED, HISTORY_EVENTS_PER_CALL, HISTORY_EVENTS_PER_CHECK, HISTORY_EVENTS_PER_TURN

    record = run(tmp_path, [FIRST, {"content": "<task_summary>Wrote the page</task_summary>", "tool_calls": WRITE_LAST}])
    assert record["status"] == "SUCCEEDED", record["cause"]
    # The longest fixed part of any run: this ending (16 + the closing AgentTurn and Router).
    # The done-check (one, that passed) is counted per check.
    assert len(record["history"]) == HISTORY_EVENTS_FIXED + HISTORY_EVENTS_PER_CHECK + 2 * (HISTORY_EVENTS_PER_TURN + HISTORY_EVENTS_PER_CALL)
