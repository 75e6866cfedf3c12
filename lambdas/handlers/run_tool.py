from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.handlers.shared import idempotent_step, logger, metrics, network_state, settings, tracer
from lambdas.logic.steps.run_tool import run_tool
from lambdas.logic.tools import TOOLS


@logger.inject_lambda_context(correlation_id_path="runId")
@tracer.capture_lambda_handler
@metrics.log_metrics
# pixie's own identity for a call, its turn and position: a model may send the same id twice.
@idempotent_step("RunTool", "[runId, iteration, index]")
def handler(event: dict, context: LambdaContext) -> dict:
    result = run_tool(
        event["runId"], int(event["iteration"]), int(event["index"]), event["toolCallId"], settings(), network_state(),
        approval=event.get("approval"),
    )
    # A name that is no tool of ours is counted as "unknown": a model must not mint dimensions.
    name = event.get("name")
    tool, outcome = name if name in TOOLS else "unknown", "ok" if result["ok"] else "error"
    # One invocation is one tool call, so these dimensions describe exactly this data point.
    # log_metrics flushes and clears them at the end, except when metrics are disabled (the local
    # engine), hence the explicit clear.
    metrics.clear_metrics()
    metrics.add_dimension(name="tool", value=tool)
    metrics.add_dimension(name="outcome", value=outcome)
    metrics.add_metric(name="ToolCalls", unit=MetricUnit.Count, value=1)
    logger.info("tool call done", extra={"tool": tool, "ok": result["ok"]})
    return result
