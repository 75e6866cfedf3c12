from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.handlers.shared import idempotent_step, logger, metrics, network_state, settings, tracer
from lambdas.logic.steps.check_result import check_result_step


@logger.inject_lambda_context(correlation_id_path="runId")
@tracer.capture_lambda_handler
@metrics.log_metrics
# One check per summary: the turn that wrote it names it. A retry, or a resumed run passing this
# step again, gets the verdict given the first time instead of checking a project that moved on.
@idempotent_step("CheckResult", "[runId, iteration]")
def handler(event: dict, context: LambdaContext) -> dict:
    result = check_result_step(
        event["runId"], int(event["iteration"]), int(event["maxIterations"]), settings(), network_state()
    )
    logger.info("done-check", extra={"check": result["check"]})
    return result
