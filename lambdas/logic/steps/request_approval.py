"""RequestApproval: the Lambda AwaitApproval invokes with its task token. It saves the token and
the turn's pending calls (bounded) with the run, so `pixie show` lists them and `pixie approve` /
`deny` (or the console) can hand the token back, then returns at once: the execution waits in
Step Functions for SendTaskSuccess / SendTaskFailure, not in a running Lambda
(https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token)."""

from __future__ import annotations

import time
from typing import Any

from lambdas.dal.network_state import NetworkState, assistant_message_key
from lambdas.logic import progress
from lambdas.logic.approvals import DEFAULT_APPROVAL_TIMEOUT_S, pending_calls
from lambdas.logic.config import Settings

MAX_TASK_TOKEN_CHARS = 2_048  # SendTaskSuccess's taskToken: at most 2,048 characters


def request_approval(run_id: str, iteration: int, task_token: str, settings: Settings, state: NetworkState) -> dict[str, Any]:
    if not isinstance(task_token, str) or not 0 < len(task_token) <= MAX_TASK_TOKEN_CHARS:
        raise ValueError("AwaitApproval must pass its task token ($$.Task.Token)")
    run = state.get_run(run_id)
    assistant = state.get_message(run_id, assistant_message_key(iteration)) or {}
    calls = pending_calls(assistant, settings.max_tool_calls)
    timeout = run.approval_timeout_s or DEFAULT_APPROVAL_TIMEOUT_S
    state.set_pending_approval(run_id, {
        "taskToken": task_token,
        "iteration": iteration,
        "calls": calls,
        "requestedAt": int(time.time()),
        "timeoutSeconds": timeout,
    })
    progress.emit(run_id, "approval.pending", iteration=iteration, calls=calls, timeoutSeconds=timeout)
    return {"runId": run_id, "iteration": iteration, "pendingCalls": len(calls)}
