"""The triggering event: an EventBridge event (detail-type test/hello.world) whose
detail.value is the prompt, and whose optional detail.continueFrom names the run it continues."""

from __future__ import annotations

from typing import Any, Collection

from lambdas.logic.config import DETAIL_TYPE
from lambdas.logic.errors import InvalidEvent, describe_validation_error
from lambdas.logic.limits import has_lone_surrogates

# The event's pydantic models live in event_models.py, imported on first use: building them (and
# importing Powertools' parser) cost about 45 ms of every import of this module, which the CLI
# and the engine make before anything is parsed.
_LAZY_MODELS = ("HelloWorldDetail", "HelloWorldEvent")


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODELS:
        from lambdas.logic import event_models

        return getattr(event_models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_prompt(event: Any, max_chars: int) -> str:
    """The prompt, trimmed; InvalidEvent saying what is wrong otherwise."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"the event must be a JSON object, got {type(event).__name__}")
    from aws_lambda_powertools.utilities.parser import ValidationError, parse

    from lambdas.logic.event_models import HelloWorldEvent

    try:
        parsed = parse(event=event, model=HelloWorldEvent)
    except ValidationError as exc:
        problem = describe_validation_error(exc, "event")
        raise InvalidEvent(f"not a {DETAIL_TYPE} event with a prompt in detail.value: {problem}") from None
    if parsed.detail_type != DETAIL_TYPE:
        raise InvalidEvent(f"detail-type must be {DETAIL_TYPE!r}, got {parsed.detail_type!r}")
    return check_prompt(parsed.detail.value, max_chars, "detail.value (the prompt)")


def check_prompt(prompt: str, max_chars: int, name: str = "the prompt") -> str:
    """The prompt, trimmed, or InvalidEvent saying why it cannot be run: empty, too long, or not
    valid Unicode (bytes that were not UTF-8 reach Python as lone surrogates). Checked before any
    sandbox exists; the CLI calls it too, before it starts anything."""
    if has_lone_surrogates(prompt):
        raise InvalidEvent(f"{name} is not valid UTF-8 text (it has bytes or escapes that are not characters)")
    prompt = prompt.strip()
    if not prompt:
        raise InvalidEvent(f"{name} is empty")
    if len(prompt) > max_chars:
        raise InvalidEvent(f"{name} is {len(prompt)} characters; the limit is {max_chars}")
    return prompt


# Choices an event may make for its own run instead of the deployment's settings. A deployment
# honours only those it lists in PIXIE_EVENT_OVERRIDES: the embedded engine lists them all, the
# deployed stack none, so whoever may put events on a deployed bus cannot pick a costlier model.
RUN_CHOICES = ("model", "sandbox", "maxIterations", "budgetUsd", "maxTokens", "check", "checkCommand", "approve",
               "approvalTimeoutSeconds")


def parse_run_choices(event: Any, allowed: Collection[str]) -> dict[str, Any]:
    """The per-run choices in `detail` ({"model": ..., ...}, only those given), after
    parse_prompt has accepted the event; InvalidEvent for one this deployment does not allow."""
    from aws_lambda_powertools.utilities.parser import parse

    from lambdas.logic.event_models import HelloWorldEvent

    detail = parse(event=event, model=HelloWorldEvent).detail
    chosen = {name: getattr(detail, name) for name in RUN_CHOICES if getattr(detail, name) is not None}
    refused = [name for name in chosen if name not in allowed]
    if refused:
        raise InvalidEvent(
            f"detail.{refused[0]} cannot be chosen per run on this deployment; "
            "it uses its configured setting (leave the field out)"
        )
    return chosen


def parse_continue_from(event: Any) -> str | None:
    """The run id in detail.continueFrom, or None. Call after parse_prompt, which validated it."""
    return event["detail"].get("continueFrom")
