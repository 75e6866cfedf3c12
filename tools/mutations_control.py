"""Mutants for the user's control over a run (issue 22): budgets and the stuck-loop breaker."""

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
           promise="CLI: pixie resume RUN --budget-usd N carries a BudgetExceeded run on"),
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
           promise="CLI: budgets priced as billed"),
]
