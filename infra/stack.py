"""PixieStack: EventBridge trigger -> Step Functions state machine -> step Lambdas, DynamoDB, secrets.

Small constructs, one per concern:
- `ApiKeySecrets`   the OpenAI and E2B API keys (created empty; the user puts the values).
- `NetworkStateTable` the run's network state (conversation, files, meta), one table.
- `AgentFunctions`  the step Lambdas (CreateSandbox, AgentTurn, RunTool, GetSandboxUrl and any other
                    the definition calls), each with its own role, log group and only its own secret.
- `AgentStateMachine` the definition from statemachine/agent.asl.json, logged (ALL) and traced.
- `HelloWorldTrigger` the `test/hello.world` rule on the default bus, with retries and a DLQ.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aws_cdk import Acknowledgment, CfnOutput, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.bedrock import bedrock_model_id, grant_invoke_model
from infra.bundling import REPO_ROOT, lambda_code
from lambdas.logic.config import DETAIL_TYPE

ASL_PATH = REPO_ROOT / "statemachine" / "agent.asl.json"
LOG_RETENTION = logs.RetentionDays.ONE_MONTH

# Removal policy for everything stateful. pixie is a developer tool: `cdk destroy` should leave
# nothing behind. Run data expires anyway (TTL), and a table deleted with point-in-time recovery on
# gets a system backup kept for 35 days. Set RETAIN here to keep the data past `cdk destroy`.
REMOVAL_POLICY = RemovalPolicy.DESTROY


@dataclass(frozen=True)
class PixieSettings:
    """Deploy-time settings: `cdk deploy -c pixie:model=openai:gpt-4.1-mini`, etc."""

    model: str = "openai:gpt-4.1"
    template: str = "pixie"
    max_iterations: int = 15
    command_timeout_s: int = 120
    sandbox_timeout_s: int = 3600

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
        )
        settings.check()
        return settings

    def check(self) -> None:
        """The same ranges the functions enforce (lambdas/logic/config.py), at synth time."""
        from lambdas.logic.config import Settings

        for key, env_name, value in (
            ("maxIterations", "PIXIE_MAX_ITERATIONS", self.max_iterations),
            ("commandTimeout", "PIXIE_COMMAND_TIMEOUT", self.command_timeout_s),
            ("sandboxTimeout", "PIXIE_SANDBOX_TIMEOUT", self.sandbox_timeout_s),
        ):
            try:
                Settings.from_env({env_name: str(value)})
            except ValueError as exc:
                raise ValueError(f"context pixie:{key}: {str(exc).replace(env_name, 'the value')}") from None


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
            1024,
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
        "GetSandboxUrl": FunctionSpec(
            "lambdas.handlers.get_sandbox_url.handler",
            "pixie: the sandbox's preview URL and the run's result",
            60,
            512,
            "e2b",
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
            "POWERTOOLS_SERVICE_NAME": "pixie",
            "POWERTOOLS_METRICS_NAMESPACE": "Pixie",
        }
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
        table.grant_read_write_data(role)  # network state + Powertools idempotency records
        secret_env: dict[str, str] = {}
        if spec.secret is not None:
            secret, secret_name, secret_env_var = secrets.by_key(spec.secret)
            secret.grant_read(role)
            secret_env = {secret_env_var: secret_name}
        model_id = bedrock_model_id(common_env["PIXIE_MODEL"])
        if name == "AgentTurn" and model_id:
            grant_invoke_model(role, model_id)

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
        self, scope: Construct, construct_id: str, *, definition: str, functions: AgentFunctions
    ) -> None:
        super().__init__(scope, construct_id)
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
                level=sfn.LogLevel.ALL,
                include_execution_data=True,  # payloads carry ids, counters and flags, never keys
            ),
            tracing_enabled=True,
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


class HelloWorldTrigger(Construct):
    """`test/hello.world` events on the default bus start an execution with the event as input."""

    def __init__(self, scope: Construct, construct_id: str, *, state_machine: sfn.IStateMachine) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=REMOVAL_POLICY,
        )
        _acknowledge(
            self.dead_letter_queue,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter queue of the EventBridge rule's target (events "
            "that could not start an execution); a dead-letter queue for it would have no use.",
        )
        self.rule = events.Rule(
            self,
            "Rule",
            description=f"pixie: start the agent for every {DETAIL_TYPE} event on the default bus",
            event_pattern=events.EventPattern(detail_type=[DETAIL_TYPE]),
        )
        self.rule.add_target(
            targets.SfnStateMachine(
                state_machine,
                dead_letter_queue=self.dead_letter_queue,
                retry_attempts=8,
                max_event_age=Duration.hours(2),
            )
        )


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
        agent = AgentStateMachine(self, "Agent", definition=definition, functions=self.functions)
        self.state_machine = agent.state_machine
        trigger = HelloWorldTrigger(self, "Trigger", state_machine=self.state_machine)

        outputs = {
            "StateMachineArn": (self.state_machine.state_machine_arn, "The agent's state machine"),
            "StateMachineLogGroupName": (agent.log_group.log_group_name, "Execution logs (level ALL)"),
            "TableName": (self.table.table_name, "DynamoDB table with each run's network state"),
            "OpenAISecretName": (self.secrets.openai_name, "Put the OpenAI API key here"),
            "E2BSecretName": (self.secrets.e2b_name, "Put the E2B API key here"),
            "EventBusName": ("default", "Bus the trigger listens on"),
            "EventDetailType": (DETAIL_TYPE, "detail-type that starts a run"),
            "EventRuleName": (trigger.rule.rule_name, "The EventBridge rule"),
            "DeadLetterQueueUrl": (trigger.dead_letter_queue.queue_url, "Events that could not start a run"),
        }
        if self.secrets.openai is None:
            del outputs["OpenAISecretName"]
        for output_id, (value, description) in outputs.items():
            CfnOutput(self, output_id, value=value, description=description)

