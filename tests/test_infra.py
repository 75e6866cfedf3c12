"""The CDK stack (infra/): assertions on the synthesized template, cdk-nag, cfn-lint.

The app is synthesized once for the module with bundling skipped (no pip, no network); a real
`cdk synth` bundles the Lambda code with infra/bundling.py.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from conftest import skip_or_fail_in_ci

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")

try:
    import aws_cdk
except ImportError:
    skip_or_fail_in_ci("the deploy extra (aws-cdk-lib) is not installed", allow_module_level=True)

from aws_cdk import App, CopyOptions, DockerImage, FileSystem  # noqa: E402
from aws_cdk.assertions import Annotations, Match, Template  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra import bundling  # noqa: E402
from infra.app import STACK_NAME, build  # noqa: E402
from infra.stack import (  # noqa: E402
    ASL_PATH,
    AgentFunctions,
    ApiKeySecrets,
    NetworkStateTable,
    PixieSettings,
    asl_function_names,
    function_specs,
)

REPO = Path(__file__).resolve().parent.parent

HANDLERS = {
    "CreateSandbox": "lambdas.handlers.create_sandbox.handler",
    "AgentTurn": "lambdas.handlers.agent_turn.handler",
    "RunTool": "lambdas.handlers.run_tool.handler",
    "CheckResult": "lambdas.handlers.check_result.handler",
    "GetSandboxUrl": "lambdas.handlers.get_sandbox_url.handler",
}
REQUIRED_STATES = {"CreateSandbox", "AgentTurn", "Router", "RunTools", "GetSandboxUrl"}
OPENAI_SECRET = f"{STACK_NAME}/openai-api-key"
E2B_SECRET = f"{STACK_NAME}/e2b-api-key"
COMMON_ENV = {
    "PIXIE_MODEL": "openai:gpt-4.1",
    "PIXIE_SANDBOX": "e2b",
    "PIXIE_TEMPLATE": "pixie",
    "PIXIE_MAX_ITERATIONS": "15",
    "PIXIE_COMMAND_TIMEOUT": "120",
    "PIXIE_SANDBOX_TIMEOUT": "3600",
    "POWERTOOLS_SERVICE_NAME": "pixie",
    "POWERTOOLS_METRICS_NAMESPACE": "Pixie",
}
# Actions AWS only grants on Resource "*" (X-Ray, Step Functions log delivery); nothing else may use it.
WILDCARD_ONLY_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}


def cdk_context() -> dict[str, Any]:
    """cdk.json's feature flags (as `cdk synth` uses them), with bundling skipped."""
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    return {**context, "aws:cdk:bundling-stacks": []}


@pytest.fixture(scope="module")
def synth() -> dict[str, Any]:
    app = App(context=cdk_context())
    stack = build(app)
    template = Template.from_stack(stack)  # also runs the registered cdk-nag plugin
    return {"app": app, "stack": stack, "template": template, "json": template.to_json()}


@pytest.fixture(scope="module")
def template(synth) -> Template:
    return synth["template"]


@pytest.fixture(scope="module")
def resources(synth) -> dict[str, dict]:
    return synth["json"]["Resources"]


# --- helpers ---------------------------------------------------------------------------------


def of_type(resources: dict[str, dict], cfn_type: str) -> dict[str, dict]:
    return {lid: r for lid, r in resources.items() if r["Type"] == cfn_type}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def functions_by_step(resources: dict[str, dict]) -> dict[str, tuple[str, dict]]:
    """Step name (from the handler module) -> (logical id, properties)."""
    out = {}
    for lid, r in of_type(resources, "AWS::Lambda::Function").items():
        handler = r["Properties"]["Handler"]
        module = handler.split(".")[-2]
        step = "".join(part.capitalize() for part in module.split("_"))  # get_sandbox_url -> GetSandboxUrl
        out[step] = (lid, r["Properties"])
    return out


def policies_of_role(resources: dict[str, dict], role_lid: str) -> list[dict]:
    """All statements attached to a role: inline Policies and AWS::IAM::Policy resources."""
    statements = []
    role = resources[role_lid]["Properties"]
    for policy in role.get("Policies", []):
        statements += policy["PolicyDocument"]["Statement"]
    for r in of_type(resources, "AWS::IAM::Policy").values():
        if {"Ref": role_lid} in r["Properties"]["Roles"]:
            statements += r["Properties"]["PolicyDocument"]["Statement"]
    return statements


def role_of_function(props: dict) -> str:
    return props["Role"]["Fn::GetAtt"][0]


def resolved_definition(props: dict) -> dict:
    """DefinitionString with DefinitionSubstitutions (and any Fn::Join parts) resolved: each
    intrinsic becomes a readable marker such as "GetAtt:FunctionsAgentTurnX.Arn"."""

    def marker(value: Any) -> str:
        if isinstance(value, str):
            return value
        if "Fn::GetAtt" in value:
            return "GetAtt:" + ".".join(value["Fn::GetAtt"])
        if "Ref" in value:
            return "Ref:" + value["Ref"]
        if "Fn::Join" in value:
            sep, parts = value["Fn::Join"]
            return sep.join(marker(p) for p in parts)
        raise AssertionError(f"unexpected intrinsic in the definition: {value}")

    body = marker(props["DefinitionString"])
    subs = {k: marker(v) for k, v in props.get("DefinitionSubstitutions", {}).items()}
    unresolved = set(re.findall(r"\$\{(\w+)\}", body)) - set(subs)
    assert not unresolved, f"placeholders without a substitution: {unresolved}"
    body = re.sub(r"\$\{(\w+)\}", lambda m: subs[m.group(1)], body)
    return json.loads(body)


def task_function_names(states: dict[str, dict]) -> dict[str, str]:
    """State name -> FunctionName of every lambda:invoke Task, nested Map/Parallel states included."""
    found = {}
    for name, state in states.items():
        # Request-response and callback (.waitForTaskToken) invocations alike.
        if state["Type"] == "Task" and state["Resource"] in ("arn:aws:states:::lambda:invoke",
                                                             "arn:aws:states:::lambda:invoke.waitForTaskToken"):
            found[name] = state["Parameters"]["FunctionName"]
        for sub in (state.get("ItemProcessor"), state.get("Iterator"), *state.get("Branches", [])):
            if sub:
                found.update(task_function_names(sub["States"]))
    return found


def rule_by_detail_type(resources: dict[str, dict], detail_type: str) -> tuple[str, dict]:
    (found,) = [
        (lid, r)
        for lid, r in of_type(resources, "AWS::Events::Rule").items()
        if r["Properties"]["EventPattern"].get("detail-type") == [detail_type]
    ]
    return found


def trigger_rule(resources: dict[str, dict]) -> tuple[str, dict]:
    return rule_by_detail_type(resources, "test/hello.world")


STATUS_CHANGE = "Step Functions Execution Status Change"


# --- trigger -----------------------------------------------------------------------------------


def test_rule_matches_hello_world_on_pixies_own_bus_which_only_this_account_may_send_to(template: Template, resources):
    rules = of_type(resources, "AWS::Events::Rule")
    assert len(rules) == 2  # the trigger, and the cleanup of bad endings
    _, rule = trigger_rule(resources)
    assert rule["Properties"]["EventPattern"] == {"detail-type": ["test/hello.world"]}
    ((bus_lid, bus),) = of_type(resources, "AWS::Events::EventBus").items()
    assert rule["Properties"]["EventBusName"] == {"Ref": bus_lid}
    assert bus["Properties"]["Name"] == f"{STACK_NAME}-runs"
    policies = [p["Properties"] for p in of_type(resources, "AWS::Events::EventBusPolicy").values()]
    (statement,) = [p["Statement"] for p in policies]
    assert statement["Action"] == "events:PutEvents" and statement["Effect"] == "Allow"
    assert "root" in json.dumps(statement["Principal"])  # this account (its root principal), no one else
    assert rule["Properties"]["State"] == "ENABLED"


def test_rule_target_starts_the_state_machine_with_the_event_and_has_dlq_and_retries(resources):
    _, rule = trigger_rule(resources)
    (sm_lid,) = of_type(resources, "AWS::StepFunctions::StateMachine")
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Ref": sm_lid}
    assert not {"Input", "InputPath", "InputTransformer"} & set(target)  # the whole event is the input
    queue_lid = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    assert resources[queue_lid]["Type"] == "AWS::SQS::Queue"
    retry = target["RetryPolicy"]
    assert 1 <= retry["MaximumRetryAttempts"] <= 185
    assert 60 <= retry["MaximumEventAgeInSeconds"] <= 86400
    # `pixie send` waits exactly as long as this (lambdas/logic/config.py holds the one value).
    from lambdas.logic.config import TRIGGER_MAX_EVENT_AGE_S

    assert retry["MaximumEventAgeInSeconds"] == TRIGGER_MAX_EVENT_AGE_S

    # The target's role may start this state machine and nothing else.
    role_lid = target["RoleArn"]["Fn::GetAtt"][0]
    statements = policies_of_role(resources, role_lid)
    assert statements == [{"Action": "states:StartExecution", "Effect": "Allow", "Resource": {"Ref": sm_lid}}]


@pytest.mark.parametrize("detail_type", ["test/hello.world", STATUS_CHANGE])
def test_dead_letter_queues_are_encrypted_ssl_only_and_writable_by_their_rule_only(resources, detail_type):
    rule_lid, rule = rule_by_detail_type(resources, detail_type)
    (target,) = rule["Properties"]["Targets"]
    queue_lid = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    queue = resources[queue_lid]
    assert queue["Properties"].get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue["Properties"]
    (policy,) = [
        p for p in of_type(resources, "AWS::SQS::QueuePolicy").values() if {"Ref": queue_lid} in p["Properties"]["Queues"]
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    deny = [s for s in statements if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_lid, "Arn"]}}}


# --- state machine -----------------------------------------------------------------------------


def test_one_standard_state_machine_logged_on_errors_and_traced(template: Template, resources):
    machines = of_type(resources, "AWS::StepFunctions::StateMachine")
    assert len(machines) == 1
    (props,) = (m["Properties"] for m in machines.values())
    assert props["StateMachineType"] == "STANDARD"
    assert props["TracingConfiguration"] == {"Enabled": True}
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == "ERROR"  # prompts stay out of the logs unless pixie:logLevel=ALL
    (destination,) = logging["Destinations"]
    log_group_lid = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    assert resources[log_group_lid]["Type"] == "AWS::Logs::LogGroup"
    assert resources[log_group_lid]["Properties"]["RetentionInDays"] > 0


def test_definition_is_the_asl_file_and_calls_the_step_functions_by_arn(resources):
    (props,) = (m["Properties"] for m in of_type(resources, "AWS::StepFunctions::StateMachine").values())
    definition = resolved_definition(props)
    asl = json.loads(ASL_PATH.read_text())
    assert REQUIRED_STATES <= set(definition["States"])
    assert definition["States"].keys() == asl["States"].keys()
    assert definition["StartAt"] == "CreateSandbox"

    lambdas = of_type(resources, "AWS::Lambda::Function")
    calls = task_function_names(definition["States"])
    called = {}
    for state, function_name in calls.items():
        match = re.fullmatch(r"GetAtt:(\w+)\.Arn", function_name)
        assert match and match.group(1) in lambdas, (state, function_name)
        called[state] = match.group(1)
    for state, handler in HANDLERS.items():
        assert lambdas[called[state]]["Properties"]["Handler"] == handler, state
    # The approval wait's function saves the token and returns: a short timeout, no API key.
    approval = lambdas[called["AwaitApproval"]]["Properties"]
    assert approval["Handler"] == "lambdas.handlers.request_approval.handler" and approval["Timeout"] == 30
    # One function per step the definition calls, no unused ones.
    assert set(called.values()) == set(lambdas)

    # Apart from the ARNs, the deployed definition is the file as written; each ${<Step>FunctionArn}
    # became the ARN of the function whose handler is lambdas.handlers.<step>.handler.
    by_handler = {r["Properties"]["Handler"]: lid for lid, r in lambdas.items()}

    def arn_of(step: str) -> str:
        module = re.sub(r"(?<!^)(?=[A-Z])", "_", step).lower()
        return f"GetAtt:{by_handler[f'lambdas.handlers.{module}.handler']}.Arn"

    expected = re.sub(r"\$\{(\w+)FunctionArn\}", lambda m: arn_of(m.group(1)), ASL_PATH.read_text())
    assert definition == json.loads(expected)


def test_state_machine_may_invoke_exactly_its_functions(resources):
    (sm,) = of_type(resources, "AWS::StepFunctions::StateMachine").values()
    role_lid = sm["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    statements = policies_of_role(resources, role_lid)
    invoke = [s for s in statements if "lambda:InvokeFunction" in as_list(s["Action"])]
    assert len(invoke) == 1
    expected = [{"Fn::GetAtt": [lid, "Arn"]} for lid in of_type(resources, "AWS::Lambda::Function")]
    assert sorted(map(json.dumps, as_list(invoke[0]["Resource"]))) == sorted(map(json.dumps, expected))
    assert as_list(invoke[0]["Action"]) == ["lambda:InvokeFunction"]


# --- functions ---------------------------------------------------------------------------------


def test_functions_are_python_3_13_arm64_traced_with_their_own_log_groups(resources):
    functions = functions_by_step(resources)
    assert set(HANDLERS) <= set(functions)
    for step, (lid, props) in functions.items():
        assert props["Runtime"] == "python3.13", step
        assert props["Architectures"] == ["arm64"], step
        assert props["TracingConfig"] == {"Mode": "Active"}, step
        log_group_lid = props["LoggingConfig"]["LogGroup"]["Ref"]
        assert resources[log_group_lid]["Properties"]["RetentionInDays"] > 0, step
    assert functions["CreateSandbox"][1]["Handler"] == HANDLERS["CreateSandbox"]
    log_groups = [p["LoggingConfig"]["LogGroup"]["Ref"] for _, p in functions.values()]
    assert len(set(log_groups)) == len(log_groups)


def test_function_timeouts_fit_the_job(resources):
    functions = functions_by_step(resources)
    timeout = {step: props["Timeout"] for step, (_, props) in functions.items()}
    assert timeout["AgentTurn"] >= 300  # an LLM turn can take minutes
    assert timeout["RunTool"] > int(COMMON_ENV["PIXIE_COMMAND_TIMEOUT"])  # outlives the command
    assert timeout["CreateSandbox"] >= 60 and timeout["GetSandboxUrl"] >= 30
    assert all(t <= 900 for t in timeout.values())
    assert all(props["MemorySize"] >= 512 for _, props in functions.values())


def test_function_environment_names_secrets_and_holds_no_secret_values(resources):
    (table_lid,) = of_type(resources, "AWS::DynamoDB::Table")
    functions = functions_by_step(resources)
    for step, (_, props) in functions.items():
        env = props["Environment"]["Variables"]
        assert env["PIXIE_TABLE"] == {"Ref": table_lid}, step
        for name, value in COMMON_ENV.items():
            assert env[name] == value, (step, name)
        secret_vars = {k for k in env if re.search(r"KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL", k)}
        assert all(k.endswith("_SECRET_NAME") for k in secret_vars), (step, secret_vars)
        for name, value in env.items():
            if isinstance(value, str):
                assert not re.search(r"sk-[A-Za-z0-9_-]{10,}|e2b_[A-Za-z0-9]{10,}", value), (step, name)
                assert not re.fullmatch(r"[A-Za-z0-9+/=_-]{32,}", value), (step, name)
        if step == "AgentTurn":
            assert env["PIXIE_OPENAI_SECRET_NAME"] == OPENAI_SECRET
            assert "PIXIE_E2B_SECRET_NAME" not in env
        elif step == "RequestApproval":  # the table only
            assert not secret_vars, step
        else:
            assert env["PIXIE_E2B_SECRET_NAME"] == E2B_SECRET, step
            assert "PIXIE_OPENAI_SECRET_NAME" not in env, step


# --- table and secrets -------------------------------------------------------------------------


def test_table_keys_billing_ttl_pitr_and_encryption(template: Template):
    template.resource_count_is("AWS::DynamoDB::Table", 1)
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": Match.array_with(
                [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}]
            ),
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": "expiresAt", "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
        },
    )


def test_two_secrets_created_empty(resources):
    secrets = of_type(resources, "AWS::SecretsManager::Secret")
    assert sorted(s["Properties"]["Name"] for s in secrets.values()) == sorted([E2B_SECRET, OPENAI_SECRET])
    for secret in secrets.values():
        # No value in the template, not even a generated one: the user puts the API key.
        assert "SecretString" not in secret["Properties"]
        assert "GenerateSecretString" not in secret["Properties"]


def test_each_function_reads_only_its_own_secret(resources):
    secret_lid = {s["Properties"]["Name"]: lid for lid, s in of_type(resources, "AWS::SecretsManager::Secret").items()}
    for step, (_, props) in functions_by_step(resources).items():
        statements = policies_of_role(resources, role_of_function(props))
        secret_statements = [s for s in statements if any(a.startswith("secretsmanager:") for a in as_list(s["Action"]))]
        if step == "RequestApproval":  # it saves a task token in the table: no key at all
            assert secret_statements == [], step
            continue
        assert len(secret_statements) == 1, step
        (statement,) = secret_statements
        assert "secretsmanager:GetSecretValue" in as_list(statement["Action"])
        own = OPENAI_SECRET if step == "AgentTurn" else E2B_SECRET
        assert as_list(statement["Resource"]) == [{"Ref": secret_lid[own]}], step
        if step == "AgentTurn":
            assert secret_lid[E2B_SECRET] not in json.dumps(statements)


def test_function_roles_are_scoped_to_this_stack(resources):
    (table_lid,) = of_type(resources, "AWS::DynamoDB::Table")
    for step, (_, props) in functions_by_step(resources).items():
        role_lid = role_of_function(props)
        assert "ManagedPolicyArns" not in resources[role_lid]["Properties"], step
        for statement in policies_of_role(resources, role_lid):
            actions = as_list(statement["Action"])
            if any(a.startswith("dynamodb:") for a in actions):
                assert as_list(statement["Resource"]) == [{"Fn::GetAtt": [table_lid, "Arn"]}], step
            if any(a.startswith("logs:") for a in actions):
                assert as_list(statement["Resource"]) == [{"Fn::GetAtt": [props["LoggingConfig"]["LogGroup"]["Ref"], "Arn"]}]


def test_no_wildcard_resources_except_for_actions_that_require_them(resources):
    for lid, policy in of_type(resources, "AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = as_list(statement["Action"])
            assert not any("*" in a for a in actions), (lid, actions)
            wildcard = [r for r in as_list(statement["Resource"]) if isinstance(r, str) and "*" in r]
            if wildcard:
                assert set(actions) <= WILDCARD_ONLY_ACTIONS, (lid, actions, wildcard)


def test_outputs_name_what_the_cli_and_the_user_need(synth):
    outputs = synth["json"]["Outputs"]
    for key in ("StateMachineArn", "TableName", "OpenAISecretName", "E2BSecretName", "EventBusName", "EventRuleName"):
        assert key in outputs, key
    assert outputs["OpenAISecretName"]["Value"] == OPENAI_SECRET
    assert outputs["E2BSecretName"]["Value"] == E2B_SECRET
    assert outputs["EventBusName"]["Value"] == {"Ref": next(iter(of_type(synth["json"]["Resources"], "AWS::Events::EventBus")))}


# --- checks: cdk-nag, CDK annotations, cfn-lint ---------------------------------------------------


def test_cdk_nag_aws_solutions_has_no_unacknowledged_findings(synth):
    report = AwsSolutionsChecks(verbose=True).validate_scope(synth["app"])
    findings = [
        f"{v.rule_name} ({v.severity}) at {[r.construct_path for r in v.violating_resources]}: {v.description}"
        for v in report.violations
    ]
    assert findings == []
    assert report.success


def test_cdk_nag_acknowledgments_carry_reasons(resources):
    acknowledged = {}
    for lid, r in resources.items():
        for rule in r.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            acknowledged.setdefault(rule["id"], []).append(lid)
            assert len(rule["reason"]) > 40, rule  # a real reason, not a placeholder
    assert set(acknowledged) <= {
        "AwsSolutions-SMG4",  # third-party API keys: no rotation
        "AwsSolutions-IAM5[Resource::*]",  # X-Ray and log delivery
        "AwsSolutions-L1",  # runtime pinned with the wheel lock
        "AwsSolutions-SQS3",  # the DLQ itself
        "AwsSolutions-SF1",  # execution logs at ERROR by default: prompts stay out of CloudWatch
    }


def test_no_cdk_errors_or_warnings(synth):
    annotations = Annotations.from_stack(synth["stack"])
    assert annotations.find_error("*", Match.any_value()) == []
    assert annotations.find_warning("*", Match.any_value()) == []
    nag = Match.string_like_regexp("AwsSolutions-.*")
    assert annotations.find_error("*", nag) == [] and annotations.find_warning("*", nag) == []


def test_cfn_lint_finds_no_errors(synth, tmp_path_factory):
    from cfnlint.api import ManualArgs, lint_file

    path = tmp_path_factory.mktemp("cfn") / "PixieStack.template.json"
    path.write_text(json.dumps(synth["json"], indent=1))
    matches = lint_file(path, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    errors = [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.id.startswith("E")]
    assert errors == []
    # W3005 (a DependsOn already implied by a GetAtt) is how CDK writes Lambda and state machine
    # roles; any other warning is new and worth a look.
    others = [f"{m.rule.id} {m.message}" for m in matches if not m.rule.id.startswith("E") and m.rule.id != "W3005"]
    assert others == []


# --- settings, asset, bundling (no synth) ------------------------------------------------------


def test_settings_come_from_cdk_context():
    app = App(context={"pixie:model": "openai:gpt-4.1-mini", "pixie:commandTimeout": "240", "pixie:maxIterations": 20})
    settings = PixieSettings.from_context(app)
    assert settings.model == "openai:gpt-4.1-mini"
    assert settings.command_timeout_s == 240 and settings.max_iterations == 20
    assert settings.template == "pixie" and settings.sandbox_timeout_s == 3600
    assert function_specs(settings)["RunTool"].timeout_s == 420


def test_the_budget_comes_from_cdk_context_and_is_checked_at_synth():
    settings = PixieSettings.from_context(App(context={"pixie:budgetUsd": "2.5", "pixie:maxTokens": 400000}))
    assert settings.budget_usd == 2.5 and settings.max_tokens == 400_000
    assert PixieSettings.from_context(App()).budget_usd is None
    with pytest.raises(ValueError, match="pixie:budgetUsd"):
        PixieSettings.from_context(App(context={"pixie:budgetUsd": "-1"}))
    with pytest.raises(ValueError, match="price table"):
        PixieSettings.from_context(App(context={"pixie:budgetUsd": "1", "pixie:model": "openai:unpriced"}))


def test_approvals_come_from_cdk_context_and_reach_the_functions():
    from infra.stack import PixieStack

    settings = PixieSettings.from_context(App(context={"pixie:approve": "commands", "pixie:approvalTimeoutSeconds": 3600}))
    assert settings.approve == "commands" and settings.approval_timeout_s == 3600
    assert PixieSettings.from_context(App()).approve == "none"
    with pytest.raises(ValueError, match="pixie:approve"):
        PixieSettings.from_context(App(context={"pixie:approve": "some"}))
    with pytest.raises(ValueError, match="pixie:approvalTimeoutSeconds"):
        PixieSettings.from_context(App(context={"pixie:approve": "all", "pixie:approvalTimeoutSeconds": 0}))
    app = App(context={**cdk_context(), "pixie:approve": "all", "pixie:approvalTimeoutSeconds": "600"})
    functions = of_type(Template.from_stack(PixieStack(app, "ApprovingStack")).to_json()["Resources"], "AWS::Lambda::Function")
    for function in functions.values():
        env = function["Properties"]["Environment"]["Variables"]
        assert env["PIXIE_APPROVE"] == "all" and env["PIXIE_APPROVAL_TIMEOUT"] == "600"


def test_every_asl_placeholder_has_a_function_spec_and_unknown_ones_fail():
    names = asl_function_names(ASL_PATH.read_text())
    assert set(HANDLERS) <= set(names)
    assert set(names) <= set(function_specs(PixieSettings()))
    app = App(context={"aws:cdk:bundling-stacks": []})
    scope = aws_cdk.Stack(app, "Scratch")
    with pytest.raises(ValueError, match=r"\$\{NoSuchStepFunctionArn\}"):
        AgentFunctions(
            scope,
            "Functions",
            names=["NoSuchStep"],
            table=NetworkStateTable(scope, "Table").table,
            secrets=ApiKeySecrets(scope, "Secrets"),
            settings=PixieSettings(),
        )


def test_asset_fingerprint_covers_only_the_lambda_package_and_the_bundler(tmp_path):
    out = tmp_path / "asset"
    FileSystem.copy_directory(str(REPO), str(out), CopyOptions(exclude=bundling.ASSET_EXCLUDE))
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert "lambdas/__init__.py" in files and "lambdas/handlers/agent_turn.py" in files
    assert {f for f in files if not f.startswith("lambdas/")} == {
        "infra/lambda-requirements.txt",
        "infra/lambda_deps.py",
        "infra/bundling.py",
    }
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)


def test_lock_file_pins_every_wheel_with_a_hash():
    lines = bundling.REQUIREMENTS.read_text().replace("\\\n", " ").splitlines()
    reqs = [line.split() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    pins = {r[0].split("==")[0]: r[0].split("==")[1] for r in reqs}
    assert all(len(r) >= 2 and r[1].startswith("--hash=sha256:") for r in reqs)
    assert pins["aws-lambda-powertools"] == "3.37.0"
    assert pins["openai"] == "3.57.0"
    assert pins["e2b"] == "2.63.0"
    assert pins["pyqwest"] >= "0.12"  # e2b 2.63's; its aarch64 wheels are manylinux_2_28 only
    assert "botocore" not in pins and "boto3" not in pins  # the Lambda runtime provides them


def test_pyproject_and_the_lock_file_agree_on_every_shared_package(tmp_path, monkeypatch):
    from infra import lambda_deps

    project, locked = lambda_deps.pyproject_pins(), lambda_deps.locked_pins()
    shared = set(project) & set(locked)
    assert {"aws-lambda-powertools", "openai", "e2b"} <= shared
    assert {name: project[name] for name in shared} == {name: locked[name][0] for name in shared}

    # ... and the check notices a disagreement.
    drifted = tmp_path / "pyproject.toml"
    drifted.write_text(lambda_deps.PYPROJECT.read_text().replace('"e2b==2.63.0"', '"e2b==2.64.0"'))
    monkeypatch.setattr(lambda_deps, "PYPROJECT", drifted)
    assert lambda_deps.pyproject_pins()["e2b"] == "2.64.0" != locked["e2b"][0]


def test_the_bundle_carries_the_versions_the_tests_run():
    """Every locked package that is installed here (where the tests run) has the locked version."""
    from importlib.metadata import PackageNotFoundError, version

    from infra import lambda_deps

    differ = {}
    for name, (locked, _) in lambda_deps.locked_pins().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue
        if installed != locked:
            differ[name] = {"locked": locked, "installed": installed}
    assert differ == {}, "regenerate with `python -m infra.lambda_deps` or align pyproject.toml"


def test_the_environment_constraints_agree_with_both_pins():
    """constraints.txt (what `make` installs with) pins every package pyproject.toml pins and every
    package of the Lambda lock, at the same version: else a fresh clone tests other versions than
    the bundle ships (CI once failed on a transitive release, bracex 3.2.4, the day after)."""
    from infra import lambda_deps

    constraints = lambda_deps.locked_pins(lambda_deps.REPO_ROOT / "constraints.txt")
    constrained = {name: version for name, (version, _) in constraints.items()}
    project = lambda_deps.pyproject_pins()
    locked = {name: version for name, (version, _) in lambda_deps.locked_pins().items()}
    assert {name: constrained.get(name) for name in project} == project
    assert {name: constrained.get(name) for name in locked} == locked


def test_make_installs_with_the_constraints():
    makefile = (Path(__file__).resolve().parent.parent / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "pip install" in line]
    assert len(installs) == 3
    assert all("-c constraints.txt" in line for line in installs)


def test_the_lock_file_is_what_the_generator_writes():
    """Same header and platforms as infra/lambda_deps.py renders (the resolution itself needs PyPI:
    `python -m infra.lambda_deps --check`)."""
    from infra import lambda_deps

    locked = lambda_deps.locked_pins()
    resolved = [(name, version, hashes[0]) for name, (version, hashes) in sorted(locked.items())]
    rendered = lambda_deps.render(lambda_deps.lambda_requirements(), resolved)
    assert bundling.REQUIREMENTS.read_text() == rendered


class FakeRun:
    """Stands in for subprocess.run: records commands, fakes pip's install."""

    def __init__(self):
        self.calls = []

    def __call__(self, cmd, check=False, **kwargs):
        self.calls.append(cmd)
        if "--target" in cmd:
            (Path(cmd[cmd.index("--target") + 1]) / "openai").mkdir(parents=True)
        return bundling.subprocess.CompletedProcess(cmd, 0, "", "")


def test_local_bundling_pip_installs_for_lambda_copies_the_package_and_compiles(tmp_path, monkeypatch):
    run = FakeRun()
    monkeypatch.setattr(bundling.subprocess, "run", run)
    monkeypatch.setattr(bundling, "bytecode_python", lambda: "/opt/python3.13")
    out = tmp_path / "bundle"
    out.mkdir()
    assert bundling.PipLocalBundling().try_bundle(str(out), image=DockerImage.from_registry("unused")) is True
    pip, compile_ = run.calls
    joined = " ".join(pip)
    for flag in (
        "--platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64",
        "--python-version 3.13",
        "--implementation cp",
        "--only-binary=:all:",
        "--require-hashes",
        "--no-deps",
        "--no-compile",
    ):
        assert flag in joined, flag
    assert (out / "openai").is_dir()
    assert (out / "lambdas" / "handlers" / "agent_turn.py").is_file()
    assert not list((out / "lambdas").rglob("__pycache__"))
    assert compile_ == ["/opt/python3.13", "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(out)]


def test_without_python_3_13_the_bundle_is_made_without_bytecode_and_says_so(tmp_path, monkeypatch, capsys):
    run = FakeRun()
    monkeypatch.setattr(bundling.subprocess, "run", run)
    monkeypatch.setattr(bundling, "bytecode_python", lambda: None)
    assert bundling.PipLocalBundling().try_bundle(str(tmp_path), image=DockerImage.from_registry("unused")) is True
    assert len(run.calls) == 1
    assert "no bytecode" in capsys.readouterr().err


def test_a_named_bytecode_python_that_is_not_3_13_is_refused(monkeypatch):
    from infra import lambda_deps

    monkeypatch.setenv(lambda_deps.BYTECODE_PYTHON_ENV, bundling.sys.executable)  # this test's 3.11
    with pytest.raises(RuntimeError, match="not a working CPython 3.13"):
        lambda_deps.bytecode_python()


def test_compiled_bytecode_is_cpython_313_and_unchecked(tmp_path):
    from infra import lambda_deps

    python = lambda_deps.bytecode_python()
    if python is None:
        skip_or_fail_in_ci("no CPython 3.13 here (python3.13 on PATH, pyenv, or PIXIE_BUNDLE_PYTHON)")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("VALUE = 1\n")
    bundling.subprocess.run(lambda_deps.compile_command(python, tmp_path), check=True)
    (pyc,) = (tmp_path / "pkg" / "__pycache__").iterdir()
    assert pyc.name == "mod.cpython-313.pyc"
    flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
    assert flags == 0b01  # hash-based, check_source off: never compared with the source


def test_local_bundling_failure_is_reported_not_sent_to_docker(tmp_path, monkeypatch):
    def failing_run(cmd, check=False, **kwargs):
        raise bundling.subprocess.CalledProcessError(1, cmd)

    monkeypatch.setattr(bundling.subprocess, "run", failing_run)
    with pytest.raises(RuntimeError, match="package index"):
        bundling.PipLocalBundling().try_bundle(str(tmp_path), image=DockerImage.from_registry("unused"))


def test_cdk_json_runs_the_app_module():
    config = json.loads((REPO / "cdk.json").read_text())
    assert config["app"].endswith("-m infra.app")


# --- production hardening: cleanup of every ending, least privilege, guard rails --------------


def test_status_changes_of_bad_endings_go_to_the_cleanup_function(resources):
    rule_lid, rule = rule_by_detail_type(resources, STATUS_CHANGE)
    (sm_lid,) = of_type(resources, "AWS::StepFunctions::StateMachine")
    functions = functions_by_step(resources)
    cleanup_lid = functions["CleanupSandbox"][0]
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.states"],
        "detail-type": [STATUS_CHANGE],
        "detail": {"status": ["FAILED", "TIMED_OUT", "ABORTED"], "stateMachineArn": [{"Ref": sm_lid}]},
    }
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [cleanup_lid, "Arn"]}
    assert not {"Input", "InputPath", "InputTransformer"} & set(target)  # the handler reads the whole event
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    # Only this rule may invoke the function through EventBridge.
    (permission,) = [
        p["Properties"]
        for p in of_type(resources, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "events.amazonaws.com"
    ]
    assert permission["FunctionName"] == {"Fn::GetAtt": [cleanup_lid, "Arn"]}
    assert permission["SourceArn"] == {"Fn::GetAtt": [rule_lid, "Arn"]}
    # A cleanup that keeps failing ends in the dead-letter queue the alarm watches.
    (invoke_config,) = of_type(resources, "AWS::Lambda::EventInvokeConfig").values()
    assert invoke_config["Properties"]["FunctionName"] == {"Ref": cleanup_lid}
    assert invoke_config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"] == target["DeadLetterConfig"]["Arn"]


def test_the_status_change_pattern_matches_exactly_the_bad_endings(resources):
    """The synthesized pattern, with this state machine's ARN filled in, as a rule on moto's
    EventBridge: only FAILED, TIMED_OUT and ABORTED of this state machine reach the target."""
    import boto3
    from moto import mock_aws

    _, rule = rule_by_detail_type(resources, STATUS_CHANGE)
    (sm_lid,) = of_type(resources, "AWS::StepFunctions::StateMachine")
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:pixie"
    pattern = json.dumps(rule["Properties"]["EventPattern"]).replace(json.dumps({"Ref": sm_lid}), json.dumps(arn))
    sent = [("FAILED", arn), ("TIMED_OUT", arn), ("ABORTED", arn), ("SUCCEEDED", arn), ("RUNNING", arn),
            ("FAILED", arn + "-other")]

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        events = boto3.client("events", region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="cleanup")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="cleanup", EventPattern=pattern)
        events.put_targets(Rule="cleanup", Targets=[{"Id": "1", "Arn": queue_arn}])
        events.put_events(
            Entries=[
                {"Source": "aws.states", "DetailType": STATUS_CHANGE,
                 "Detail": json.dumps({"status": status, "stateMachineArn": machine, "name": f"run-{i}"})}
                for i, (status, machine) in enumerate(sent)
            ]
        )
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    delivered = sorted(json.loads(m["Body"])["detail"]["name"] for m in received)
    assert delivered == ["run-0", "run-1", "run-2"]


def test_the_trigger_role_trusts_only_its_rule(resources):
    rule_lid, rule = trigger_rule(resources)
    (target,) = rule["Properties"]["Targets"]
    role = resources[target["RoleArn"]["Fn::GetAtt"][0]]["Properties"]
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    source_arn = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    # arn:<partition>:events:<region>:<account>:rule/<the rule's own name>
    parts = source_arn["Fn::Join"][1]
    assert parts[-1] == f":rule/{rule['Properties']['Name']}"
    assert {"Ref": "AWS::AccountId"} in parts and {"Ref": "AWS::Region"} in parts
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}


def test_functions_get_exactly_the_dynamodb_actions_the_code_uses(resources):
    from infra.stack import TABLE_ACTIONS

    # What the code calls (boto3 Table methods -> IAM actions) ...
    calls = {
        ".get_item(": "dynamodb:GetItem",
        ".put_item(": "dynamodb:PutItem",
        ".update_item(": "dynamodb:UpdateItem",
        ".delete_item(": "dynamodb:DeleteItem",
        ".query(": "dynamodb:Query",
        ".scan(": "dynamodb:Scan",
        "batch_writer(": "dynamodb:BatchWriteItem",
        ".batch_get_item(": "dynamodb:BatchGetItem",
        ".transact_write_items(": "dynamodb:TransactWriteItems",
    }
    source = "".join(p.read_text() for p in (REPO / "lambdas").rglob("*.py"))
    used = {action for call, action in calls.items() if call in source}
    # ... plus Powertools' idempotency layer (get, conditional put, update, delete on failure).
    used |= {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    assert set(TABLE_ACTIONS) == used
    for step, (_, props) in functions_by_step(resources).items():
        granted = {
            a
            for s in policies_of_role(resources, role_of_function(props))
            for a in as_list(s["Action"])
            if a.startswith("dynamodb:")
        }
        assert granted == used, step


def test_every_function_has_reserved_concurrency(resources):
    for step, (_, props) in functions_by_step(resources).items():
        assert props["ReservedConcurrentExecutions"] == PixieSettings().reserved_concurrency == 10, step


@pytest.mark.parametrize(
    ("value", "expected"), [("off", None), ("none", None), (3, 3), ("25", 25)]
)
def test_reserved_concurrency_comes_from_context(value, expected):
    assert PixieSettings.from_context(App(context={"pixie:reservedConcurrency": value})).reserved_concurrency == expected


@pytest.mark.parametrize("value", [0, "-1", "lots"])
def test_reserved_concurrency_that_would_stop_every_run_is_refused(value):
    with pytest.raises(ValueError, match="reservedConcurrency"):
        PixieSettings.from_context(App(context={"pixie:reservedConcurrency": value}))


def test_alarms_watch_dead_letters_run_faults_timeouts_throttles_and_errors(resources):
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    single = {a["Properties"].get("MetricName"): a["Properties"] for a in alarms.values() if "MetricName" in a["Properties"]}
    assert {"RunFaults", "ExecutionsTimedOut", "ApproximateNumberOfMessagesVisible", "NumberOfMessagesSent"} <= set(single)
    # Failed runs include user outcomes (the model used its turns, the user stopped it): not alarmed.
    assert "ExecutionsFailed" not in single
    assert single["RunFaults"]["Namespace"] == "Pixie"
    for metric in ("ApproximateNumberOfMessagesVisible", "NumberOfMessagesSent"):  # backlog, and each new batch
        queues = {
            a["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
            for a in alarms.values()
            if a["Properties"].get("MetricName") == metric
        }
        assert queues == set(of_type(resources, "AWS::SQS::Queue")), metric  # both dead-letter queues
    math = {
        m["MetricStat"]["Metric"]["MetricName"]: a["Properties"]
        for a in alarms.values()
        for m in a["Properties"].get("Metrics", [])
        if "MetricStat" in m
    }
    assert {"Throttles", "Errors"} <= set(math)
    for name in ("Throttles", "Errors"):  # summed over every step function
        watched = {
            m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]
            for m in math[name]["Metrics"]
            if "MetricStat" in m
        }
        assert watched == set(of_type(resources, "AWS::Lambda::Function")), name
    for alarm in alarms.values():
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching"
        assert "AlarmActions" not in alarm["Properties"]  # no topic configured


def test_alarms_notify_the_sns_topic_given_in_context():
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_sqs as sqs
    from aws_cdk import aws_stepfunctions as sfn

    from infra.stack import Monitoring

    app = App(context={"aws:cdk:bundling-stacks": []})
    scope = aws_cdk.Stack(app, "Scratch")
    fn = lambda_.Function(
        scope, "Fn", runtime=lambda_.Runtime.PYTHON_3_13, handler="x.handler", code=lambda_.Code.from_inline("x")
    )
    machine = sfn.StateMachine(scope, "Machine", definition_body=sfn.DefinitionBody.from_chainable(sfn.Pass(scope, "P")))
    topic = "arn:aws:sns:us-east-1:123456789012:pixie-alarms"
    Monitoring(
        scope,
        "Monitoring",
        state_machine=machine,
        functions={"AgentTurn": fn},
        dead_letter_queues={"Trigger": sqs.Queue(scope, "Q")},
        alarm_topic_arn=topic,
    )
    alarms = of_type(Template.from_stack(scope).to_json()["Resources"], "AWS::CloudWatch::Alarm")
    assert len(alarms) == 6  # dead letters (backlog, new), run faults, timeouts, throttles, errors
    assert all(a["Properties"]["AlarmActions"] == [topic] for a in alarms.values())
    assert PixieSettings.from_context(App(context={"pixie:alarmTopicArn": topic})).alarm_topic_arn == topic


def test_dashboard_shows_runs_turns_tokens_failures_and_durations(resources):
    (dashboard,) = of_type(resources, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for title in ("Runs", "Turns", "Model tokens", "Failures", "Run duration", "Lambda duration p90"):
        assert f'\\"title\\":\\"{title}' in body, title
    for metric in (
        "ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted",
        "ExecutionTime", "ModelInputTokens", "ModelOutputTokens", "IterationsPerRun", "DuplicateEvents",
        "SandboxesReleasedAfterExecutionEnded", "Duration", "Throttles", "Errors",
    ):
        assert f'\\"{metric}\\"' in body, metric


# --- the ASL's retry rules against the functions' timeouts --------------------------------------


def lambda_tasks(states: dict[str, dict]) -> dict[str, dict]:
    found = {}
    for name, state in states.items():
        if state["Type"] == "Task":
            found[name] = state
        for sub in (state.get("ItemProcessor"), state.get("Iterator"), *state.get("Branches", [])):
            if sub:
                found.update(lambda_tasks(sub["States"]))
    return found


def guaranteed_wait_s(retrier: dict) -> float:
    """The least total time a retrier waits before giving up (FULL jitter could make it ~0)."""
    assert retrier.get("JitterStrategy", "NONE") == "NONE", retrier
    interval, rate = retrier.get("IntervalSeconds", 1), retrier.get("BackoffRate", 2.0)
    cap = retrier.get("MaxDelaySeconds", float("inf"))
    return sum(min(interval * rate**i, cap) for i in range(retrier["MaxAttempts"]))


def test_retries_while_a_step_is_still_in_progress_outlast_any_function_timeout():
    """A retry that meets IdempotencyAlreadyInProgressError must keep trying until the first attempt
    has certainly ended: longer than the function's timeout (here: than Lambda's 900 s maximum, so
    the rule holds whatever pixie:commandTimeout makes RunTool's timeout)."""
    asl = json.loads(ASL_PATH.read_text())
    specs = function_specs(PixieSettings())
    tasks = lambda_tasks(asl["States"])
    seen = 0
    for name, state in tasks.items():
        step = re.fullmatch(r"\$\{(\w+)FunctionArn\}", state["Parameters"]["FunctionName"]).group(1)
        for retrier in state.get("Retry", []):
            if "IdempotencyAlreadyInProgressError" in retrier["ErrorEquals"]:
                seen += 1
                assert guaranteed_wait_s(retrier) > max(900, specs[step].timeout_s), name
    assert seen == 4  # CreateSandbox, AgentTurn, RunTool, CheckResult: the idempotent steps


def test_every_task_handles_lambda_errors_by_the_names_step_functions_reports():
    """Per AWS's "Handle Lambda service exceptions": unhandled function errors (out of memory,
    timeouts) reach the state machine as Lambda.Unknown; a full concurrency limit as
    Lambda.TooManyRequestsException. Names that never appear (Runtime.OutOfMemory,
    Sandbox.Timedout) must not stand in for them."""
    asl = json.loads(ASL_PATH.read_text())
    for name, state in lambda_tasks(asl["States"]).items():
        by_error = {error: retrier for retrier in state["Retry"] for error in retrier["ErrorEquals"]}
        for error in ("Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                      "Lambda.ClientExecutionTimeoutException"):
            assert by_error[error]["MaxAttempts"] >= 3, (name, error)
        # Out of memory or a timeout: every step is idempotent and bounded, so one more try; not more.
        assert by_error["Lambda.Unknown"]["MaxAttempts"] == 1, name
        # Throttled: queue for longer than the longest step holds its slot (AgentTurn, 600 s).
        throttled = by_error["Lambda.TooManyRequestsException"]
        assert throttled["JitterStrategy"] == "FULL" and throttled["MaxDelaySeconds"] >= 120, name
        assert full_jitter_mean_wait_s(throttled) > 600, name
        assert not {"Runtime.OutOfMemory", "Runtime.ExitError", "Sandbox.Timedout"} & set(by_error), name


def full_jitter_mean_wait_s(rule: dict) -> float:
    """The mean total wait of a rule with full jitter (each wait uniform in 0..its interval)."""
    interval, total = rule["IntervalSeconds"], 0.0
    for _ in range(rule["MaxAttempts"]):
        total += min(interval, rule.get("MaxDelaySeconds", interval)) / 2
        interval *= rule.get("BackoffRate", 2.0)
    return total


def test_the_tool_call_widget_queries_the_dimensions_the_metric_is_published_with(resources):
    """RunTool publishes ToolCalls with the tool and outcome dimensions, plus Powertools' service;
    a dashboard query naming fewer dimensions finds nothing (CloudWatch matches them exactly)."""
    import ast
    import inspect

    from lambdas.handlers import run_tool

    source = inspect.getsource(run_tool)
    published = {"service"} | {
        node.keywords[0].value.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_dimension"
    }
    (dashboard,) = of_type(resources, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    query = re.search(r"SEARCH\('\{Pixie,([a-z,]+)\} MetricName=", body)
    assert query, "the tool-call widget should SEARCH the ToolCalls metric"
    assert set(query.group(1).split(",")) == published


def test_the_done_check_function_outlives_its_checks_at_every_allowed_command_timeout():
    # CheckResult runs up to three checks (the preview's GET /, `npm test`, `npm run build`), each
    # bounded by the command timeout; a slower Lambda timeout kills it mid-check and the run ends
    # with a Lambda timeout instead of CheckFailed or a retry turn. pixie:commandTimeout=300 is
    # accepted (test_settings_come_from_cdk_context) but CheckResult gets only 900 s of 960.
    for command_timeout_s in (120, 300, 720):
        app = App(context={"pixie:commandTimeout": str(command_timeout_s)})
        try:
            settings = PixieSettings.from_context(app)
        except ValueError:
            continue  # refused at synth: fine, nothing deploys that cannot finish its check
        assert function_specs(settings)["CheckResult"].timeout_s >= 3 * command_timeout_s + 30, command_timeout_s
