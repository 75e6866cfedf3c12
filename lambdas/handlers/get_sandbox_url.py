from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.handlers.shared import logger, network_state, settings
from lambdas.logic.steps.get_sandbox_url import get_sandbox_url


@logger.inject_lambda_context(correlation_id_path="runId")
def handler(event: dict, context: LambdaContext) -> dict:
    result = get_sandbox_url(event["runId"], settings(), network_state())
    logger.info("run finished", extra={"url": result["url"], "files": len(result["files"])})
    return result
