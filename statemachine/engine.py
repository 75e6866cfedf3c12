"""The embedded engine: runs statemachine/agent.asl.json unchanged on moto's Step Functions
interpreter, with moto's DynamoDB as the network-state table, and each `lambda:invoke` task
dispatched in-process to the real handler (no Docker, no AWS account).

How the dispatch works: moto's interpreter calls lambda.Invoke through boto3's default session;
a `before-call.lambda.Invoke` hook on that session (botocore's public event system) runs the
handler and short-circuits the HTTP call with the handler's result, or with a FunctionError
payload whose errorType is the exception's class name, exactly as Lambda reports errors, so the
definition's Retry/Catch rules behave as on AWS."""

from __future__ import annotations

import importlib
import io
import json
import logging
import os
import random
import re
import threading
import time
import urllib.parse
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable
from unittest import mock

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from moto import mock_aws

from statemachine.moto_imports import defer_moto_batch

defer_moto_batch()  # before the parser below: saves loading moto.ec2 (about a second) on every run
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl  # noqa: E402

from statemachine.asl_cache import parsing_once  # noqa: E402

from lambdas.dal.network_state import create_table
from lambdas.logic import cancellation, progress
from lambdas.logic.config import DETAIL_TYPE
from lambdas.logic.events import RUN_CHOICES
from statemachine.history import jsonable

ASL_PATH = Path(__file__).parent / "agent.asl.json"
log = logging.getLogger("pixie.engine")

REGION = "us-east-1"
ACCOUNT = "123456789012"
TABLE_NAME = "pixie-local"

# Substitution variable in the ASL -> (function name, handler module)
FUNCTIONS: dict[str, tuple[str, str]] = {
    "CreateSandboxFunctionArn": ("pixie-create-sandbox", "lambdas.handlers.create_sandbox"),
    "AgentTurnFunctionArn": ("pixie-agent-turn", "lambdas.handlers.agent_turn"),
    "RunToolFunctionArn": ("pixie-run-tool", "lambdas.handlers.run_tool"),
    "CheckResultFunctionArn": ("pixie-check-result", "lambdas.handlers.check_result"),
    "GetSandboxUrlFunctionArn": ("pixie-get-sandbox-url", "lambdas.handlers.get_sandbox_url"),
    "CleanupSandboxFunctionArn": ("pixie-cleanup-sandbox", "lambdas.handlers.cleanup_sandbox"),
    "RequestApprovalFunctionArn": ("pixie-request-approval", "lambdas.handlers.request_approval"),
}
CLEANUP_FUNCTION = FUNCTIONS["CleanupSandboxFunctionArn"][0]
STOP_CLEANUP_WAIT_S = 120  # the longest `wait` waits for a stopped execution's cleanup
TERMINAL_STATUSES = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
# Services a step calls for real, past moto (moto's names for them): Bedrock is a model provider.
PASSTHROUGH_SERVICES = ["bedrockruntime"]
MOCK_CONFIG = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
    "core": {"mock_credentials": True, "passthrough": {"services": PASSTHROUGH_SERVICES, "urls": []}},
}

Handler = Callable[[dict, Any], Any]
# Called around each in-process invocation; may raise to simulate a failure (fault injection).
InvokeWrapper = Callable[[str, dict, Callable[[], Any]], Any]


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def load_definition(path: Path = ASL_PATH) -> str:
    """The ASL with ${...} replaced by local function ARNs, as CDK does with deployed ones."""
    text = path.read_text(encoding="utf-8")
    for variable, (name, _) in FUNCTIONS.items():
        text = text.replace("${" + variable + "}", function_arn(name))
    leftover = re.findall(r"\$\{[^}]+\}", text)
    if leftover:
        raise ValueError(f"{path} has substitutions the engine does not know: {leftover}")
    return text


# The engine answers AWS calls itself (moto). A developer's shell often carries AWS settings for
# other work that would steer its clients elsewhere or fail them: an endpoint (LocalStack, DynamoDB
# Local: AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>), a profile this machine lacks, FIPS or
# dual-stack endpoints, or a config file that sets any of these (botocore reads `endpoint_url`
# and `services` from it: https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html).
AWS_SETTINGS_FOR_OTHER_WORK = (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_STS_REGIONAL_ENDPOINTS", "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


def _forget_aws_settings_meant_for_other_work() -> None:
    for name in [n for n in os.environ if n in AWS_SETTINGS_FOR_OTHER_WORK or n.startswith("AWS_ENDPOINT_URL")]:
        del os.environ[name]
    # No config or credentials file either: moto's fake keys come from the environment.
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull


class InjectedFault(Exception):
    """A failure the engine simulates; surfaces as Lambda's own Lambda.ServiceException."""


class FaultInjector:
    """Makes each invocation fail with probability `rate`: half of the failures before the
    handler runs, half after it completed (its side effects done, its response lost, as when
    Lambda crashes or times out on the way back). Seeded, so a failing run can be replayed."""

    def __init__(self, rate: float, seed: int | None = None) -> None:
        if not 0 <= rate < 1:
            raise ValueError("the fault rate must be at least 0 and below 1")
        self.rate = rate
        self.random = random.Random(seed)
        self.injected: list[tuple[str, str]] = []  # (function name, "before" | "after")

    def __call__(self, name: str, event: dict, invoke: Callable[[], Any]) -> Any:
        roll = self.random.random()
        if roll < self.rate / 2:
            self.injected.append((name, "before"))
            raise InjectedFault(f"injected fault: {name} failed before it ran")
        result = invoke()
        if roll < self.rate:
            self.injected.append((name, "after"))
            raise InjectedFault(f"injected fault: {name} completed but its response was lost")
        return result


class _RetryClock:
    """Stands in for the `time` module in moto's retrier: a Retry wait that an interrupt cuts
    short (the next attempt then fails with Interrupted at once), that tests can shorten, and
    that the live view hears about (progress kind `retry.wait`)."""

    def __init__(self, engine: "LocalEngine", scale: float) -> None:
        self.engine = engine
        self.scale = scale
        self.wake = threading.Event()

    def sleep(self, seconds: float) -> None:
        seconds *= self.scale
        progress.emit(self.engine.current_run_id or "", "retry.wait", seconds=seconds)
        self.wake.wait(seconds)


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    log_group_name: str = "local"
    log_stream_name: str = "local"

    @property
    def invoked_function_arn(self) -> str:
        return function_arn(self.function_name)

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@dataclass
class Execution:
    arn: str
    run_id: str
    status: str
    output: Any
    error: str | None
    cause: str | None
    history: list[dict]


def _streaming(payload: Any) -> StreamingBody:
    body = json.dumps(payload).encode()
    return StreamingBody(io.BytesIO(body), len(body))


def _invoke_response(fields: dict) -> tuple[AWSResponse, dict]:
    """What short-circuits botocore's lambda.Invoke: an HTTP response and the parsed result."""
    return AWSResponse("", 200, {}, None), {"StatusCode": 200, **fields}


def _invoke_error(error_type: str, message: str) -> tuple[AWSResponse, dict]:
    """A function error, shaped as Lambda reports an unhandled exception."""
    payload = {"errorType": error_type, "errorMessage": message}
    return _invoke_response({"FunctionError": "Unhandled", "Payload": _streaming(payload)})


class LocalEngine:
    """Use as a context manager: everything AWS inside it is moto, in this process."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        handlers: dict[str, Handler] | None = None,
        invoke_wrapper: InvokeWrapper | None = None,
        retry_delay_scale: float = 1.0,
        concurrency_limit: int | None = None,
    ) -> None:
        self.retry_delay_scale = retry_delay_scale
        # Reserved concurrency, as Lambda enforces it per function: past this many invocations of one
        # function at once, Invoke fails with TooManyRequestsException (HTTP 429), which Step
        # Functions reports as Lambda.TooManyRequestsException
        # (https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html,
        # https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html).
        self.concurrency_limit = concurrency_limit
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self.throttled = 0
        self.env = {
            "PIXIE_TABLE": TABLE_NAME,
            "AWS_DEFAULT_REGION": REGION,
            # Runs overlap in one engine, so per-run choices travel in the event, not the environment.
            "PIXIE_EVENT_OVERRIDES": ",".join(RUN_CHOICES),
            **(env or {}),
        }
        self._handlers = handlers
        self.invoke_wrapper = invoke_wrapper
        self._stack = ExitStack()
        self._by_name: dict[str, tuple[str, Handler]] = {}
        self.invocations = 0
        self._lock = threading.Lock()
        self.interrupted: str | None = None
        self._status_change_cleanups: dict[str, threading.Event] = {}  # stopped executions
        self._stops: dict[str, dict[str, Any]] = {}  # execution -> its StopExecution (see stop)
        self._stopped_runs: set[str] = set()  # their run ids, until redriven
        self.current_run_id: str | None = None
        self._retry_clock = _RetryClock(self, retry_delay_scale)
        # A redrive's execution -> the execution it continues (its history comes first).
        self._redriven_from: dict[str, str] = {}
        self._redriven_to: dict[str, str] = {}  # ... and back: an execution -> its redrive
        # Task tokens handed to a `.waitForTaskToken` step, by run id, until its wait is decided.
        self._waiting_tokens: dict[str, str] = {}

    # --- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> "LocalEngine":
        if self.env.get("PIXIE_MODEL", "").startswith("bedrock:"):
            self._use_outside_aws_for_bedrock()  # before moto swaps the credentials
        self._stack.enter_context(mock.patch.dict(os.environ, self.env))
        _forget_aws_settings_meant_for_other_work()  # restored with the rest of the environment
        self._stack.enter_context(mock_aws(config=MOCK_CONFIG))
        self._stack.enter_context(mock.patch.object(retrier_decl, "time", self._retry_clock))
        self._stack.enter_context(parsing_once())  # agent.asl.json parsed once, not per start
        cancellation.reset()
        self._stack.callback(cancellation.reset)
        for noisy in ("moto", "moto.stepfunctions", "botocore.credentials"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)

        from lambdas.handlers import shared  # imported here so env and mocks are in place

        shared.reset()
        self._stack.callback(shared.reset)
        self._load_handlers()

        boto3.setup_default_session(region_name=REGION)
        events = boto3.DEFAULT_SESSION.events
        events.register("before-call.lambda.Invoke", self._dispatch)
        self._stack.callback(events.unregister, "before-call.lambda.Invoke", self._dispatch)

        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_table(self.dynamodb, self.env["PIXIE_TABLE"])
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.state_machine_arn = self._create_state_machine("pixie-agent", load_definition())
        return self

    def _create_state_machine(self, name: str, definition: str) -> str:
        return self.sfn.create_state_machine(
            name=name, definition=definition, roleArn=f"arn:aws:iam::{ACCOUNT}:role/pixie-local", type="STANDARD"
        )["stateMachineArn"]

    def __exit__(self, *exc_info: Any) -> None:
        self._stack.close()

    def _use_outside_aws_for_bedrock(self) -> None:
        """Inside the engine, the environment says region us-east-1 and moto's fake keys; a real
        Bedrock call needs the user's own region and credentials (environment, profile, SSO).
        Resolve them now and hand the Bedrock adapter a session that carries them. Frozen: a
        refresh inside the engine would reach moto's STS instead of AWS's."""
        from lambdas.logic.models import bedrock_model

        outside = boto3.session.Session(region_name=bedrock_model.aws_region())
        credentials = outside.get_credentials()
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            outside = boto3.session.Session(
                aws_access_key_id=frozen.access_key,
                aws_secret_access_key=frozen.secret_key,
                aws_session_token=frozen.token,
                region_name=outside.region_name,
            )
        # The endpoint the user's configuration names (AWS_ENDPOINT_URL_BEDROCK_RUNTIME, FIPS, a
        # profile's endpoint_url), resolved now: inside, those settings are cleared for moto's sake.
        endpoint = outside.client("bedrock-runtime", region_name=outside.region_name or REGION).meta.endpoint_url
        self._stack.callback(bedrock_model.use_session(outside, endpoint))

    def _load_handlers(self) -> None:
        for name, module in FUNCTIONS.values():
            handler = (self._handlers or {}).get(name) or importlib.import_module(module).handler
            self._by_name[function_arn(name)] = (name, handler)
            self._by_name[name] = (name, handler)

    # --- lambda:invoke, in-process --------------------------------------------------------------
    def _dispatch(self, params: dict, **_: Any) -> tuple[AWSResponse, dict]:
        match = re.search(r"/functions/([^/]+)/invocations", params["url_path"])
        target = urllib.parse.unquote(match.group(1)) if match else ""
        if target not in self._by_name:
            return _invoke_error("ResourceNotFoundException", f"no local function {target!r}")
        name, handler = self._by_name[target]
        event = json.loads(params.get("body") or b"{}")
        if self.interrupted and name != CLEANUP_FUNCTION:
            return _invoke_error("Interrupted", self.interrupted)
        if isinstance(event, dict) and event.get("runId") in self._stopped_runs:  # its steps after the stop
            return _invoke_error("States.Aborted", f"run {event['runId']} was stopped")
        slot = self._take_slot(name)
        with self._lock:
            self.invocations += 1
            if isinstance(event, dict) and isinstance(event.get("taskToken"), str):  # a callback step
                self._waiting_tokens[str(event.get("runId"))] = event["taskToken"]

        def invoke() -> Any:
            return handler(event, LambdaContext(function_name=name))

        try:
            result = self.invoke_wrapper(name, event, invoke) if self.invoke_wrapper else invoke()
        except InjectedFault as exc:  # as the Lambda service itself fails: a ClientError, not a FunctionError
            raise ClientError(
                {
                    "Error": {"Code": "ServiceException", "Message": str(exc)},
                    "ResponseMetadata": {"HTTPStatusCode": 500, "RequestId": str(uuid.uuid4())},
                },
                "Invoke",
            ) from None
        except Exception as exc:  # reported exactly as Lambda reports an unhandled error
            return _invoke_error(type(exc).__name__, str(exc))
        finally:
            if slot is not None:
                slot.release()
        return _invoke_response({"Payload": _streaming(result)})

    def _take_slot(self, name: str) -> threading.BoundedSemaphore | None:
        """One of the function's concurrency slots, or the ClientError Lambda answers when all are busy."""
        if self.concurrency_limit is None:
            return None
        with self._lock:
            slot = self._slots.setdefault(name, threading.BoundedSemaphore(self.concurrency_limit))
        if slot.acquire(blocking=False):
            return slot
        with self._lock:
            self.throttled += 1
        raise ClientError(
            {
                "Error": {"Code": "TooManyRequestsException", "Message": "Rate Exceeded."},
                "ResponseMetadata": {"HTTPStatusCode": 429, "RequestId": str(uuid.uuid4())},
            },
            "Invoke",
        )

    TABLE_READ_TRIES = 5

    def table_items(self) -> list[dict]:
        """Every item of the network-state table in DynamoDB JSON, read from moto's in-memory
        backend: far cheaper than a Scan through botocore, so the app can save a run after each
        step. Call it from the thread that runs the steps (the invoke wrapper), or after the run."""
        from moto.dynamodb.models import dynamodb_backends

        table = dynamodb_backends[ACCOUNT][REGION].get_table(self.env["PIXIE_TABLE"])
        for _ in range(self.TABLE_READ_TRIES - 1):
            try:
                return [item.to_json()["Attributes"] for item in table.all_items()]
            except RuntimeError:  # another run's step wrote the table meanwhile (a shared engine): read again
                continue
        return [item.to_json()["Attributes"] for item in table.all_items()]

    def interrupt(self, reason: str) -> None:
        """From now on every step fails with `Interrupted` (not retried), except CleanupSandbox:
        the execution runs its failure path and ends. A model call in flight ends now too
        (lambdas.logic.cancellation), and so does a Retry wait. (moto's StopExecution does not
        halt its interpreter, so this is how a local run is stopped.)"""
        self.interrupted = reason
        cancellation.cancel_all(reason)
        self._retry_clock.wake.set()
        for run_id in list(self._waiting_tokens):  # a wait for a decision ends now too
            self._end_wait(run_id, "Interrupted", reason)

    # --- callbacks: .waitForTaskToken -----------------------------------------------------------
    # A task with the callback pattern waits until SendTaskSuccess or SendTaskFailure hands its
    # token back, or until its TimeoutSeconds passes (the task fails with States.Timeout); a token
    # whose task already closed is answered TaskTimedOut, an unknown one InvalidToken
    # (https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token,
    # https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html).
    # moto's interpreter implements the wait; these are the two calls, made on its backend in
    # process: moto's HTTP layer drops SendTaskFailure's cause, which AWS passes on to the Catch.
    # Errors come back as boto3 reports AWS's: a ClientError with its code.
    def send_task_success(self, task_token: str, output: Any) -> None:
        self._callback("SendTaskSuccess", "send_task_success", task_token=task_token, outcome=json.dumps(output))

    def send_task_failure(self, task_token: str, error: str, cause: str = "") -> None:
        self._callback("SendTaskFailure", "send_task_failure", task_token=task_token, error=error, cause=cause)

    def _callback(self, operation: str, method: str, **kwargs: Any) -> None:
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        try:
            getattr(stepfunctions_parser_backends[ACCOUNT][REGION], method)(**kwargs)
        except Exception as exc:
            code = getattr(exc, "code", None)
            if not isinstance(code, str):
                raise
            raise ClientError({"Error": {"Code": code, "Message": str(exc) or code},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, operation) from None
        finally:
            self._forget_token(kwargs["task_token"])

    def _forget_token(self, task_token: str) -> None:
        with self._lock:
            for run_id, token in list(self._waiting_tokens.items()):
                if token == task_token:
                    del self._waiting_tokens[run_id]

    def _end_wait(self, run_id: str, error: str, cause: str) -> None:
        """Fails the run's wait, if it has one (a stop or an interrupt: nothing is left to decide)."""
        token = self._waiting_tokens.get(run_id)
        if token is None:
            return
        try:
            self.send_task_failure(token, error, cause)
        except ClientError:
            self._forget_token(token)  # decided or timed out meanwhile

    def stop(self, arn: str, cause: str, error: str = "Stopped") -> None:
        """StopExecution, then what the stack's EventBridge rule does with the "Execution Status
        Change" event of an ABORTED execution: CleanupSandbox releases the run's sandbox (a local
        one's running command ends) and records the ending. Step Functions sends that event to
        EventBridge on every status change (https://docs.aws.amazon.com/step-functions/latest/dg/cw-events.html);
        a StopExecution ends the execution at once, and a step in flight is not waited for
        (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StopExecution.html).
        Returns once the cleanup ran: `wait` on this execution waits for it too."""
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        cleaned = threading.Event()
        with self._lock:  # one stop per execution, however many ask at once
            status = self.describe(arn)["status"]
            if status != "RUNNING" or arn in self._status_change_cleanups:
                raise ExecutionNotRunning(f"execution {arn} is {'ABORTED' if status == 'RUNNING' else status}")
            self._status_change_cleanups[arn] = cleaned
        try:
            # moto marks the execution ABORTED only once the step in flight returns, and a Map's
            # stopped iteration fails its Map instead; AWS aborts at once. So the engine keeps the
            # stop and answers describe/history from it; moto's interpreter is stopped too.
            length = len(stepfunctions_parser_backends[ACCOUNT][REGION].get_execution_history(arn)["events"])
            self._stops[arn] = {"error": error, "cause": cause, "timestamp": datetime.now(timezone.utc), "events": length}
            self._stopped_runs.add(arn.rsplit(":", 1)[-1])
            self.sfn.stop_execution(executionArn=arn, error=error, cause=cause)
            # moto's interpreter would go on waiting for a decision (for up to its timeout): end it.
            self._end_wait(arn.rsplit(":", 1)[-1], error, cause)
            description = self.describe(arn)
            event = {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "Step Functions Execution Status Change",
                "source": "aws.states",
                "account": ACCOUNT,
                "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": REGION,
                "resources": [arn],
                "detail": {
                    "executionArn": arn, "stateMachineArn": self.state_machine_arn, "name": description["name"],
                    "status": description["status"], "error": error, "cause": cause,
                },
            }
            name, handler = self._by_name[CLEANUP_FUNCTION]

            def invoke() -> Any:
                return handler(event, LambdaContext(function_name=name))

            try:
                self.invoke_wrapper(name, event, invoke) if self.invoke_wrapper else invoke()
            except Exception:  # noqa: BLE001 - as a failed rule target: the abort stands, logged
                log.exception("the cleanup of stopped execution %s failed", arn)
        finally:
            cleaned.set()

    # --- executions -----------------------------------------------------------------------------
    def start(self, event: dict, run_id: str | None = None) -> tuple[str, str]:
        run_id = run_id or new_run_id()
        self.current_run_id = run_id
        arn = self.sfn.start_execution(
            stateMachineArn=self.state_machine_arn, name=run_id, input=json.dumps(event)
        )["executionArn"]
        return arn, run_id

    def redrive(self, arn: str) -> str:
        """RedriveExecution, which moto lacks, as AWS documents it
        (https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html): an ABORTED,
        TIMED_OUT or FAILED execution continues from its unsuccessful step, the top-level state
        entered and never exited, with that state's input; the steps that succeeded are not run
        again. Locally this is a second execution of the same definition, starting at that state,
        under the same name (the run id); `history` joins the two as AWS keeps one history. A Map
        state restarts whole, where AWS reruns only the failed iterations: a RunTool whose result
        is saved returns it without running again, so the effects are the same. Returns the ARN
        to `wait` on."""
        arn = self._latest(arn)  # AWS keeps one execution: a redriven one is as its redrive left it
        description = self.describe(arn)
        if description["status"] not in ("FAILED", "ABORTED", "TIMED_OUT"):
            raise ExecutionNotRedrivable(f"execution {arn} is {description['status']}: only FAILED, ABORTED or TIMED_OUT ones redrive")
        definition = json.loads(load_definition())
        state_name, state_input = unsuccessful_state(self.history(arn), set(definition["States"]))
        definition["StartAt"] = state_name
        machine_arn = self._create_state_machine(f"pixie-agent-redrive-{uuid.uuid4().hex[:8]}", json.dumps(definition))
        name = description["name"]
        self._stopped_runs.discard(name)
        redriven = self.sfn.start_execution(stateMachineArn=machine_arn, name=name, input=state_input)["executionArn"]
        self._redriven_from[redriven] = arn
        self._redriven_to[arn] = redriven
        return redriven

    def _latest(self, arn: str) -> str:
        """The newest redrive of an execution (itself if never redriven)."""
        while arn in self._redriven_to:
            arn = self._redriven_to[arn]
        return arn


    def describe(self, arn: str) -> dict[str, Any]:
        """DescribeExecution's answer (status, name, output, error, cause), read from moto's
        backend in memory, like the history: the loop below asks 20 times a second."""
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        description = dict(stepfunctions_parser_backends[ACCOUNT][REGION].describe_execution(arn).to_describe_output())
        description["status"] = getattr(description["status"], "value", description["status"])
        stopped = self._stops.get(arn)
        if stopped is not None:  # StopExecution: ABORTED at once, whatever step was in flight
            description.pop("output", None)
            description.update(status="ABORTED", stopDate=stopped["timestamp"], error=stopped["error"], cause=stopped["cause"])
        return description

    def history(self, arn: str) -> list[dict]:
        """The execution's history events, as GetExecutionHistory returns them (oldest first,
        timestamps as datetimes). Read from moto's backend in memory: through botocore every
        read serialized and parsed the whole history again (about 1 s of a 4-turn `pixie run`)."""
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        events = [_as_client_event(e) for e in stepfunctions_parser_backends[ACCOUNT][REGION].get_execution_history(arn)["events"]]
        stopped = self._stops.get(arn)
        if stopped is not None:  # what moto's interpreter did after the stop is not the execution's
            events = events[: stopped["events"]]
            events.append({"timestamp": stopped["timestamp"], "type": "ExecutionAborted", "id": len(events) + 1,
                           "previousEventId": len(events),
                           "executionAbortedEventDetails": {"error": stopped["error"], "cause": stopped["cause"]}})
        if arn not in self._redriven_from:
            return events
        # One history, as AWS keeps it: the first attempt's events, ExecutionRedriven, then the
        # redrive's own (its ExecutionStarted left out), numbered on.
        earlier = self.history(self._redriven_from[arn])
        joined = [*earlier, {"timestamp": events[0]["timestamp"], "type": "ExecutionRedriven", "id": len(earlier) + 1,
                             "previousEventId": len(earlier), "executionRedrivenEventDetails": {"redriveCount": 1 + sum(
                                 e["type"] == "ExecutionRedriven" for e in earlier)}}]
        offset = len(joined) - 1  # the redrive's event 2 follows ExecutionRedriven
        for event in events[1:]:
            previous = event.get("previousEventId")
            joined.append({**event, "id": event["id"] + offset, **({"previousEventId": previous + offset} if previous else {})})
        return joined

    def wait(
        self, arn: str, on_event: Callable[[dict], None] | None = None, poll_s: float = 0.05
    ) -> Execution:
        """Polls until the execution ends, handing each new history event to `on_event` as it
        appears (the live display)."""
        seen = 0
        while True:
            description = self.describe(arn)
            done = description["status"] in TERMINAL_STATUSES
            if on_event or done:  # the history is read whole each time: only when it is shown
                events = self.history(arn)
                for event in events[seen:] if on_event else ():
                    on_event(event)
                seen = len(events)
            if done:
                break
            time.sleep(poll_s)
        cleanup = self._status_change_cleanups.get(arn)
        if cleanup is not None:  # stopped: the run's record is final once its cleanup ran
            cleanup.wait(STOP_CLEANUP_WAIT_S)
        output = description.get("output")
        return Execution(
            arn=arn,
            run_id=description["name"],
            status=description["status"],
            output=json.loads(output) if output else None,
            error=description.get("error"),
            cause=description.get("cause"),
            history=[jsonable(e) for e in events],
        )

    def run(self, event: dict, run_id: str | None = None, on_event: Callable[[dict], None] | None = None) -> Execution:
        arn, _ = self.start(event, run_id)
        return self.wait(arn, on_event)


class ExecutionNotRunning(Exception):
    """StopExecution of an execution that already ended."""


class ExecutionNotRedrivable(Exception):
    """As RedriveExecution answers for an execution that is running or succeeded."""


def unsuccessful_state(history: list[dict], top_level: set[str]) -> tuple[str, str]:
    """The top-level state a redrive restarts at, with its input: the last one entered with no
    matching exit ("a state is unsuccessful if there's no <stateType>Exited event corresponding
    to the <stateType>Entered event", https://docs.aws.amazon.com/step-functions/latest/dg/redrive-map-run.html).
    States inside a Map iteration are not top-level: their Map is the one that restarts."""
    unsuccessful: tuple[str, str] | None = None  # top-level states run one at a time
    for event in history:
        kind = event["type"]
        if kind.endswith("StateEntered") and event["stateEnteredEventDetails"]["name"] in top_level:
            details = event["stateEnteredEventDetails"]
            unsuccessful = (details["name"], details.get("input") or "{}")
        elif kind.endswith("StateExited") and unsuccessful and event["stateExitedEventDetails"]["name"] == unsuccessful[0]:
            unsuccessful = None
    if unsuccessful is None:
        raise ExecutionNotRedrivable("no unsuccessful state in the history: nothing to redrive")
    return unsuccessful


def _as_client_event(event: dict) -> dict:
    """A backend history event in the client's form: the shape's member order (timestamp, type,
    id, previousEventId, details) and the timestamp a datetime, as botocore parses it."""
    stamp = event.get("timestamp")
    if isinstance(stamp, str):
        stamp = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    elif isinstance(stamp, datetime) and stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    head = {"timestamp": stamp, "type": event.get("type"), "id": event.get("id"), "previousEventId": event.get("previousEventId")}
    return {**{k: v for k, v in head.items() if v is not None}, **{k: v for k, v in event.items() if k not in head}}


def new_run_id() -> str:
    """A run id, which is also the execution's name."""
    return uuid.uuid4().hex[:16]


def hello_world_event(prompt: Any, continue_from: str | None = None) -> dict:
    """An EventBridge event as the rule delivers it to the state machine; `continue_from` names
    the run whose project this one continues."""
    detail = {"value": prompt, **({"continueFrom": continue_from} if continue_from else {})}
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": "pixie.cli",
        "account": ACCOUNT,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": REGION,
        "resources": [],
        "detail": detail,
    }
