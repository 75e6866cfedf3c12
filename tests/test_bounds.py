"""Issue 8: no model reply can drop work, break a limit or hang a step. Whole runs on the embedded
engine with scripted models that misbehave (and one over HTTP against the stand-in OpenAI
server), the CLI's door checks as a user meets them, and the limits' own arithmetic."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lambdas.logic.limits import (
    HISTORY_EVENT_LIMIT,
    HISTORY_EVENTS_PER_CALL,
    HISTORY_EVENTS_PER_CHECK,
    HISTORY_EVENTS_PER_RETRY,
    HISTORY_EVENTS_PER_TURN,
    MAX_ITERATIONS_CAP,
    MAX_TITLE_CHARS,
    STATE_PAYLOAD_TARGET_BYTES,
    DEFAULT_MAX_TOOL_CALLS,
    check_run_limits,
    worst_case_history_events,
)
from lambdas.logic.sandboxes.local import stop_all_previews
from pixie.local_run import RunOptions, run_locally
from statemachine.engine import FaultInjector, hello_world_event

PIXIE = Path(sys.executable).parent / "pixie"


def write_script(directory: Path, turns: list[dict], name: str = "script.json") -> Path:
    path = directory / name
    path.write_text(json.dumps({"turns": turns}))
    return path


def options(home: Path, script: Path, **env: str) -> RunOptions:
    return RunOptions(model=f"scripted:{script}", sandbox="local", pixie_home=home, extra_env=tuple(env.items()))


def sandbox_root(home: Path) -> Path:
    (root,) = (home / "sandboxes").iterdir()
    return root


def conversation_pairs(record: dict) -> tuple[list[str], list[str]]:
    """(ids of every tool call the assistant made, tool_call_id of every tool result)."""
    calls = [c["id"] for m in record["conversation"] if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    results = [m["tool_call_id"] for m in record["conversation"] if m["role"] == "tool"]
    return calls, results


def terminal(command: str, **extra) -> dict:
    return {"name": "terminal", "arguments": {"command": command}, **extra}


SUMMARY = {"content": "<task_summary>Done</task_summary>"}


@pytest.fixture(autouse=True)
def _stop_previews():
    yield
    stop_all_previews()


# --- 1. every call runs once and gets one result, whatever its id ----------------------------------
def test_calls_with_shared_empty_null_and_huge_ids_all_run_and_get_one_result_each(tmp_path):
    calls = [
        terminal("echo a >> log.txt", id="same"),
        terminal("echo b >> log.txt", id="same"),
        terminal("echo c >> log.txt", id=""),
        terminal("echo d >> log.txt", id=None),
        terminal("echo e >> log.txt", id="x" * 300_000),
        terminal("echo f >> log.txt", id="call_1_2"),  # the id pixie would pick for the empty one
    ]
    script = write_script(tmp_path, [{"content": None, "tool_calls": calls}, SUMMARY])
    record = run_locally("Same ids", options(tmp_path, script))

    assert record["status"] == "SUCCEEDED", record["cause"]
    assert (sandbox_root(tmp_path) / "log.txt").read_text() == "a\nb\nc\nd\ne\nf\n"  # each ran, once, in order
    ids, results = conversation_pairs(record)
    assert len(ids) == len(set(ids)) == 6 and sorted(results) == sorted(ids)
    assert ids[0] == "same" and ids[5] == "call_1_2"  # usable ids are kept
    assert all(len(i) <= 64 for i in ids)


def test_duplicate_and_missing_ids_over_http_give_the_model_a_valid_next_request(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from openai_stub import OpenAIStub, chat_completion

    stub = OpenAIStub().start()
    try:
        first = chat_completion(None, [("dup", "terminal", '{"command": "echo 1 >> n"}'), ("dup", "terminal", '{"command": "echo 2 >> n"}'), (None, "terminal", '{"command": "echo 3 >> n"}')])
        del first["choices"][0]["message"]["tool_calls"][2]["id"]  # no id at all
        stub.reply(200, first)
        stub.reply(200, chat_completion("<task_summary>Counted</task_summary>"))
        run_options = RunOptions(
            model="openai:gpt-4.1",
            pixie_home=tmp_path,
            extra_env=(("OPENAI_API_KEY", "sk-test"), ("OPENAI_BASE_URL", stub.base_url)),
        )
        record = run_locally("Count", run_options)
    finally:
        stub.stop()

    assert record["status"] == "SUCCEEDED", record["cause"]
    assert (sandbox_root(tmp_path) / "n").read_text() == "1\n2\n3\n"
    second = stub.requests[1].body["messages"]
    assistant = next(m for m in second if m["role"] == "assistant")
    sent_ids = [c["id"] for c in assistant["tool_calls"]]
    answered = [m["tool_call_id"] for m in second if m["role"] == "tool"]
    assert len(set(sent_ids)) == 3 and answered == sent_ids  # one result per call, ids unique


# --- 2. bounds -------------------------------------------------------------------------------------
def test_forty_calls_in_one_turn_give_forty_results_and_the_run_succeeds(tmp_path):
    calls = [terminal(f"echo {i} >> log.txt") for i in range(40)]
    script = write_script(tmp_path, [{"content": None, "tool_calls": calls}, SUMMARY])
    record = run_locally("Many calls", options(tmp_path, script))

    assert record["status"] == "SUCCEEDED", record["cause"]
    ids, results = conversation_pairs(record)
    assert len(results) == 40 and sorted(results) == sorted(ids)
    lines = (sandbox_root(tmp_path) / "log.txt").read_text().split()
    assert lines == [str(i) for i in range(DEFAULT_MAX_TOOL_CALLS)]  # the first 32 ran, in order
    tool_messages = [m for m in record["conversation"] if m["role"] == "tool"]
    assert all(m["content"].startswith("exit code 0") for m in tool_messages[:32])
    assert all(m["content"].startswith("Error: not run") and "at most 32" in m["content"] for m in tool_messages[32:])
    assert sum(1 for e in record["history"] if e["type"] == "MapIterationStarted") == 32


def test_a_thousand_calls_in_one_turn_do_not_overflow_the_engine(tmp_path):
    calls = [terminal("true")] * 1_000
    script = write_script(tmp_path, [{"content": None, "tool_calls": calls}, SUMMARY])
    record = run_locally("A thousand calls", options(tmp_path, script))

    assert record["status"] == "SUCCEEDED", record["cause"]
    ids, results = conversation_pairs(record)
    assert len(results) == 1_000 and len(set(ids)) == 1_000


def test_a_hundred_thousand_character_summary_is_cut_to_four_thousand(tmp_path):
    script = write_script(tmp_path, [{"content": "<task_summary>" + "Built it. " * 10_000 + "</task_summary>"}])
    record = run_locally("Long summary", options(tmp_path, script))

    assert record["status"] == "SUCCEEDED", record["cause"]
    assert len(record["summary"]) <= 4_000 and record["summary"].startswith("Built it. Built it.")
    assert "summary cut by pixie" in record["summary"]
    assert len(record["title"]) <= MAX_TITLE_CHARS


def test_a_reply_over_the_limit_is_not_carried_out_and_the_model_is_told(tmp_path):
    huge = {"name": "createOrUpdateFiles", "arguments": {"files": [{"path": "big.txt", "content": "z" * 30_000}]}}
    script = write_script(tmp_path, [{"content": "Here goes.", "tool_calls": [huge]}, SUMMARY])
    record = run_locally("Too big", options(tmp_path, script, PIXIE_MAX_REPLY_CHARS="20000"))

    assert record["status"] == "SUCCEEDED", record["cause"]
    assert not (sandbox_root(tmp_path) / "big.txt").exists()
    roles = [m["role"] for m in record["conversation"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    notice = record["conversation"][2]["content"]
    assert "over pixie's limit of 20,000" in notice and "none of it was carried out" in notice


def test_every_state_payload_stays_under_8_kb_at_the_limits(tmp_path):
    """Drives every bound a reply can push at once: the most calls with the longest ids and
    names, more files than the result lists, a reply over the limit, a summary and title of
    characters that JSON escapes the most."""
    odd_calls = [  # the longest ids kept as they are, names that escape the most
        {"id": f"{i:02d}" + "a" * 62, "name": "\\" * 300 if i % 2 else "\U0001F600" * 300, "arguments": {}}
        for i in range(DEFAULT_MAX_TOOL_CALLS + 8)
    ] + [{"id": "\u00e9" * 64, "name": "terminal", "arguments": {"command": "true"}}]
    accents = "\u00e9" * 20
    files = [{"path": f"{'d' * 90}/{i:04d}-{accents}.txt", "content": "x"} for i in range(600)]
    summary = '"\\\n\U0001F600\x1b' * 30_000
    turns = [
        {"content": None, "tool_calls": odd_calls},
        {"content": None, "tool_calls": [{"name": "createOrUpdateFiles", "arguments": {"files": files}}]},
        {"content": "x" * 1_000_000, "tool_calls": [terminal("true")]},  # over the reply limit below
        {"content": "\U0001F600" * 200 + "<task_summary>" + summary + "</task_summary>"},
    ]
    script = write_script(tmp_path, turns)
    record = run_locally(hello_world_event("Push every limit"), options(tmp_path, script, PIXIE_MAX_REPLY_CHARS="900000"))

    assert record["status"] == "SUCCEEDED", record["cause"]
    assert len(record["files"]) == 600
    sizes = []
    for event in record["history"][1:]:  # the first event carries the triggering event, as sent
        for key, details in event.items():
            if not isinstance(details, dict) or key == "stateEnteredEventDetails" and details.get("name") == "CreateSandbox":
                continue
            for field in ("input", "output"):
                if isinstance(details.get(field), str):
                    sizes.append((len(details[field].encode("utf-8")), event["type"], details.get("name")))
    largest = max(sizes)
    print("largest state payload:", largest)
    assert largest[0] < STATE_PAYLOAD_TARGET_BYTES, largest
    final = json.loads(next(e for e in record["history"] if e["type"] == "ExecutionSucceeded")["executionSucceededEventDetails"]["output"])
    assert final["fileCount"] == 600 and 0 < len(final["files"]) < 600


# --- 3. the history limit --------------------------------------------------------------------------
def history_counts(record: dict) -> tuple[int, int]:
    """(events, failed attempts that were retried)."""
    events = record["history"]
    retried = sum(1 for e in events if e["type"] in ("TaskFailed", "LambdaFunctionFailed") and _was_retried(e, events))
    return len(events), retried


def _was_retried(event: dict, events: list[dict]) -> bool:
    later = events[events.index(event) + 1 :]
    return bool(later) and later[0]["type"] in ("TaskScheduled",)


@pytest.mark.parametrize("faults", [0.0, 0.3])
def test_history_events_follow_the_per_turn_arithmetic(tmp_path, faults):
    """A scaled run of the worst case: turns with 0, 1, 5 and the most (plus ignored extra) calls.
    Its events must match the arithmetic the caps rest on exactly, retries included."""
    turns = [
        {"content": "thinking"},
        {"content": None, "tool_calls": [terminal("true")]},
        {"content": None, "tool_calls": [terminal("true")] * 5},
        {"content": None, "tool_calls": [terminal("true")] * (DEFAULT_MAX_TOOL_CALLS + 3)},
        SUMMARY,  # a turn without tools too; its done-check fails once...
        SUMMARY,  # ...and this one's passes
    ]
    script = write_script(tmp_path, turns)
    fails_once = "test -e .checked || { touch .checked; false; }"
    record = run_locally(
        "Count my events",
        dataclasses.replace(options(tmp_path, script), check_command=fails_once),
        invoke_wrapper=FaultInjector(faults, seed=11) if faults else None,
        retry_delay_scale=0.001,
    )
    assert record["status"] == "SUCCEEDED", record["cause"]
    events, retried = history_counts(record)
    if faults:
        assert retried > 0
    calls_run = [0, 1, 5, DEFAULT_MAX_TOOL_CALLS, 0, 0]
    tools_turns = sum(1 for k in calls_run if k)
    expected = (
        16  # start, CreateSandbox, IsDuplicateEvent, GetSandboxUrl, the end
        + HISTORY_EVENTS_PER_CHECK * 2  # the done-check that failed, and the one that passed
        + HISTORY_EVENTS_PER_TURN * len(calls_run)
        - 4 * (len(calls_run) - tools_turns)  # a turn without tools has no Map (7 instead of 11)
        + HISTORY_EVENTS_PER_CALL * sum(calls_run)
        + HISTORY_EVENTS_PER_RETRY * retried
    )
    assert events == expected


def test_the_worst_case_at_the_caps_stays_under_the_history_limit():
    worst = worst_case_history_events(MAX_ITERATIONS_CAP, DEFAULT_MAX_TOOL_CALLS)
    assert worst < HISTORY_EVENT_LIMIT
    check_run_limits(MAX_ITERATIONS_CAP, DEFAULT_MAX_TOOL_CALLS)
    with pytest.raises(ValueError, match=f"between 1 and {MAX_ITERATIONS_CAP}"):
        check_run_limits(MAX_ITERATIONS_CAP + 1, 1)
    with pytest.raises(ValueError, match="history events"):
        check_run_limits(MAX_ITERATIONS_CAP, 64)


# --- 4. file tools: regular files only ---------------------------------------------------------------
def test_a_fifo_gives_an_error_result_without_blocking(tmp_path):
    turns = [
        {"content": None, "tool_calls": [terminal("mkfifo pipe")]},
        {
            "content": None,
            "tool_calls": [
                {"name": "readFiles", "arguments": {"files": ["pipe", "index.html"]}},
                {"name": "createOrUpdateFiles", "arguments": {"files": [{"path": "pipe", "content": "x"}]}},
            ],
        },
        SUMMARY,
    ]
    script = write_script(tmp_path, turns)
    started = time.monotonic()
    record = run_locally("Read a pipe", options(tmp_path, script, PIXIE_COMMAND_TIMEOUT="5"))

    assert record["status"] == "SUCCEEDED", record["cause"]
    assert time.monotonic() - started < 60
    results = [m["content"] for m in record["conversation"] if m["role"] == "tool"]
    assert "--- pipe ---\nError: pipe is a FIFO (named pipe), not a regular file" in results[1]
    assert "--- index.html ---\n<" in results[1]  # the other file is still read
    assert results[2].startswith("Error: cannot write pipe: it is a FIFO")


def test_a_write_through_a_hard_link_leaves_the_outside_file_untouched(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("outside content")
    turns = [
        {"content": None, "tool_calls": [terminal(f"ln {outside} inside.txt && ln {outside} other.txt")]},
        {
            "content": None,
            "tool_calls": [
                {"name": "createOrUpdateFiles", "arguments": {"files": [{"path": "inside.txt", "content": "new"}]}},
                {"name": "readFiles", "arguments": {"files": ["other.txt", "inside.txt"]}},
            ],
        },
        SUMMARY,
    ]
    script = write_script(tmp_path, turns)
    # Unisolated, so the command can reach the outside file: bubblewrap would hide it, and this
    # is the file tools' own defence, for E2B-less machines without isolation.
    record = run_locally("Hard link", options(tmp_path, script, PIXIE_ISOLATION="none"))

    assert record["status"] == "SUCCEEDED", record["cause"]
    assert outside.read_text() == "outside content"
    assert (sandbox_root(tmp_path) / "inside.txt").read_text() == "new"
    read = [m["content"] for m in record["conversation"] if m["role"] == "tool"][2]
    assert "--- other.txt ---\nError: other.txt has 2 hard links" in read and "outside content" not in read
    assert "--- inside.txt ---\nnew" in read


# --- 6. prompts, 7. settings and scripts: refused at the door ------------------------------------------
def pixie(args: list, home: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    environment.update({"PIXIE_HOME": str(home), **(env or {})})
    return subprocess.run(
        [os.fsencode(PIXIE), *args], capture_output=True, env=environment, timeout=120, stdin=subprocess.DEVNULL
    )


def test_a_prompt_that_is_not_utf8_exits_2_before_any_sandbox_exists(tmp_path):
    result = pixie([b"run", b"--no-serve", b"Build \xff\xfe a thing"], tmp_path)
    assert result.returncode == 2, result.stderr
    assert b"not valid UTF-8" in result.stderr
    assert not (tmp_path / "sandboxes").exists()


def test_an_iteration_count_above_the_cap_exits_2_naming_the_cap(tmp_path):
    result = pixie([b"run", b"--max-iterations", b"100000", b"--no-serve", b"hi"], tmp_path)
    assert result.returncode == 2
    assert f"between 1 and {MAX_ITERATIONS_CAP}".encode() in result.stderr
    assert not (tmp_path / "sandboxes").exists()


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_a_command_timeout_out_of_range_exits_2_with_a_clear_error(tmp_path, value):
    result = pixie([b"run", b"--no-serve", b"hi"], tmp_path, {"PIXIE_COMMAND_TIMEOUT": value})
    assert result.returncode == 2
    assert b"PIXIE_COMMAND_TIMEOUT must be" in result.stderr and b"from 1 to 720" in result.stderr
    assert not (tmp_path / "sandboxes").exists()


def test_a_script_with_a_bad_turn_exits_2_naming_the_turn(tmp_path):
    script = write_script(tmp_path, [SUMMARY, {"content": None, "tool_calls": {"name": "terminal"}}])
    result = pixie([b"run", b"--no-serve", b"--model", f"scripted:{script}".encode(), b"hi"], tmp_path)
    assert result.returncode == 2
    assert b"turn 2: tool_calls must be a list" in result.stderr


def test_an_invalid_prompt_in_an_event_fails_with_invalid_event_and_creates_nothing(tmp_path):
    script = write_script(tmp_path, [SUMMARY])
    for bad in ("Build \udcff", "   ", "x" * 20_001):
        record = run_locally(hello_world_event(bad), options(tmp_path, script))
        assert record["status"] == "FAILED" and record["error"] == "InvalidEvent", record["cause"]
    assert not (tmp_path / "sandboxes").exists()
