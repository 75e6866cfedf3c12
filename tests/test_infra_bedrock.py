"""The CDK stack deployed with a Bedrock model (`-c pixie:model=bedrock:…`): AgentTurn may invoke
that one model (and, for an inference profile, the profile and the model it routes to) and
nothing else of Bedrock; no OpenAI secret exists, is granted or is named. Same style as
test_infra.py: synthesized with bundling skipped, cdk-nag registered."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from conftest import skip_or_fail_in_ci

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")

try:
    import aws_cdk  # noqa: F401 - whether the deploy extra is there
except ImportError:
    skip_or_fail_in_ci("the deploy extra (aws-cdk-lib) is not installed", allow_module_level=True)

from aws_cdk import App, Stack  # noqa: E402
from aws_cdk import aws_iam as iam  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.app import build  # noqa: E402
from infra.bedrock import ACTIONS, bedrock_model_id, grant_invoke_model  # noqa: E402

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
SONNET_PROFILE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
PARTITION, REGION, ACCOUNT = "${AWS::Partition}", "${AWS::Region}", "${AWS::AccountId}"


def synth(model: str) -> dict[str, Any]:
    app = App(context={"aws:cdk:bundling-stacks": [], "pixie:model": model})
    stack = build(app)
    template = Template.from_stack(stack)
    return {"app": app, "json": template.to_json()}


@pytest.fixture(scope="module")
def haiku() -> dict[str, Any]:
    return synth(f"bedrock:{HAIKU}")


def grant_only(model_id: str) -> tuple[App, list[dict]]:
    """grant_invoke_model on a bare role in a stack of its own: its app and policy statements."""
    app = App()
    stack = Stack(app, "Grant")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    grant_invoke_model(role, model_id)
    (policy,) = Template.from_stack(stack).find_resources("AWS::IAM::Policy").values()
    return app, policy["Properties"]["PolicyDocument"]["Statement"]


def text(value: Any) -> str:
    """A resource or condition value as one string: Fn::Join parts joined, pseudo parameters as
    ${AWS::…}."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(text(part) for part in parts)
    if "Ref" in value:
        return "${" + value["Ref"] + "}"
    raise AssertionError(f"unexpected intrinsic {value}")


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def functions(template: dict) -> dict[str, dict]:
    """Step name -> function properties."""
    out = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Lambda::Function":
            module = resource["Properties"]["Handler"].split(".")[-2]
            out["".join(p.capitalize() for p in module.split("_"))] = resource["Properties"]
    return out


def statements_of(template: dict, step: str) -> list[dict]:
    role = functions(template)[step]["Role"]["Fn::GetAtt"][0]
    found = []
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role} in resource["Properties"]["Roles"]:
            found += resource["Properties"]["PolicyDocument"]["Statement"]
    return found


def bedrock_statements(template: dict, step: str) -> list[dict]:
    return [s for s in statements_of(template, step) if any(a.startswith("bedrock:") for a in as_list(s["Action"]))]


def test_a_model_id_grants_invoke_on_its_foundation_model_arn_only(haiku):
    (statement,) = bedrock_statements(haiku["json"], "AgentTurn")
    assert sorted(as_list(statement["Action"])) == sorted(ACTIONS)
    assert [text(r) for r in as_list(statement["Resource"])] == [
        f"arn:{PARTITION}:bedrock:{REGION}::foundation-model/{HAIKU}"
    ]
    assert "Condition" not in statement


def test_an_inference_profile_grants_the_profile_and_its_model_only_through_the_profile():
    _, statements = grant_only(SONNET_PROFILE)
    assert len(statements) == 2
    direct, routed = statements
    profile_arn = f"arn:{PARTITION}:bedrock:{REGION}:{ACCOUNT}:inference-profile/{SONNET_PROFILE}"
    assert [text(r) for r in as_list(direct["Resource"])] == [profile_arn]
    assert "Condition" not in direct
    assert [text(r) for r in as_list(routed["Resource"])] == [
        f"arn:{PARTITION}:bedrock:*::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0"
    ]
    (condition,) = routed["Condition"].values()
    assert {k: text(v) for k, v in condition.items()} == {"bedrock:InferenceProfileArn": profile_arn}
    for statement in statements:
        assert sorted(as_list(statement["Action"])) == sorted(ACTIONS)


def test_a_global_profile_also_grants_the_region_less_model_arn():
    _, (_, routed) = grant_only("global.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert [text(r).split(":bedrock:")[1] for r in as_list(routed["Resource"])] == [
        "*::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0",
        "::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0",
    ]


def test_only_agent_turn_may_call_bedrock_and_no_openai_secret_exists(haiku):
    template = haiku["json"]
    for step in functions(template):
        if step != "AgentTurn":
            assert bedrock_statements(template, step) == [], step
    secrets = [r for r in template["Resources"].values() if r["Type"] == "AWS::SecretsManager::Secret"]
    assert [s["Properties"]["Name"] for s in secrets] == ["PixieStack/e2b-api-key"]
    agent_turn = functions(template)["AgentTurn"]
    env = agent_turn["Environment"]["Variables"]
    assert env["PIXIE_MODEL"].startswith("bedrock:")
    assert not any(name.endswith("_SECRET_NAME") for name in env)
    assert not any(a.startswith("secretsmanager:") for s in statements_of(template, "AgentTurn") for a in as_list(s["Action"]))
    assert "OpenAISecretName" not in template["Outputs"]
    assert "openai" not in json.dumps(agent_turn).lower()


def test_cdk_nag_has_no_unacknowledged_findings_for_bedrock(haiku):
    report = AwsSolutionsChecks(verbose=True).validate_scope(haiku["app"])
    assert [f"{v.rule_name}: {v.description}" for v in report.violations] == []


def test_the_profiles_region_wildcard_is_acknowledged_with_its_reason_for_cdk_nag():
    app, _ = grant_only(SONNET_PROFILE)
    report = AwsSolutionsChecks(verbose=True).validate_scope(app)
    assert [f"{v.rule_name}: {v.description}" for v in report.violations] == []


@pytest.mark.parametrize("spec", ["bedrock:arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/x", "bedrock:a b"])
def test_a_model_spec_the_policy_cannot_name_fails_the_synth_clearly(spec):
    with pytest.raises(ValueError, match="bedrock:<model id>"):
        bedrock_model_id(spec)
