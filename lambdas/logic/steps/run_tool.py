"""RunTool: one tool call of the turn, its result saved as the call's tool message."""

from __future__ import annotations

from typing import Any

from lambdas.dal.network_state import NetworkState, assistant_message_key, tool_message_key
from lambdas.logic.approvals import (
    TOO_LONG_TO_APPROVE, Decision, call_needs_approval, decision_from, denied_result, too_long_to_approve,
)
from lambdas.logic.config import Settings
from lambdas.logic.continuation import live_sandbox
from lambdas.logic.tools import ToolContext, execute_tool
from lambdas.logic.versions import tool_call_changes


def run_tool(
    run_id: str, iteration: int, index: int, tool_call_id: str, settings: Settings, state: NetworkState,
    approval: Any = None,
) -> dict[str, Any]:
    """`approval`: the decision AwaitApproval left ($.approval; null when none was asked for)."""
    key = tool_message_key(iteration, index)
    saved = state.get_message(run_id, key)
    if saved is not None:  # a retry after the result was saved does not run the command again
        return {"toolCallId": tool_call_id, "ok": not saved["content"].startswith("Error:")}

    assistant = state.get_message(run_id, assistant_message_key(iteration)) or {}
    calls = assistant.get("tool_calls") or []
    # By position, as the Map hands it over (ids were made unique when the reply was saved).
    call = calls[index] if 0 <= index < len(calls) and calls[index]["id"] == tool_call_id else None
    if call is None:
        content, ok = f"Error: no tool call {tool_call_id!r} in turn {iteration}", False
    else:
        run = state.get_run(run_id)
        decision = decision_from(approval)
        if decision is not None:
            state.clear_pending_approval(run_id, iteration)
        if (decision is not None and decision.approved and call_needs_approval(run.approve, call["function"]["name"])
                and too_long_to_approve(assistant, index, settings.max_tool_calls)):
            decision = Decision(False, TOO_LONG_TO_APPROVE)  # approved was a shortened view, not this call
        if call_needs_approval(run.approve, call["function"]["name"]) and not (decision and decision.approved):
            # Denied, timed out, or (never, by the ASL) not asked: the call is not run, and says why.
            content = denied_result(call["function"]["name"], decision)
            state.put_message(run_id, key, {"role": "tool", "tool_call_id": tool_call_id, "content": content})
            return {"toolCallId": tool_call_id, "ok": False}
        sandbox = live_sandbox(run, settings, state)  # restored if a cleanup released it before a redrive
        ctx = ToolContext(
            run_id=run_id,
            sandbox=sandbox,
            state=state,
            command_timeout_s=settings.command_timeout_s,
            max_file_bytes=settings.max_file_bytes,
            max_call_bytes=settings.max_call_bytes,
        )
        with tool_call_changes(sandbox, call["function"]["name"], run_id, state) as changes:
            content, ok = execute_tool(
                call["function"]["name"], call["function"]["arguments"], ctx, settings.max_tool_output_chars
            )
        if changes.found:  # an empty list is not saved: a retry must not blank what the first try saw
            state.put_changes(run_id, iteration, index, {"tool": str(call["function"]["name"])[:64], "toolCallId": tool_call_id, **changes.found})
    state.put_message(run_id, key, {"role": "tool", "tool_call_id": tool_call_id, "content": content})
    return {"toolCallId": tool_call_id, "ok": ok}
