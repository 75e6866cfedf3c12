"""The README's durability promises, observed from outside: whole runs of agent.asl.json on the
embedded engine, with steps made to fail as Lambda reports failures, the attempts counted in the
execution history, the waits between them recorded where moto's retrier asks for them, the model
calls counted at a stand-in OpenAI server, and cleanup's effects seen in the table and the preview.

The expected counts and waits come from the README's durability table (tests/promises.py), and
which step must retry what from the code, so a change to the ASL alone, or to the README alone,
fails here."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator
from unittest import mock

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from moto.stepfunctions.parser.asl.component.common.retry import jitter_strategy_decl, retrier_decl
from openai_stub import OpenAIStub, chat_completion, error_body

import promises
from lambdas.logic.sandboxes.local import stop_all_previews
from pixie.local_run import RunOptions
from statemachine.engine import FUNCTIONS, InjectedFault, LocalEngine, hello_world_event

# The states a successful two-turn run with one tool call passes through, in order.
SUCCESS_PATH = ["CreateSandbox", "AgentTurn", "RunTool", "GetSandboxUrl"]
TWO_TURNS = [
    {"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": "echo hi >> log.txt"}}]},
    {"content": "<task_summary>Logged hi</task_summary>"},
]


@pytest.fixture(autouse=True)
def _stop_previews():
    yield
    stop_all_previews()


@pytest.fixture
def two_turns(write_script) -> str:
    return f"scripted:{write_script(TWO_TURNS)}"


def function_name(state_name: str) -> str:
    return FUNCTIONS[promises.function_variable(promises.task_states()[state_name])][0]


# --- watching the engine from outside ---------------------------------------------------------------
class RetryWaits:
    """Stands in for `time` in moto's retrier and for `random` in its jitter: records the interval
    each retry draws its jitter from and the wait it asks for, and waits `scale` of it."""

    def __init__(self, scale: float = 0.0) -> None:
        self.scale = scale
        self.jitter_ranges: list[tuple[float, float]] = []
        self.waits: list[float] = []

    def uniform(self, low: float, high: float) -> float:
        self.jitter_ranges.append((low, high))
        return high / 2  # a fixed draw, so the wait asked for is known

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.scale:
            time.sleep(seconds * self.scale)


@contextmanager
def recorded_waits(scale: float = 0.0) -> Iterator[RetryWaits]:
    waits = RetryWaits(scale)
    with mock.patch.object(retrier_decl, "time", waits), mock.patch.object(jitter_strategy_decl, "random", waits):
        yield waits


def _function_error(error_type: str, message: str) -> tuple[AWSResponse, dict]:
    body = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
    payload = StreamingBody(io.BytesIO(body), len(body))
    return AWSResponse("", 200, {}, None), {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": payload}


class FailingInvocations:
    """Fails the first N invocations of chosen functions with a given error, before they run: a
    `Lambda.*` error as the Lambda service raises it (a ClientError), any other as a function
    error of that type, as Lambda reports an exception a handler raised."""

    def __init__(self, failures: dict[str, tuple[str, int]]) -> None:
        self.errors = {name: error for name, (error, _) in failures.items()}
        self.remaining = {name: count for name, (_, count) in failures.items()}

    def __call__(self, params: dict, **_) -> tuple[AWSResponse, dict] | None:
        path = urllib.parse.unquote(params["url_path"])
        target = next((name for name in self.remaining if f":function:{name}/" in path or f"/{name}/" in path), None)
        if target is None or self.remaining[target] == 0:
            return None  # the engine's own dispatch runs the handler
        self.remaining[target] -= 1
        error, message = self.errors[target], f"stand-in failure of {target}"
        if error.startswith("Lambda."):
            raise ClientError(
                {
                    "Error": {"Code": error.removeprefix("Lambda."), "Message": message},
                    "ResponseMetadata": {"HTTPStatusCode": 500, "RequestId": str(uuid.uuid4())},
                },
                "Invoke",
            )
        return _function_error(error, message)


@contextmanager
def failing(engine: LocalEngine, failures: dict[str, tuple[str, int]]) -> Iterator[FailingInvocations]:
    """failures: state name -> (error, how many of its first invocations fail)."""
    hook = FailingInvocations({function_name(state): plan for state, plan in failures.items()})
    events = boto3.DEFAULT_SESSION.events  # the engine's session: moto's interpreter invokes through it
    events.register_first("before-call.lambda.Invoke", hook)
    try:
        yield hook
    finally:
        events.unregister("before-call.lambda.Invoke", hook)


def failures_by_state(history: list[dict]) -> dict[str, list[str]]:
    """The errors of every failed attempt, by the state that made it."""
    current, failures = None, defaultdict(list)
    for event in history:
        if "stateEnteredEventDetails" in event:
            current = event["stateEnteredEventDetails"]["name"]
        if event["type"] == "TaskFailed":
            failures[current].append(event["taskFailedEventDetails"]["error"])
    return dict(failures)


def states_entered(history: list[dict]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]


def run_item(engine: LocalEngine, run_id: str) -> dict:
    """The run record exactly as the table holds it."""
    item = engine.dynamodb.get_item(TableName=engine.env["PIXIE_TABLE"], Key={"pk": {"S": f"RUN#{run_id}"}, "sk": {"S": "META"}})
    return {key: next(iter(value.values())) for key, value in item["Item"].items()}


def assert_waits(waits: RetryWaits, expected: list[tuple[promises.RetryPromise, list[float]]]) -> None:
    """Each retry waited as its row of the README promises: drawn from [0, interval] with full
    jitter, exactly the interval without."""
    ranges, asked = [], []
    for promise, intervals in expected:
        if promise.full_jitter:
            ranges += [(0, interval) for interval in intervals]
            asked += [interval / 2 for interval in intervals]
        else:
            asked += intervals
    assert waits.jitter_ranges == ranges, "the jitter each retry drew from"
    assert waits.waits == asked, "the waits the retries asked for"


def rule_or_default(state_name: str, error: str) -> dict:
    return promises.retrier_for(promises.task_states()[state_name], error) or {}


# --- every retried error class, as often and as long as promised ---------------------------------------
def _retried_rows() -> list[promises.RetryPromise]:
    return [row for row in promises.durability_table() if row.retried]


@pytest.mark.parametrize("promise", _retried_rows(), ids=lambda row: row.errors[0])
def test_each_step_retries_its_errors_as_often_and_as_long_as_the_readme_says(promise, two_turns, tmp_path):
    steps = [s for s in SUCCESS_PATH if promise.errors[0] in promises.errors_state_must_retry(s)]
    assert steps, f"no step on the success path meets {promise.errors[0]}"
    # One run per row: each step fails with one of the row's errors (in turn, so each error is
    # seen) as many times as promised, then succeeds.
    errors = {step: promise.errors[i % len(promise.errors)] for i, step in enumerate(steps)}
    with LocalEngine(RunOptions(model=two_turns, pixie_home=tmp_path).env()) as engine:
        with recorded_waits() as waits, failing(engine, {s: (errors[s], promise.attempts) for s in steps}):
            execution = engine.run(hello_world_event("Log hi"))

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert failures_by_state(execution.history) == {s: [errors[s]] * promise.attempts for s in steps}
    assert_waits(waits, [(promise, promises.expected_waits(promise, rule_or_default(s, errors[s]))) for s in steps])
    # The retries redid nothing: one command, one sandbox.
    [sandbox] = (tmp_path / "sandboxes").iterdir()
    assert (sandbox / "log.txt").read_text() == "hi\n"


def _first_error_of_each_retried_row() -> list[str]:
    return [row.errors[0] for row in _retried_rows()]


@pytest.mark.parametrize("error", _first_error_of_each_retried_row())
def test_once_the_retries_are_spent_the_run_fails_through_cleanup_with_that_error(error, two_turns, tmp_path):
    promise = promises.retry_promise(error)
    step = next(s for s in SUCCESS_PATH if error in promises.errors_state_must_retry(s))
    cleanup_retries = promise.attempts if error in promises.errors_state_must_retry("CleanupSandbox") else 0
    failures = {step: (error, promise.attempts + 1), "CleanupSandbox": (error, cleanup_retries)}
    with LocalEngine(RunOptions(model=two_turns, pixie_home=tmp_path).env()) as engine:
        with recorded_waits(), failing(engine, failures):
            execution = engine.run(hello_world_event("Log hi"))

    assert execution.status == "FAILED"
    assert execution.error == error  # the original error, not cleanup's
    by_state = failures_by_state(execution.history)
    assert by_state[step] == [error] * (promise.attempts + 1)
    assert by_state.get("CleanupSandbox", []) == [error] * cleanup_retries
    assert states_entered(execution.history)[-2:] == ["CleanupSandbox", "RunFailed"]


def test_an_invalid_event_fails_at_once_and_is_never_retried(tmp_path):
    with LocalEngine(RunOptions(model="scripted:/nonexistent.json", pixie_home=tmp_path).env()) as engine:
        with recorded_waits() as waits:
            execution = engine.run(hello_world_event("   "))

    assert (execution.status, execution.error) == ("FAILED", "InvalidEvent")
    assert failures_by_state(execution.history) == {"CreateSandbox": ["InvalidEvent"]}
    assert waits.waits == []
    assert "CleanupSandbox" not in states_entered(execution.history)


# --- exactly once, seen at the model endpoint and in the table ------------------------------------------
@pytest.fixture
def openai_stub(monkeypatch):
    stub = OpenAIStub().start()
    monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-pixie-test-promises")
    yield stub
    stub.stop()


def wait_for(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


class LostWhileRunning:
    """The first invocation of each chosen function keeps running in the background while Lambda
    reports it failed (Lambda.ServiceException): Step Functions retries while it is in progress."""

    def __init__(self, started: dict[str, callable]) -> None:
        self.started = started  # function name -> condition that is true once its work has begun
        self.threads: list[threading.Thread] = []

    def __call__(self, name: str, event: dict, invoke):
        if name not in self.started:
            return invoke()
        began = self.started.pop(name)
        thread = threading.Thread(target=invoke, daemon=True)
        thread.start()
        self.threads.append(thread)
        wait_for(began)
        raise InjectedFault(f"injected fault: {name} is still running, its invocation was lost")


def test_a_retry_while_the_first_attempt_runs_is_answered_in_progress_and_nothing_happens_twice(tmp_path, openai_stub):
    command = "touch started && sleep 0.5 && echo x >> log.txt"
    openai_stub.reply(200, chat_completion(None, [("call_1", "terminal", json.dumps({"command": command}))]), delay_s=0.5)
    openai_stub.reply(200, chat_completion("<task_summary>Logged x</task_summary>"))
    sandboxes = tmp_path / "sandboxes"
    lost = LostWhileRunning(
        {
            "pixie-agent-turn": lambda: len(openai_stub.requests) >= 1,
            "pixie-run-tool": lambda: any(sandboxes.glob("*/started")),
        }
    )
    with LocalEngine(RunOptions(model="openai:gpt-4.1", pixie_home=tmp_path).env(), invoke_wrapper=lost) as engine:
        with recorded_waits(scale=0.1):  # real, shortened waits: the first attempts must finish meanwhile
            execution = engine.run(hello_world_event("Log x"))
        items = engine.dynamodb.scan(TableName=engine.env["PIXIE_TABLE"])["Items"]
        for thread in lost.threads:  # inside the engine: the first attempts end on moto, not AWS
            thread.join(timeout=30)

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    by_state = failures_by_state(execution.history)
    for state in ("AgentTurn", "RunTool"):
        assert by_state[state][0] == "Lambda.ServiceException"
        assert by_state[state][1:] and set(by_state[state][1:]) == {promises.IN_PROGRESS_ERROR}, by_state
    # One model request per turn, one run of the command, however many attempts.
    assert len(openai_stub.requests) == 2
    [sandbox] = sandboxes.iterdir()
    assert (sandbox / "log.txt").read_text() == "x\n"
    # The idempotency records, in the run table, one per unit of work, completed.
    records = [i for i in items if i["pk"]["S"].startswith("IDEMPOTENCY#")]
    steps = sorted(i["pk"]["S"].removeprefix("IDEMPOTENCY#") for i in records)
    assert steps == ["AgentTurn", "AgentTurn", "CheckResult", "CreateSandbox", "RunTool"]
    assert {i["status"]["S"] for i in records} == {"COMPLETED"}
    # They expire with the run's data (README: expiresAt, the table's TTL, 30 days), not before:
    # a resume within those days finds its completed steps.
    thirty_days = 30 * 24 * 3600
    for record in records:
        assert abs(int(record["expiresAt"]["N"]) - (time.time() + thirty_days)) < 3600, record


def test_each_model_call_is_paid_once_when_responses_are_lost(tmp_path, openai_stub):
    turns = 3
    for turn in range(1, turns):
        call = (f"call_{turn}", "terminal", json.dumps({"command": f"echo {turn} >> log.txt"}))
        openai_stub.reply(200, chat_completion(None, [call]))
    openai_stub.reply(200, chat_completion("<task_summary>Logged</task_summary>"))
    lost: list[int] = []

    def every_turn_completes_but_its_first_response_is_lost(name, event, invoke):
        result = invoke()
        if name == "pixie-agent-turn" and event["iteration"] not in lost:
            lost.append(event["iteration"])
            raise InjectedFault("injected fault: AgentTurn completed but its response was lost")
        return result

    options = RunOptions(model="openai:gpt-4.1", pixie_home=tmp_path).env()
    with LocalEngine(options, invoke_wrapper=every_turn_completes_but_its_first_response_is_lost) as engine:
        with recorded_waits():
            execution = engine.run(hello_world_event("Log"))

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert lost == list(range(turns))
    assert failures_by_state(execution.history) == {"AgentTurn": ["Lambda.ServiceException"] * turns}
    assert len(openai_stub.requests) == turns  # each turn paid for once
    [sandbox] = (tmp_path / "sandboxes").iterdir()
    assert (sandbox / "log.txt").read_text() == "1\n2\n"


def test_a_rate_limited_model_is_retried_by_the_workflow_then_answers(tmp_path, openai_stub):
    attempts_refused = 2
    sdk_tries = 3  # the SDK's own request and its 2 retries make one attempt
    for _ in range(attempts_refused * sdk_tries):
        openai_stub.reply(429, error_body("Rate limit reached", "requests", "rate_limit_exceeded"), headers={"retry-after-ms": "1"})
    openai_stub.reply(200, chat_completion("<task_summary>Done</task_summary>"))
    promise = promises.retry_promise("ModelThrottled")
    with LocalEngine(RunOptions(model="openai:gpt-4.1", pixie_home=tmp_path).env()) as engine:
        with recorded_waits() as waits:
            execution = engine.run(hello_world_event("Anything"))

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert failures_by_state(execution.history) == {"AgentTurn": ["ModelThrottled"] * attempts_refused}
    assert len(openai_stub.requests) == attempts_refused * sdk_tries + 1
    intervals = promises.expected_waits(promise, rule_or_default("AgentTurn", "ModelThrottled"))[:attempts_refused]
    assert_waits(waits, [(promise, intervals)])


def test_a_rate_limited_sandbox_is_retried_by_the_workflow_then_answers(tmp_path, write_script, monkeypatch):
    import e2b
    from test_end_to_end_e2b import FakeCloud, FakeSandbox

    refusals = {"left": 2}

    class RateLimitedE2B(FakeSandbox):
        """E2B answering 429 to the first two reconnects, then as usual."""

        @classmethod
        def connect(cls, sandbox_id, timeout=None, api_key=None, **kwargs):
            if refusals["left"]:
                refusals["left"] -= 1
                raise e2b.RateLimitException("429: Rate limit exceeded")
            return super().connect(sandbox_id, timeout=timeout, api_key=api_key, **kwargs)

    FakeCloud.sandboxes, FakeCloud.calls = {}, []
    monkeypatch.setattr(e2b, "Sandbox", RateLimitedE2B)
    monkeypatch.setenv("E2B_API_KEY", "e2b_promises_fake_key")
    promise = promises.retry_promise("SandboxThrottled")
    options = RunOptions(model=f"scripted:{write_script(TWO_TURNS)}", sandbox="e2b", pixie_home=tmp_path)
    with LocalEngine(options.env()) as engine:
        with recorded_waits() as waits:
            execution = engine.run(hello_world_event("Log hi"))

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert failures_by_state(execution.history) == {"RunTool": ["SandboxThrottled"] * 2}
    # The command ran once, after the sandbox answered (the done-check's question to the dev server aside).
    [command] = [call for call in FakeCloud.calls if call[0] == "run" and "localhost:3000" not in call[2]]
    assert "echo hi >> log.txt" in command[2]
    intervals = promises.expected_waits(promise, rule_or_default("RunTool", "SandboxThrottled"))[:2]
    assert_waits(waits, [(promise, intervals)])


# --- cleanup --------------------------------------------------------------------------------------------
def fetch_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status


def test_cleanup_stops_the_preview_the_run_started_and_marks_the_run_failed_with_the_cause(two_turns, tmp_path):
    served: list[tuple[str, int]] = []

    def preview_started_then_response_lost(name, event, invoke):
        result = invoke()
        if name == "pixie-get-sandbox-url":
            served.append((result["url"], fetch_status(result["url"])))
            raise InjectedFault("injected fault: GetSandboxUrl completed but its response was lost")
        return result

    with LocalEngine(RunOptions(model=two_turns, pixie_home=tmp_path).env(), invoke_wrapper=preview_started_then_response_lost) as engine:
        with recorded_waits():
            execution = engine.run(hello_world_event("Log hi"))
        record = run_item(engine, execution.run_id)

    assert execution.status == "FAILED" and execution.error == "Lambda.ServiceException"
    assert states_entered(execution.history)[-2:] == ["CleanupSandbox", "RunFailed"]
    # The preview was up while the run went on...
    url = served[0][0]
    assert {status for _, status in served} == {200}
    # ...and cleanup stopped it.
    with pytest.raises(urllib.error.URLError):
        fetch_status(url)
    # The table says the run failed, and why (GetSandboxUrl had already marked it SUCCEEDED).
    assert record["status"] == "FAILED"
    assert record["error"] == "Lambda.ServiceException"
    assert "response was lost" in record["cause"]


def test_cleanup_records_a_model_failure_in_the_table(tmp_path, openai_stub):
    openai_stub.always(401, error_body("Incorrect API key provided", "invalid_request_error", "invalid_api_key"))
    with LocalEngine(RunOptions(model="openai:gpt-4.1", pixie_home=tmp_path).env()) as engine:
        execution = engine.run(hello_world_event("Anything"))
        record = run_item(engine, execution.run_id)

    assert (execution.status, execution.error) == ("FAILED", "ModelAuthFailed")
    assert failures_by_state(execution.history) == {"AgentTurn": ["ModelAuthFailed"]}  # permanent: once
    assert (record["status"], record["error"]) == ("FAILED", "ModelAuthFailed")
    assert "API key rejected" in record["cause"]
