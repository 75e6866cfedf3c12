"""How runs begin and end in production: one run per event (a repeated EventBridge delivery starts
no second sandbox and no model call), cleanup for every bad ending (the status-change event of an
ABORTED, TIMED_OUT or FAILED execution releases the sandbox and records the real status), and a
TTL on every item a run writes."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import e2b
import pytest

from lambdas.dal.network_state import RUN_TTL_SECONDS, NetworkState
from lambdas.handlers import cleanup_sandbox as cleanup_handler
from lambdas.handlers import create_sandbox as create_handler
from lambdas.logic.sandboxes import e2b_sandbox
from lambdas.logic.sandboxes.e2b_sandbox import E2BSandboxProvider, e2b_idempotency_key
from lambdas.logic.sandboxes.local import stop_all_previews
from lambdas.logic.steps.cleanup_sandbox import cleanup_request
from statemachine.engine import LambdaContext, LocalEngine, hello_world_event
from test_e2b_sandbox import API_KEY, FakeSdkSandbox, bind

STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:pixie-agent"
EVENT_ID = "6a7e8feb-b491-4cf7-a9f1-bf3703467718"


def hello_event(event_id: str = EVENT_ID, prompt: str = "Build a todo app") -> dict:
    event = hello_world_event(prompt)
    event["id"] = event_id
    return event


def status_change(run_id: str, status: str, error: str | None = None, cause: str | None = None) -> dict:
    """A "Step Functions Execution Status Change" event as EventBridge delivers it to a target."""
    return {
        "version": "0",
        "id": "315c1398-40ff-a850-213b-158f73e60175",
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": "123456789012",
        "time": "2026-11-26T12:00:00Z",
        "region": "us-east-1",
        "resources": [f"{STATE_MACHINE_ARN.replace(':stateMachine:', ':execution:')}:{run_id}"],
        "detail": {
            "executionArn": f"{STATE_MACHINE_ARN.replace(':stateMachine:', ':execution:')}:{run_id}",
            "stateMachineArn": STATE_MACHINE_ARN,
            "name": run_id,
            "status": status,
            "startDate": 1_790_000_000_000,
            "stopDate": 1_790_000_060_000,
            "input": json.dumps(hello_event()),
            "output": None,
            "error": error,
            "cause": cause,
        },
    }


def ctx(name: str) -> LambdaContext:
    return LambdaContext(function_name=name)


@pytest.fixture
def local_env(table, pixie_home, monkeypatch, write_script):
    monkeypatch.setenv("PIXIE_SANDBOX", "local")
    path = write_script([{"content": "<task_summary>Nothing to do</task_summary>"}])
    monkeypatch.setenv("PIXIE_MODEL", f"scripted:{path}")
    yield table
    stop_all_previews()


def sandbox_dirs(home) -> list[str]:
    base = home / "sandboxes"
    return sorted(p.name for p in base.iterdir()) if base.exists() else []


# --- one run per event ------------------------------------------------------------------------
def test_a_repeated_delivery_of_one_event_creates_no_second_sandbox(local_env, pixie_home):
    first = create_handler.handler({"runId": "run-first", "event": hello_event()}, ctx("create"))
    second = create_handler.handler({"runId": "run-second", "event": hello_event()}, ctx("create"))

    assert first == {"runId": "run-first", "iteration": 0, "maxIterations": 15}
    assert second == {"runId": "run-second", "duplicateOf": "run-first", "eventId": EVENT_ID}
    assert len(sandbox_dirs(pixie_home)) == 1
    assert local_env.find_run("run-second") is None  # nothing recorded for the duplicate
    # A retry of the first run's own CreateSandbox is not a duplicate of itself.
    assert local_env.claim_event(EVENT_ID, "run-first") == "run-first"
    # Another event is another run.
    third = create_handler.handler({"runId": "run-third", "event": hello_event("another-event")}, ctx("create"))
    assert "duplicateOf" not in third
    assert len(sandbox_dirs(pixie_home)) == 2


def test_a_duplicate_execution_ends_at_duplicate_event_without_a_model_call(pixie_home, write_script):
    script = write_script([{"content": "<task_summary>Built it</task_summary>"}])
    env = {
        "PIXIE_MODEL": f"scripted:{script}",
        "PIXIE_SANDBOX": "local",
        "PIXIE_HOME": str(pixie_home),
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    calls: list[str] = []

    def count(name: str, event: dict, invoke: Any) -> Any:
        calls.append(name)
        return invoke()

    event = hello_world_event("Build a todo app")  # the engine's events carry an id, as EventBridge's do
    try:
        with LocalEngine(env, invoke_wrapper=count) as engine:
            first = engine.run(event, "run-first")
            calls_after_first = len(calls)
            second = engine.run(event, "run-second")
    finally:
        stop_all_previews()

    assert first.status == "SUCCEEDED", first.cause
    assert second.status == "SUCCEEDED", second.cause
    assert second.output == {"runId": "run-second", "duplicateOf": "run-first", "eventId": event["id"]}
    entered = [e["stateEnteredEventDetails"]["name"] for e in second.history if e["type"].endswith("StateEntered")]
    assert entered == ["CreateSandbox", "IsDuplicateEvent", "DuplicateEvent"]
    assert calls[calls_after_first:] == ["pixie-create-sandbox"]  # no AgentTurn: no model call
    assert len(sandbox_dirs(pixie_home)) == 1


def test_the_event_id_is_the_e2b_idempotency_key():
    sdk_cls = type("FakeSdk", (FakeSdkSandbox,), {"created": [], "connected": [], "error": None})
    provider = E2BSandboxProvider(api_key=API_KEY, sandbox_cls=sdk_cls)

    provider.create("pixie", 900, idempotency_key=EVENT_ID)
    provider.create("pixie", 900, idempotency_key="Not A Valid/Key")

    assert sdk_cls.created[0]["idempotency_key"] == EVENT_ID
    hashed = sdk_cls.created[1]["idempotency_key"]
    assert hashed == e2b_idempotency_key("Not A Valid/Key") and len(hashed) == 64
    for call in sdk_cls.created:  # the real SDK (2.63) takes it and accepts its form
        bind(e2b.Sandbox.create, **call)
        assert e2b.retry.resolve_idempotency_key(call["idempotency_key"]) == call["idempotency_key"]


def test_create_sandbox_passes_the_event_id_to_e2b(table, monkeypatch):
    created: list[dict] = []

    class Recorder(FakeSdkSandbox):
        @classmethod
        def create(cls, **kwargs):
            created.append(kwargs)
            return cls("sbx-from-event")

    monkeypatch.setattr(e2b, "Sandbox", Recorder)
    monkeypatch.setattr(e2b_sandbox, "get_api_key", lambda *names: API_KEY)
    monkeypatch.setenv("PIXIE_SANDBOX", "e2b")

    create_handler.handler({"runId": "run-e2b", "event": hello_event()}, ctx("create"))
    create_handler.handler({"runId": "run-e2b-again", "event": hello_event()}, ctx("create"))

    assert [c["idempotency_key"] for c in created] == [EVENT_ID]
    assert table.get_run("run-e2b").sandbox_id == "sbx-from-event"


# --- cleanup for every bad ending -------------------------------------------------------------
class KillRecorder(FakeSdkSandbox):
    killed: list[str] = []

    def kill(self) -> bool:
        type(self).killed.append(self.sandbox_id)
        return True


@pytest.fixture
def fake_e2b(monkeypatch):
    sdk_cls = type("FakeSdk", (KillRecorder,), {"created": [], "connected": [], "error": None, "killed": []})
    monkeypatch.setattr(e2b, "Sandbox", sdk_cls)
    monkeypatch.setattr(e2b_sandbox, "get_api_key", lambda *names: API_KEY)
    return sdk_cls


def e2b_run(state: NetworkState, run_id: str, sandbox_id: str = "sbx-aborted") -> None:
    state.create_run(
        run_id=run_id,
        prompt="Build a todo app",
        sandbox_id=sandbox_id,
        sandbox_kind="e2b",
        model="openai:gpt-4.1",
        template="pixie",
        max_iterations=15,
    )


def test_an_aborted_executions_sandbox_is_released_and_the_run_marked_aborted(table, fake_e2b):
    e2b_run(table, "run-aborted")

    result = cleanup_handler.handler(status_change("run-aborted", "ABORTED"), ctx("cleanup"))

    assert fake_e2b.connected[0][0] == "sbx-aborted"
    assert fake_e2b.killed == ["sbx-aborted"]
    assert result["cleaned"] is True and result["firstReport"] is True
    item = table.table.get_item(Key={"pk": "RUN#run-aborted", "sk": "META"})["Item"]
    assert item["status"] == "ABORTED"
    assert item["error"] == "States.Aborted" and "stopped" in item["cause"]


def test_a_timed_out_or_uncatchable_failure_records_the_executions_own_error(table, fake_e2b):
    e2b_run(table, "run-timeout", "sbx-a")
    e2b_run(table, "run-runtime", "sbx-b")

    cleanup_handler.handler(status_change("run-timeout", "TIMED_OUT", "States.Timeout", "ran too long"), ctx("c"))
    cleanup_handler.handler(
        status_change("run-runtime", "FAILED", "States.DataLimitExceeded", "The state/task returned a result too large"),
        ctx("c"),
    )

    assert fake_e2b.killed == ["sbx-a", "sbx-b"]
    timed_out, runtime = table.get_run("run-timeout"), table.get_run("run-runtime")
    assert timed_out.status == "TIMED_OUT" and runtime.status == "FAILED"
    item = table.table.get_item(Key={"pk": "RUN#run-runtime", "sk": "META"})["Item"]
    assert (item["error"], item["cause"]) == ("States.DataLimitExceeded", "The state/task returned a result too large")


def test_the_status_change_after_the_workflows_own_cleanup_is_harmless(local_env, pixie_home):
    create_handler.handler({"runId": "run-failed", "event": hello_event()}, ctx("create"))
    error = {"Error": "ModelAuthFailed", "Cause": "bad key"}

    in_workflow = cleanup_handler.handler({"runId": "run-failed", "error": error}, ctx("cleanup"))
    after_end = cleanup_handler.handler(status_change("run-failed", "FAILED", "ModelAuthFailed", "bad key"), ctx("c"))

    assert in_workflow["firstReport"] is True and after_end["firstReport"] is False  # RunsFailed counted once
    item = local_env.table.get_item(Key={"pk": "RUN#run-failed", "sk": "META"})["Item"]
    assert (item["status"], item["error"], item["cause"]) == ("FAILED", "ModelAuthFailed", "bad key")


def test_an_aborted_local_runs_preview_is_stopped(local_env, pixie_home):
    from lambdas.logic.sandboxes.local import LocalSandboxProvider

    create_handler.handler({"runId": "run-local", "event": hello_event()}, ctx("create"))
    run = local_env.get_run("run-local")
    url = LocalSandboxProvider(pixie_home).connect(run.sandbox_id, 60).get_url()
    with urllib.request.urlopen(url, timeout=5):
        pass

    result = cleanup_handler.handler(status_change("run-local", "ABORTED"), ctx("cleanup"))

    assert result["cleaned"] is True
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)
    assert local_env.get_run("run-local").status == "ABORTED"


def test_status_changes_that_need_no_cleanup_change_nothing(table, fake_e2b):
    e2b_run(table, "run-ok")
    assert cleanup_request(status_change("run-ok", "SUCCEEDED")) is None
    assert cleanup_handler.handler(status_change("run-ok", "SUCCEEDED"), ctx("c")) == {"cleaned": False}
    # An execution that never recorded a run (a duplicate event, an invalid one) has nothing to kill.
    assert cleanup_handler.handler(status_change("run-unknown", "ABORTED"), ctx("c"))["cleaned"] is False
    assert fake_e2b.killed == [] and table.get_run("run-ok").status == "RUNNING"


# --- every item of a run expires --------------------------------------------------------------
def test_every_item_a_run_writes_carries_expires_at(table):
    before = int(time.time())
    e2b_run(table, "run-ttl")
    table.put_message("run-ttl", "MSG#0000#0user", {"role": "user", "content": "hi"})
    table.put_files("run-ttl", {"index.html": "<h1>hi</h1>", "app.js": "1", "big.txt": "x" * 800_000})
    table.put_message("run-ttl", "MSG#0001#0assistant", {"role": "assistant", "content": "y" * 800_000})
    table.claim_event("evt-ttl", "run-ttl")

    page = table.table.scan()
    items = page["Items"]
    while "LastEvaluatedKey" in page:  # a scan reads 1 MB a page: the parts make it several
        page = table.table.scan(ExclusiveStartKey=page["LastEvaluatedKey"])
        items += page["Items"]
    assert {i["sk"] for i in items} >= {"META", "MSG#0000#0user", "FILE#index.html", "FILE#app.js", "RUN"}
    # A file and a message too big for one item are stored in PART# items: those expire too.
    parts = [i["sk"] for i in items if i["sk"].startswith("PART#")]
    assert any(sk.startswith("PART#FILE#big.txt#") for sk in parts) and any(sk.startswith("PART#MSG#0001") for sk in parts), parts
    for item in items:
        assert before + RUN_TTL_SECONDS <= int(item["expiresAt"]) <= int(time.time()) + RUN_TTL_SECONDS, item["sk"]


def test_an_event_id_too_long_to_be_a_key_is_an_invalid_event(local_env, pixie_home):
    from lambdas.logic.errors import InvalidEvent

    with pytest.raises(InvalidEvent, match="event id must be 1 to 256 characters, got 3000"):
        create_handler.handler({"runId": "run-long", "event": hello_event("x" * 3000)}, ctx("create"))
    assert sandbox_dirs(pixie_home) == []
