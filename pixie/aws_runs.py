"""pixie against a deployed stack: send a `test/hello.world` event, find the execution the rule
started, follow its history, and read a run's network state from the table.

Plain functions over boto3 clients. The CLI creates the clients from the default session, so the
region and credentials come from the usual AWS configuration (AWS_PROFILE, AWS_REGION,
~/.aws/config, ...); the stack's outputs say which state machine and table to use."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

from lambdas.logic.config import DETAIL_TYPE

DEFAULT_STACK = "PixieStack"
DEFAULT_EVENT_BUS = "default"
EVENT_SOURCE = "pixie.cli"
# Environment variables that stand in for stack outputs (no CloudFormation read access needed).
ENV_OVERRIDES = {"StateMachineArn": "PIXIE_STATE_MACHINE_ARN", "TableName": "PIXIE_TABLE"}
# Statuses in which an execution may still produce history events.
IN_PROGRESS = {"RUNNING", "PENDING_REDRIVE"}
# Clock skew allowed between this machine and AWS when looking for the execution just started.
START_SKEW = timedelta(minutes=5)


class AwsRunsError(Exception):
    """Something the user can fix (configuration, permissions, a missing stack or run)."""


# --- stack outputs --------------------------------------------------------------------------------
def stack_outputs(
    cloudformation: Any | None = None,
    stack_name: str = DEFAULT_STACK,
    required: tuple[str, ...] = (),
) -> dict[str, str]:
    """The stack's outputs by OutputKey (StateMachineArn, TableName, EventBusName, ...).

    PIXIE_STATE_MACHINE_ARN and PIXIE_TABLE override StateMachineArn and TableName. When every key
    in `required` comes from the environment, CloudFormation is not called at all."""
    overrides = {key: os.environ[env] for key, env in ENV_OVERRIDES.items() if os.environ.get(env)}
    if required and all(key in overrides for key in required):
        return {"EventBusName": DEFAULT_EVENT_BUS, **overrides}

    if cloudformation is None:
        import boto3

        cloudformation = boto3.client("cloudformation")
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except Exception as exc:  # botocore ClientError: missing stack, access denied, ...
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        region = getattr(getattr(cloudformation, "meta", None), "region_name", None) or "?"
        raise AwsRunsError(
            f"cannot read the outputs of stack {stack_name} in region {region} ({code}: {exc}). "
            "Deploy it with `cdk deploy`, pass --stack NAME, or set "
            + " and ".join(ENV_OVERRIDES[key] for key in ENV_OVERRIDES)
        ) from exc
    if not stacks:
        raise AwsRunsError(f"stack {stack_name} not found")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs") or []}
    outputs.setdefault("EventBusName", DEFAULT_EVENT_BUS)
    outputs.update(overrides)
    missing = [key for key in required if not outputs.get(key)]
    if missing:
        raise AwsRunsError(
            f"stack {stack_name} has no output {', '.join(missing)} "
            f"(status {stacks[0].get('StackStatus', '?')}); is it the pixie stack?"
        )
    return outputs


# --- send -----------------------------------------------------------------------------------------
def put_hello_world(
    prompt: str, events_client: Any, event_bus_name: str = DEFAULT_EVENT_BUS, continue_from: str | None = None
) -> str:
    """Puts the event the rule listens for; returns its id (the `id` of the delivered event)."""
    detail = {"value": prompt, **({"continueFrom": continue_from} if continue_from else {})}
    response = events_client.put_events(
        Entries=[
            {
                "Source": EVENT_SOURCE,
                "DetailType": DETAIL_TYPE,
                "Detail": json.dumps(detail, ensure_ascii=False),
                "EventBusName": event_bus_name,
            }
        ]
    )
    entries = response.get("Entries") or [{}]
    if response.get("FailedEntryCount") or not entries[0].get("EventId"):
        entry = entries[0]
        raise AwsRunsError(
            f"EventBridge rejected the event on bus {event_bus_name}: "
            f"{entry.get('ErrorCode', 'no event id')}: {entry.get('ErrorMessage', '')}".rstrip(": ")
        )
    return entries[0]["EventId"]


def find_execution(
    event_id: str,
    sfn_client: Any,
    state_machine_arn: str,
    timeout_s: float = 30,
    poll_s: float = 1.0,
    not_before: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """The ARN of the execution whose input is the event `event_id` (EventBridge passes the whole
    event as the execution's input), whatever its status. Polls until `timeout_s`."""
    not_before = (not_before or datetime.now(timezone.utc)) - START_SKEW
    checked: set[str] = set()  # an execution's input never changes: describe each one once
    deadline = time.monotonic() + timeout_s
    while True:
        for execution in _recent_executions(sfn_client, state_machine_arn, not_before):
            arn = execution["executionArn"]
            if arn in checked:
                continue
            checked.add(arn)
            description = sfn_client.describe_execution(executionArn=arn)
            try:
                started_by = json.loads(description.get("input") or "null")
            except json.JSONDecodeError:
                continue
            if isinstance(started_by, dict) and started_by.get("id") == event_id:
                return arn
        if time.monotonic() >= deadline:
            raise AwsRunsError(
                f"no execution of {state_machine_arn} started for event {event_id} within {timeout_s:g}s. "
                "Check that the rule for detail-type test/hello.world is enabled and targets this state "
                "machine, and look in its dead-letter queue (stack output DeadLetterQueueUrl)."
            )
        sleep(poll_s)


def _recent_executions(sfn_client: Any, state_machine_arn: str, not_before: datetime) -> Iterator[dict]:
    """Executions started since `not_before`. AWS lists the newest first, so paging stops at the
    first page that holds nothing that recent."""
    kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn, "maxResults": 100}
    while True:
        page = sfn_client.list_executions(**kwargs)
        recent = [e for e in page.get("executions", []) if _aware(e.get("startDate")) >= not_before]
        yield from recent
        if not recent or not page.get("nextToken"):
            return
        kwargs["nextToken"] = page["nextToken"]


def _aware(value: Any) -> datetime:
    if not isinstance(value, datetime):
        return datetime.max.replace(tzinfo=timezone.utc)  # unknown start: do not skip it
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def send(
    prompt: str,
    events_client: Any,
    sfn_client: Any,
    state_machine_arn: str,
    timeout_s: float = 30,
    event_bus_name: str = DEFAULT_EVENT_BUS,
    poll_s: float = 1.0,
    continue_from: str | None = None,
    table: str | None = None,
) -> str:
    """Puts a `test/hello.world` event and returns the ARN of the execution the rule started.
    With `continue_from`, the new run continues that run's project; when the table is known, the
    run is checked first (CreateSandbox checks it again either way)."""
    if continue_from and table:
        check_continuable(continue_from, table)
    sent_at = datetime.now(timezone.utc)
    event_id = put_hello_world(prompt, events_client, event_bus_name, continue_from)
    return find_execution(event_id, sfn_client, state_machine_arn, timeout_s, poll_s, not_before=sent_at)


def check_continuable(run_id: str, table: str, dynamodb_resource: Any | None = None) -> None:
    from lambdas.dal.network_state import NetworkState

    run = NetworkState(table, dynamodb_resource).find_run(run_id)
    if run is None:
        raise AwsRunsError(f"cannot continue {run_id}: there is no run {run_id!r} in table {table}")
    if run.status != "SUCCEEDED":
        raise AwsRunsError(
            f"cannot continue {run_id}: it is {run.status}; only a run that succeeded can be continued "
            f"(pixie resume {run_id} --aws finishes one that was stopped)"
        )


# --- resume ---------------------------------------------------------------------------------------
# pixie's own failure path (Catch -> CleanupSandbox -> one of these Fail states) ends in a state
# that fails by design: a redrive restarts at the unsuccessful state, so it would fail again.
OWN_FAIL_STATES = ("RunFailed", "InvalidEvent")


def redrive(
    run_id: str,
    sfn_client: Any,
    state_machine_arn: str,
    timeout_s: float = 30,
    poll_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Redrives the run's execution (Step Functions RedriveExecution: completed steps are not
    run again) and returns its ARN once the redrive has started. AwsRunsError when the
    execution does not exist, is running, succeeded, or cannot usefully be redriven."""
    arn = execution_arn_for(state_machine_arn, run_id)
    try:
        description = sfn_client.describe_execution(executionArn=arn)
    except Exception as exc:
        if getattr(exc, "response", {}).get("Error", {}).get("Code") == "ExecutionDoesNotExist":
            raise AwsRunsError(f"no execution {run_id} of {state_machine_arn}") from None
        raise
    status = description["status"]
    if status in IN_PROGRESS:
        raise AwsRunsError(f"run {run_id} is {status}; follow it with: pixie watch {arn}")
    if status == "SUCCEEDED":
        raise AwsRunsError(f"run {run_id} already succeeded; to build on it: pixie send --continue {run_id} \"...\"")
    if description.get("redriveStatus") == "NOT_REDRIVABLE":
        reason = description.get("redriveStatusReason") or "Step Functions says it is not redrivable"
        raise AwsRunsError(f"run {run_id} cannot be redriven: {reason}")
    if status == "FAILED":
        fail_states = [
            e.get("stateEnteredEventDetails", {}).get("name")
            for e in HistoryFollower(sfn_client, arn).new_events()
            if e.get("type") == "FailStateEntered"
        ]
        if any(name in OWN_FAIL_STATES for name in fail_states):
            raise AwsRunsError(
                f"run {run_id} failed with {description.get('error')} and went through pixie's cleanup (its "
                "sandbox was released): a redrive restarts at the state that failed, its final Fail state, and "
                "would only fail again. Start a new run instead (pixie send PROMPT)."
            )
    redrives_before = int(description.get("redriveCount") or 0)
    sfn_client.redrive_execution(executionArn=arn)
    deadline = time.monotonic() + timeout_s
    while True:  # the redrive is asynchronous: wait until the execution shows it
        description = sfn_client.describe_execution(executionArn=arn)
        if int(description.get("redriveCount") or 0) > redrives_before or description["status"] in IN_PROGRESS:
            return arn
        if time.monotonic() >= deadline:
            raise AwsRunsError(f"the redrive of {arn} did not start within {timeout_s:g}s")
        sleep(poll_s)


# --- watch ----------------------------------------------------------------------------------------
class HistoryFollower:
    """Hands out each history event of an execution once, in order, across polls.

    A page that came with a nextToken is complete and is never fetched again: the next poll
    resumes from the token of the last incomplete page. Event ids (1, 2, 3, ...) guard against
    duplicates, and an expired token falls back to reading from the start."""

    def __init__(self, sfn_client: Any, execution_arn: str, page_size: int = 1000) -> None:
        self.sfn = sfn_client
        self.arn = execution_arn
        self.page_size = page_size
        self.resume_token: str | None = None
        self.last_id = 0

    def new_events(self) -> list[dict]:
        fresh: list[dict] = []
        token = self.resume_token
        while True:
            kwargs: dict[str, Any] = {"executionArn": self.arn, "maxResults": self.page_size}
            if token:
                kwargs["nextToken"] = token
            try:
                page = self.sfn.get_execution_history(**kwargs)
            except Exception as exc:
                if token and getattr(exc, "response", {}).get("Error", {}).get("Code") == "InvalidToken":
                    token = self.resume_token = None
                    continue
                raise
            for event in page.get("events", []):
                if event.get("id", 0) > self.last_id:
                    fresh.append(event)
                    self.last_id = event["id"]
            if not page.get("nextToken"):
                return fresh
            token = self.resume_token = page["nextToken"]


def watch(
    execution_arn: str,
    sfn_client: Any,
    on_event: Callable[[dict], None] | None = None,
    poll_s: float = 2,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Follows the execution until it is no longer running, handing each new history event to
    `on_event` as it appears. Returns {executionArn, runId, status, output, error, cause}."""
    follower = HistoryFollower(sfn_client, execution_arn)
    while True:
        description = sfn_client.describe_execution(executionArn=execution_arn)
        # History after describe: once the status is final, this read holds every event.
        for event in follower.new_events():
            if on_event:
                on_event(event)
        if description["status"] not in IN_PROGRESS:
            break
        sleep(poll_s)
    return execution_result(description)


def execution_result(description: dict[str, Any]) -> dict[str, Any]:
    output = description.get("output")
    try:
        parsed = json.loads(output) if output else None
    except json.JSONDecodeError:
        parsed = output
    return {
        "executionArn": description["executionArn"],
        "runId": description.get("name") or description["executionArn"].rsplit(":", 1)[-1],
        "status": description["status"],
        "output": parsed,
        "error": description.get("error"),
        "cause": description.get("cause"),
    }


def execution_arn_for(state_machine_arn: str, run_id: str) -> str:
    """The run id is the execution name: arn:...:stateMachine:NAME -> arn:...:execution:NAME:RUN."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + run_id


# --- show -----------------------------------------------------------------------------------------
def show_aws(
    run_id: str,
    table: str,
    dynamodb_resource: Any | None = None,
    sfn_client: Any | None = None,
    state_machine_arn: str | None = None,
) -> dict[str, Any]:
    """The run's record, conversation and files from the table, shaped like a local run's record.
    With a Step Functions client and the state machine ARN, the execution's status, error and
    history are added (the table alone cannot tell a failed run from a running one)."""
    from lambdas.dal.network_state import NetworkState
    from pixie.display import lambda_error_message
    from pixie.runs import jsonable, run_record

    state = NetworkState(table, dynamodb_resource)
    run = state.find_run(run_id)
    if run is None:
        raise AwsRunsError(f"no run {run_id!r} in table {table}")
    execution: dict[str, Any] = {"status": run.status}
    if sfn_client is not None and state_machine_arn:
        arn = execution_arn_for(state_machine_arn, run_id)
        try:
            description = sfn_client.describe_execution(executionArn=arn)
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") != "ExecutionDoesNotExist":
                raise
        else:
            result = execution_result(description)
            execution = {
                "status": result["status"],
                "error": result["error"],
                "cause": lambda_error_message(result["cause"]),
                "execution_arn": arn,
                "history": [jsonable(e) for e in HistoryFollower(sfn_client, arn).new_events()],
            }
    return run_record(state, run_id, **execution)
