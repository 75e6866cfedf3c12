"""AgentTurn: one model call with the three tools, the reply saved, and the onResponse hook
(a <task_summary> becomes the run's summary)."""

from __future__ import annotations

import json
from typing import Any

from lambdas.dal.network_state import (
    NetworkState,
    RunRecord,
    assistant_message_key,
    notice_message_key,
    tool_message_key,
    user_message_key,
)
from lambdas.logic import progress
from lambdas.logic.approvals import DEFAULT_APPROVAL_TIMEOUT_S, needs_approval
from lambdas.logic.budget import BUDGET_EXCEEDED, budget_exceeded_cause
from lambdas.logic.compaction import Compaction, compact
from lambdas.logic.config import Settings
from lambdas.logic.stuck import STUCK_LOOP, stuck_cause, stuck_notice, trailing_repeat
from lambdas.logic.limits import MAX_ITERATIONS_CAP
from lambdas.logic.models import model_from_spec
from lambdas.logic.models.base import ModelReply
from lambdas.logic.prompts import CONTINUE_PROMPT, system_prompt
from lambdas.logic.summary import extract_summary, title_from_summary
from lambdas.logic.tool_calls import normalize_reply, not_run_result, state_name, stored_size, too_large_reply
from lambdas.logic.tools import TOOLS, tool_definitions


def _call_model(
    state: NetworkState, run_id: str, model_spec: str, sandbox_kind: str, turn: int, compaction: Compaction
) -> tuple[dict, dict]:
    keyed = state.list_keyed_messages(run_id)
    last = keyed[-1][1] if keyed else None
    if last and last["role"] == "assistant" and not last.get("tool_calls"):
        # The model stopped without a summary: like AgentKit's network, give it another turn,
        # with a nudge so the conversation does not end on its own reply.
        nudge = {"role": "user", "content": CONTINUE_PROMPT}
        state.put_message(run_id, user_message_key(turn), nudge)
        keyed.append((user_message_key(turn), nudge))
    # The system prompt and the tools never change within a run and earlier messages are sent as
    # stored (compaction aside): the prompt's beginning stays byte for byte the same turn after
    # turn, which is what a provider's prompt cache bills at a discount.
    prompt = [{"role": "system", "content": system_prompt(sandbox_kind)}, *compact(keyed, turn, compaction)]
    tools = tool_definitions()
    def on_delta(kind: str, data: dict[str, Any]) -> None:  # the reply, live, to whoever watches
        progress.emit(run_id, f"model.{kind}", **data)

    reply: ModelReply = model_from_spec(model_spec).complete(prompt, tools, turn=turn, on_delta=on_delta)
    usage = reply.usage  # paid: counted before it is saved
    state.add_usage(run_id, usage.input_tokens, usage.output_tokens, usage.cached_input_tokens, usage.cache_write_tokens)
    usage = {
        "inputTokens": reply.usage.input_tokens,
        "outputTokens": reply.usage.output_tokens,
        "cachedInputTokens": reply.usage.cached_input_tokens,
        "cacheWriteTokens": reply.usage.cache_write_tokens,
        "promptBytes": len(json.dumps(prompt)) + len(json.dumps(tools)),
    }
    return reply.to_message(), usage


def _next_state(
    run: RunRecord,
    iteration: int,
    has_summary: bool,
    tool_calls: list,
    usage: dict,
    summary_pending: bool = False,
    stop: str = "",
    stop_cause: str = "",
) -> dict[str, Any]:
    """What the Router decides on: counters, a flag and the pending calls' ids and names."""
    return {
        "runId": run.run_id,
        "iteration": iteration,
        # Never past the cap, whatever a run record from elsewhere says.
        "maxIterations": min(run.max_iterations, MAX_ITERATIONS_CAP),
        "hasSummary": has_summary,
        # A summary written beside tool calls: on the last allowed turn the calls run, then the run ends.
        "summaryPending": summary_pending,
        "toolCalls": tool_calls,
        "usage": usage,
        # An outcome that ends the run before the model is asked again (BudgetExceeded, StuckLoop):
        # the Router sends it to the Pass state of that name, then CleanupSandbox.
        "stop": stop,
        "stopCause": stop_cause,
    }


def turn_guard(run_id: str, iteration: int, state: NetworkState, settings: Settings) -> dict[str, Any] | None:
    """Checked before every model call, outside the step's idempotency (so a resume with a higher
    budget decides again): the run's state with `stop` set when the run has reached its budget or
    is stuck in a loop, the closing state when a summary is pending, None when the turn may go on. Tells the model when it starts repeating."""
    run = state.get_run(run_id)
    turn = iteration + 1
    if state.get_message(run_id, assistant_message_key(turn)) is not None:
        return None  # this turn made its model call already
    if run.summary:
        # The summarizing reply's tool calls have run: the task is done, without a model call.
        # Decided here, outside the step's idempotency: a summary the done-check turned down is
        # set aside and this same iteration must then reach the model, not a saved "done".
        return _next_state(run, iteration, True, [], {})
    cause = budget_exceeded_cause(run)
    if cause:
        return _next_state(run, iteration, False, [], {}, stop=BUDGET_EXCEEDED, stop_cause=cause)
    repeat = trailing_repeat(state.list_messages(run_id))
    if repeat is not None and repeat.count >= settings.stuck_limit:
        return _next_state(run, iteration, False, [], {}, stop=STUCK_LOOP, stop_cause=stuck_cause(repeat))
    if repeat is not None and repeat.count >= settings.stuck_warn_after:
        notice = {"role": "user", "content": stuck_notice(repeat, settings.stuck_limit)}
        state.put_message(run_id, notice_message_key(turn, "stuck"), notice)
    return None


def agent_turn(run_id: str, iteration: int, state: NetworkState, settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or Settings.from_env()
    run = state.get_run(run_id)
    turn = iteration + 1
    message = state.get_message(run_id, assistant_message_key(turn))
    if message is None and run.summary:
        # The summarizing reply's tool calls have run: the task is done, as AgentKit's router
        # would decide. No further (paid) model call.
        return _next_state(run, iteration, True, [], {})
    usage: dict[str, int] = {}
    if message is None:  # a retry after the reply was saved does not pay for a second call
        reply, usage = _call_model(state, run_id, run.model, run.sandbox_kind, turn, settings.compaction)
        message = _save_reply(state, run_id, turn, reply, settings)

    calls = message.get("tool_calls") or []
    cap = settings.max_tool_calls
    if len(calls) > cap:
        # Answered here, each with its error result; the Map runs the others. Written after the
        # reply (and again by a retry that finds it), so no result ever names a call not saved.
        state.put_messages(
            run_id,
            {tool_message_key(turn, i): not_run_result(c["id"], i, len(calls), cap) for i, c in enumerate(calls) if i >= cap},
        )
    tool_calls = [{"id": c["id"], "name": state_name(c["function"]["name"], frozenset(TOOLS))} for c in calls[:cap]]
    summary = extract_summary(message.get("content")) or run.summary
    updates: dict[str, Any] = {"iteration": turn}
    if summary and summary != run.summary:
        updates.update(summary=summary, title=title_from_summary(summary))
    state.update_run(run_id, **updates)
    # Pending tool calls run first: a reply that writes files and summarizes keeps its files.
    wrote_summary = bool(extract_summary(message.get("content")))
    return _next_state(run, turn, bool(summary) and not tool_calls, tool_calls, usage, wrote_summary and bool(tool_calls))


def with_approval(result: dict[str, Any], state: NetworkState) -> dict[str, Any]:
    """The turn's state with what the Router needs for approvals: whether its calls wait for a
    person (AwaitApproval) and how long, and `approval` (null until a decision fills it). Decided
    outside the step's idempotency: a resumed run whose turn's calls have their results (run or
    denied) is not asked again."""
    calls = result.get("toolCalls") or []
    needed = False
    timeout = DEFAULT_APPROVAL_TIMEOUT_S
    if calls:
        run = state.get_run(result["runId"])
        timeout = run.approval_timeout_s or DEFAULT_APPROVAL_TIMEOUT_S
        turn = int(result["iteration"])
        needed = needs_approval(run.approve, [call["name"] for call in calls]) and any(
            state.get_message(result["runId"], tool_message_key(turn, index)) is None for index in range(len(calls))
        )
    return {**result, "needsApproval": needed, "approvalTimeoutSeconds": timeout, "approval": None}


def _save_reply(state: NetworkState, run_id: str, turn: int, reply: dict, settings: Settings) -> dict[str, Any]:
    """Stores the reply as the turn's assistant message, bounded; returns what was stored."""
    message = normalize_reply(reply, turn)
    size = stored_size(message)
    notice = None
    if size > settings.max_reply_chars:
        message, notice = too_large_reply(message, size, settings.max_reply_chars)
    state.put_message(run_id, assistant_message_key(turn), message)
    if notice:
        state.put_message(run_id, user_message_key(turn + 1), notice)  # the next turn starts with it
    return message
