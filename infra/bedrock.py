"""Amazon Bedrock access for AgentTurn when the stack is deployed with `-c pixie:model=bedrock:<id>`:
bedrock:InvokeModel and bedrock:InvokeModelWithResponseStream (what Converse and ConverseStream
are authorized as) on that one model, and nothing else. No API key, so no secret either.

- A model id (`anthropic.claude-3-5-haiku-20241022-v1:0`): its foundation-model ARN in the
  stack's region.
- A cross-region inference profile id (`us.anthropic.claude-sonnet-4-5-…`): the profile's ARN in
  the stack's region, plus the model's foundation-model ARN in whichever region the profile
  routes the request to, only when the request comes through that profile (condition
  `bedrock:InferenceProfileArn`). The destination regions of a geography change over time, so
  they are not listed one by one; the condition keeps the model from being called directly."""

from __future__ import annotations

from aws_cdk import Aws, Validations, Acknowledgment
from aws_cdk import aws_iam as iam

from lambdas.logic.models.bedrock_ids import MODEL_ID, split_profile

ACTIONS = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]


def bedrock_model_id(model_spec: str) -> str | None:
    """The Bedrock model or profile id of a `bedrock:<id>` spec, else None. Raises ValueError for
    an id the policy could not be written for (an ARN, a typo with spaces, ...)."""
    provider, _, model_id = model_spec.partition(":")
    if provider != "bedrock":
        return None
    if not MODEL_ID.match(model_id):
        raise ValueError(
            f"pixie:model={model_spec!r}: use bedrock:<model id> or bedrock:<inference profile id>, "
            "e.g. bedrock:anthropic.claude-3-5-haiku-20241022-v1:0 or bedrock:us.amazon.nova-pro-v1:0"
        )
    return model_id


def foundation_model_arn(model_id: str, region: str = Aws.REGION) -> str:
    return f"arn:{Aws.PARTITION}:bedrock:{region}::foundation-model/{model_id}"


def inference_profile_arn(profile_id: str) -> str:
    return f"arn:{Aws.PARTITION}:bedrock:{Aws.REGION}:{Aws.ACCOUNT_ID}:inference-profile/{profile_id}"


def grant_invoke_model(role: iam.IRole, model_id: str) -> None:
    geography, base_model = split_profile(model_id)
    if geography is None:
        role.add_to_principal_policy(iam.PolicyStatement(actions=ACTIONS, resources=[foundation_model_arn(model_id)]))
        return
    profile = inference_profile_arn(model_id)
    role.add_to_principal_policy(iam.PolicyStatement(actions=ACTIONS, resources=[profile]))
    routed = [foundation_model_arn(base_model, "*")]
    if geography == "global":
        routed.append(foundation_model_arn(base_model, ""))  # global profiles name the model without a region
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=ACTIONS,
            resources=routed,
            conditions={"StringEquals": {"bedrock:InferenceProfileArn": profile}},
        )
    )
    for resource in routed:
        finding = resource.replace(Aws.PARTITION, "<AWS::Partition>")
        Validations.of(role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{finding}]",
                reason=(
                    f"The inference profile {model_id} routes each request to {base_model} in one of "
                    "several regions that AWS may extend; the grant is for that one model and holds "
                    "only for requests made through that profile (bedrock:InferenceProfileArn)."
                ),
            )
        )
