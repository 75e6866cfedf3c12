"""`pixie send`, `pixie watch` and `pixie show --aws` against moto: EventBridge, Step Functions
(with moto's interpreter running the executions), CloudFormation and DynamoDB.

moto 5.2.5 cannot deliver put_events to a Step Functions target (Rule.send_to_targets raises
NotImplementedError for `arn:aws:states`; see the first test). So the rule here targets an SQS
queue, which moto does support, and a relay thread plays the rule's Step Functions target: it
starts an execution with each delivered event as input, exactly as EventBridge passes it. Every
put_events call still goes through moto's EventBridge and the rule's pattern."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import uuid

import boto3
import pytest
from moto import mock_aws

from lambdas.dal.network_state import NetworkState, assistant_message_key, create_table, user_message_key
from pixie import aws_commands, cli
from pixie.aws_runs import AwsRunsError, HistoryFollower, send, show_aws, stack_outputs, watch
from pixie.display import LiveDisplay

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/pixie-test"
PATTERN = {"detail-type": ["test/hello.world"]}

SUCCEEDS = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {
            "Type": "Pass",
            "Parameters": {
                "runId.$": "$$.Execution.Name",
                "url": "https://3000-sbx.e2b.app",
                "title.$": "$.detail.value",
                "summary": "Wrote the app",
                "files": ["app/page.tsx", "app/layout.tsx"],
            },
            "Next": "Settle",
        },
        "Settle": {"Type": "Wait", "Seconds": 0, "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
}
FAILS = {
    "StartAt": "Settle",
    "States": {
        "Settle": {"Type": "Wait", "Seconds": 0, "Next": "GiveUp"},
        "GiveUp": {
            "Type": "Fail",
            "Error": "MaxIterationsReached",
            "Cause": "The model used every allowed turn without writing a <task_summary>.",
        },
    },
}


@pytest.fixture
def moto_sfn(monkeypatch):
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "PIXIE_STATE_MACHINE_ARN", "PIXIE_TABLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(aws_commands, "AWS_POLL_S", 0.05)
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    boto3.setup_default_session(region_name=REGION)  # the CLI's clients come from the default session
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield
    boto3.setup_default_session()


def state_machine(definition: dict, name: str = "pixie-agent") -> str:
    return boto3.client("stepfunctions").create_state_machine(
        name=name, definition=json.dumps(definition), roleArn=ROLE, type="STANDARD"
    )["stateMachineArn"]


def start(state_machine_arn: str, payload: dict, name: str | None = None) -> str:
    return boto3.client("stepfunctions").start_execution(
        stateMachineArn=state_machine_arn, name=name or uuid.uuid4().hex, input=json.dumps(payload)
    )["executionArn"]


def wait_until_done(execution_arn: str) -> None:
    sfn = boto3.client("stepfunctions")
    for _ in range(200):
        if sfn.describe_execution(executionArn=execution_arn)["status"] != "RUNNING":
            return
        time.sleep(0.02)
    raise AssertionError(f"{execution_arn} did not finish")


class Rule:
    """The test/hello.world rule. Its target is an SQS queue; a thread relays each delivered event
    to StartExecution with the event as input, as the rule's Step Functions target would."""

    def __init__(self, state_machine_arn: str, delay_s: float = 0.2) -> None:
        self.state_machine_arn = state_machine_arn
        self.delay_s = delay_s
        self.sqs = boto3.client("sqs")
        self.queue_url = self.sqs.create_queue(QueueName="pixie-rule-target")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events = boto3.client("events")
        events.put_rule(Name="pixie-hello-world", EventPattern=json.dumps(PATTERN), State="ENABLED")
        events.put_targets(Rule="pixie-hello-world", Targets=[{"Id": "agent", "Arn": queue_arn}])
        self.started: list[tuple[dict, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._relay, daemon=True)

    def __enter__(self) -> "Rule":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _relay(self) -> None:
        while not self._stop.is_set():
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            for message in messages:
                time.sleep(self.delay_s)  # the rule starts the execution a little after put_events returns
                event = json.loads(message["Body"])
                self.started.append((event, start(self.state_machine_arn, event)))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            time.sleep(0.02)


def pixie_stack(outputs: dict[str, str], name: str = "PixieStack") -> None:
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))


# --- what moto supports ---------------------------------------------------------------------------
def test_moto_cannot_deliver_events_to_a_step_functions_target(moto_sfn):
    """Why the tests relay through SQS. If this starts failing, moto has learned the target: the
    Rule helper can then target the state machine directly."""
    arn = state_machine(SUCCEEDS)
    events = boto3.client("events")
    events.put_rule(Name="direct", EventPattern=json.dumps(PATTERN))
    events.put_targets(Rule="direct", Targets=[{"Id": "agent", "Arn": arn, "RoleArn": ROLE}])
    with pytest.raises(NotImplementedError):
        events.put_events(Entries=[{"Source": "pixie.cli", "DetailType": "test/hello.world", "Detail": "{}"}])


# --- send -----------------------------------------------------------------------------------------
def test_send_puts_the_event_and_finds_the_execution_the_rule_started(moto_sfn):
    arn = state_machine(SUCCEEDS)
    # Other executions of the same machine, some from other events: send must pick its own.
    decoys = [start(arn, {"id": str(uuid.uuid4()), "detail": {"value": "other"}}) for _ in range(3)]
    start(arn, {"not": "an event"})
    with Rule(arn) as rule:
        execution_arn = send("Build a todo app", boto3.client("events"), boto3.client("stepfunctions"), arn, timeout_s=10, poll_s=0.05)

    assert execution_arn not in decoys
    [(event, started)] = rule.started
    assert started == execution_arn
    assert event["source"] == "pixie.cli" and event["detail-type"] == "test/hello.world"
    assert event["detail"] == {"value": "Build a todo app"}
    execution_input = json.loads(boto3.client("stepfunctions").describe_execution(executionArn=execution_arn)["input"])
    assert execution_input["id"] == event["id"]


def test_send_raises_a_clear_error_when_eventbridge_rejects_the_event(moto_sfn):
    class RejectingEvents:
        def put_events(self, Entries):
            self.entries = Entries
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "AccessDeniedException", "ErrorMessage": "not allowed"}]}

    events = RejectingEvents()
    with pytest.raises(AwsRunsError, match="EventBridge rejected the event on bus default: AccessDeniedException: not allowed"):
        send("hi", events, boto3.client("stepfunctions"), state_machine(SUCCEEDS), timeout_s=1)
    [entry] = events.entries
    assert entry["Source"] == "pixie.cli" and entry["DetailType"] == "test/hello.world"
    assert json.loads(entry["Detail"]) == {"value": "hi"} and entry["EventBusName"] == "default"


def test_send_gives_up_when_no_execution_starts(moto_sfn):
    arn = state_machine(SUCCEEDS)  # no rule: the event goes nowhere
    began = time.monotonic()
    with pytest.raises(AwsRunsError, match=r"no execution of .* started for event .* within 0.3s"):
        send("hi", boto3.client("events"), boto3.client("stepfunctions"), arn, timeout_s=0.3, poll_s=0.05)
    assert time.monotonic() - began < 5


# --- watch ----------------------------------------------------------------------------------------
def test_watch_prints_states_and_returns_the_output(moto_sfn):
    arn = state_machine(SUCCEEDS)
    execution_arn = start(arn, {"id": "e1", "detail": {"value": "Todo"}}, name="run-ok")
    stream, seen = io.StringIO(), []
    display = LiveDisplay(stream)

    def on_event(event):
        seen.append(event)
        display(event)

    result = watch(execution_arn, boto3.client("stepfunctions"), on_event=on_event, poll_s=0.05)

    assert result["status"] == "SUCCEEDED" and result["runId"] == "run-ok"
    assert result["output"] == {
        "runId": "run-ok",
        "url": "https://3000-sbx.e2b.app",
        "title": "Todo",
        "summary": "Wrote the app",
        "files": ["app/page.tsx", "app/layout.tsx"],
    }
    assert result["error"] is None and result["cause"] is None
    assert [e["id"] for e in seen] == list(range(1, len(seen) + 1))  # every event once, in order
    assert seen[0]["type"] == "ExecutionStarted" and seen[-1]["type"] == "ExecutionSucceeded"
    assert "✓ Settle" in stream.getvalue()


def test_watch_returns_the_error_and_cause_of_a_failed_execution(moto_sfn):
    execution_arn = start(state_machine(FAILS), {}, name="run-failed")
    stream = io.StringIO()

    result = watch(execution_arn, boto3.client("stepfunctions"), on_event=LiveDisplay(stream), poll_s=0.05)

    assert result["status"] == "FAILED" and result["output"] is None
    assert result["error"] == "MaxIterationsReached"
    assert result["cause"].startswith("The model used every allowed turn")
    assert "✗ MaxIterationsReached: The model used every allowed turn" in stream.getvalue()


def test_history_follower_never_refetches_complete_pages():
    """AWS pages history with nextToken (moto does not): a poll resumes at the last incomplete page."""

    class PagedHistory:
        def __init__(self):
            self.events = [{"id": i, "type": "X"} for i in range(1, 6)]
            self.calls: list[str | None] = []

        def get_execution_history(self, executionArn, maxResults, nextToken=None):
            self.calls.append(nextToken)
            offset = int(nextToken or 0)
            page = self.events[offset : offset + maxResults]
            more = offset + maxResults < len(self.events)
            return {"events": page, **({"nextToken": str(offset + maxResults)} if more else {})}

    history = PagedHistory()
    follower = HistoryFollower(history, "arn", page_size=2)
    assert [e["id"] for e in follower.new_events()] == [1, 2, 3, 4, 5]
    assert history.calls == [None, "2", "4"]
    assert follower.new_events() == []
    history.events += [{"id": i, "type": "X"} for i in range(6, 9)]
    assert [e["id"] for e in follower.new_events()] == [6, 7, 8]
    assert history.calls[3:] == ["4", "4", "6"]  # never back to the first pages


# --- stack outputs --------------------------------------------------------------------------------
def test_stack_outputs_reads_the_stack_and_env_overrides_it(moto_sfn, monkeypatch):
    pixie_stack(
        {
            "StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:Agent",
            "TableName": "PixieStack-NetworkState",
            "OpenAISecretName": "pixie/openai",
            "E2BSecretName": "pixie/e2b",
        }
    )
    outputs = stack_outputs(boto3.client("cloudformation"))
    assert outputs["StateMachineArn"].endswith(":stateMachine:Agent")
    assert outputs["TableName"] == "PixieStack-NetworkState"
    assert outputs["OpenAISecretName"] == "pixie/openai" and outputs["E2BSecretName"] == "pixie/e2b"
    assert outputs["EventBusName"] == "default"  # not exported: the default bus

    monkeypatch.setenv("PIXIE_TABLE", "my-table")
    assert stack_outputs(boto3.client("cloudformation"))["TableName"] == "my-table"

    with pytest.raises(AwsRunsError, match="stack Other.*PIXIE_STATE_MACHINE_ARN and PIXIE_TABLE"):
        stack_outputs(boto3.client("cloudformation"), "Other")


def test_stack_outputs_from_the_environment_alone_never_call_cloudformation(moto_sfn, monkeypatch):
    class NoAccess:
        def describe_stacks(self, **_):
            raise AssertionError("CloudFormation was called")

    monkeypatch.setenv("PIXIE_STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:Agent")
    monkeypatch.setenv("PIXIE_TABLE", "my-table")
    outputs = stack_outputs(NoAccess(), required=("StateMachineArn", "TableName"))
    assert outputs == {
        "StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:Agent",
        "TableName": "my-table",
        "EventBusName": "default",
    }


def test_stack_outputs_names_a_missing_output(moto_sfn):
    pixie_stack({"TableName": "t"}, name="NotPixie")
    with pytest.raises(AwsRunsError, match="stack NotPixie has no output StateMachineArn"):
        stack_outputs(boto3.client("cloudformation"), "NotPixie", required=("StateMachineArn",))


# --- show --aws -----------------------------------------------------------------------------------
def put_run(table: str, run_id: str) -> None:
    create_table(boto3.client("dynamodb"), table)
    state = NetworkState(table)
    state.create_run(
        run_id=run_id, prompt="Build a todo app", sandbox_id="sbx-1", sandbox_kind="e2b",
        model="openai:gpt-4.1", template="pixie", max_iterations=15,
    )
    state.put_message(run_id, user_message_key(0), {"role": "user", "content": "Build a todo app"})
    state.put_message(run_id, assistant_message_key(0), {"role": "assistant", "content": "<task_summary>Done</task_summary>"})
    state.put_files(run_id, {"app/page.tsx": "export default function Page() {}"})
    state.update_run(run_id, summary="Done", title="Todo", url="https://3000-sbx-1.e2b.app", status="SUCCEEDED", iteration=1)


def test_show_aws_reads_the_run_from_the_table(moto_sfn):
    put_run("pixie-table", "run-1")
    record = show_aws("run-1", "pixie-table")
    assert record["runId"] == "run-1" and record["status"] == "SUCCEEDED"
    assert record["url"] == "https://3000-sbx-1.e2b.app" and record["title"] == "Todo" and record["summary"] == "Done"
    assert record["files"] == {"app/page.tsx": "export default function Page() {}"}
    assert [m["role"] for m in record["conversation"]] == ["user", "assistant"]
    assert record["sandboxId"] == "sbx-1" and record["prompt"] == "Build a todo app" and record["iterations"] == 1
    with pytest.raises(AwsRunsError, match="no run 'nope' in table pixie-table"):
        show_aws("nope", "pixie-table")


def test_cli_show_aws_json_and_human(moto_sfn, monkeypatch, capsys):
    put_run("pixie-table", "run-1")
    monkeypatch.setenv("PIXIE_TABLE", "pixie-table")

    assert cli.main(["show", "run-1", "--aws", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["files"] == {"app/page.tsx": "export default function Page() {}"}
    assert len(record["conversation"]) == 2

    assert cli.main(["show", "run-1", "--aws"]) == 0
    out = capsys.readouterr().out
    assert "Preview: https://3000-sbx-1.e2b.app" in out and "app/page.tsx" in out
    assert "Conversation (2 messages)" in out and "pixie show run-1 --aws" in out

    assert cli.main(["show", "missing", "--aws"]) == 2
    assert "no run 'missing'" in capsys.readouterr().err


def test_cli_show_aws_with_the_stack_adds_the_execution(moto_sfn, capsys):
    """With the stack's outputs, the execution (named after the run) gives status, error, history."""
    arn = state_machine(FAILS)
    put_run("pixie-table", "run-2")
    wait_until_done(start(arn, {}, name="run-2"))
    pixie_stack({"StateMachineArn": arn, "TableName": "pixie-table"}, name="MyPixie")

    assert cli.main(["show", "run-2", "--aws", "--stack", "MyPixie", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["status"] == "FAILED" and record["error"] == "MaxIterationsReached"
    assert record["executionArn"].endswith(":execution:pixie-agent:run-2")
    assert record["history"][-1]["type"] == "ExecutionFailed"
    assert len(record["conversation"]) == 2


# --- the CLI: send and watch ----------------------------------------------------------------------
def test_cli_send_watches_the_run_and_prints_the_result(moto_sfn, capsys):
    arn = state_machine(SUCCEEDS)
    pixie_stack({"StateMachineArn": arn, "TableName": "t", "EventBusName": "default"})
    with Rule(arn) as rule:
        code = cli.main(["send", "Build a todo app", "--json"])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    [(_, execution_arn)] = rule.started
    assert f"started {execution_arn}" in captured.err
    assert "✓ Settle" in captured.err  # the live display, on stderr
    result = json.loads(captured.out)  # stdout holds exactly one JSON object
    assert result["status"] == "SUCCEEDED" and result["executionArn"] == execution_arn
    assert result["runId"] == execution_arn.rsplit(":", 1)[-1]
    assert result["url"] == "https://3000-sbx.e2b.app" and result["title"] == "Build a todo app"
    assert result["files"] == ["app/page.tsx", "app/layout.tsx"]


def test_cli_send_human_output_and_exit_1_on_failure(moto_sfn, monkeypatch, capsys):
    arn = state_machine(FAILS)
    monkeypatch.setenv("PIXIE_STATE_MACHINE_ARN", arn)  # no stack: the environment names the machine
    with Rule(arn) as rule:
        code = cli.main(["send", "Build a todo app"])

    captured = capsys.readouterr()
    assert code == 1
    [(_, execution_arn)] = rule.started
    run_id = execution_arn.rsplit(":", 1)[-1]
    assert f"Run {run_id} FAILED: MaxIterationsReached" in captured.out
    assert f"pixie show {run_id} --aws" in captured.out
    assert "✗ MaxIterationsReached" in captured.err


def test_cli_send_no_watch_prints_the_execution_and_returns(moto_sfn, capsys):
    arn = state_machine(SUCCEEDS)
    pixie_stack({"StateMachineArn": arn})
    with Rule(arn) as rule:
        assert cli.main(["send", "Build a todo app", "--no-watch", "--json"]) == 0
    [(_, execution_arn)] = rule.started
    assert json.loads(capsys.readouterr().out) == {
        "executionArn": execution_arn,
        "runId": execution_arn.rsplit(":", 1)[-1],
        "status": "RUNNING",
    }


def test_cli_send_without_a_stack_exits_2_with_the_fix(moto_sfn, capsys):
    assert cli.main(["send", "hi"]) == 2
    err = capsys.readouterr().err
    assert "stack PixieStack" in err and "PIXIE_STATE_MACHINE_ARN" in err


def test_cli_send_exits_2_when_no_execution_starts(moto_sfn, monkeypatch, capsys):
    monkeypatch.setenv("PIXIE_STATE_MACHINE_ARN", state_machine(SUCCEEDS))
    assert cli.main(["send", "hi", "--timeout", "1"]) == 2
    assert "no execution of" in capsys.readouterr().err


def test_cli_watch_exit_codes_and_json(moto_sfn, capsys):
    ok = start(state_machine(SUCCEEDS), {"detail": {"value": "Todo"}}, name="run-ok")
    failed = start(state_machine(FAILS, name="failing"), {}, name="run-failed")

    assert cli.main(["watch", ok, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "SUCCEEDED" and result["runId"] == "run-ok" and result["title"] == "Todo"

    assert cli.main(["watch", failed, "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "FAILED" and result["error"] == "MaxIterationsReached"
    assert result["cause"].startswith("The model used every allowed turn")

    assert cli.main(["watch", ok]) == 0
    out = capsys.readouterr().out
    assert "Preview: https://3000-sbx.e2b.app" in out and "pixie show run-ok --aws" in out

    missing = ok.replace("run-ok", "run-missing")
    assert cli.main(["watch", missing]) == 2
    assert "ExecutionDoesNotExist" in capsys.readouterr().err


def test_show_aws_of_a_run_waiting_for_approval_never_prints_its_live_task_token(moto_sfn):
    # AwaitApproval's TaskScheduled event carries the resolved Payload, task token included
    # (Parameters: "taskToken.$": "$$.Task.Token"). `pixie show RUN --aws --json` adds the
    # execution's history while the run waits, so the live token (which SendTaskSuccess accepts
    # from anyone with states:SendTaskSuccess, no run id needed) lands in output people paste.
    from datetime import datetime, timezone

    token = "AQCEAAAAKgAAAAMAAAAAAAAAAfake-live-token-" + "x" * 40
    put_run("pixie-table", "run-1")
    NetworkState("pixie-table").set_pending_approval("run-1", {
        "taskToken": token, "iteration": 1, "calls": [], "requestedAt": 0, "timeoutSeconds": 60})
    NetworkState("pixie-table").update_run("run-1", status="RUNNING")

    class WaitingExecution:
        def describe_execution(self, executionArn):
            return {"executionArn": executionArn, "status": "RUNNING", "startDate": datetime.now(timezone.utc)}

        def get_execution_history(self, **_):
            scheduled = {"resourceType": "lambda", "resource": "invoke.waitForTaskToken", "region": REGION,
                         "parameters": json.dumps({"FunctionName": "arn:aws:lambda:us-east-1:1:function:f",
                                                   "Payload": {"runId": "run-1", "iteration": 1, "taskToken": token}})}
            return {"events": [{"id": 1, "previousEventId": 0, "timestamp": datetime.now(timezone.utc),
                                "type": "TaskScheduled", "taskScheduledEventDetails": scheduled}]}

    record = show_aws("run-1", "pixie-table", sfn_client=WaitingExecution(),
                      state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:pixie-agent")
    assert record["status"] == "RUNNING" and record["history"]
    assert token not in json.dumps(record, default=str)


def test_cli_stop_aws_of_an_execution_the_stack_does_not_have_is_one_line_exit_2(moto_sfn, monkeypatch, capsys):
    machine = state_machine(SUCCEEDS)
    monkeypatch.setenv("PIXIE_STATE_MACHINE_ARN", machine)
    monkeypatch.setenv("PIXIE_TABLE", "pixie-table")
    assert cli.main(["stop", "no-such-run", "--aws"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "ExecutionDoesNotExist" in captured.err and "no-such-run" in captured.err and "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1, captured.err
