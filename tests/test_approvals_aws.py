"""`pixie approve RUN --aws` / `pixie deny RUN --aws` against moto: the token a waiting task saved
with the run goes back with SendTaskSuccess / SendTaskFailure, and the execution goes on. The
waiting task here is SQS's `.waitForTaskToken` (moto delivers the token to a queue; it cannot run
the stack's Lambda), standing in for AwaitApproval's RequestApproval."""

from __future__ import annotations

import json
import time

import boto3

from lambdas.dal.network_state import NetworkState
from pixie import cli
from test_cli_aws import moto_sfn, put_run, start, state_machine, wait_until_done  # noqa: F401 - fixture

TABLE = "pixie-table"


def waiting_machine(queue_url: str) -> str:
    return state_machine({
        "StartAt": "AwaitApproval",
        "States": {
            "AwaitApproval": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": queue_url, "MessageBody": {"taskToken.$": "$$.Task.Token"}},
                "ResultPath": "$.approval",
                "Catch": [{"ErrorEquals": ["ApprovalDenied"], "ResultPath": "$.approval", "Next": "Denied"}],
                "Next": "Approved",
            },
            "Approved": {"Type": "Succeed"},
            "Denied": {"Type": "Fail", "Error": "Denied"},
        },
    })


def wait_with_token(run_id: str, machine: str, queue_url: str) -> str:
    """Starts the run's execution and saves its wait's token as RequestApproval does."""
    execution = start(machine, {}, name=run_id)
    sqs = boto3.client("sqs")
    for _ in range(500):
        messages = sqs.receive_message(QueueUrl=queue_url).get("Messages", [])
        if messages:
            token = json.loads(messages[0]["Body"])["taskToken"]
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
            NetworkState(TABLE).set_pending_approval(run_id, {
                "taskToken": token, "iteration": 1, "requestedAt": 0, "timeoutSeconds": 60,
                "calls": [{"index": 0, "id": "c", "name": "terminal", "arguments": "{}"}]})
            return execution
        time.sleep(0.02)
    raise AssertionError("the task never sent its token")


def test_approve_and_deny_aws_hand_the_saved_token_back(moto_sfn, monkeypatch, capsys):
    monkeypatch.setenv("PIXIE_TABLE", TABLE)
    queue_url = boto3.client("sqs").create_queue(QueueName="approvals")["QueueUrl"]
    machine = waiting_machine(queue_url)
    put_run(TABLE, "run-a")
    NetworkState(TABLE).create_run(run_id="run-d", prompt="p", sandbox_id="s", sandbox_kind="e2b",
                                   model="openai:gpt-4.1", template="pixie", max_iterations=15)

    approved = wait_with_token("run-a", machine, queue_url)
    assert cli.main(["approve", "run-a", "--aws", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"runId": "run-a", "decision": "approved", "calls": 1}
    wait_until_done(approved)
    assert boto3.client("stepfunctions").describe_execution(executionArn=approved)["status"] == "SUCCEEDED"

    denied = wait_with_token("run-d", machine, queue_url)
    assert cli.main(["deny", "run-d", "--aws", "--reason", "no"]) == 0
    assert "1 tool call(s) denied" in capsys.readouterr().out
    wait_until_done(denied)
    description = boto3.client("stepfunctions").describe_execution(executionArn=denied)
    assert description["status"] == "FAILED" and description["error"] == "Denied"

    # The wait is over: Step Functions refuses the token, said in one line (exit 2).
    assert cli.main(["approve", "run-d", "--aws"]) == 2
    assert "run-d is no longer waiting for approval" in capsys.readouterr().err
    assert cli.main(["approve", "nope", "--aws"]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
