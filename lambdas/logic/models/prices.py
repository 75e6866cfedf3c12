"""List prices per model, in US dollars per million tokens (input, output): the one table that
cost estimates (pixie list, pixie show, the console, make bench) read. Unknown models have no
estimate rather than a wrong one. Checked against the providers' public price pages 2026-11."""

from __future__ import annotations

from lambdas.logic.models.bedrock_ids import split_profile

# Keyed by the model spec without the provider prefix where unambiguous.
PRICES_PER_MILLION: dict[str, tuple[float, float]] = {
    "openai:gpt-4.1": (2.00, 8.00),
    "openai:gpt-4.1-mini": (0.40, 1.60),
    "openai:gpt-4.1-nano": (0.10, 0.40),
    "openai:gpt-4o": (2.50, 10.00),
    "openai:gpt-4o-mini": (0.15, 0.60),
    # Amazon Bedrock, on-demand in us-east-1 (other regions may differ). Keyed by model id; an
    # inference profile (us./eu./apac./global.<model id>) is billed at the same per-token price.
    "bedrock:anthropic.claude-3-5-haiku-20241022-v1:0": (0.80, 4.00),
    "bedrock:anthropic.claude-haiku-4-5-20251001-v1:0": (1.00, 5.00),
    "bedrock:anthropic.claude-3-7-sonnet-20250219-v1:0": (3.00, 15.00),
    "bedrock:anthropic.claude-sonnet-4-20250514-v1:0": (3.00, 15.00),
    "bedrock:anthropic.claude-sonnet-4-5-20250929-v1:0": (3.00, 15.00),
    "bedrock:amazon.nova-pro-v1:0": (0.80, 3.20),
    "bedrock:amazon.nova-lite-v1:0": (0.06, 0.24),
    "bedrock:amazon.nova-micro-v1:0": (0.035, 0.14),
    "bedrock:meta.llama3-1-8b-instruct-v1:0": (0.22, 0.22),
    "bedrock:meta.llama3-1-70b-instruct-v1:0": (0.72, 0.72),
    "bedrock:meta.llama3-2-3b-instruct-v1:0": (0.15, 0.15),
    "bedrock:meta.llama3-2-11b-instruct-v1:0": (0.16, 0.16),
    "bedrock:meta.llama3-2-90b-instruct-v1:0": (0.72, 0.72),
    "bedrock:meta.llama3-3-70b-instruct-v1:0": (0.72, 0.72),
}



def _table_key(model_spec: str) -> str:
    """`bedrock:us.<model id>` (an inference profile) is priced as `bedrock:<model id>`."""
    provider, _, name = model_spec.partition(":")
    if provider == "bedrock":
        return f"bedrock:{split_profile(name)[1]}"
    return model_spec


def price_for(model_spec: str | None) -> tuple[float, float] | None:
    """(input, output) dollars per million tokens, or None when the model is not in the table.
    Scripted models cost nothing."""
    if not model_spec:
        return None
    if model_spec.startswith("scripted:"):
        return (0.0, 0.0)
    return PRICES_PER_MILLION.get(_table_key(model_spec))


def estimate_cost(model_spec: str | None, input_tokens: int, output_tokens: int) -> float | None:
    price = price_for(model_spec)
    if price is None:
        return None
    return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000
