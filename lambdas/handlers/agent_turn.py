from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.handlers.shared import idempotent_step, logger, network_state
from lambdas.logic.steps.agent_turn import agent_turn


@logger.inject_lambda_context(correlation_id_path="runId")
@idempotent_step("AgentTurn", "[runId, iteration]")
def handler(event: dict, context: LambdaContext) -> dict:
    result = agent_turn(event["runId"], int(event["iteration"]), network_state())
    logger.info(
        "turn done",
        extra={"iteration": result["iteration"], "toolCalls": len(result["toolCalls"]), "hasSummary": result["hasSummary"]},
    )
    return result
