"""`pixie send --continue` and `pixie resume --aws` against a deployed stack.

send --continue runs on moto (EventBridge, Step Functions, DynamoDB; the rule relayed through SQS
as in test_cli_aws.py). moto 5.2.5 has no RedriveExecution, so the redrive is tested with
botocore's Stubber at the boto3 boundary: real request and response shapes, validated by
botocore, with the answers Step Functions documents."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import boto3
import pytest
from botocore.stub import Stubber
from test_cli_aws import Rule, moto_sfn, pixie_stack, state_machine, SUCCEEDS  # noqa: F401 - moto_sfn is a fixture

from lambdas.dal.network_state import NetworkState, create_table
from pixie import cli
from pixie.aws_runs import AwsRunsError, redrive

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:pixie-agent"
RUN = "run-7"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:pixie-agent:run-7"
STARTED = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def table_with_run(status: str, run_id: str = "parent-1") -> str:
    create_table(boto3.client("dynamodb"), "pixie-runs")
    state = NetworkState("pixie-runs")
    state.create_run(
        run_id=run_id, prompt="Build", sandbox_id="sbx", sandbox_kind="e2b", model="openai:gpt-4.1", template="pixie", max_iterations=15
    )
    state.update_run(run_id, status=status)
    return "pixie-runs"


def test_send_continue_puts_continue_from_in_the_event(moto_sfn, capsys):
    arn = state_machine(SUCCEEDS)
    pixie_stack({"StateMachineArn": arn, "TableName": table_with_run("SUCCEEDED")})
    with Rule(arn) as rule:
        code = cli.main(["send", "--continue", "parent-1", "Add dark mode", "--json"])

    assert code == 0, capsys.readouterr().err
    [(event, _)] = rule.started
    assert event["detail"] == {"value": "Add dark mode", "continueFrom": "parent-1"}


@pytest.mark.parametrize(
    ("parent", "message"),
    [("unknown-run", "there is no run 'unknown-run'"), ("parent-1", "it is FAILED; only a run that succeeded")],
)
def test_send_continue_of_an_unknown_or_failed_run_exits_2_before_sending(moto_sfn, capsys, parent, message):
    arn = state_machine(SUCCEEDS)
    pixie_stack({"StateMachineArn": arn, "TableName": table_with_run("FAILED")})
    with Rule(arn) as rule:
        code = cli.main(["send", "--continue", parent, "More"])

    assert code == 2 and message in capsys.readouterr().err
    assert rule.started == []


# --- redrive, at the boto3 boundary ---------------------------------------------------------------
def description(status: str, redrive_count: int = 0, **extra) -> dict:
    return {
        "executionArn": EXECUTION,
        "stateMachineArn": MACHINE,
        "name": RUN,
        "status": status,
        "startDate": STARTED,
        "input": "{}",
        "redriveCount": redrive_count,
        **extra,
    }


def history_event(event_id: int, event_type: str, **details) -> dict:
    return {"id": event_id, "timestamp": STARTED, "type": event_type, **details}


def stubbed_sfn():
    client = boto3.client("stepfunctions", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def test_redrive_of_a_timed_out_execution_calls_redrive_and_waits_until_it_shows(monkeypatch):
    client, stubber = stubbed_sfn()
    stubber.add_response("describe_execution", description("TIMED_OUT", redriveStatus="REDRIVABLE"), {"executionArn": EXECUTION})
    stubber.add_response("redrive_execution", {"redriveDate": STARTED}, {"executionArn": EXECUTION})
    stubber.add_response("describe_execution", description("TIMED_OUT"), {"executionArn": EXECUTION})  # not yet
    stubber.add_response("describe_execution", description("RUNNING", redrive_count=1), {"executionArn": EXECUTION})
    waits: list[float] = []
    with stubber:
        assert redrive(RUN, client, MACHINE, poll_s=0.5, sleep=waits.append) == EXECUTION
        stubber.assert_no_pending_responses()
    assert waits == [0.5]


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("RUNNING", "is RUNNING; follow it with: pixie watch"),
        ("SUCCEEDED", "already succeeded; to build on it: pixie send --continue run-7"),
    ],
)
def test_redrive_refuses_a_running_or_succeeded_execution(status, message):
    client, stubber = stubbed_sfn()
    stubber.add_response("describe_execution", description(status), {"executionArn": EXECUTION})
    with stubber, pytest.raises(AwsRunsError, match=message):
        redrive(RUN, client, MACHINE)  # no redrive_execution call: the Stubber would reject it


def test_redrive_refuses_a_run_that_ended_through_pixies_cleanup_path():
    client, stubber = stubbed_sfn()
    stubber.add_response("describe_execution", description("FAILED", error="ModelAuthFailed"), {"executionArn": EXECUTION})
    events = [
        history_event(1, "ExecutionStarted"),
        history_event(2, "TaskStateEntered", stateEnteredEventDetails={"name": "CleanupSandbox"}),
        history_event(3, "FailStateEntered", stateEnteredEventDetails={"name": "RunFailed"}),
        history_event(4, "ExecutionFailed"),
    ]
    stubber.add_response("get_execution_history", {"events": events}, {"executionArn": EXECUTION, "maxResults": 1000})
    with stubber, pytest.raises(AwsRunsError, match="went through pixie's cleanup"):
        redrive(RUN, client, MACHINE)


def test_redrive_refuses_what_step_functions_calls_not_redrivable_and_unknown_runs():
    client, stubber = stubbed_sfn()
    stubber.add_response(
        "describe_execution",
        description("ABORTED", redriveStatus="NOT_REDRIVABLE", redriveStatusReason="Execution is past its redrivable period"),
        {"executionArn": EXECUTION},
    )
    stubber.add_client_error("describe_execution", "ExecutionDoesNotExist", "Execution Does Not Exist")
    with stubber:
        with pytest.raises(AwsRunsError, match="cannot be redriven: Execution is past its redrivable period"):
            redrive(RUN, client, MACHINE)
        with pytest.raises(AwsRunsError, match="no execution run-7 of"):
            redrive(RUN, client, MACHINE)


def test_cli_resume_aws_redrives_then_follows_the_execution_to_its_result(monkeypatch, capsys):
    client, stubber = stubbed_sfn()
    stubber.add_response("describe_execution", description("ABORTED"), {"executionArn": EXECUTION})
    stubber.add_response("redrive_execution", {"redriveDate": STARTED}, {"executionArn": EXECUTION})
    stubber.add_response("describe_execution", description("RUNNING", redrive_count=1), {"executionArn": EXECUTION})
    output = {"runId": RUN, "url": "https://3000-sbx.e2b.app", "title": "Built", "summary": "Built it", "files": ["a"]}
    stubber.add_response("describe_execution", description("SUCCEEDED", redrive_count=1, output=json.dumps(output)), {"executionArn": EXECUTION})
    events = [history_event(1, "ExecutionStarted"), history_event(2, "ExecutionRedriven"), history_event(3, "ExecutionSucceeded")]
    stubber.add_response("get_execution_history", {"events": events}, {"executionArn": EXECUTION, "maxResults": 1000})
    monkeypatch.setenv("PIXIE_STATE_MACHINE_ARN", MACHINE)
    monkeypatch.setattr("pixie.aws_commands.AWS_POLL_S", 0.01)
    monkeypatch.setattr(boto3, "client", lambda service, *a, **k: client)
    with stubber:
        code = cli.main(["resume", RUN, "--aws", "--json"])
        stubber.assert_no_pending_responses()

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"redriving {EXECUTION}" in captured.err
    result = json.loads(captured.out)
    assert result["status"] == "SUCCEEDED" and result["runId"] == RUN and result["summary"] == "Built it"
