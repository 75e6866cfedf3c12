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

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")

aws_cdk = pytest.importorskip("aws_cdk", reason="the deploy extra (aws-cdk-lib) is not installed")

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
        if state["Type"] == "Task" and state["Resource"] == "arn:aws:states:::lambda:invoke":
            found[name] = state["Parameters"]["FunctionName"]
        for sub in (state.get("ItemProcessor"), state.get("Iterator"), *state.get("Branches", [])):
            if sub:
                found.update(task_function_names(sub["States"]))
    return found


# --- trigger -----------------------------------------------------------------------------------


def test_rule_matches_hello_world_on_the_default_bus(template: Template, resources):
    rules = of_type(resources, "AWS::Events::Rule")
    assert len(rules) == 1
    (rule,) = rules.values()
    assert rule["Properties"]["EventPattern"] == {"detail-type": ["test/hello.world"]}
    assert "EventBusName" not in rule["Properties"]  # the default bus
    assert rule["Properties"]["State"] == "ENABLED"


def test_rule_target_starts_the_state_machine_with_the_event_and_has_dlq_and_retries(resources):
    (rule,) = of_type(resources, "AWS::Events::Rule").values()
    (sm_lid,) = of_type(resources, "AWS::StepFunctions::StateMachine")
    (queue_lid,) = of_type(resources, "AWS::SQS::Queue")
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Ref": sm_lid}
    assert not {"Input", "InputPath", "InputTransformer"} & set(target)  # the whole event is the input
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_lid, "Arn"]}}
    retry = target["RetryPolicy"]
    assert 1 <= retry["MaximumRetryAttempts"] <= 185
    assert 60 <= retry["MaximumEventAgeInSeconds"] <= 86400

    # The target's role may start this state machine and nothing else.
    role_lid = target["RoleArn"]["Fn::GetAtt"][0]
    statements = policies_of_role(resources, role_lid)
    assert statements == [{"Action": "states:StartExecution", "Effect": "Allow", "Resource": {"Ref": sm_lid}}]


def test_dead_letter_queue_is_encrypted_ssl_only_and_writable_by_the_rule_only(resources):
    (queue_lid, queue) = next(iter(of_type(resources, "AWS::SQS::Queue").items()))
    assert queue["Properties"].get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue["Properties"]
    (policy,) = of_type(resources, "AWS::SQS::QueuePolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    deny = [s for s in statements if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    (rule_lid,) = of_type(resources, "AWS::Events::Rule")
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_lid, "Arn"]}}}


# --- state machine -----------------------------------------------------------------------------


def test_one_standard_state_machine_logged_all_and_traced(template: Template, resources):
    machines = of_type(resources, "AWS::StepFunctions::StateMachine")
    assert len(machines) == 1
    (props,) = (m["Properties"] for m in machines.values())
    assert props["StateMachineType"] == "STANDARD"
    assert props["TracingConfiguration"] == {"Enabled": True}
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
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
    assert outputs["EventBusName"]["Value"] == "default"


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
    app = App(context={"pixie:model": "openai:gpt-4.1-mini", "pixie:commandTimeout": "300", "pixie:maxIterations": 20})
    settings = PixieSettings.from_context(app)
    assert settings.model == "openai:gpt-4.1-mini"
    assert settings.command_timeout_s == 300 and settings.max_iterations == 20
    assert settings.template == "pixie" and settings.sandbox_timeout_s == 3600
    assert function_specs(settings)["RunTool"].timeout_s == 480


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
    assert pins["e2b"].startswith("2.")
    assert "botocore" not in pins and "boto3" not in pins  # the Lambda runtime provides them


def test_local_bundling_pip_installs_for_lambda_and_copies_the_package(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, check):
        calls.append(cmd)
        target = Path(cmd[cmd.index("--target") + 1])
        (target / "openai").mkdir(parents=True)
        return None

    monkeypatch.setattr(bundling.subprocess, "run", fake_run)
    out = tmp_path / "bundle"
    out.mkdir()
    assert bundling.PipLocalBundling().try_bundle(str(out), image=DockerImage.from_registry("unused")) is True
    (cmd,) = calls
    joined = " ".join(cmd)
    for flag in (
        "--platform manylinux2014_aarch64",
        "--python-version 3.13",
        "--implementation cp",
        "--only-binary=:all:",
        "--require-hashes",
        "--no-deps",
    ):
        assert flag in joined, flag
    assert (out / "openai").is_dir()
    assert (out / "lambdas" / "handlers" / "agent_turn.py").is_file()
    assert not list((out / "lambdas").rglob("__pycache__"))


def test_local_bundling_failure_is_reported_not_sent_to_docker(tmp_path, monkeypatch):
    def failing_run(cmd, check):
        raise bundling.subprocess.CalledProcessError(1, cmd)

    monkeypatch.setattr(bundling.subprocess, "run", failing_run)
    with pytest.raises(RuntimeError, match="package index"):
        bundling.PipLocalBundling().try_bundle(str(tmp_path), image=DockerImage.from_registry("unused"))


def test_cdk_json_runs_the_app_module():
    config = json.loads((REPO / "cdk.json").read_text())
    assert config["app"].endswith("-m infra.app")
