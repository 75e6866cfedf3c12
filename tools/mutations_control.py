"""Mutants for the user's control over a run (issue 22): budgets, the stuck-loop breaker and the done-check."""

from tools.mutations import ASL, Mutant

BUDGET = ["tests/test_budget.py"]
STUCK = ["tests/test_stuck_loop.py"]


def _router_ignores(outcome: str):
    def edit(definition: dict) -> None:
        router = definition["States"]["Router"]
        router["Choices"] = [c for c in router["Choices"] if c.get("Next") != outcome]

    return edit


MUTANTS: list[Mutant] = [
    Mutant("control-budget-not-checked", "lambdas/logic/budget.py", BUDGET,
           find="    if run.budget_usd is not None and spent is not None and spent >= run.budget_usd:",
           replace="    if False:",
           promise="Durability: anything else — BudgetExceeded before the next model call"),
    Mutant("control-usage-not-counted", "lambdas/logic/steps/agent_turn.py", BUDGET,
           find="    state.add_usage(run_id, usage.input_tokens, usage.output_tokens, usage.cached_input_tokens, usage.cache_write_tokens)",
           replace="    pass",
           promise="Durability: anything else — BudgetExceeded before the next model call"),
    Mutant("control-resume-keeps-old-budget", "lambdas/logic/steps/create_sandbox.py", BUDGET,
           find='        state.update_run(run_id, **budget_fields(choices.get("budgetUsd"), choices.get("maxTokens")))',
           replace="        pass",
           promise="CLI: pixie resume — RUN --budget-usd N carries a BudgetExceeded run on"),
    Mutant("control-budget-guard-skipped", "lambdas/handlers/agent_turn.py", BUDGET,
           find="    stopped = turn_guard(", replace="    stopped = None and turn_guard(",
           promise="Durability: anything else — BudgetExceeded before the next model call"),
    Mutant("asl-router-ignores-budget", ASL, BUDGET, edit_json=_router_ignores("BudgetExceeded"),
           promise="Durability: anything else — BudgetExceeded before the next model call"),
    Mutant("control-stuck-never-stops", "lambdas/logic/steps/agent_turn.py", STUCK,
           find="    if repeat is not None and repeat.count >= settings.stuck_limit:",
           replace="    if False:",
           promise="CLI: Stuck loops — StuckLoop after identical failing calls"),
    Mutant("control-stuck-never-tells", "lambdas/logic/steps/agent_turn.py", STUCK,
           find="    if repeat is not None and repeat.count >= settings.stuck_warn_after:",
           replace="    if False:",
           promise="CLI: Stuck loops — StuckLoop after identical failing calls"),
    Mutant("control-stuck-counts-any-call", "lambdas/logic/stuck.py", STUCK,
           find='            steps.append(("call", _signature(call)) if failed else ("ok", call.get("id") or ""))',
           replace='            steps.append(("call", _signature(call)))',
           promise="CLI: Stuck loops — StuckLoop after identical failing calls"),
    Mutant("asl-router-ignores-stuck-loop", ASL, STUCK, edit_json=_router_ignores("StuckLoop"),
           promise="CLI: Stuck loops — StuckLoop after identical failing calls"),
]
MUTANTS += [
    Mutant("budget-charges-cached-tokens-in-full", "lambdas/logic/budget.py",
           ["tests/test_budget.py::test_cached_prompt_tokens_count_at_the_cached_price"],
           find="run.output_tokens, run.cached_input_tokens, run.cache_write_tokens)", replace="run.output_tokens)", count=1,
           promise="CLI: Budgets — priced as billed"),
]

DONE_CHECK = ["tests/test_done_check.py"]
DONE_CHECK_PROMISE = "CLI: The done-check — a summary is accepted only once the preview and the project's check pass"


def _router_skips_the_check(definition: dict) -> None:
    for choice in definition["States"]["Router"]["Choices"]:
        if choice.get("Next") == "CheckResult":
            choice["Next"] = "GetSandboxUrl"


def _verdict_accepts_failed(definition: dict) -> None:
    # (Dropping the choice instead would loop forever: the failed verdict keeps its summary.)
    for choice in definition["States"]["CheckVerdict"]["Choices"]:
        if choice.get("Next") == "CheckFailed":
            choice["Next"] = "GetSandboxUrl"


MUTANTS += [
    Mutant("asl-router-skips-the-done-check", ASL, DONE_CHECK, edit_json=_router_skips_the_check,
           promise=DONE_CHECK_PROMISE),
    Mutant("control-check-finds-nothing", "lambdas/logic/steps/check_result.py", DONE_CHECK,
           find="    failures = check_result(sandbox, run.sandbox_kind, run.check_command, settings.command_timeout_s, run.approve)",
           replace="    failures = []",
           promise=DONE_CHECK_PROMISE),
    Mutant("control-check-preview-not-asked", "lambdas/logic/done_check.py", DONE_CHECK,
           find="    if status is None or not 200 <= status < 300:", replace="    if False:",
           promise=DONE_CHECK_PROMISE),
    Mutant("control-check-npm-test-not-run", "lambdas/logic/done_check.py", DONE_CHECK,
           find='        commands.append("npm test")', replace="        pass",
           promise=DONE_CHECK_PROMISE),
    Mutant("control-check-configured-command-ignored", "lambdas/logic/done_check.py", DONE_CHECK,
           find="    if configured:\n        return [configured]", replace="    if False:\n        return [configured]",
           promise=DONE_CHECK_PROMISE),
    Mutant("control-no-check-ignored", "lambdas/logic/steps/check_result.py", DONE_CHECK,
           find="    if not run.check:", replace="    if False:",
           promise="CLI: The done-check — --no-check accepts the summary as written"),
    Mutant("control-check-never-ends-the-run", "lambdas/logic/steps/check_result.py", DONE_CHECK,
           find="    if failed >= settings.check_limit or out_of_turns:", replace="    if out_of_turns:",
           promise="Durability: anything else — CheckFailed after PIXIE_CHECK_LIMIT failed checks"),
    Mutant("asl-check-failed-never-reached", ASL, DONE_CHECK, edit_json=_verdict_accepts_failed,
           promise="Durability: anything else — CheckFailed after PIXIE_CHECK_LIMIT failed checks"),
    Mutant("control-check-cause-unbounded", "lambdas/logic/done_check.py", DONE_CHECK,
           find="    return fit_json(text, MAX_CHECK_CAUSE_JSON_CHARS)", replace="    return text",
           promise="Durability: anything else — CheckFailed's cause holds the output, bounded"),
    Mutant("control-check-failure-not-told", "lambdas/logic/steps/check_result.py", DONE_CHECK,
           find='    state.put_message(run_id, notice_message_key(iteration + 1, CHECK_NOTICE), {"role": "user", "content": notice})',
           replace="    pass",
           promise=DONE_CHECK_PROMISE),
]
MUTANTS += [
    # Under --approve commands|all the done-check runs the model-written package.json scripts unasked.
    Mutant("control-check-runs-model-scripts-under-approvals", "lambdas/logic/done_check.py",
           ["tests/test_approvals.py::test_with_approve_commands_the_done_check_runs_no_model_written_command_unasked",
            "tests/test_done_check.py"],
           find='    return approve != "none" and not configured', replace="    return False",
           promise="CLI: The done-check — with approvals on, no model-written project command runs unasked"),
    # A deployed command timeout whose three checks outlast CheckResult's 900 s Lambda is accepted.
    Mutant("infra-command-timeout-outlasts-the-done-check", "infra/stack.py",
           ["tests/test_infra.py::test_the_done_check_function_outlives_its_checks_at_every_allowed_command_timeout"],
           find="        if self.command_timeout_s > MAX_DEPLOYED_COMMAND_TIMEOUT_S:", replace="        if False:",
           promise="CLI: The done-check — each check fits in CheckResult's function timeout"),
]
