"""The triggering event: an EventBridge event (detail-type test/hello.world) whose
detail.value is the prompt."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, StrictStr

from lambdas.logic.config import DETAIL_TYPE
from lambdas.logic.errors import InvalidEvent, describe_validation_error
from lambdas.logic.limits import has_lone_surrogates


class HelloWorldDetail(BaseModel):
    # Unknown fields are refused rather than silently dropped: a typo must not go unnoticed.
    model_config = ConfigDict(extra="forbid")
    value: StrictStr


class HelloWorldEvent(EventBridgeModel):
    detail: HelloWorldDetail


def parse_prompt(event: Any, max_chars: int) -> str:
    """The prompt, trimmed; InvalidEvent saying what is wrong otherwise."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"the event must be a JSON object, got {type(event).__name__}")
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
