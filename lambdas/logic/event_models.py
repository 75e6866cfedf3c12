"""The triggering event's shape as pydantic models (lambdas/logic/events.py parses with them).
Kept apart so that importing events.py does not build them."""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from lambdas.logic.approvals import APPROVE_MODES, MAX_APPROVAL_TIMEOUT_S
from lambdas.logic.limits import MAX_BUDGET_USD, MAX_CHECK_COMMAND_CHARS, MAX_ITERATIONS_CAP, MAX_TOKENS_CAP


class HelloWorldDetail(BaseModel):
    # Unknown fields are refused rather than silently dropped: a typo must not go unnoticed.
    model_config = ConfigDict(extra="forbid")
    value: StrictStr
    # Per-run choices (see parse_run_choices); absent means the deployment's settings.
    model: Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9-]*:\S{1,1000}$")] | None = None
    sandbox: Literal["local", "e2b"] | None = None
    maxIterations: Annotated[StrictInt, Field(ge=1, le=MAX_ITERATIONS_CAP)] | None = None
    # The run's budget: model spend in US dollars (priced from models/prices.py), and tokens.
    budgetUsd: Annotated[StrictFloat | StrictInt, Field(gt=0, le=MAX_BUDGET_USD)] | None = None
    maxTokens: Annotated[StrictInt, Field(ge=1, le=MAX_TOKENS_CAP)] | None = None
    # The done-check before a summary is accepted: false turns it off (--no-check); checkCommand
    # runs in the sandbox instead of the project's npm scripts (--check-command).
    check: StrictBool | None = None
    checkCommand: Annotated[StrictStr, Field(min_length=1, max_length=MAX_CHECK_COMMAND_CHARS, pattern=r"^[^\x00]*\S[^\x00]*$")] | None = None
    # Approvals (lambdas/logic/approvals.py): which tool calls wait for a person, and for how long.
    approve: Literal[APPROVE_MODES] | None = None  # type: ignore[valid-type]
    approvalTimeoutSeconds: Annotated[StrictInt, Field(ge=1, le=MAX_APPROVAL_TIMEOUT_S)] | None = None
    # A run id is an execution name: letters, digits, `-`, `_` and `.`, at most 80.
    continueFrom: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_.-]{1,80}$")] | None = None


class HelloWorldEvent(EventBridgeModel):
    detail: HelloWorldDetail
