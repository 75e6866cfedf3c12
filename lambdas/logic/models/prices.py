"""List prices per model, in US dollars per million tokens: the one table that cost estimates
(pixie list, pixie show, the console, make bench) read. Unknown models have no estimate rather
than a wrong one. Checked against the providers' public price pages 2026-11.

Prompt caching: a token read from the provider's cache is billed at `cached_input`; a token
written to it at `cache_write` (Bedrock's Claude: 1.25 x input; OpenAI and Nova: no surcharge);
every other input token at `input`. Models without caching have both equal to `input`."""

from __future__ import annotations

from typing import NamedTuple

from lambdas.logic.models.bedrock_ids import split_profile


class Price(NamedTuple):
    input: float
    output: float
    cached_input: float | None = None  # None: no cache discount (the input price)
    cache_write: float | None = None  # None: no surcharge (the input price)

    @property
    def cache_read(self) -> float:
        return self.input if self.cached_input is None else self.cached_input

    @property
    def cache_written(self) -> float:
        return self.input if self.cache_write is None else self.cache_write


# Keyed by the model spec without the provider prefix where unambiguous.
PRICES_PER_MILLION: dict[str, Price] = {
    # OpenAI caches prompts of 1,024 tokens and more by itself; cached input is 25 % (gpt-4.1
    # family) or 50 % (gpt-4o family) of the input price, and writing the cache costs nothing extra.
    "openai:gpt-4.1": Price(2.00, 8.00, 0.50),
    "openai:gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "openai:gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "openai:gpt-4o": Price(2.50, 10.00, 1.25),
    "openai:gpt-4o-mini": Price(0.15, 0.60, 0.075),
    # Amazon Bedrock, on-demand in us-east-1 (other regions may differ). Keyed by model id; an
    # inference profile (us./eu./apac./global.<model id>) is billed at the same per-token price.
    # Claude: cache reads 10 % of input, cache writes 125 %; Nova: reads 25 %, writes free.
    "bedrock:anthropic.claude-3-5-haiku-20241022-v1:0": Price(0.80, 4.00, 0.08, 1.00),
    "bedrock:anthropic.claude-haiku-4-5-20251001-v1:0": Price(1.00, 5.00, 0.10, 1.25),
    "bedrock:anthropic.claude-3-7-sonnet-20250219-v1:0": Price(3.00, 15.00, 0.30, 3.75),
    "bedrock:anthropic.claude-sonnet-4-20250514-v1:0": Price(3.00, 15.00, 0.30, 3.75),
    "bedrock:anthropic.claude-sonnet-4-5-20250929-v1:0": Price(3.00, 15.00, 0.30, 3.75),
    "bedrock:amazon.nova-pro-v1:0": Price(0.80, 3.20, 0.20),
    "bedrock:amazon.nova-lite-v1:0": Price(0.06, 0.24, 0.015),
    "bedrock:amazon.nova-micro-v1:0": Price(0.035, 0.14, 0.00875),
    "bedrock:meta.llama3-1-8b-instruct-v1:0": Price(0.22, 0.22),
    "bedrock:meta.llama3-1-70b-instruct-v1:0": Price(0.72, 0.72),
    "bedrock:meta.llama3-2-3b-instruct-v1:0": Price(0.15, 0.15),
    "bedrock:meta.llama3-2-11b-instruct-v1:0": Price(0.16, 0.16),
    "bedrock:meta.llama3-2-90b-instruct-v1:0": Price(0.72, 0.72),
    "bedrock:meta.llama3-3-70b-instruct-v1:0": Price(0.72, 0.72),
}
FREE = Price(0.0, 0.0)


def _table_key(model_spec: str) -> str:
    """`bedrock:us.<model id>` (an inference profile) is priced as `bedrock:<model id>`."""
    provider, _, name = model_spec.partition(":")
    if provider == "bedrock":
        return f"bedrock:{split_profile(name)[1]}"
    return model_spec


def price_for(model_spec: str | None) -> Price | None:
    """The model's prices per million tokens, or None when it is not in the table. Scripted
    models cost nothing."""
    if not model_spec:
        return None
    if model_spec.startswith("scripted:"):
        return FREE
    return PRICES_PER_MILLION.get(_table_key(model_spec))


def estimate_cost(
    model_spec: str | None,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> float | None:
    """Dollars for one or more calls. `input_tokens` counts the whole prompt; the cached and
    cache-write tokens are parts of it, priced at their own rates."""
    price = price_for(model_spec)
    if price is None:
        return None
    cached = max(0, min(cached_input_tokens, input_tokens))
    written = max(0, min(cache_write_tokens, input_tokens - cached))
    plain = input_tokens - cached - written
    return (
        plain * price.input + cached * price.cache_read + written * price.cache_written + output_tokens * price.output
    ) / 1_000_000
