from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.handlers.shared import logger, metrics, network_state, settings, tracer
from lambdas.logic.steps.cleanup_sandbox import cleanup_sandbox


@logger.inject_lambda_context(correlation_id_path="runId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    error = event.get("error") or {}
    result = cleanup_sandbox(event["runId"], error, settings(), network_state())
    metrics.add_metric(name="RunsFailed", unit=MetricUnit.Count, value=1)
    logger.warning("run failed", extra={"error": error.get("Error"), "sandboxKilled": result["cleaned"]})
    return result
