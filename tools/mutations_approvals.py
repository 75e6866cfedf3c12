"""Mutants for approvals as durable waits (issue 22, item 4): --approve, AwaitApproval,
pixie approve / deny."""

from tools.mutations import ASL, Mutant

APPROVALS = "tests/test_approvals.py"
DENY_THEN_APPROVE = [f"{APPROVALS}::test_deny_from_another_shell_skips_the_command_and_tells_the_model_then_approve_runs_it"]
TIMEOUT = [f"{APPROVALS}::test_no_decision_within_the_timeout_counts_as_denied"]
INLINE = [f"{APPROVALS}::test_pixie_run_on_a_terminal_asks_inline_and_a_no_with_a_reason_denies"]
RESUME = [f"{APPROVALS}::test_a_run_waiting_for_approval_stops_at_once_and_resume_asks_again"]
CONSOLE_BUTTON = ["tests/test_console_approvals.py::test_the_approve_button_runs_the_waiting_command"]
TOKEN_IN_HISTORY = ["tests/test_cli_aws.py::test_show_aws_of_a_run_waiting_for_approval_never_prints_its_live_task_token"]
KILLED_WAIT = [f"{APPROVALS}::test_a_run_killed_while_waiting_shows_no_pending_approval"]
STALE_YES = [f"{APPROVALS}::test_a_yes_on_the_terminal_approves_only_the_calls_it_was_asked_about"]
TWO_DECISIONS = [f"{APPROVALS}::test_two_shells_deciding_at_once_both_get_an_answer"]
SHOWN_WHOLE = [f"{APPROVALS}::test_an_approved_call_runs_only_what_the_person_was_shown"]
CONSOLE_API = ["tests/test_console_approvals.py::test_deny_through_the_api_and_pixie_approve_from_another_shell"]


def _router_skips_approval(definition: dict) -> None:
    router = definition["States"]["Router"]
    router["Choices"] = [c for c in router["Choices"] if c.get("Next") != "AwaitApproval"]


def _timeout_not_caught(definition: dict) -> None:
    for catcher in definition["States"]["AwaitApproval"]["Catch"]:
        if "States.Timeout" in catcher["ErrorEquals"]:
            catcher["ErrorEquals"].remove("States.Timeout")


MUTANTS: list[Mutant] = [
    Mutant("approvals-denied-call-runs", "lambdas/logic/steps/run_tool.py", DENY_THEN_APPROVE,
           find='        if call_needs_approval(run.approve, call["function"]["name"]) and not (decision and decision.approved):',
           replace="        if False:",
           promise="Durability: ApprovalDenied — a denied call is not run"),
    Mutant("approvals-reason-dropped", "lambdas/logic/approvals.py", DENY_THEN_APPROVE,
           find='    cause = approval.get("Cause") if isinstance(approval, dict) else None',
           replace="    cause = None",
           promise="CLI: pixie deny — the model is told the reason"),
    Mutant("approvals-engine-drops-the-cause", "statemachine/engine.py", DENY_THEN_APPROVE,
           find='        self._callback("SendTaskFailure", "send_task_failure", task_token=task_token, error=error, cause=cause)',
           replace='        self._callback("SendTaskFailure", "send_task_failure", task_token=task_token, error=error, cause=None)',
           promise="Durability: ApprovalDenied — SendTaskFailure's cause reaches the Catch, as on AWS"),
    Mutant("approvals-approve-denies", "pixie/local_run.py", DENY_THEN_APPROVE,
           find='            engine.send_task_success(token, {"approved": True})',
           replace='            engine.send_task_success(token, {"approved": False})',
           promise="CLI: pixie approve — the calls run"),
    Mutant("approvals-token-shown", "pixie/runs.py", DENY_THEN_APPROVE,
           find='    return {key: pending.get(key) for key in ("iteration", "calls", "requestedAt", "timeoutSeconds")}',
           replace="    return dict(pending)",
           promise="CLI: Approvals — pendingApproval lists the calls, the token stays in the table"),
    Mutant("asl-router-skips-approval", ASL, DENY_THEN_APPROVE, edit_json=_router_skips_approval,
           promise="CLI: Approvals — the run waits in AwaitApproval before running the calls"),
    Mutant("asl-approval-timeout-not-caught", ASL, TIMEOUT, edit_json=_timeout_not_caught,
           promise="CLI: Approvals — no decision within --approval-timeout counts as a denial"),
    Mutant("console-approval-never-shown", "pixie/console/static/run.js", CONSOLE_BUTTON,
           find="    section.hidden = !pending;", replace="    section.hidden = true;",
           promise="Console: POST /api/runs/RUN_ID/approve — the run page's Approve button"),
    Mutant("console-deny-drops-the-reason", "pixie/console/app.py", CONSOLE_API,
           find="runs.decide, run_id, approve, reason if not approve else None, iteration)",
           replace="runs.decide, run_id, approve, None, iteration)",
           promise="Console: POST /api/runs/RUN_ID/approve — deny with a reason the model is told"),
    Mutant("console-approve-not-a-choice", "pixie/console/backends.py", CONSOLE_API,
           find=' "approve",\n                 "approvalTimeoutSeconds")', replace=")",
           promise='Console: POST /api/runs {"prompt", ..., "approve"?, "approvalTimeoutSeconds"?} — checked as pixie run checks them'),
    Mutant("approvals-never-asked-inline", "pixie/cli.py", INLINE,
           find="        return sys.stdin.isatty() and sys.stderr.isatty()", replace="        return False",
           promise="CLI: Approvals — pixie run on a terminal asks inline"),
    Mutant("approvals-resume-keeps-a-dead-wait", "pixie/run_journal.py", RESUME,
           find='    return {k: v for k, v in item.items() if k != "pendingApproval"} if item["sk"]["S"] == "META" else item',
           replace="    return item",
           promise="CLI: Approvals — a resumed run asks again about a turn not yet decided"),
    Mutant("approvals-token-in-history", "statemachine/history.py", TOKEN_IN_HISTORY,
           find="    return redact_task_tokens(json.loads(", replace="    return (json.loads(",
           promise="CLI: Approvals — the token stays in the table, out of every history pixie prints"),
    Mutant("approvals-interrupted-run-offers-a-dead-wait", "pixie/runs.py", KILLED_WAIT,
           find='        return {**record, "status": "INTERRUPTED", "pendingApproval": None}',
           replace='        return {**record, "status": "INTERRUPTED"}',
           promise="CLI: Approvals — a run stopped (or killed) while it waits offers no pendingApproval"),
    Mutant("approvals-decision-names-no-turn", "pixie/local_run.py", STALE_YES,
           find="    check_decided_turn(run_id, pending, iteration)\n", replace="",
           promise="CLI: pixie approve — a decision names the turn it decides; one for a turn no longer waiting is refused"),
    Mutant("approvals-decisions-share-one-file", "pixie/local_run.py", TWO_DECISIONS,
           find='    path = folder / f"{run_id}.{request_id}.json"', replace='    path = folder / f"{run_id}.shared.json"',
           promise="CLI: pixie approve — decisions at once each get their answer (one request file each)"),
    Mutant("approvals-pending-call-shortened", "lambdas/logic/approvals.py", SHOWN_WHOLE,
           find='            "arguments": arguments if whole else bound_text(arguments, MAX_PENDING_ARGUMENTS_CHARS),',
           replace='            "arguments": bound_text(arguments, MAX_PENDING_ARGUMENTS_CHARS),',
           promise="CLI: Approvals — what is approved is what was shown: a call is shown whole, or cannot be approved"),
]
