"""A run's budget: what its model calls have cost so far (priced from the one price table,
models/prices.py), checked before every model call. A run that has reached its budget ends
BudgetExceeded; `pixie resume RUN --budget-usd N` carries it on with a higher one."""

from __future__ import annotations

from lambdas.dal.network_state import RunRecord
from lambdas.logic.errors import InvalidEvent
from lambdas.logic.models.prices import estimate_cost

BUDGET_EXCEEDED = "BudgetExceeded"


def spent_usd(run: RunRecord) -> float | None:
    """Dollars the run's model calls have cost (None: the model is not in the price table)."""
    # Cached prompt tokens at the cached price, as they are billed: at full price a cached run
    # would reach its budget about 3 × too early (75 % of its input is read from the cache).
    return estimate_cost(run.model, run.input_tokens, run.output_tokens, run.cached_input_tokens, run.cache_write_tokens)


def check_budget_is_priced(model: str, budget_usd: float | None) -> None:
    """A dollar budget needs a price: InvalidEvent for a model the table does not know."""
    if budget_usd is not None and estimate_cost(model, 0, 0) is None:
        raise InvalidEvent(
            f"a budget in US dollars needs the model's price, and {model[:200]!r} is not in pixie's price table; "
            "bound it with a token budget (--max-tokens, detail.maxTokens) instead"
        )


def budget_exceeded_cause(run: RunRecord) -> str | None:
    """Why the run may not call the model again, or None while it is within its budget."""
    tokens = run.input_tokens + run.output_tokens
    spent = spent_usd(run)
    used = f"{tokens:,} tokens ({run.input_tokens:,} in, {run.output_tokens:,} out)"
    if spent is not None:
        used = f"${spent:.6f} of model calls, {used}"
    resume = f"Raise it with: pixie resume {run.run_id} --budget-usd N (or --max-tokens N)."
    if run.budget_usd is not None and spent is not None and spent >= run.budget_usd:
        return f"The run spent {used}, reaching its budget of ${run.budget_usd:g}. {resume}"
    if run.max_tokens is not None and tokens >= run.max_tokens:
        return f"The run used {used}, reaching its budget of {run.max_tokens:,} tokens. {resume}"
    return None
