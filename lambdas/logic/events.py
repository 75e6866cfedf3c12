"""The triggering event: an EventBridge event (detail-type test/hello.world) whose
detail.value is the prompt, and whose optional detail.continueFrom names the run it continues."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from lambdas.logic.config import DETAIL_TYPE
from lambdas.logic.errors import InvalidEvent, describe_validation_error


class HelloWorldDetail(BaseModel):
    # Unknown fields are refused rather than silently dropped: a typo must not go unnoticed.
    model_config = ConfigDict(extra="forbid")
    value: StrictStr
    # A run id is an execution name: letters, digits, `-`, `_` and `.`, at most 80.
    continueFrom: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_.-]{1,80}$")] | None = None


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
    prompt = parsed.detail.value.strip()
    if not prompt:
        raise InvalidEvent("detail.value (the prompt) is empty")
    if len(prompt) > max_chars:
        raise InvalidEvent(f"detail.value (the prompt) is {len(prompt)} characters; the limit is {max_chars}")
    return prompt


def parse_continue_from(event: Any) -> str | None:
    """The run id in detail.continueFrom, or None. Call after parse_prompt, which validated it."""
    return event["detail"].get("continueFrom")
