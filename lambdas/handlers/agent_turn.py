from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.handlers.shared import idempotent_step, logger, metrics, network_state, settings, tracer
from lambdas.logic.steps.agent_turn import agent_turn, turn_guard, with_approval


@idempotent_step("AgentTurn", "[runId, iteration]")
def _turn(event: dict, context: LambdaContext) -> dict:
    return agent_turn(event["runId"], int(event["iteration"]), network_state(), settings())


@logger.inject_lambda_context(correlation_id_path="runId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    # The budget and the stuck-loop breaker, before the (idempotent, paid) turn: never cached, so
    # a run resumed with a higher budget is judged again.
    stopped = turn_guard(event["runId"], int(event["iteration"]), network_state(), settings())
    if stopped is not None:
        logger.info("no model call this turn", extra={"stop": stopped["stop"] or None, "hasSummary": stopped["hasSummary"]})
        return with_approval(stopped, network_state())
    result = with_approval(_turn(event, context), network_state())
    usage = result["usage"]
    if usage:  # empty when a retry or a finished run made no model call
        metrics.add_metric(name="ModelInputTokens", unit=MetricUnit.Count, value=usage["inputTokens"])
        metrics.add_metric(name="ModelOutputTokens", unit=MetricUnit.Count, value=usage["outputTokens"])
    logger.info(
        "turn done",
        extra={"iteration": result["iteration"], "toolCalls": len(result["toolCalls"]), "hasSummary": result["hasSummary"]},
    )
    return result
