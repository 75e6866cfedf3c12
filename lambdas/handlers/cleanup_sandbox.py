from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.handlers.shared import logger, metrics, network_state, settings, tracer
from lambdas.logic.steps.cleanup_sandbox import cleanup_request, cleanup_sandbox, is_fault


# The run id is `runId` in the workflow's payload, the execution name in a status-change event.
@logger.inject_lambda_context(correlation_id_path="runId || detail.name")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    request = cleanup_request(event)
    if request is None:
        logger.info("not a failed, timed-out or aborted execution: nothing to clean up")
        return {"cleaned": False}
    result = cleanup_sandbox(request.run_id, request.error, settings(), network_state(), status=request.status)
    if result["firstReport"]:  # counted once, by whichever of the two callers comes first
        metrics.add_metric(name="RunsFailed", unit=MetricUnit.Count, value=1)
        if is_fault(request.status, request.error.get("Error")):
            metrics.add_metric(name="RunFaults", unit=MetricUnit.Count, value=1)
    if request.from_status_change and result["cleaned"]:
        # The workflow's own cleanup never ran (aborted, timed out, or an uncatchable error).
        metrics.add_metric(name="SandboxesReleasedAfterExecutionEnded", unit=MetricUnit.Count, value=1)
    logger.warning(
        "run failed",
        extra={
            "status": request.status,
            "error": request.error.get("Error"),
            "sandboxKilled": result["cleaned"],
            "fromStatusChange": request.from_status_change,
        },
    )
    return result
