from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.handlers.shared import idempotent_step, logger, network_state, settings
from lambdas.logic.steps.create_sandbox import create_sandbox


@logger.inject_lambda_context(correlation_id_path="runId")
@idempotent_step("CreateSandbox", "runId")
def handler(event: dict, context: LambdaContext) -> dict:
    result = create_sandbox(event.get("runId", ""), event.get("event"), settings(), network_state())
    logger.info("run created", extra={"maxIterations": result["maxIterations"]})
    return result
