from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.handlers.shared import logger, network_state, settings
from lambdas.logic.steps.cleanup_sandbox import cleanup_sandbox


@logger.inject_lambda_context(correlation_id_path="runId")
def handler(event: dict, context: LambdaContext) -> dict:
    error = event.get("error") or {}
    result = cleanup_sandbox(event["runId"], error, settings(), network_state())
    logger.warning("run failed", extra={"error": error.get("Error"), "sandboxKilled": result["cleaned"]})
    return result
