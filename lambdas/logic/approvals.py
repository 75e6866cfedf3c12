"""Approvals as durable waits (--approve commands|all): before RunTools runs a turn's calls that
need a person's yes, the execution waits in AwaitApproval, a `lambda:invoke.waitForTaskToken`
task. The RequestApproval step saves the task token and the pending calls (bounded) with the run
and returns at once, so the wait costs no Lambda time; `pixie approve`/`deny` (or the console)
hand the token back with SendTaskSuccess / SendTaskFailure. A denial, or no decision within the
timeout (States.Timeout), reaches each RunTool as the decision: the call is not run, and its result
tells the model it was denied and why.

Wait for a Callback with Task Token:
https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from lambdas.logic.errors import ApprovalDenied
from lambdas.logic.truncate import bound_text

APPROVE_MODES = ("none", "commands", "all")
# "commands": the calls that run something in the sandbox (the terminal tool); "all": every call.
COMMAND_TOOLS = frozenset({"terminal"})
APPROVAL_DENIED = ApprovalDenied.__name__  # the error SendTaskFailure reports for a denial
APPROVAL_TIMED_OUT = "States.Timeout"  # what Step Functions reports when TimeoutSeconds passes
DEFAULT_APPROVAL_TIMEOUT_S = 24 * 3600
# Step Functions: a standard execution (so any one wait in it) lasts at most a year.
MAX_APPROVAL_TIMEOUT_S = 365 * 24 * 3600
# What is approved must be what was shown: a pending call's arguments are kept whole up to
# MAX_APPROVABLE_ARGUMENTS_CHARS (and while the turn's calls stay within MAX_PENDING_TOTAL_CHARS, so
# the run's item stays under DynamoDB's 400 KB at 4 bytes a character). A call beyond that is shown
# shortened (head and tail, MAX_PENDING_ARGUMENTS_CHARS) and cannot be approved: RunTool denies it
# with a reason the model sees, whatever the decision.
MAX_APPROVABLE_ARGUMENTS_CHARS = 8_000
MAX_PENDING_TOTAL_CHARS = 64_000
MAX_PENDING_ARGUMENTS_CHARS = 2_000
MAX_PENDING_NAME_CHARS = 64
MAX_REASON_CHARS = 1_000  # a deny reason, as the model and the record see it


def check_approve_mode(mode: Any) -> str:
    if mode not in APPROVE_MODES:
        raise ValueError(f"approve must be one of {', '.join(APPROVE_MODES)}, got {str(mode)[:40]!r}")
    return mode


def check_approval_timeout(seconds: Any) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= MAX_APPROVAL_TIMEOUT_S:
        raise ValueError(f"the approval timeout must be a whole number of seconds from 1 to {MAX_APPROVAL_TIMEOUT_S:,}, got {str(seconds)[:40]!r}")
    return seconds


def needs_approval(mode: str | None, tool_names: Iterable[str]) -> bool:
    """True when a person must approve a turn calling these tools."""
    names = list(tool_names)
    if not names or mode in (None, "none"):
        return False
    if mode == "all":
        return True
    return any(name in COMMAND_TOOLS for name in names)


def call_needs_approval(mode: str | None, name: str) -> bool:
    return needs_approval(mode, [name])


def pending_calls(assistant: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The turn's first `count` calls (those RunTools runs) as people see them before deciding."""
    calls = (assistant.get("tool_calls") or [])[:count]
    pending = []
    room = MAX_PENDING_TOTAL_CHARS
    for index, call in enumerate(calls):
        function = call.get("function") or {}
        arguments = str(function.get("arguments") or "")
        whole = len(arguments) <= min(MAX_APPROVABLE_ARGUMENTS_CHARS, room)
        room -= len(arguments) if whole else 0
        pending.append({
            "index": index,
            "id": str(call.get("id"))[:MAX_PENDING_NAME_CHARS],
            "name": str(function.get("name"))[:MAX_PENDING_NAME_CHARS],
            "arguments": arguments if whole else bound_text(arguments, MAX_PENDING_ARGUMENTS_CHARS),
            "tooLongToApprove": not whole,
        })
    return pending


def too_long_to_approve(assistant: dict[str, Any], index: int, count: int) -> bool:
    """True when the call at `index` was shown shortened, so no decision can approve it."""
    pending = pending_calls(assistant, count)
    return 0 <= index < len(pending) and pending[index]["tooLongToApprove"]


TOO_LONG_TO_APPROVE = (
    f"its arguments are too long to show a person whole (over {MAX_APPROVABLE_ARGUMENTS_CHARS:,} characters, "
    f"or over {MAX_PENDING_TOTAL_CHARS:,} for the turn's calls together), so it cannot be approved: send a shorter call")


@dataclass(frozen=True)
class Decision:
    approved: bool
    reason: str  # why not, for the model (empty when approved)


def decision_from(approval: Any) -> Decision | None:
    """The decision AwaitApproval left in the state ($.approval): SendTaskSuccess's output
    {"approved": true}, or the caught error {Error, Cause}. None: no approval was asked for."""
    if approval is None:
        return None
    if isinstance(approval, dict) and approval.get("approved") is True and "Error" not in approval:
        return Decision(True, "")
    if isinstance(approval, dict) and approval.get("Error") == APPROVAL_TIMED_OUT:
        return Decision(False, "no one decided before the approval timeout, which counts as a denial")
    cause = approval.get("Cause") if isinstance(approval, dict) else None
    reason = bound_text(str(cause), MAX_REASON_CHARS) if cause else "no reason given"
    return Decision(False, f"the user denied it; reason: {reason}")


def denied_result(name: str, decision: Decision | None) -> str:
    """The tool result of a call that was not run for want of approval."""
    why = decision.reason if decision is not None else "it needed the user's approval and none was asked for"
    return f"Error: this {str(name)[:MAX_PENDING_NAME_CHARS]} call was not run: {why}."
