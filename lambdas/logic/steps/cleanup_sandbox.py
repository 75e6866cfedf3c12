"""CleanupSandbox: a run that cannot finish releases its sandbox and records why it failed.
The conversation and files stay in the table for inspection.

Two callers, one step, so either order and any repetition are harmless:
- the workflow's own CleanupSandbox state (payload `{runId, error: {Error, Cause}}`), and
- the EventBridge rule on Step Functions' "Execution Status Change" events (FAILED, TIMED_OUT,
  ABORTED), which sees the endings no Catch can: an aborted or timed-out execution, and
  `States.Runtime` / `States.DataLimitExceeded` failures. Its run id is the execution name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lambdas.dal.network_state import NetworkState
from lambdas.logic.config import Settings
from lambdas.logic.errors import SandboxNotFound
from lambdas.logic.sandboxes import sandbox_provider

MAX_CAUSE_CHARS = 4_000
STATUS_CHANGE_SOURCE = "aws.states"
STATUS_CHANGE_DETAIL_TYPE = "Step Functions Execution Status Change"
BAD_ENDINGS = ("FAILED", "TIMED_OUT", "ABORTED")
# What to record when the event carries no error of its own (StopExecution without one, say).
_DEFAULT_ERRORS = {
    "FAILED": ("States.Failed", "The execution failed."),
    "TIMED_OUT": ("States.Timeout", "The execution ran longer than its TimeoutSeconds."),
    "ABORTED": ("States.Aborted", "The execution was stopped (StopExecution or the console) before it finished."),
}


@dataclass(frozen=True)
class CleanupRequest:
    run_id: str
    status: str  # the run's final status: FAILED, TIMED_OUT or ABORTED
    error: dict[str, Any]  # {"Error": name, "Cause": text}
    from_status_change: bool


def is_status_change(event: Any) -> bool:
    return (
        isinstance(event, dict)
        and event.get("source") == STATUS_CHANGE_SOURCE
        and event.get("detail-type") == STATUS_CHANGE_DETAIL_TYPE
    )


def cleanup_request(event: dict[str, Any]) -> CleanupRequest | None:
    """What to clean up, from either payload; None for a status change that is not a bad ending."""
    if is_status_change(event):
        detail = event.get("detail") or {}
        status = str(detail.get("status", ""))
        if status not in BAD_ENDINGS:
            return None
        default_error, default_cause = _DEFAULT_ERRORS[status]
        error = {"Error": detail.get("error") or default_error, "Cause": detail.get("cause") or default_cause}
        return CleanupRequest(str(detail["name"]), status, error, from_status_change=True)
    return CleanupRequest(str(event["runId"]), "FAILED", event.get("error") or {}, from_status_change=False)


def cleanup_sandbox(
    run_id: str,
    error: dict[str, Any] | None,
    settings: Settings,
    state: NetworkState,
    status: str = "FAILED",
) -> dict[str, Any]:
    """Kills the run's sandbox and marks the run `status` with the error's name and cause.
    `firstReport` says whether the run was still RUNNING, i.e. whether this call ended it."""
    error = error or {}
    run = state.find_run(run_id)
    if run is None:
        # Failed before the run was recorded (or a duplicate event): usually nothing was created,
        # but a CreateSandbox cut off between creating the sandbox and recording the run leaves
        # one, tagged with the run.
        released = sandbox_provider(settings.sandbox, settings).release_run(run_id)
        return {"runId": run_id, "cleaned": released > 0, "firstReport": False}
    killed = False
    try:
        sandbox = sandbox_provider(run.sandbox_kind, settings).connect(run.sandbox_id, settings.sandbox_timeout_s)
        sandbox.kill()
        killed = True
    except SandboxNotFound:
        pass  # already gone: the goal of this step
    state.update_run(
        run_id,
        status=status,
        error=str(error.get("Error", "Unknown")),
        cause=str(error.get("Cause", ""))[:MAX_CAUSE_CHARS],
    )
    return {"runId": run_id, "cleaned": killed, "status": status, "firstReport": run.status == "RUNNING"}


# Endings that are a user's outcome, not something broken: the model used its turns, the user
# stopped the run. They are counted as failed runs, never as faults (the RunFaults alarm).
USER_OUTCOMES = frozenset({"MaxIterationsReached", "BudgetExceeded", "StuckLoop", "Interrupted", "InvalidEvent"})


def is_fault(status: str | None, error_name: str | None) -> bool:
    """Whether an ending needs a person: anything but a user's outcome or an abort (StopExecution,
    i.e. `pixie stop` or the console). A timeout has its own alarm."""
    if status in ("ABORTED", "TIMED_OUT"):
        return False
    return error_name not in USER_OUTCOMES
