"""CDK app entry point (`cdk.json`: `python -m infra.app`). Synthesizes offline: no Docker, no AWS
credentials (the stack is environment-agnostic); bundling needs only pip and the package index."""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.stack import PixieStack

STACK_NAME = "PixieStack"


def build(app: cdk.App) -> PixieStack:
    """The stack, with cdk-nag's AWS Solutions pack registered as a policy-validation plugin: any
    unacknowledged finding stops `cdk synth` with a report (cdk.out/policy-validation-report.json).
    Acknowledgments (with their reasons) are also written into the template's resource Metadata."""
    stack = PixieStack(app, STACK_NAME)
    cdk.Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True)
    )
    return stack


def main() -> None:
    app = cdk.App()
    build(app)
    app.synth()


if __name__ == "__main__":
    main()
