"""Durability, proven by breaking things on purpose: injected Lambda failures (before a step
runs, or after it completed with its response lost), permanent errors that clean up, a model
endpoint that keeps failing, a sandbox that disappears, and secrets that must never leak.

Retry policies run exactly as written in agent.asl.json; `retry_delay_scale` only shortens
their waits so the suite stays fast."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from openai_stub import OpenAIStub, chat_completion, error_body

from lambdas.logic.sandboxes.local import stop_all_previews
from statemachine.engine import FaultInjector, LocalEngine, hello_world_event
from pixie.local_run import RunOptions, execution_record, run_locally

FAST = 0.01  # retry waits at 1 % of their real length

SESSION = [
    {
        "content": "Setting up.",
        "tool_calls": [
            {"name": "terminal", "arguments": {"command": "echo x >> log.txt"}},
            {"name": "createOrUpdateFiles", "arguments": {"files": [{"path": "index.html", "content": "<p>one</p>"}]}},
        ],
    },
    {"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": "echo y >> log.txt && wc -l < log.txt"}}]},
    {"content": None, "tool_calls": [{"name": "readFiles", "arguments": {"files": ["index.html", "log.txt"]}}]},
    {"content": "<task_summary>Wrote a page and a log</task_summary>"},
]


@pytest.fixture(autouse=True)
def _stop_previews():
    yield
    stop_all_previews()


@pytest.fixture
def session_script(tmp_path: Path) -> Path:
    path = tmp_path / "session.json"
    path.write_text(json.dumps({"turns": SESSION}))
    return path


def sandbox_dir(home: Path, record: dict) -> Path:
    return home / "sandboxes" / record["sandboxId"]


def failed_tasks(record: dict) -> list[dict]:
    return [e["taskFailedEventDetails"] for e in record["history"] if e["type"] == "TaskFailed"]


def test_twenty_runs_with_injected_faults_each_effect_exactly_once(tmp_path, session_script):
    baseline = run_locally("Build", RunOptions(model=f"scripted:{session_script}", pixie_home=tmp_path / "base"))
    assert baseline["status"] == "SUCCEEDED"
    expected_conversation = baseline["conversation"]

    kinds_seen: set[tuple[str, str]] = set()
    for seed in range(20):
        home = tmp_path / f"seed{seed}"
        faults = FaultInjector(0.3, seed)
        record = run_locally(
            "Build",
            RunOptions(model=f"scripted:{session_script}", pixie_home=home),
            invoke_wrapper=faults,
            retry_delay_scale=FAST,
        )
        assert record["status"] == "SUCCEEDED", (seed, record["error"], record["cause"])
        # Every terminal side effect happened exactly once.
        assert (sandbox_dir(home, record) / "log.txt").read_text() == "x\ny\n", seed
        # One sandbox per run, however often CreateSandbox was retried.
        assert len(list((home / "sandboxes").iterdir())) == 1
        # No duplicate or missing message: the same conversation as a run without faults.
        assert [(m["role"], m.get("content")) for m in record["conversation"]] == [
            (m["role"], m.get("content")) for m in expected_conversation
        ], seed
        # The injected failures are in the execution history, as Lambda service errors.
        failures = failed_tasks(record)
        assert len(failures) == len(faults.injected), seed
        assert all(f["error"] == "Lambda.ServiceException" for f in failures)
        kinds_seen.update(faults.injected)
    # The seeds exercised lost responses after real side effects, not only early failures.
    assert ("pixie-run-tool", "after") in kinds_seen
    assert ("pixie-agent-turn", "after") in kinds_seen
    assert ("pixie-create-sandbox", "after") in kinds_seen


def test_cli_inject_faults_run_is_visible_in_show(tmp_path, session_script, monkeypatch, capsys):
    from pixie.cli import main

    monkeypatch.setenv("PIXIE_HOME", str(tmp_path))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code = main(
        ["run", "--inject-faults", "0.3", "--fault-seed", "3", "--json", "--no-serve",
         "--model", f"scripted:{session_script}", "Build"]
    )
    output = json.loads(capsys.readouterr().out)
    assert code == 0 and output["status"] == "SUCCEEDED"
    assert (tmp_path / "sandboxes" / output["sandboxId"] / "log.txt").read_text() == "x\ny\n"

    assert main(["show", output["runId"], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    injected = [f for f in failed_tasks(shown) if "injected fault" in f["cause"]]
    assert injected, "seed 3 injects faults; they must show in the saved history"


def test_sandbox_that_disappears_mid_run_is_restored_from_the_table_and_the_run_finishes(tmp_path, session_script):
    """An expired or released sandbox (e.g. the cleanup before a redrive): the next step that needs
    it gets a fresh one with the files the tools wrote, recorded as the run's sandbox."""
    home = tmp_path
    calls = {"agent": 0}
    gone: list[str] = []

    def remove_sandbox_after_first_turn(name, event, invoke):
        result = invoke()
        if name == "pixie-agent-turn":
            calls["agent"] += 1
            if calls["agent"] == 2:
                for child in (home / "sandboxes").iterdir():
                    gone.append(child.name)
                    shutil.rmtree(child)
        return result

    record = run_locally(
        "Build", RunOptions(model=f"scripted:{session_script}", pixie_home=home), invoke_wrapper=remove_sandbox_after_first_turn
    )
    assert record["status"] == "SUCCEEDED", (record["error"], record["cause"])
    assert gone and record["sandboxId"] not in gone
    assert not failed_tasks(record)  # restored in the step itself: nothing failed, nothing retried
    # The run's version as the journal last saved it came back: the tools' files and what a
    # command wrote (log.txt) before the sandbox went.
    assert (sandbox_dir(home, record) / "index.html").read_text() == "<p>one</p>"
    assert (sandbox_dir(home, record) / "log.txt").read_text() == "x\ny\n"
    assert [m["role"] for m in record["conversation"]][:4] == ["user", "assistant", "tool", "tool"]


@pytest.fixture
def openai_stub(monkeypatch):
    stub = OpenAIStub().start()
    monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-pixie-test-KEY-0123456789")
    yield stub
    stub.stop()


def test_model_endpoint_that_keeps_failing_is_retried_then_fails_the_run(tmp_path, openai_stub):
    openai_stub.always(500, error_body("upstream exploded", "server_error"), headers={"retry-after-ms": "1"})
    record = run_locally("Build", RunOptions(model="openai:gpt-4.1", pixie_home=tmp_path), retry_delay_scale=FAST)

    assert record["status"] == "FAILED"
    assert record["error"] == "ModelUnavailable"
    # The ASL retries ModelUnavailable 4 times (5 attempts); the SDK retries each twice.
    assert len(openai_stub.requests) == 5 * 3
    assert [f["error"] for f in failed_tasks(record)] == ["ModelUnavailable"] * 5
    # Cleanup's effects (run FAILED in the table, preview stopped): test_promises_durability.py.


def test_rejected_api_key_is_permanent_and_not_retried(tmp_path, openai_stub):
    openai_stub.always(401, error_body("Incorrect API key provided", "invalid_request_error", "invalid_api_key"))
    record = run_locally("Build", RunOptions(model="openai:gpt-4.1", pixie_home=tmp_path), retry_delay_scale=FAST)

    assert record["status"] == "FAILED"
    assert record["error"] == "ModelAuthFailed"
    assert len(openai_stub.requests) == 1


def test_secrets_never_reach_history_table_saved_run_logs_or_commands(tmp_path, openai_stub, monkeypatch, capfd, caplog):
    openai_key = "sk-pixie-test-KEY-0123456789"
    e2b_key = "e2b_pixie_test_KEY_9876543210"
    monkeypatch.setenv("E2B_API_KEY", e2b_key)
    openai_stub.reply(200, chat_completion(None, [("call_a", "terminal", json.dumps({"command": "env; echo $OPENAI_API_KEY"}))]))
    openai_stub.reply(200, chat_completion("<task_summary>Looked around</task_summary>"))

    options = RunOptions(model="openai:gpt-4.1", pixie_home=tmp_path, log_level="DEBUG")
    with LocalEngine(options.env()) as engine:
        execution = engine.run(hello_world_event("Show me the environment"))
        from lambdas.dal.network_state import NetworkState

        record = execution_record(execution, NetworkState(engine.env["PIXIE_TABLE"]))
        items = engine.dynamodb.scan(TableName=engine.env["PIXIE_TABLE"])["Items"]
    assert execution.status == "SUCCEEDED"
    # The key did reach the model endpoint, as it must.
    assert openai_stub.requests[0].headers["authorization"] == f"Bearer {openai_key}"
    from pixie.runs import save_run

    saved = save_run(tmp_path, record).read_text()
    streams = capfd.readouterr()
    tool_result = next(m["content"] for m in record["conversation"] if m["role"] == "tool")
    assert "PATH=" in tool_result  # `env` ran and its output reached the model...
    # ...and nowhere else: not in the history, the table, the saved run, the logs, or commands.
    for haystack in (json.dumps(execution.history), json.dumps(items), saved, streams.out, streams.err, caplog.text):
        assert openai_key not in haystack
        assert e2b_key not in haystack
    assert "run created" in caplog.text  # the handlers' logs were captured
