"""Resume after the status-change cleanup, as AWS behaves: an execution stopped mid-run ends
ABORTED, the EventBridge rule on its status change runs CleanupSandbox (the sandbox is released),
and RedriveExecution continues it from the state it was in, after CreateSandbox. The local engine
imitates the redrive (moto has none): the run must finish SUCCEEDED with its files, without the
model being asked again for a turn it already answered."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from test_durability import SESSION
from test_run_endings import ctx, status_change

from lambdas.dal.network_state import NetworkState
from lambdas.handlers import cleanup_sandbox as cleanup_handler
from lambdas.logic.models import scripted
from lambdas.logic.sandboxes.local import stop_all_previews
from pixie.local_run import RunOptions
from statemachine.engine import ExecutionNotRedrivable, ExecutionNotRunning, LocalEngine, hello_world_event
from process_probes import sleeping


@pytest.fixture(autouse=True)
def _stop_previews():
    yield
    stop_all_previews()


@pytest.fixture
def model_turns(monkeypatch) -> list[int]:
    """The turn of every request the scripted model answers."""
    turns: list[int] = []
    real = scripted.ScriptedModel.complete

    def recording(self, messages, tools, *, turn, **kwargs):
        turns.append(turn)
        return real(self, messages, tools, turn=turn, **kwargs)

    monkeypatch.setattr(scripted.ScriptedModel, "complete", recording)
    return turns


def stop_during_turn(stop_at: int, engine_ref: dict):
    """An invoke wrapper that calls StopExecution while AgentTurn `stop_at` is running: its reply is
    saved, the execution ends ABORTED with that state entered and never exited."""
    seen = {"turns": 0}

    def wrapper(name, event, invoke):
        if name == "pixie-agent-turn":
            seen["turns"] += 1
            if seen["turns"] == stop_at:
                engine_ref["engine"].sfn.stop_execution(executionArn=engine_ref["arn"], error="Stopped", cause="by the user")
        return invoke()

    return wrapper


def state_entries(history: list[dict], name: str) -> int:
    return sum(1 for e in history if e["type"].endswith("StateEntered") and e["stateEnteredEventDetails"]["name"] == name)


def test_a_run_aborted_mid_turn_and_cleaned_up_is_redriven_to_success_with_its_files(tmp_path, model_turns):
    script = tmp_path / "session.json"
    script.write_text(json.dumps({"turns": SESSION}))
    home = tmp_path / "home"
    ref: dict = {}
    with LocalEngine(RunOptions(model=f"scripted:{script}", pixie_home=home).env(), invoke_wrapper=stop_during_turn(2, ref)) as engine:
        ref["engine"] = engine
        ref["arn"], run_id = engine.start(hello_world_event("Build"))
        first = engine.wait(ref["arn"])
        assert first.status == "ABORTED"
        assert model_turns == [1, 2]

        # The status-change rule's target, with the event EventBridge delivers for the abort.
        cleaned = cleanup_handler.handler(status_change(run_id, "ABORTED"), ctx("pixie-cleanup-sandbox"))
        assert cleaned["cleaned"] is True
        # E2B's kill destroys the sandbox; a local kill stops the preview and keeps the folder for
        # inspection. Remove it, so nothing is left to reattach to, as on AWS.
        (released,) = (home / "sandboxes").iterdir()
        shutil.rmtree(released)

        redriven = engine.wait(engine.redrive(ref["arn"]))
        recorded = NetworkState(engine.env["PIXIE_TABLE"]).get_run(run_id)
    assert recorded.status == "SUCCEEDED"  # the cleanup had marked it ABORTED

    assert redriven.status == "SUCCEEDED", (redriven.error, redriven.cause)
    assert redriven.run_id == run_id
    # Turn 2 was answered before the abort: only turns 3 and 4 were asked of the model.
    assert model_turns == [1, 2, 3, 4]
    # A new sandbox with the files the file tool wrote, restored from the table as on AWS (what a
    # command wrote, log.txt, comes back only from a local version, which `pixie resume` uses).
    assert redriven.output["files"] == ["index.html"]
    (restored,) = (home / "sandboxes").iterdir()
    assert restored.name != released.name
    assert (restored / "index.html").read_text() == "<p>one</p>"
    # One history, as AWS keeps it: CreateSandbox ran once, the redrive is recorded, then the
    # execution went on from AgentTurn.
    history = redriven.history
    kinds = [e["type"] for e in history]
    assert kinds.count("ExecutionRedriven") == 1 and kinds[-1] == "ExecutionSucceeded"
    assert state_entries(history, "CreateSandbox") == 1
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    after = history[kinds.index("ExecutionRedriven") + 1]
    assert after["type"] == "TaskStateEntered" and after["stateEnteredEventDetails"]["name"] == "AgentTurn"


def test_a_succeeded_or_caught_failure_is_not_redriven_past_its_ending(tmp_path):
    """AWS refuses to redrive a SUCCEEDED execution; a failure the workflow caught restarts at its
    Fail state and fails again (which is why `pixie resume --aws` refuses those)."""
    script = tmp_path / "s.json"
    script.write_text(json.dumps({"turns": [{"content": "<task_summary>Nothing</task_summary>"}]}))
    with LocalEngine(RunOptions(model=f"scripted:{script}", pixie_home=tmp_path / "home").env()) as engine:
        done = engine.run(hello_world_event("Build"))
        assert done.status == "SUCCEEDED"
        with pytest.raises(ExecutionNotRedrivable):
            engine.redrive(done.arn)

        failed = engine.run(hello_world_event(""))  # an empty prompt is caught: RunFailed-style ending
        assert failed.status == "FAILED"
        again = engine.wait(engine.redrive(failed.arn))
    assert again.status == "FAILED" and again.error == failed.error


def wait_until(condition, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_stop_aborts_at_once_ends_the_command_through_the_cleanup_and_the_run_redrives(tmp_path):
    """StopExecution as AWS documents it: ABORTED at once (moto would wait for the step in flight
    and fail a Map instead), the status change runs CleanupSandbox, and a redrive carries on."""
    marker = "615"
    command = f"if [ -e again ]; then echo second; else sleep {marker}; fi"
    script = tmp_path / "s.json"
    script.write_text(json.dumps({"turns": [
        {"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": command}}]},
        {"content": "<task_summary>Slept</task_summary>"},
    ]}))
    home = tmp_path / "home"
    with LocalEngine(RunOptions(model=f"scripted:{script}", pixie_home=home).env()) as engine:
        arn, run_id = engine.start(hello_world_event("Sleep"))
        wait_until(lambda: sleeping(marker), "the command never started")

        engine.stop(arn, cause="by the user")

        stopped = engine.describe(arn)
        assert stopped["status"] == "ABORTED" and stopped["cause"] == "by the user"
        history = engine.history(arn)
        assert history[-1]["type"] == "ExecutionAborted"
        assert history[-1]["executionAbortedEventDetails"] == {"error": "Stopped", "cause": "by the user"}
        assert NetworkState(engine.env["PIXIE_TABLE"]).get_run(run_id).status == "ABORTED"  # the cleanup ran
        wait_until(lambda: not sleeping(marker), "the stopped run's command is still running")
        assert engine.wait(arn).status == "ABORTED"
        with pytest.raises(ExecutionNotRunning):
            engine.stop(arn, cause="again")

        (sandbox,) = (home / "sandboxes").iterdir()
        (sandbox / "again").touch()
        redriven = engine.wait(engine.redrive(arn))
    assert redriven.status == "SUCCEEDED", (redriven.error, redriven.cause)
    assert redriven.output["summary"] == "Slept"
    kinds = [e["type"] for e in redriven.history]
    assert kinds.count("ExecutionAborted") == 1 and kinds.count("ExecutionRedriven") == 1
    assert [e["id"] for e in redriven.history] == list(range(1, len(kinds) + 1))


def test_an_execution_already_redriven_is_not_redriven_again_by_its_first_arn(tmp_path):
    """AWS keeps one execution: once redriven it is RUNNING (then SUCCEEDED), and a second
    RedriveExecution of it is refused (ExecutionNotRedrivable). Locally a redrive is a new ARN, so
    the first one is judged by its newest redrive (found by the attack session: it redrove again
    and again, two executions of one run at once)."""
    script = tmp_path / "session.json"
    script.write_text(json.dumps({"turns": SESSION}))
    home = tmp_path / "home"
    ref: dict = {}
    with LocalEngine(RunOptions(model=f"scripted:{script}", pixie_home=home).env(), invoke_wrapper=stop_during_turn(2, ref)) as engine:
        ref["engine"] = engine
        ref["arn"], run_id = engine.start(hello_world_event("Build"))
        assert engine.wait(ref["arn"]).status == "ABORTED"
        cleanup_handler.handler(status_change(run_id, "ABORTED"), ctx("pixie-cleanup-sandbox"))
        for released in (home / "sandboxes").iterdir():
            shutil.rmtree(released)
        redriven = engine.redrive(ref["arn"])
        try:
            with pytest.raises(ExecutionNotRedrivable):
                engine.wait(engine.redrive(ref["arn"]))  # while the first redrive runs
        finally:
            done = engine.wait(redriven)
        assert done.status == "SUCCEEDED", (done.error, done.cause)
        with pytest.raises(ExecutionNotRedrivable):
            engine.wait(engine.redrive(ref["arn"]))  # after it succeeded
