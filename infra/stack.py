"""PixieStack: EventBridge trigger -> Step Functions state machine -> step Lambdas, DynamoDB, secrets.

Small constructs, one per concern:
- `ApiKeySecrets`   the OpenAI and E2B API keys (created empty; the user puts the values).
- `NetworkStateTable` the run's network state (conversation, files, meta), one table.
- `AgentFunctions`  the step Lambdas (CreateSandbox, AgentTurn, RunTool, GetSandboxUrl and any other
                    the definition calls), each with its own role, log group and only its own secret.
- `AgentStateMachine` the definition from statemachine/agent.asl.json, logged (ALL) and traced.
- `HelloWorldTrigger` the `test/hello.world` rule on the default bus, with retries and a DLQ.
- `CleanupOnBadEnding` Step Functions' status-change events (FAILED, TIMED_OUT, ABORTED) of this
                    state machine -> the cleanup function: no ending leaks a sandbox.
- `Monitoring`      alarms (dead-letter queues, failed and timed-out executions, Lambda throttles
                    and errors; optional SNS topic) and a CloudWatch dashboard.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from aws_cdk import Acknowledgment, CfnOutput, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.bedrock import bedrock_model_id, grant_invoke_model
from infra.bundling import REPO_ROOT, lambda_code
from lambdas.logic.config import DETAIL_TYPE, TRIGGER_MAX_EVENT_AGE_S, TRIGGER_RETRY_ATTEMPTS
from lambdas.logic.steps.cleanup_sandbox import BAD_ENDINGS, STATUS_CHANGE_DETAIL_TYPE, STATUS_CHANGE_SOURCE

ASL_PATH = REPO_ROOT / "statemachine" / "agent.asl.json"
LOG_RETENTION = logs.RetentionDays.ONE_MONTH

# Removal policy for everything stateful. pixie is a developer tool: `cdk destroy` should leave
# nothing behind. Run data expires anyway (TTL), and a table deleted with point-in-time recovery on
# gets a system backup kept for 35 days. Set RETAIN here to keep the data past `cdk destroy`.
REMOVAL_POLICY = RemovalPolicy.DESTROY

# How long, and how often, EventBridge retries delivering an event to its target (StartExecution
# for the trigger, the cleanup function for status changes) before it goes to the dead-letter
# queue. `pixie send` waits this long for its execution (both read lambdas/logic/config.py).
EVENT_RETRY_ATTEMPTS = TRIGGER_RETRY_ATTEMPTS
EVENT_MAX_AGE = Duration.seconds(TRIGGER_MAX_EVENT_AGE_S)

# The DynamoDB actions the functions use, and no others (see lambdas/dal/network_state.py and
# Powertools' DynamoDBPersistenceLayer in lambdas/handlers/shared.py).
TABLE_ACTIONS = (
    "dynamodb:GetItem",  # run record, one message, idempotency record (consistent reads)
    "dynamodb:PutItem",  # run record, messages, event claims, idempotency records (conditional)
    "dynamodb:UpdateItem",  # run record fields, idempotency record completion
    "dynamodb:DeleteItem",  # Powertools drops the in-progress record of a step that raised
    "dynamodb:Query",  # a run's messages and files
    "dynamodb:BatchWriteItem",  # put_files and put_messages write in batches
    "dynamodb:BatchGetItem",  # the parts of a message or file too big for one item
)


@dataclass(frozen=True)
class PixieSettings:
    """Deploy-time settings: `cdk deploy -c pixie:model=openai:gpt-4.1-mini`, etc."""

    model: str = "openai:gpt-4.1"
    template: str = "pixie"
    max_iterations: int = 15
    command_timeout_s: int = 120
    sandbox_timeout_s: int = 3600
    # Reserved concurrency of each function: at most this many runs at once (each run uses one
    # function at a time), and the functions never starve the rest of the account. None: unreserved.
    reserved_concurrency: int | None = 10
    # An existing SNS topic every alarm notifies (e.g. one with your e-mail subscribed). None: no
    # notifications; the alarms still show in the console and on the dashboard.
    alarm_topic_arn: str | None = None
    # The longest an execution may run (the state machine's TimeoutSeconds): past it the run ends
    # TIMED_OUT and the status-change rule cleans up.
    run_timeout_minutes: int = 120
    # Production: keep the table (with deletion protection), the secrets and the logs when the
    # stack is deleted. Off by default: a developer tool's `cdk destroy` leaves nothing behind.
    retain: bool = False
    # Execution logging: ERROR logs failures only (prompts stay out of the logs); ALL for debugging.
    log_level: str = "ERROR"
    # Who may put events on pixie's bus (so start paid runs that execute model-written code):
    # account ids or IAM principal ARNs. Empty: this account only.
    senders: tuple[str, ...] = ()
    # Every run's budget: model spend in US dollars (list prices) and tokens. None: unbounded.
    budget_usd: float | None = None
    max_tokens: int | None = None
    # Every run's approvals: "commands" or "all" tool calls wait for `pixie approve --aws`; how long.
    approve: str = "none"
    approval_timeout_s: int = 24 * 3600

    @classmethod
    def from_context(cls, scope: Construct) -> "PixieSettings":
        def ctx(key: str, default: object) -> object:
            value = scope.node.try_get_context(f"pixie:{key}")
            return default if value is None or value == "" else value

        defaults = cls()
        settings = cls(
            model=str(ctx("model", defaults.model)),
            template=str(ctx("template", defaults.template)),
            max_iterations=int(ctx("maxIterations", defaults.max_iterations)),  # type: ignore[arg-type]
            command_timeout_s=int(ctx("commandTimeout", defaults.command_timeout_s)),  # type: ignore[arg-type]
            sandbox_timeout_s=int(ctx("sandboxTimeout", defaults.sandbox_timeout_s)),  # type: ignore[arg-type]
            reserved_concurrency=_reserved_concurrency(ctx("reservedConcurrency", defaults.reserved_concurrency)),
            alarm_topic_arn=_optional_str(ctx("alarmTopicArn", None)),
            run_timeout_minutes=int(ctx("runTimeoutMinutes", defaults.run_timeout_minutes)),  # type: ignore[arg-type]
            retain=_flag(ctx("retain", defaults.retain)),
            log_level=str(ctx("logLevel", defaults.log_level)).upper(),
            senders=_names(ctx("senders", ())),
            budget_usd=_optional_number(ctx("budgetUsd", None), float),
            max_tokens=_optional_number(ctx("maxTokens", None), int),
            approve=str(ctx("approve", defaults.approve)),
            approval_timeout_s=int(ctx("approvalTimeoutSeconds", defaults.approval_timeout_s)),  # type: ignore[arg-type]
        )
        settings.check()
        return settings

    def check(self) -> None:
        """The same ranges the functions enforce (lambdas/logic/config.py), at synth time."""
        from lambdas.logic.config import Settings

        # CheckResult runs the preview's check and up to two commands, each with the command
        # timeout, in one Lambda of at most 900 s: a longer command timeout would let the function
        # be killed mid-check (a Lambda timeout instead of a verdict), so it is refused here.
        if self.command_timeout_s > MAX_DEPLOYED_COMMAND_TIMEOUT_S:
            raise ValueError(
                f"context pixie:commandTimeout must be from 1 to {MAX_DEPLOYED_COMMAND_TIMEOUT_S} on AWS "
                f"(the done-check runs up to {DONE_CHECK_STEPS} checks of that length in one 900 s Lambda), "
                f"got {self.command_timeout_s}"
            )
        if not 1 <= self.run_timeout_minutes <= 525_600:  # Step Functions: a standard execution lasts at most a year
            raise ValueError(f"context pixie:runTimeoutMinutes must be from 1 to 525600, got {self.run_timeout_minutes}")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"context pixie:logLevel must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        for sender in self.senders:
            if not re.fullmatch(r"\d{12}|arn:aws[\w-]*:iam::\d{12}:[\w+=,.@/-]+", sender):
                raise ValueError(f"context pixie:senders: {sender!r} is neither a 12-digit account id nor an IAM principal ARN")

        from lambdas.logic.budget import check_budget_is_priced
        from lambdas.logic.errors import InvalidEvent

        try:
            check_budget_is_priced(self.model, self.budget_usd)
        except InvalidEvent as exc:
            raise ValueError(f"context pixie:budgetUsd: {exc}") from None
        for key, env_name, value in (
            ("maxIterations", "PIXIE_MAX_ITERATIONS", self.max_iterations),
            ("commandTimeout", "PIXIE_COMMAND_TIMEOUT", self.command_timeout_s),
            ("sandboxTimeout", "PIXIE_SANDBOX_TIMEOUT", self.sandbox_timeout_s),
            ("budgetUsd", "PIXIE_BUDGET_USD", self.budget_usd),
            ("maxTokens", "PIXIE_MAX_TOKENS", self.max_tokens),
            ("approve", "PIXIE_APPROVE", self.approve),
            ("approvalTimeoutSeconds", "PIXIE_APPROVAL_TIMEOUT", self.approval_timeout_s),
        ):
            try:
                Settings.from_env({env_name: "" if value is None else str(value)})
            except ValueError as exc:
                raise ValueError(f"context pixie:{key}: {str(exc).replace(env_name, 'the value')}") from None


def _optional_number(value: object, kind: type) -> float | int | None:
    """A number from the context (checked against its range by check()), or None when unset."""
    if value is None:
        return None
    try:
        return kind(str(value))
    except ValueError:
        raise ValueError(f"context value {value!r} is not a {'whole ' if kind is int else ''}number") from None


def _reserved_concurrency(value: object) -> int | None:
    """A positive integer, or "off" (also "none", "false") for unreserved functions."""
    if value is None or str(value).strip().lower() in ("off", "none", "false"):
        return None
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(
            f"pixie:reservedConcurrency must be a positive integer or 'off', got {value!r} "
            "(0 would throttle every invocation)"
        )
    return number


LOG_LEVELS = ("ERROR", "ALL", "FATAL", "OFF")
LAMBDA_MAX_TIMEOUT_S = 900
DONE_CHECK_STEPS = 3  # the preview, npm test, npm run build
DONE_CHECK_OVERHEAD_S = 60  # sandbox connect, reading package.json, storing the verdict


def done_check_timeout_s(command_timeout_s: int) -> int:
    """CheckResult's Lambda timeout: all its checks at the command timeout, plus overhead (Lambda
    allows at most 900 s; check() refuses a command timeout that would need more)."""
    return min(DONE_CHECK_STEPS * command_timeout_s + DONE_CHECK_OVERHEAD_S, LAMBDA_MAX_TIMEOUT_S)


MAX_DEPLOYED_COMMAND_TIMEOUT_S = (LAMBDA_MAX_TIMEOUT_S - DONE_CHECK_OVERHEAD_S) // DONE_CHECK_STEPS  # 280


def _flag(value: object) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes", "on")


def _names(value: object) -> tuple[str, ...]:
    """A list, or a comma-separated string (`-c pixie:senders=111111111111,222222222222`)."""
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def _optional_str(value: object) -> str | None:
    return None if value is None or str(value).strip() == "" else str(value).strip()


def _acknowledge(construct: Construct, rule_id: str, reason: str) -> None:
    """A cdk-nag (v3) suppression on a construct and its children. IAM5 findings are acknowledged
    one by one, e.g. `AwsSolutions-IAM5[Resource::*]`."""
    Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))


XRAY_WILDCARD_REASON = (
    "X-Ray PutTraceSegments/PutTelemetryRecords (and GetSamplingRules/GetSamplingTargets) do not "
    "support resource-level permissions; AWS requires Resource '*' for them."
)


class ApiKeySecrets(Construct):
    """Two secrets, created without a value: nothing secret is ever in the template. The user sets
    them once with `aws secretsmanager put-secret-value` (see the outputs for their names)."""

    def __init__(self, scope: Construct, construct_id: str, *, openai: bool = True) -> None:
        super().__init__(scope, construct_id)
        stack_name = Stack.of(self).stack_name
        # Plain names (not Secret.secret_name, which CDK re-parses from the ARN with Fn::Split):
        # they go into the functions' environment and the stack outputs as literal strings.
        self.openai_name = f"{stack_name}/openai-api-key"
        self.e2b_name = f"{stack_name}/e2b-api-key"
        # A Bedrock model needs no key: then there is no OpenAI secret to read, pay for or leak.
        self.openai = self._secret("OpenAIApiKey", self.openai_name, "OpenAI API key") if openai else None
        self.e2b = self._secret("E2BApiKey", self.e2b_name, "E2B API key")

    def by_key(self, key: str) -> tuple[secretsmanager.Secret, str, str]:
        """(secret, its name, the env var that carries the name) for "openai" or "e2b"."""
        if key == "openai" and self.openai is not None:
            return self.openai, self.openai_name, "PIXIE_OPENAI_SECRET_NAME"
        if key == "e2b":
            return self.e2b, self.e2b_name, "PIXIE_E2B_SECRET_NAME"
        raise ValueError(f"unknown secret {key!r}")

    def _secret(self, construct_id: str, name: str, what: str) -> secretsmanager.Secret:
        secret = secretsmanager.Secret(
            self,
            construct_id,
            secret_name=name,
            description=f"pixie: {what} (plain string). Set it with: aws secretsmanager put-secret-value "
            f"--secret-id {name} --secret-string <key>",
            removal_policy=REMOVAL_POLICY,
        )
        # CDK generates a random password when no value is given; an API key cannot be generated, so
        # create the secret empty (CloudFormation allows omitting both SecretString and
        # GenerateSecretString) and let the user put the real key.
        cfn_secret = secret.node.default_child
        assert isinstance(cfn_secret, secretsmanager.CfnSecret)
        cfn_secret.add_property_deletion_override("GenerateSecretString")
        _acknowledge(
            secret,
            "AwsSolutions-SMG4",
            f"The secret holds a third-party API key ({what}) issued in the provider's dashboard; "
            "Secrets Manager has no way to rotate it (the provider offers no key-rotation API). "
            "Rotate it at the provider and put the new value.",
        )
        return secret


class NetworkStateTable(Construct):
    """pk/sk single table: RUN#<runId> with META, MSG#<n>, FILE#<path> items; TTL on expiresAt."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute="expiresAt",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=REMOVAL_POLICY,
        )


@dataclass(frozen=True)
class FunctionSpec:
    """One step's Lambda. `secret` is the only API key it may read: "openai", "e2b" or None
    (AgentTurn with a Bedrock model, which is authorized by its role instead)."""

    handler: str
    description: str
    timeout_s: int
    memory_mb: int
    secret: str | None


def function_specs(settings: PixieSettings) -> dict[str, FunctionSpec]:
    """Every step function pixie knows, by the name used in the ASL placeholder
    `${<Name>FunctionArn}`. Timeouts are sized to the job; memory also buys CPU for imports."""
    return {
        "CreateSandbox": FunctionSpec(
            "lambdas.handlers.create_sandbox.handler",
            "pixie: validate the event, create the E2B sandbox and the run's network state",
            120,
            512,
            "e2b",
        ),
        "AgentTurn": FunctionSpec(
            "lambdas.handlers.agent_turn.handler",
            f"pixie: one model turn ({settings.model.partition(':')[0]}) with the tools; saves the reply",
            600,  # an LLM turn can take minutes (the SDK retries 429/5xx itself)
            # It mostly waits on the model, billed by memory: `make bench` measures its peak at
            # about 75 MB (imports 71 + a turn's allocations); 512 MB keeps headroom and the CPU
            # a cold start's imports need (1,024 MB cost twice as much per turn for nothing).
            512,
            "openai" if settings.model.startswith("openai:") else None,  # Bedrock: IAM, scripted: nothing
        ),
        "RunTool": FunctionSpec(
            "lambdas.handlers.run_tool.handler",
            "pixie: run one tool call in the sandbox and store its result",
            # one command, bounded by the command timeout, plus sandbox connect and file I/O
            min(settings.command_timeout_s + 180, 900),
            512,
            "e2b",
        ),
        "CheckResult": FunctionSpec(
            "lambdas.handlers.check_result.handler",
            "pixie: the done-check of a run's result (its preview, the project's tests and build)",
            # the preview's answer and up to two commands (npm test, npm run build), each bounded by
            # the command timeout, plus sandbox connect (check() keeps this within Lambda's 900 s)
            done_check_timeout_s(settings.command_timeout_s),
            512,
            "e2b",
        ),
        "GetSandboxUrl": FunctionSpec(
            "lambdas.handlers.get_sandbox_url.handler",
            "pixie: the sandbox's preview URL and the run's result",
            60,
            512,
            "e2b",
        ),
        "RequestApproval": FunctionSpec(
            "lambdas.handlers.request_approval.handler",
            "pixie: save an approval wait's task token and pending calls with the run, then return",
            30,  # two table reads and one write: the wait itself happens in Step Functions, not here
            512,
            None,  # no API key: it touches the table only
        ),
        "CleanupSandbox": FunctionSpec(
            "lambdas.handlers.cleanup_sandbox.handler",
            "pixie: a failed run kills its sandbox and records why",
            60,
            512,
            "e2b",
        ),
    }


PLACEHOLDER = re.compile(r"\$\{(\w+)FunctionArn\}")


def asl_function_names(definition: str) -> list[str]:
    """The step functions the definition calls, in order of first use."""
    return list(dict.fromkeys(PLACEHOLDER.findall(definition)))


class AgentFunctions(Construct):
    """One Lambda per `${<Name>FunctionArn}` placeholder in the definition. One code asset; each
    function has its own role (its log group, the table, its one secret), its own log group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: list[str],
        table: dynamodb.ITable,
        secrets: ApiKeySecrets,
        settings: PixieSettings,
    ) -> None:
        super().__init__(scope, construct_id)
        specs = function_specs(settings)
        unknown = [name for name in names if name not in specs]
        if unknown:
            raise ValueError(
                f"{ASL_PATH.name} calls ${{{unknown[0]}FunctionArn}}, which infra/stack.py does not "
                f"define: add it to function_specs() (known: {', '.join(specs)})"
            )
        code = lambda_code()
        common_env = {
            "PIXIE_TABLE": table.table_name,
            "PIXIE_MODEL": settings.model,
            "PIXIE_SANDBOX": "e2b",
            "PIXIE_TEMPLATE": settings.template,
            "PIXIE_MAX_ITERATIONS": str(settings.max_iterations),
            "PIXIE_COMMAND_TIMEOUT": str(settings.command_timeout_s),
            "PIXIE_SANDBOX_TIMEOUT": str(settings.sandbox_timeout_s),
            # Unset: no budget.
            **({} if settings.budget_usd is None else {"PIXIE_BUDGET_USD": repr(settings.budget_usd)}),
            **({} if settings.max_tokens is None else {"PIXIE_MAX_TOKENS": str(settings.max_tokens)}),
            # Unset: no approvals (the default wait, 24 h, is the code's own).
            **({} if settings.approve == "none" else {
                "PIXIE_APPROVE": settings.approve, "PIXIE_APPROVAL_TIMEOUT": str(settings.approval_timeout_s)}),
            "POWERTOOLS_SERVICE_NAME": "pixie",
            "POWERTOOLS_METRICS_NAMESPACE": "Pixie",
        }
        self.reserved_concurrency = settings.reserved_concurrency
        self.roles: dict[str, iam.Role] = {}  # by step name: add a step's extra permissions here
        self.functions: dict[str, lambda_.Function] = {
            name: self._function(name, specs[name], code, table, secrets, common_env) for name in names
        }

    def _function(
        self,
        name: str,
        spec: FunctionSpec,
        code: lambda_.Code,
        table: dynamodb.ITable,
        secrets: ApiKeySecrets,
        common_env: dict[str, str],
    ) -> lambda_.Function:
        log_group = logs.LogGroup(self, f"{name}Logs", retention=LOG_RETENTION, removal_policy=REMOVAL_POLICY)
        # Own role instead of the AWSLambdaBasicExecutionRole managed policy: logs only to its group.
        role = iam.Role(
            self,
            f"{name}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"pixie {name} function",
        )
        log_group.grant_write(role)
        # Network state, event claims and Powertools idempotency records: exactly the calls made
        # (grant_read_write_data would add Scan, ConditionCheckItem, DescribeTable...).
        table.grant(role, *TABLE_ACTIONS)
        secret_env: dict[str, str] = {}
        if spec.secret is not None:
            secret, secret_name, secret_env_var = secrets.by_key(spec.secret)
            secret.grant_read(role)
            secret_env = {secret_env_var: secret_name}
        model_id = bedrock_model_id(common_env["PIXIE_MODEL"])
        if name == "AgentTurn" and model_id:
            grant_invoke_model(role, model_id)
        self.roles[name] = role

        fn = lambda_.Function(
            self,
            name,
            description=spec.description,
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=lambda_.Architecture.ARM_64,
            code=code,
            handler=spec.handler,
            timeout=Duration.seconds(spec.timeout_s),
            memory_size=spec.memory_mb,
            role=role,
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
            reserved_concurrent_executions=self.reserved_concurrency,
            # Names only: the key itself is read at run time (Powertools Parameters, cached).
            environment={**common_env, **secret_env},
        )
        _acknowledge(role, "AwsSolutions-IAM5[Resource::*]", XRAY_WILDCARD_REASON)
        _acknowledge(
            fn,
            "AwsSolutions-L1",
            "Pinned to python3.13 on purpose: the bundled native wheels (pydantic-core, jiter, wrapt, "
            "pyqwest, protobuf-py-ext) are locked for CPython 3.13 aarch64 in "
            "infra/lambda-requirements.txt; move the runtime and the lock together.",
        )
        return fn


class AgentStateMachine(Construct):
    """Standard workflow from statemachine/agent.asl.json; it may invoke its own functions only."""

    def __init__(
        self, scope: Construct, construct_id: str, *, definition: str, functions: AgentFunctions,
        settings: PixieSettings | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        settings = settings or PixieSettings()
        # The file's own TimeoutSeconds, set from the deploy-time context (the local engine runs the file's).
        document = json.loads(definition)
        document["TimeoutSeconds"] = settings.run_timeout_minutes * 60
        definition = json.dumps(document, indent=2)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            # Vended-logs group names for Step Functions conventionally start with /aws/vendedlogs/.
            log_group_name=f"/aws/vendedlogs/states/{Stack.of(self).stack_name}-agent",
            retention=LOG_RETENTION,
            removal_policy=REMOVAL_POLICY,
        )
        # from_string of the file rather than from_file: from_file uploads the file as a separate S3
        # asset (DefinitionS3Location), so the template would not carry the definition that cfn-lint,
        # CDK's validation and the tests check. The file stays the single source of the definition.
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(definition),
            definition_substitutions={
                f"{name}FunctionArn": fn.function_arn for name, fn in functions.functions.items()
            },
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=getattr(sfn.LogLevel, settings.log_level),
                include_execution_data=True,  # payloads carry ids, counters and flags, never keys
            ),
            tracing_enabled=True,
        )
        if settings.log_level != "ALL":
            _acknowledge(
                self.state_machine,
                "AwsSolutions-SF1",
                "Execution logs are at ERROR by default: every failure and its cause is logged, while prompts "
                "and model text (ALL logs state inputs and outputs) stay out of CloudWatch; -c pixie:logLevel=ALL "
                "turns full logging on for debugging.",
            )
        # The definition calls lambda:invoke with the unqualified ARNs: grant exactly those (CDK's
        # grant_invoke would also add "<arn>:*" for every version and alias).
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[fn.function_arn for fn in functions.functions.values()],
            )
        )
        _acknowledge(
            self.state_machine,
            "AwsSolutions-IAM5[Resource::*]",
            "Log delivery for Step Functions (logs:CreateLogDelivery, GetLogDelivery, "
            "UpdateLogDelivery, DeleteLogDelivery, ListLogDeliveries, PutResourcePolicy, "
            "DescribeResourcePolicies, DescribeLogGroups) and X-Ray tracing "
            "(xray:PutTraceSegments, PutTelemetryRecords, GetSamplingRules, GetSamplingTargets) "
            "do not support resource-level permissions; AWS documents Resource '*' for both.",
        )


def dead_letter_queue(scope: Construct, construct_id: str, holds: str) -> sqs.Queue:
    """An encrypted, SSL-only queue kept 14 days. `holds` says what ends up in it."""
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
        removal_policy=REMOVAL_POLICY,
    )
    _acknowledge(
        queue,
        "AwsSolutions-SQS3",
        f"This queue is itself a dead-letter queue ({holds}); a dead-letter queue for it would have no use.",
    )
    return queue


class HelloWorldTrigger(Construct):
    """`test/hello.world` events on the default bus start an execution with the event as input."""

    def __init__(
        self, scope: Construct, construct_id: str, *, state_machine: sfn.IStateMachine, senders: tuple[str, ...] = ()
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # pixie's own bus: a run starts paid model calls that execute model-written code, so only
        # the principals named at deploy time (this account by default) may put events on it. On the
        # default bus anyone with events:PutEvents on it could.
        self.bus = events.EventBus(self, "Bus", event_bus_name=f"{stack.stack_name}-runs")
        principals = [
            iam.AccountPrincipal(sender) if sender.isdigit() else iam.ArnPrincipal(sender) for sender in senders
        ] or [iam.AccountRootPrincipal()]
        self.bus.add_to_resource_policy(
            iam.PolicyStatement(
                sid="PixieSenders", actions=["events:PutEvents"], principals=principals, resources=[self.bus.event_bus_arn]
            )
        )
        self.dead_letter_queue = dead_letter_queue(
            self, "DeadLetterQueue", "events that could not start an execution"
        )
        # A fixed name, so the role below can name the rule's ARN without a circular reference.
        rule_name = f"{stack.stack_name}-start-agent"[:64]
        rule_arn = stack.format_arn(service="events", resource="rule", resource_name=rule_name)
        # Only this rule, in this account, may use the role (confused-deputy protection).
        self.role = iam.Role(
            self,
            "StartExecutionRole",
            description="pixie: the trigger rule starts the agent's executions",
            assumed_by=iam.ServicePrincipal(
                "events.amazonaws.com",
                conditions={
                    "ArnEquals": {"aws:SourceArn": rule_arn},
                    "StringEquals": {"aws:SourceAccount": stack.account},
                },
            ),
        )
        self.rule = events.Rule(
            self,
            "Rule",
            rule_name=rule_name,
            description=f"pixie: start the agent for every {DETAIL_TYPE} event on pixie's bus",
            event_bus=self.bus,
            event_pattern=events.EventPattern(detail_type=[DETAIL_TYPE]),
        )
        self.rule.add_target(
            targets.SfnStateMachine(
                state_machine,
                role=self.role,
                dead_letter_queue=self.dead_letter_queue,
                retry_attempts=EVENT_RETRY_ATTEMPTS,
                max_event_age=EVENT_MAX_AGE,
            )
        )


class CleanupOnBadEnding(Construct):
    """Step Functions sends an "Execution Status Change" event for every ending. A Catch cannot see
    an ABORTED or TIMED_OUT execution, nor `States.Runtime` / `States.DataLimitExceeded`; this rule
    can, and gives those endings to the same cleanup function the workflow calls (it accepts both
    payloads and is idempotent, so the usual FAILED case is cleaned twice, harmlessly)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, state_machine: sfn.IStateMachine, cleanup: lambda_.Function
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = dead_letter_queue(
            self, "DeadLetterQueue", "status-change events the cleanup function could not take or handle"
        )
        self.rule = events.Rule(
            self,
            "Rule",
            description="pixie: release the sandbox of every failed, timed-out or aborted execution",
            event_pattern=events.EventPattern(
                source=[STATUS_CHANGE_SOURCE],
                detail_type=[STATUS_CHANGE_DETAIL_TYPE],
                detail={"status": list(BAD_ENDINGS), "stateMachineArn": [state_machine.state_machine_arn]},
            ),
        )
        self.rule.add_target(
            targets.LambdaFunction(
                cleanup,
                dead_letter_queue=self.dead_letter_queue,  # delivery failures (permissions, throttling)
                retry_attempts=EVENT_RETRY_ATTEMPTS,
                max_event_age=EVENT_MAX_AGE,
            )
        )
        # EventBridge invokes asynchronously: Lambda retries a failed cleanup twice, then parks the
        # event in the same queue, where the alarm sees it (a sandbox may still be running).
        cleanup.configure_async_invoke(
            retry_attempts=2,
            max_event_age=Duration.hours(6),
            on_failure=destinations.SqsDestination(self.dead_letter_queue),
        )


PIXIE_NAMESPACE = "Pixie"  # POWERTOOLS_METRICS_NAMESPACE
PIXIE_DIMENSIONS = {"service": "pixie"}  # Powertools adds the service as a dimension
TOOL_CALL_DIMENSIONS = ("service", "tool", "outcome")  # ToolCalls' dimensions (lambdas/handlers/run_tool.py)
ALARM_PERIOD = Duration.minutes(5)
# Lambda errors include ones the workflow retries successfully (a 429 from the model): alarm on
# a burst, not on one. Failed executions alarm on the first one.
LAMBDA_ERRORS_THRESHOLD = 5


class Monitoring(Construct):
    """Alarms on what needs a person, optionally sent to an SNS topic, and one dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine: sfn.StateMachine,
        functions: dict[str, lambda_.Function],
        dead_letter_queues: dict[str, sqs.IQueue],
        alarm_topic_arn: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarms: list[cloudwatch.Alarm] = []
        for name, queue in dead_letter_queues.items():
            self._alarm(
                f"{name}DeadLetters",
                queue.metric_approximate_number_of_messages_visible(period=ALARM_PERIOD, statistic="Maximum"),
                1,
                f"pixie: events in the {name} dead-letter queue (see its messages' ERROR_CODE and ERROR_MESSAGE)",
            )
            # An alarm notifies when it changes state, so a backlog that stays would hide every later
            # dead letter: this one goes back to OK after each quiet period and fires for each new batch.
            self._alarm(
                f"{name}NewDeadLetters",
                queue.metric_number_of_messages_sent(period=ALARM_PERIOD, statistic="Sum"),
                1,
                f"pixie: new events reached the {name} dead-letter queue in the last 5 minutes",
            )
        # Faults only: a run that used its turns or was stopped by its user is an outcome, not a fault
        # (those are on the dashboard). Published by the cleanup function (lambdas/logic/steps/cleanup_sandbox.py).
        self._alarm(
            "RunFaults",
            cloudwatch.Metric(
                namespace=PIXIE_NAMESPACE, metric_name="RunFaults", dimensions_map=PIXIE_DIMENSIONS,
                statistic="Sum", period=ALARM_PERIOD,
            ),
            1,
            "pixie: a run failed for a reason that needs a look (pixie show RUN_ID --aws shows why)",
        )
        self._alarm(
            "ExecutionsTimedOut",
            state_machine.metric_timed_out(period=ALARM_PERIOD, statistic="Sum"),
            1,
            "pixie: a run timed out",
        )
        ids = {name: f"f{i}" for i, name in enumerate(functions)}
        for what, threshold in (("Throttles", 1), ("Errors", LAMBDA_ERRORS_THRESHOLD)):
            metrics = {
                ids[name]: fn.metric(what, period=ALARM_PERIOD, statistic="Sum") for name, fn in functions.items()
            }
            self._alarm(
                f"Lambda{what}",
                cloudwatch.MathExpression(
                    expression=" + ".join(f"FILL({i}, 0)" for i in metrics),
                    using_metrics=metrics,
                    period=ALARM_PERIOD,
                    label=f"Lambda {what.lower()}, all pixie functions",
                ),
                threshold,
                f"pixie: {threshold}+ Lambda {what.lower()} in 5 minutes across the step functions "
                f"({', '.join(functions)}); the dashboard breaks them down",
            )
        if alarm_topic_arn:
            topic = sns.Topic.from_topic_arn(self, "AlarmTopic", alarm_topic_arn)
            for alarm in self.alarms:
                alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
        self.dashboard = self._dashboard(state_machine, functions, dead_letter_queues)

    def _alarm(self, construct_id: str, metric: cloudwatch.IMetric, threshold: float, description: str) -> None:
        self.alarms.append(
            cloudwatch.Alarm(
                self,
                construct_id,
                metric=metric,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
        )

    def _dashboard(
        self,
        state_machine: sfn.StateMachine,
        functions: dict[str, lambda_.Function],
        dead_letter_queues: dict[str, sqs.IQueue],
    ) -> cloudwatch.Dashboard:
        def pixie(name: str, statistic: str = "Sum", label: str | None = None) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=PIXIE_NAMESPACE,
                metric_name=name,
                dimensions_map=PIXIE_DIMENSIONS,
                statistic=statistic,
                period=ALARM_PERIOD,
                label=label or name,
            )

        def graph(title: str, left: list[cloudwatch.IMetric], width: int = 8) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=left, width=width, height=6)

        dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{Stack.of(self).stack_name}-runs", period_override=cloudwatch.PeriodOverride.AUTO
        )
        dashboard.add_widgets(
            graph(
                "Runs",
                [
                    state_machine.metric_started(statistic="Sum", label="started"),
                    state_machine.metric_succeeded(statistic="Sum", label="succeeded"),
                    pixie("DuplicateEvents", label="duplicate events (no run)"),
                ],
            ),
            graph(
                "Failures",
                [
                    state_machine.metric_failed(statistic="Sum", label="failed"),
                    state_machine.metric_timed_out(statistic="Sum", label="timed out"),
                    state_machine.metric_aborted(statistic="Sum", label="aborted"),
                    pixie("SandboxesReleasedAfterExecutionEnded", label="sandboxes released after the end"),
                ],
            ),
            graph(
                "Run duration (s)",
                [
                    state_machine.metric_time(statistic="p50", label="p50").with_(period=ALARM_PERIOD),
                    state_machine.metric_time(statistic="p90", label="p90").with_(period=ALARM_PERIOD),
                ],
            ),
        )
        dashboard.add_widgets(
            graph(
                "Turns",
                [
                    functions["AgentTurn"].metric_invocations(statistic="Sum", label="model turns")
                    if "AgentTurn" in functions
                    else pixie("IterationsPerRun"),
                    pixie("IterationsPerRun", statistic="Average", label="turns per successful run"),
                ],
            ),
            graph("Model tokens", [pixie("ModelInputTokens", label="input"), pixie("ModelOutputTokens", label="output")]),
            graph(
                "Tool calls",
                # Published per tool and outcome (lambdas/handlers/run_tool.py), with the service:
                # a query must name all three dimensions, or it finds nothing.
                [
                    cloudwatch.MathExpression(
                        expression=(
                            f"SEARCH('{{{PIXIE_NAMESPACE},{','.join(TOOL_CALL_DIMENSIONS)}}} "
                            f"MetricName=\"ToolCalls\"', 'Sum', {int(ALARM_PERIOD.to_seconds())})"
                        ),
                        using_metrics={},
                        label="tool calls by tool and outcome",
                        period=ALARM_PERIOD,
                    )
                ],
            ),
        )
        dashboard.add_widgets(
            graph(
                "Lambda duration p90 (ms)",
                [fn.metric_duration(statistic="p90", label=name) for name, fn in functions.items()],
            ),
            graph("Lambda errors", [fn.metric_errors(statistic="Sum", label=name) for name, fn in functions.items()]),
            graph(
                "Lambda throttles and dead letters",
                [fn.metric_throttles(statistic="Sum", label=name) for name, fn in functions.items()]
                + [
                    q.metric_approximate_number_of_messages_visible(statistic="Maximum", label=f"{name} DLQ")
                    for name, q in dead_letter_queues.items()
                ],
            ),
        )
        dashboard.add_widgets(cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24, height=3))
        return dashboard


class PixieStack(Stack):
    def __init__(self, scope: Construct, construct_id: str = "PixieStack", **kwargs: object) -> None:
        super().__init__(
            scope,
            construct_id,
            description="pixie: a durable coding agent on Step Functions (EventBridge test/hello.world trigger)",
            **kwargs,  # type: ignore[arg-type]
        )
        settings = PixieSettings.from_context(self)
        self.secrets = ApiKeySecrets(self, "Secrets", openai=settings.model.startswith("openai:"))
        self.table = NetworkStateTable(self, "NetworkState").table
        definition = ASL_PATH.read_text(encoding="utf-8")
        self.functions = AgentFunctions(
            self,
            "Functions",
            names=asl_function_names(definition),
            table=self.table,
            secrets=self.secrets,
            settings=settings,
        )
        agent = AgentStateMachine(self, "Agent", definition=definition, functions=self.functions, settings=settings)
        self.state_machine = agent.state_machine
        trigger = HelloWorldTrigger(self, "Trigger", state_machine=self.state_machine, senders=settings.senders)
        cleanup = CleanupOnBadEnding(
            self, "CleanupOnBadEnding", state_machine=self.state_machine, cleanup=self.functions.functions["CleanupSandbox"]
        )
        monitoring = Monitoring(
            self,
            "Monitoring",
            state_machine=self.state_machine,
            functions=self.functions.functions,
            dead_letter_queues={"Trigger": trigger.dead_letter_queue, "Cleanup": cleanup.dead_letter_queue},
            alarm_topic_arn=settings.alarm_topic_arn,
        )

        outputs = {
            "StateMachineArn": (self.state_machine.state_machine_arn, "The agent's state machine"),
            "StateMachineLogGroupName": (agent.log_group.log_group_name, f"Execution logs (level {settings.log_level})"),
            "TableName": (self.table.table_name, "DynamoDB table with each run's network state"),
            "OpenAISecretName": (self.secrets.openai_name, "Put the OpenAI API key here"),
            "E2BSecretName": (self.secrets.e2b_name, "Put the E2B API key here"),
            "EventBusName": (trigger.bus.event_bus_name, "pixie's bus: the trigger listens here (pixie send puts events here)"),
            "EventDetailType": (DETAIL_TYPE, "detail-type that starts a run"),
            "EventRuleName": (trigger.rule.rule_name, "The EventBridge rule"),
            "DeadLetterQueueUrl": (trigger.dead_letter_queue.queue_url, "Events that could not start a run"),
            "CleanupRuleName": (cleanup.rule.rule_name, "Status changes (failed, timed out, aborted) -> cleanup"),
            "CleanupDeadLetterQueueUrl": (cleanup.dead_letter_queue.queue_url, "Cleanups that could not run"),
            "DashboardName": (monitoring.dashboard.dashboard_name, "CloudWatch dashboard of runs"),
        }
        if self.secrets.openai is None:
            del outputs["OpenAISecretName"]
        if settings.retain:
            self._retain_data()
        for output_id, (value, description) in outputs.items():
            CfnOutput(self, output_id, value=value, description=description)

    def _retain_data(self) -> None:
        """-c pixie:retain=true: the table (with deletion protection; point-in-time recovery is
        always on), the secrets and every log group outlive `cdk destroy`."""
        for construct in self.node.find_all():
            if isinstance(construct, (dynamodb.CfnTable, secretsmanager.CfnSecret, logs.CfnLogGroup)):
                construct.apply_removal_policy(RemovalPolicy.RETAIN)
            if isinstance(construct, dynamodb.CfnTable):
                construct.deletion_protection_enabled = True
