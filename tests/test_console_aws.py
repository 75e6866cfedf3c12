"""`pixie ui --aws` against moto: the stack's executions (ListExecutions, GetExecutionHistory),
its table, runs started with PutEvents, links to the AWS console. The app runs in-process
(Starlette's TestClient) with the same guard as `pixie ui`; moto's EventBridge cannot deliver to
a Step Functions target, so an SQS-target rule and a relay thread play that part (as in
tests/test_cli_aws.py)."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid

import boto3
import pytest
from moto import mock_aws
from starlette.testclient import TestClient

from lambdas.dal.network_state import NetworkState, assistant_message_key, create_table, user_message_key
from pixie.console.app import create_app
from pixie.console.backends import AwsRuns

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/pixie-test"
TABLE = "pixie-console-aws"
TOKEN = "console-test-token"
# A stand-in for the deployed machine: records the run as CreateSandbox would, then succeeds.
SUCCEEDS = {
    "StartAt": "CreateSandbox",
    "States": {
        "CreateSandbox": {"Type": "Pass", "Parameters": {"runId.$": "$$.Execution.Name"}, "Next": "Settle"},
        "Settle": {"Type": "Wait", "Seconds": 0, "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
}


@pytest.fixture
def aws_stack(monkeypatch):
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    boto3.setup_default_session(region_name=REGION)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions")
        arn = sfn.create_state_machine(name="pixie-agent", definition=json.dumps(SUCCEEDS), roleArn=ROLE)["stateMachineArn"]
        create_table(boto3.client("dynamodb"), TABLE)
        monkeypatch.setenv("PIXIE_STATE_MACHINE_ARN", arn)
        monkeypatch.setenv("PIXIE_TABLE", TABLE)
        yield arn
    boto3.setup_default_session()


@pytest.fixture
def client(aws_stack):
    runs = AwsRuns("PixieStack", poll_s=0.05, start_timeout_s=10)
    with TestClient(create_app(runs, TOKEN, {"testserver"}), headers={"Authorization": f"Bearer {TOKEN}"}) as test_client:
        yield test_client


def execution(arn: str, prompt: str, *, record: bool = True) -> str:
    """An execution as the rule starts one, and (unless `record` is off: an invalid event) the
    run's network state in the table."""
    run_id = uuid.uuid4().hex
    if record:
        state = NetworkState(TABLE)
        state.create_run(run_id=run_id, prompt=prompt, sandbox_id="sbx-1", sandbox_kind="e2b",
                         model="openai:gpt-4.1", template="pixie", max_iterations=15)
        state.put_message(run_id, user_message_key(0), {"role": "user", "content": prompt})
        state.put_message(run_id, assistant_message_key(1), {"role": "assistant", "content": "Done <task_summary>Built it</task_summary>"})
        state.update_run(run_id, title="Built it", url="https://3000-sbx-1.e2b.app", status="SUCCEEDED", iteration=1)
    event = {"id": str(uuid.uuid4()), "detail-type": "test/hello.world", "detail": {"value": prompt}}
    execution_arn = boto3.client("stepfunctions").start_execution(stateMachineArn=arn, name=run_id, input=json.dumps(event))["executionArn"]
    wait_done(execution_arn)
    return run_id


def wait_done(execution_arn: str) -> None:
    sfn = boto3.client("stepfunctions")
    for _ in range(250):
        if sfn.describe_execution(executionArn=execution_arn)["status"] != "RUNNING":
            return
        time.sleep(0.02)
    raise AssertionError("the execution did not finish")


def test_lists_the_stacks_executions_with_the_tables_runs_and_console_links(client, aws_stack):
    first = execution(aws_stack, "Build a todo app")
    second = execution(aws_stack, "Not even recorded", record=False)

    config = client.get("/api/config").json()
    assert config["mode"] == "aws" and config["choices"] is False and config["continue"] is False
    assert config["stateMachineArn"] == aws_stack

    rows = {row["runId"]: row for row in client.get("/api/runs").json()["runs"]}
    assert set(rows) == {first, second}
    assert rows[first]["title"] == "Built it" and rows[first]["prompt"] == "Build a todo app"
    assert rows[first]["status"] == "SUCCEEDED" and rows[first]["model"] == "openai:gpt-4.1"
    execution_arn = aws_stack.replace(":stateMachine:", ":execution:") + f":{first}"
    assert rows[first]["consoleUrl"] == (
        f"https://{REGION}.console.aws.amazon.com/states/home?region={REGION}#/v2/executions/details/{execution_arn}")
    assert rows[second]["title"] is None and rows[second]["status"] == "SUCCEEDED"


def test_a_runs_page_data_comes_from_the_history_and_the_table(client, aws_stack):
    run_id = execution(aws_stack, "Build a todo app")

    record = client.get(f"/api/runs/{run_id}").json()

    assert record["status"] == "SUCCEEDED" and record["title"] == "Built it"
    assert [m["role"] for m in record["conversation"]] == ["user", "assistant"]
    assert record["previewUrl"] == "https://3000-sbx-1.e2b.app"
    assert record["consoleUrl"].endswith(f":{run_id}")
    entered = [e["stateEnteredEventDetails"]["name"] for e in record["history"] if "stateEnteredEventDetails" in e]
    assert entered == ["CreateSandbox", "Settle", "Done"]
    with client.stream("GET", f"/api/runs/{run_id}/events") as events:
        body = "".join(events.iter_text())
    assert body.count("event: history") == len(record["history"]) and "event: end" in body
    assert client.get("/api/runs/nosuchrun").status_code == 404
    assert client.get("/api/runs/nosuchrun/events").status_code == 404


def test_starts_a_run_with_put_events_and_only_a_prompt(client, aws_stack):
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="rule-target")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events")
    events.put_rule(Name="hello", EventPattern=json.dumps({"detail-type": ["test/hello.world"]}))
    events.put_targets(Rule="hello", Targets=[{"Id": "agent", "Arn": queue_arn}])
    stop = threading.Event()
    delivered: list[dict] = []

    def relay() -> None:  # the rule's Step Functions target
        while not stop.is_set():
            for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
                event = json.loads(message["Body"])
                delivered.append(event)
                boto3.client("stepfunctions").start_execution(stateMachineArn=aws_stack, name=uuid.uuid4().hex, input=json.dumps(event))
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            time.sleep(0.02)

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    try:
        refused = client.post("/api/runs", json={"prompt": "x", "model": "openai:gpt-4o"})
        assert refused.status_code == 400 and "own settings" in refused.json()["error"]
        assert delivered == []
        response = client.post("/api/runs", json={"prompt": "Build a todo app"})
    finally:
        stop.set()
        thread.join(timeout=5)

    assert response.status_code == 201, response.text
    run_id = response.json()["runId"]
    [event] = delivered
    assert event["detail"] == {"value": "Build a todo app"} and event["detail-type"] == "test/hello.world"
    described = boto3.client("stepfunctions").describe_execution(
        executionArn=aws_stack.replace(":stateMachine:", ":execution:") + f":{run_id}")
    assert json.loads(described["input"])["id"] == event["id"]


def test_the_guard_protects_the_aws_console_too(client):
    assert client.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/runs", headers={"Host": "evil.example"}).status_code == 403


def test_what_a_deployed_stack_cannot_do_is_refused_saying_why(client, aws_stack):
    """No network: an empty prompt is refused before PutEvents; a rerun, a stop of an execution the
    stack does not have or that already ended, and the events of an unknown run are clear errors."""
    for prompt in ("", "   ", 42, None):
        refused = client.post("/api/runs", json={"prompt": prompt})
        assert refused.status_code == 400 and refused.json()["error"] == "prompt must be a non-empty string", refused.text
    finished = execution(aws_stack, "Build a todo app")
    rerun = client.post("/api/runs", json={"rerunOf": finished})
    assert rerun.status_code == 400 and "rerun is for local runs" in rerun.json()["error"]
    unknown = uuid.uuid4().hex
    missing = client.post(f"/api/runs/{unknown}/stop")
    assert missing.status_code == 409 and missing.json()["error"] == f"no execution {unknown} in stack PixieStack"
    ended = client.post(f"/api/runs/{finished}/stop")
    assert ended.status_code == 409 and ended.json()["error"] == f"run {finished} is SUCCEEDED, not running"
    assert client.get(f"/api/runs/{unknown}/events").status_code == 404
