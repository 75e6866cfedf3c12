from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.handlers.shared import logger, metrics, network_state, settings, tracer
from lambdas.logic.steps.request_approval import request_approval


@logger.inject_lambda_context(correlation_id_path="runId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    # Not idempotent on purpose: a retry saves its own attempt's token over the first one's.
    result = request_approval(event["runId"], int(event["iteration"]), event.get("taskToken"), settings(), network_state())
    logger.info("waiting for approval", extra={"iteration": result["iteration"], "calls": result["pendingCalls"]})
    return result
