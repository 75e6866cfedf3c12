"""pixie against a deployed stack: send a `test/hello.world` event, find the execution the rule
started, follow its history, and read a run's network state from the table.

Plain functions over boto3 clients. The CLI creates the clients from the default session, so the
region and credentials come from the usual AWS configuration (AWS_PROFILE, AWS_REGION,
~/.aws/config, ...); the stack's outputs say which state machine and table to use."""

from __future__ import annotations

import json
import os
import random
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, TypeVar

from lambdas.logic.config import DETAIL_TYPE, TRIGGER_MAX_EVENT_AGE_S

DEFAULT_STACK = "PixieStack"
DEFAULT_EVENT_BUS = "default"
EVENT_SOURCE = "pixie.cli"
# Environment variables that stand in for stack outputs (no CloudFormation read access needed).
ENV_OVERRIDES = {"StateMachineArn": "PIXIE_STATE_MACHINE_ARN", "TableName": "PIXIE_TABLE"}
# Statuses in which an execution may still produce history events.
IN_PROGRESS = {"RUNNING", "PENDING_REDRIVE"}
# Clock skew allowed between this machine and AWS when looking for the execution just started.
START_SKEW = timedelta(minutes=5)
# EventBridge may keep retrying StartExecution (throttled, say) for the rule's whole event age:
# `pixie send` waits that long, unless the event turns up in the dead-letter queue first.
DEFAULT_SEND_TIMEOUT_S = TRIGGER_MAX_EVENT_AGE_S + 60
SEND_NOTICE_AFTER_S = 30  # then say why it is still waiting
DEAD_LETTER_CHECK_S = 30  # how often to look in the dead-letter queue while waiting
MAX_POLL_S = 15  # polls slow down to this while waiting for the execution
# Error codes AWS APIs use when they throttle a caller; retried with backoff, never fatal.
THROTTLING_CODES = {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
THROTTLE_RETRIES = 8

T = TypeVar("T")


def aws_client(service: str) -> Any:
    """A boto3 client that retries throttling and transient errors itself (botocore's standard
    mode, 10 attempts), for the CLI's AWS commands."""
    import boto3
    from botocore.config import Config

    return boto3.client(service, config=Config(retries={"mode": "standard", "max_attempts": 10}))


def _error_code(exc: BaseException) -> str | None:
    return getattr(exc, "response", {}).get("Error", {}).get("Code")


def retry_throttled(call: Callable[[], T], sleep: Callable[[float], None] = time.sleep, retries: int = THROTTLE_RETRIES) -> T:
    """call(), retried with exponential backoff (full jitter, capped at 20 s) while AWS answers
    with a throttling error; any other error, or throttling past `retries`, is raised."""
    for attempt in range(retries + 1):
        try:
            return call()
        except Exception as exc:
            if _error_code(exc) not in THROTTLING_CODES or attempt == retries:
                raise
            sleep(random.uniform(0, min(20.0, 0.5 * 2**attempt)))
    raise AssertionError("unreachable")


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
    prompt: str,
    events_client: Any,
    event_bus_name: str = DEFAULT_EVENT_BUS,
    sleep: Callable[[float], None] = time.sleep,
    continue_from: str | None = None,
) -> str:
    """Puts the event the rule listens for; returns its id (the `id` of the delivered event)."""
    detail = {"value": prompt, **({"continueFrom": continue_from} if continue_from else {})}
    entries = [
        {
            "Source": EVENT_SOURCE,
            "DetailType": DETAIL_TYPE,
            "Detail": json.dumps(detail, ensure_ascii=False),
            "EventBusName": event_bus_name,
        }
    ]
    response = retry_throttled(lambda: events_client.put_events(Entries=entries), sleep)
    entries = response.get("Entries") or [{}]
    if response.get("FailedEntryCount") or not entries[0].get("EventId"):
        entry = entries[0]
        raise AwsRunsError(
            f"EventBridge rejected the event on bus {event_bus_name}: "
            f"{entry.get('ErrorCode', 'no event id')}: {entry.get('ErrorMessage', '')}".rstrip(": ")
        )
    return entries[0]["EventId"]


def dead_letter_reason(sqs_client: Any, queue_url: str, event_id: str) -> str | None:
    """Why EventBridge gave up on the event `event_id`, if it is in the rule's dead-letter queue
    (ERROR_CODE: ERROR_MESSAGE, as EventBridge records them); None if it is not there. Messages
    are peeked (visibility timeout 0): they stay in the queue for the alarm and for you."""
    response = sqs_client.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0, MessageAttributeNames=["All"]
    )
    for message in response.get("Messages", []):
        try:
            body = json.loads(message.get("Body") or "null")
        except json.JSONDecodeError:
            continue
        if isinstance(body, dict) and body.get("id") == event_id:
            attributes = message.get("MessageAttributes") or {}
            code = attributes.get("ERROR_CODE", {}).get("StringValue", "unknown error")
            text = attributes.get("ERROR_MESSAGE", {}).get("StringValue", "")
            return f"{code}: {text}".rstrip(": ")
    return None


def find_execution(
    event_id: str,
    sfn_client: Any,
    state_machine_arn: str,
    timeout_s: float = DEFAULT_SEND_TIMEOUT_S,
    poll_s: float = 1.0,
    not_before: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
    dead_letters: Callable[[], str | None] | None = None,
    notice: Callable[[str], None] | None = None,
    notice_after_s: float = SEND_NOTICE_AFTER_S,
) -> str:
    """The ARN of the execution whose input is the event `event_id` (EventBridge passes the whole
    event as the execution's input), whatever its status. Polls until `timeout_s`, more slowly as
    time goes on; stops early when `dead_letters()` reports the event in the dead-letter queue.
    Throttled calls are retried. `notice` hears, once, why it is still waiting."""
    not_before = (not_before or datetime.now(timezone.utc)) - START_SKEW
    checked: set[str] = set()  # an execution's input never changes: describe each one once
    started = time.monotonic()
    deadline = started + timeout_s
    next_dead_letter_check = started + min(DEAD_LETTER_CHECK_S, poll_s * 5)
    noticed = False
    while True:
        try:
            for execution in _recent_executions(sfn_client, state_machine_arn, not_before, sleep):
                arn = execution["executionArn"]
                if arn in checked:
                    continue
                description = retry_throttled(lambda: sfn_client.describe_execution(executionArn=arn), sleep)
                checked.add(arn)
                try:
                    started_by = json.loads(description.get("input") or "null")
                except json.JSONDecodeError:
                    continue
                if isinstance(started_by, dict) and started_by.get("id") == event_id:
                    return arn
        except Exception as exc:
            if _error_code(exc) not in THROTTLING_CODES:
                raise  # still throttled after the retries: try again at the next poll
        now = time.monotonic()
        if dead_letters is not None and now >= next_dead_letter_check:
            next_dead_letter_check = now + DEAD_LETTER_CHECK_S
            reason = dead_letters()
            if reason:
                raise AwsRunsError(
                    f"EventBridge gave up starting a run for event {event_id}: it is in the rule's dead-letter "
                    f"queue ({reason}). Nothing was started; fix the cause and send again."
                )
        if now >= deadline:
            raise AwsRunsError(
                f"no execution of {state_machine_arn} started for event {event_id} within {timeout_s:g}s. "
                "Check that the rule for detail-type test/hello.world is enabled and targets this state "
                "machine, and look in its dead-letter queue (stack output DeadLetterQueueUrl)."
            )
        if notice and not noticed and now - started >= notice_after_s:
            noticed = True
            notice(
                f"still waiting for the execution of event {event_id}: EventBridge retries starting it for up to "
                f"{TRIGGER_MAX_EVENT_AGE_S // 60} minutes (throttled or failing StartExecution), then moves the event "
                "to the dead-letter queue, which pixie checks. Ctrl-C stops waiting, not the run."
            )
        sleep(min(poll_s, max(0.0, deadline - now)))
        poll_s = min(poll_s * 1.5, MAX_POLL_S)


def _recent_executions(
    sfn_client: Any, state_machine_arn: str, not_before: datetime, sleep: Callable[[float], None] = time.sleep
) -> Iterator[dict]:
    """Executions started since `not_before`. AWS lists the newest first, so paging stops at the
    first page that holds nothing that recent."""
    kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn, "maxResults": 100}
    while True:
        page = retry_throttled(lambda: sfn_client.list_executions(**kwargs), sleep)
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
    timeout_s: float = DEFAULT_SEND_TIMEOUT_S,
    event_bus_name: str = DEFAULT_EVENT_BUS,
    poll_s: float = 1.0,
    sqs_client: Any | None = None,
    dead_letter_queue_url: str | None = None,
    notice: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    continue_from: str | None = None,
    table: str | None = None,
) -> str:
    """Puts a `test/hello.world` event and returns the ARN of the execution the rule started.
    With the rule's dead-letter queue (and an SQS client), stops as soon as the event lands there.
    With `continue_from`, the new run continues that run's project; when the table is known, the
    run is checked first (CreateSandbox checks it again either way)."""
    if continue_from and table:
        check_continuable(continue_from, table)
    sent_at = datetime.now(timezone.utc)
    event_id = put_hello_world(prompt, events_client, event_bus_name, sleep, continue_from)
    dead_letters = (
        (lambda: retry_throttled(lambda: dead_letter_reason(sqs_client, dead_letter_queue_url, event_id), sleep))
        if sqs_client is not None and dead_letter_queue_url
        else None
    )
    return find_execution(
        event_id, sfn_client, state_machine_arn, timeout_s, poll_s, not_before=sent_at, sleep=sleep,
        dead_letters=dead_letters, notice=notice,
    )


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

    def __init__(
        self, sfn_client: Any, execution_arn: str, page_size: int = 1000, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.sfn = sfn_client
        self.sleep = sleep
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
                page = retry_throttled(lambda: self.sfn.get_execution_history(**kwargs), self.sleep)
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
    follower = HistoryFollower(sfn_client, execution_arn, sleep=sleep)
    while True:
        description = retry_throttled(lambda: sfn_client.describe_execution(executionArn=execution_arn), sleep)
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
    from pixie.runs import run_record
    from statemachine.history import jsonable

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


def decide_aws(run_id: str, table: str, sfn_client: Any, approve: bool, reason: str | None = None,
               dynamodb_resource: Any | None = None, iteration: int | None = None) -> dict[str, Any]:
    """Approves or denies the tool calls a deployed run waits on (AwaitApproval): the task token
    RequestApproval saved with the run goes back with SendTaskSuccess ({"approved": true}) or
    SendTaskFailure (ApprovalDenied, the reason as its cause)
    (https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html,
    https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskFailure.html).
    AwsRunsError when nothing waits, or the wait already ended (TaskTimedOut)."""
    from lambdas.dal.network_state import NetworkState
    from lambdas.logic.approvals import APPROVAL_DENIED, MAX_REASON_CHARS

    state = NetworkState(table, dynamodb_resource)
    run = state.find_run(run_id)
    if run is None:
        raise AwsRunsError(f"no run {run_id!r} in table {table}")
    pending = run.pending_approval
    if not pending or not pending.get("taskToken"):
        raise AwsRunsError(f"run {run_id} is not waiting for approval")
    if iteration is not None and pending.get("iteration") != iteration:  # a decision for a turn no longer waiting
        raise AwsRunsError(f"run {run_id} no longer waits on turn {iteration}'s calls (turn {pending.get('iteration')}'s calls wait now: "
                           f"look at them with `pixie show {run_id} --aws --json`, then decide again)")
    try:
        if approve:
            sfn_client.send_task_success(taskToken=pending["taskToken"], output=json.dumps({"approved": True}))
        else:
            cause = (reason or "").strip()[:MAX_REASON_CHARS] or "no reason given"
            sfn_client.send_task_failure(taskToken=pending["taskToken"], error=APPROVAL_DENIED, cause=cause)
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if code in ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist"):
            raise AwsRunsError(f"run {run_id} is no longer waiting for approval ({code})") from None
        raise
    return {"runId": run_id, "decision": "approved" if approve else "denied", "calls": len(pending.get("calls") or [])}
