from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.handlers.shared import idempotent_step, logger, metrics, network_state, settings, tracer
from lambdas.logic.steps.create_sandbox import create_sandbox


@logger.inject_lambda_context(correlation_id_path="runId")
@tracer.capture_lambda_handler
@metrics.log_metrics
@idempotent_step("CreateSandbox", "runId")
def handler(event: dict, context: LambdaContext) -> dict:
    result = create_sandbox(event.get("runId", ""), event.get("event"), settings(), network_state())
    if "duplicateOf" in result:
        metrics.add_metric(name="DuplicateEvents", unit=MetricUnit.Count, value=1)
        logger.warning("duplicate event: no run started", extra={"duplicateOf": result["duplicateOf"]})
        return result
    metrics.add_metric(name="RunsStarted", unit=MetricUnit.Count, value=1)
    logger.info("run created", extra={"maxIterations": result["maxIterations"]})
    return result
