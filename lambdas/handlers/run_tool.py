from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.handlers.shared import idempotent_step, logger, network_state, settings
from lambdas.logic.steps.run_tool import run_tool


@logger.inject_lambda_context(correlation_id_path="runId")
@idempotent_step("RunTool", "[runId, iteration, toolCallId]")
def handler(event: dict, context: LambdaContext) -> dict:
    result = run_tool(
        event["runId"], int(event["iteration"]), int(event["index"]), event["toolCallId"], settings(), network_state()
    )
    logger.info("tool call done", extra={"tool": event.get("name"), "ok": result["ok"]})
    return result
