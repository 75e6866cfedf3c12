"""Deploy-time switches of the stack, read from the synthesized template: the run timeout, the
log level, who may send events, and `-c pixie:retain=true` for production data."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aws_cdk import App  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from infra.app import build  # noqa: E402
from test_infra import cdk_context, of_type  # noqa: E402


def synthesized(**context) -> dict:
    app = App(context={**cdk_context(), **{f"pixie:{k}": v for k, v in context.items()}})
    return Template.from_stack(build(app)).to_json()


@pytest.fixture(scope="module")
def default() -> dict:
    return synthesized()


@pytest.fixture(scope="module")
def production() -> dict:
    return synthesized(retain="true", runTimeoutMinutes="30", logLevel="all", senders="111122223333,arn:aws:iam::444455556666:role/ci")


def definition(template: dict) -> dict:
    (machine,) = of_type(template["Resources"], "AWS::StepFunctions::StateMachine").values()
    parts = machine["Properties"]["DefinitionString"]
    text = parts if isinstance(parts, str) else "".join(p if isinstance(p, str) else "0" for p in parts["Fn::Join"][1])
    return json.loads(text)


def test_the_state_machine_has_a_timeout_from_context(default, production):
    assert definition(default)["TimeoutSeconds"] == 120 * 60
    assert definition(production)["TimeoutSeconds"] == 30 * 60


def test_execution_logs_at_error_unless_asked(default, production):
    levels = [m["Properties"]["LoggingConfiguration"]["Level"]
              for t in (default, production) for m in of_type(t["Resources"], "AWS::StepFunctions::StateMachine").values()]
    assert levels == ["ERROR", "ALL"]


def test_named_senders_replace_this_account_on_the_bus_policy(production):
    (policy,) = of_type(production["Resources"], "AWS::Events::EventBusPolicy").values()
    principals = json.dumps(policy["Properties"]["Statement"]["Principal"])
    assert "111122223333" in principals and "arn:aws:iam::444455556666:role/ci" in principals


STATEFUL = ("AWS::DynamoDB::Table", "AWS::SecretsManager::Secret", "AWS::Logs::LogGroup")


def test_by_default_cdk_destroy_leaves_nothing(default):
    for cfn_type in STATEFUL:
        for resource in of_type(default["Resources"], cfn_type).values():
            assert resource.get("DeletionPolicy") == "Delete", cfn_type


def test_retain_keeps_the_table_with_deletion_protection_the_secrets_and_the_logs(production):
    for cfn_type in STATEFUL:
        found = of_type(production["Resources"], cfn_type)
        assert found, cfn_type
        for resource in found.values():
            assert resource["DeletionPolicy"] == "Retain" and resource["UpdateReplacePolicy"] == "Retain", cfn_type
    (table,) = of_type(production["Resources"], "AWS::DynamoDB::Table").values()
    assert table["Properties"]["DeletionProtectionEnabled"] is True
    assert table["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


@pytest.mark.parametrize("context, message", [
    ({"runTimeoutMinutes": "0"}, "runTimeoutMinutes"),
    ({"logLevel": "loud"}, "logLevel"),
    ({"senders": "everyone"}, "senders"),
])
def test_bad_switches_stop_the_synth_with_a_clear_message(context, message):
    with pytest.raises(ValueError, match=message):
        synthesized(**context)
