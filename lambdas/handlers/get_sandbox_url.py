from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.handlers.shared import logger, metrics, network_state, settings, tracer
from lambdas.logic.steps.get_sandbox_url import get_sandbox_url


@logger.inject_lambda_context(correlation_id_path="runId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    result = get_sandbox_url(event["runId"], settings(), network_state())
    metrics.add_metric(name="RunsSucceeded", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="IterationsPerRun", unit=MetricUnit.Count, value=result["iterations"])
    logger.info("run finished", extra={"url": result["url"], "files": len(result["files"])})
    return result
