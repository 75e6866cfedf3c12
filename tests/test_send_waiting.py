"""`pixie send` against a deployed stack's behaviour over time: it waits as long as the rule may
retry starting the execution, stops early (saying why) when the event lands in the rule's
dead-letter queue, and rides out AWS throttling instead of failing."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from lambdas.logic.config import TRIGGER_MAX_EVENT_AGE_S
from pixie import cli
from pixie.aws_runs import (
    DEFAULT_SEND_TIMEOUT_S,
    AwsRunsError,
    find_execution,
    put_hello_world,
    retry_throttled,
    send,
)

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:pixie-agent"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:pixie-agent:run-1"


def throttled(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, operation)


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def aws_env(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


# --- throttling ---------------------------------------------------------------------------------
def test_throttled_calls_are_retried_with_backoff_and_other_errors_are_not():
    sleeps = Sleeps()
    answers = [throttled("ListExecutions"), throttled("ListExecutions"), "ok"]

    def call():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert retry_throttled(call, sleeps) == "ok"
    assert len(sleeps) == 2 and all(0 <= s <= 20 for s in sleeps)

    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "ListExecutions")
    with pytest.raises(ClientError, match="AccessDenied"):
        retry_throttled(lambda: (_ for _ in ()).throw(denied), sleeps)
    with pytest.raises(ClientError, match="Throttling"):
        retry_throttled(lambda: (_ for _ in ()).throw(throttled("X")), Sleeps(), retries=3)


class ThrottledSfn:
    """Step Functions that throttles the first `throttles` ListExecutions calls."""

    def __init__(self, throttles: int, event_id: str) -> None:
        self.throttles = throttles
        self.event_id = event_id
        self.list_calls = 0

    def list_executions(self, **kwargs):
        self.list_calls += 1
        if self.list_calls <= self.throttles:
            raise throttled("ListExecutions")
        return {"executions": [{"executionArn": EXECUTION, "startDate": None}]}

    def describe_execution(self, executionArn):
        return {"executionArn": executionArn, "input": json.dumps({"id": self.event_id})}


def test_find_execution_rides_out_throttling(monkeypatch):
    sfn = ThrottledSfn(throttles=12, event_id="evt-1")  # more than one call's retries
    found = find_execution("evt-1", sfn, ARN, timeout_s=60, poll_s=0.01, sleep=Sleeps())
    assert found == EXECUTION and sfn.list_calls == 13


def test_put_events_is_retried_when_throttled():
    class Events:
        calls = 0

        def put_events(self, Entries):
            self.calls += 1
            if self.calls == 1:
                raise throttled("PutEvents")
            return {"FailedEntryCount": 0, "Entries": [{"EventId": "evt-9"}]}

    events = Events()
    assert put_hello_world("hi", events, sleep=Sleeps()) == "evt-9" and events.calls == 2


# --- how long it waits, and why it stops ----------------------------------------------------------
def test_send_waits_as_long_as_the_rule_retries():
    assert DEFAULT_SEND_TIMEOUT_S >= TRIGGER_MAX_EVENT_AGE_S
    args = cli.build_parser().parse_args(["send", "hi"])
    assert args.timeout >= TRIGGER_MAX_EVENT_AGE_S


def test_send_stops_when_the_event_is_in_the_dead_letter_queue(aws_env):
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="pixie-agent",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/x",
    )["stateMachineArn"]

    class Events:
        def put_events(self, Entries):
            # EventBridge could not start the execution: the event goes to the rule's DLQ.
            event = {"id": "evt-dead", "detail-type": "test/hello.world", "detail": json.loads(Entries[0]["Detail"])}
            sqs.send_message(
                QueueUrl=queue_url,
                MessageBody=json.dumps(event),
                MessageAttributes={
                    "ERROR_CODE": {"DataType": "String", "StringValue": "NO_PERMISSIONS"},
                    "ERROR_MESSAGE": {"DataType": "String", "StringValue": "not authorized to StartExecution"},
                },
            )
            return {"FailedEntryCount": 0, "Entries": [{"EventId": "evt-dead"}]}

    notices: list[str] = []
    began = time.monotonic()
    with pytest.raises(AwsRunsError, match=r"dead-letter queue \(NO_PERMISSIONS: not authorized to StartExecution\)"):
        send("hi", Events(), sfn, arn, timeout_s=600, poll_s=0.02, sqs_client=sqs, dead_letter_queue_url=queue_url,
             notice=notices.append)
    assert time.monotonic() - began < 10  # long before the timeout
    # Peeked, not consumed: the message stays for the alarm and for the user.
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "1"


def test_a_long_wait_says_why_once(aws_env):
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="pixie-agent",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/x",
    )["stateMachineArn"]
    notices: list[str] = []
    with pytest.raises(AwsRunsError, match="no execution"):
        find_execution("evt-late", sfn, arn, timeout_s=0.3, poll_s=0.02, notice=notices.append, notice_after_s=0)
    assert len(notices) == 1
    assert "120 minutes" in notices[0] and "dead-letter queue" in notices[0]


# --- a repeated delivery ---------------------------------------------------------------------------
from test_cli_aws import SUCCEEDS, moto_sfn, start, state_machine, wait_until_done  # noqa: E402,F401


def test_watching_a_duplicate_execution_follows_the_events_real_run(moto_sfn, capsys):
    arn = state_machine(SUCCEEDS)
    original = start(arn, {"detail": {"value": "Todo"}}, name="run-original")
    wait_until_done(original)
    duplicate_definition = {
        "StartAt": "DuplicateEvent",
        "States": {"DuplicateEvent": {"Type": "Pass", "Parameters": {"runId.$": "$$.Execution.Name",
                                                                     "duplicateOf": "run-original"}, "End": True}},
    }
    # The second execution of the same machine ends as DuplicateEvent does in agent.asl.json.
    sfn = boto3.client("stepfunctions")
    sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps(duplicate_definition))
    duplicate = start(arn, {"detail": {"value": "Todo"}}, name="run-duplicate")

    assert cli.main(["watch", duplicate, "--json"]) == 0
    captured = capsys.readouterr()
    assert "run-duplicate was a repeated delivery of the event; following its run run-original" in captured.err
    result = json.loads(captured.out)
    assert result["runId"] == "run-original" and result["url"] == "https://3000-sbx.e2b.app"
