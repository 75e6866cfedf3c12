"""List prices per model, in US dollars per million tokens (input, output): the one table that
cost estimates (pixie list, pixie show, the console, make bench) read. Unknown models have no
estimate rather than a wrong one. Checked against the providers' public price pages 2026-11."""

from __future__ import annotations

# Keyed by the model spec without the provider prefix where unambiguous.
PRICES_PER_MILLION: dict[str, tuple[float, float]] = {
    "openai:gpt-4.1": (2.00, 8.00),
    "openai:gpt-4.1-mini": (0.40, 1.60),
    "openai:gpt-4.1-nano": (0.10, 0.40),
    "openai:gpt-4o": (2.50, 10.00),
    "openai:gpt-4o-mini": (0.15, 0.60),
}


def price_for(model_spec: str | None) -> tuple[float, float] | None:
    """(input, output) dollars per million tokens, or None when the model is not in the table.
    Scripted models cost nothing."""
    if not model_spec:
        return None
    if model_spec.startswith("scripted:"):
        return (0.0, 0.0)
    return PRICES_PER_MILLION.get(model_spec)


def estimate_cost(model_spec: str | None, input_tokens: int, output_tokens: int) -> float | None:
    price = price_for(model_spec)
    if price is None:
        return None
    return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000
