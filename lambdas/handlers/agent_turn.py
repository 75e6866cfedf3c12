from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.handlers.shared import idempotent_step, logger, metrics, network_state, settings, tracer
from lambdas.logic.steps.agent_turn import agent_turn


@logger.inject_lambda_context(correlation_id_path="runId")
@tracer.capture_lambda_handler
@metrics.log_metrics
@idempotent_step("AgentTurn", "[runId, iteration]")
def handler(event: dict, context: LambdaContext) -> dict:
    result = agent_turn(event["runId"], int(event["iteration"]), network_state(), settings())
    usage = result["usage"]
    if usage:  # empty when a retry or a finished run made no model call
        metrics.add_metric(name="ModelInputTokens", unit=MetricUnit.Count, value=usage["inputTokens"])
        metrics.add_metric(name="ModelOutputTokens", unit=MetricUnit.Count, value=usage["outputTokens"])
    logger.info(
        "turn done",
        extra={"iteration": result["iteration"], "toolCalls": len(result["toolCalls"]), "hasSummary": result["hasSummary"]},
    )
    return result
