"""CheckResult: the done-check between a <task_summary> and the run's result (done_check.py).
Answers the CheckVerdict choice: "passed" (on to GetSandboxUrl), "retry" (the model was told why
and gets another turn: the summary is set aside) or "failed" (CheckFailed, with the cause)."""

from __future__ import annotations

from typing import Any

from lambdas.dal.network_state import NetworkState, notice_message_key
from lambdas.logic import progress
from lambdas.logic.config import Settings
from lambdas.logic.continuation import live_sandbox
from lambdas.logic.done_check import (
    CHECK_NOTICE,
    check_failed_cause,
    check_notice,
    check_result,
    failed_checks,
    model_scripts_skipped,
)
from lambdas.logic.limits import MAX_ITERATIONS_CAP

CHECK_PASSED, CHECK_RETRY, CHECK_FAILED_VERDICT = "passed", "retry", "failed"


def _verdict(run_id: str, iteration: int, max_iterations: int, verdict: str, cause: str = "") -> dict[str, Any]:
    """What the CheckVerdict choice decides on, and what AgentTurn needs when the model goes on."""
    return {"runId": run_id, "iteration": iteration, "maxIterations": min(max_iterations, MAX_ITERATIONS_CAP),
            "check": verdict, "stopCause": cause}


def check_result_step(run_id: str, iteration: int, max_iterations: int, settings: Settings, state: NetworkState) -> dict[str, Any]:
    run = state.get_run(run_id)
    if not run.check:
        return _verdict(run_id, iteration, max_iterations, CHECK_PASSED)
    sandbox = live_sandbox(run, settings, state)
    scripts_skipped = model_scripts_skipped(run.approve, run.check_command)
    progress.emit(run_id, "check.start")
    failures = check_result(sandbox, run.sandbox_kind, run.check_command, settings.command_timeout_s, run.approve)
    progress.emit(run_id, "check.end", passed=not failures)
    if not failures:
        return _verdict(run_id, iteration, max_iterations, CHECK_PASSED)
    keys = [key for key, _ in state.list_keyed_messages(run_id)]
    failed = failed_checks(keys) + 1
    out_of_turns = iteration >= min(max_iterations, MAX_ITERATIONS_CAP)
    if failed >= settings.check_limit or out_of_turns:
        return _verdict(run_id, iteration, max_iterations, CHECK_FAILED_VERDICT, check_failed_cause(failures, failed, out_of_turns))
    # The next turn starts with the failure; the summary is set aside, so AgentTurn asks the model again.
    notice = check_notice(failures, failed, settings.check_limit, settings.max_tool_output_chars, scripts_skipped)
    state.put_message(run_id, notice_message_key(iteration + 1, CHECK_NOTICE), {"role": "user", "content": notice})
    state.update_run(run_id, summary=None, title=None)
    return _verdict(run_id, iteration, max_iterations, CHECK_RETRY)
