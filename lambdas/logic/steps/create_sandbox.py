"""CreateSandbox: validate the event, create the sandbox, create the run's network state."""

from __future__ import annotations

import contextlib
from typing import Any

from lambdas.dal.network_state import NetworkState, RunRecord, budget_fields, user_message_key
from lambdas.logic.config import Settings
from lambdas.logic.continuation import continuable_parent, continue_project, reattach_sandbox
from lambdas.logic.budget import check_budget_is_priced
from lambdas.logic.errors import InvalidEvent
from lambdas.logic.events import parse_continue_from, parse_prompt, parse_run_choices
from lambdas.logic.sandboxes import sandbox_provider
from lambdas.logic.sandboxes.base import Sandbox


MAX_EVENT_ID_CHARS = 256


def loop_state(run: RunRecord) -> dict[str, Any]:
    """What AgentTurn needs next: ids and counters only."""
    return {"runId": run.run_id, "iteration": run.iteration, "maxIterations": run.max_iterations}


def create_sandbox(run_id: str, event: Any, settings: Settings, state: NetworkState) -> dict[str, Any]:
    prompt = parse_prompt(event, settings.max_prompt_chars)
    choices = parse_run_choices(event, settings.event_overrides)
    sandbox_kind = choices.get("sandbox", settings.sandbox)
    check_budget_is_priced(choices.get("model", settings.model), choices.get("budgetUsd", settings.budget_usd))
    existing = state.find_run(run_id)
    if existing is not None:  # a retry after the run was recorded, or a resumed run: never a second sandbox
        # A resumed run may bring a new budget (pixie resume RUN --budget-usd N).
        state.update_run(run_id, **budget_fields(choices.get("budgetUsd"), choices.get("maxTokens")))
        # From iteration 0: every step already done returns its saved result (fast-forward).
        return {**loop_state(reattach_sandbox(existing, settings, state)), "iteration": 0}
    # One run per event: EventBridge delivers at least once, each delivery starting an execution.
    event_id = str(event["id"])  # parse_prompt checked it: every EventBridge event has one
    if not 0 < len(event_id) <= MAX_EVENT_ID_CHARS:  # EventBridge's are UUIDs; it becomes a table key
        raise InvalidEvent(f"the event id must be 1 to {MAX_EVENT_ID_CHARS} characters, got {len(event_id)}")
    owner = state.claim_event(event_id, run_id)
    if owner != run_id:  # a repeated delivery: the event's run exists, start nothing
        return {"runId": run_id, "duplicateOf": owner, "eventId": event_id}
    parent_id = parse_continue_from(event)
    parent = continuable_parent(parent_id, state) if parent_id else None
    provider = sandbox_provider(sandbox_kind, settings)

    def create() -> Sandbox:
        return provider.create(settings.template, settings.sandbox_timeout_s, run_id=run_id, idempotency_key=event_id)

    sandbox = continue_project(run_id, parent, sandbox_kind, create, settings, state) if parent else create()
    try:
        # The prompt, then the record (a retry that finds the record finds the prompt too).
        state.put_message(run_id, user_message_key(0), {"role": "user", "content": prompt})
        run = state.create_run(
            run_id=run_id,
            prompt=prompt,
            sandbox_id=sandbox.id,
            sandbox_kind=sandbox_kind,
            model=choices.get("model", settings.model),
            template=settings.template,
            max_iterations=choices.get("maxIterations", settings.max_iterations),
            parent_run_id=parent.run_id if parent else None,
            project_id=parent.project_id if parent else None,
            budget_usd=choices.get("budgetUsd", settings.budget_usd),
            max_tokens=choices.get("maxTokens", settings.max_tokens),
            check=choices.get("check", settings.check),
            check_command=choices.get("checkCommand", settings.check_command),
            approve=choices.get("approve", settings.approve),
            approval_timeout_s=choices.get("approvalTimeoutSeconds", settings.approval_timeout_s),
        )
    except BaseException:
        # No record: release it here (CleanupSandbox finds it only by its run tag, on E2B).
        with contextlib.suppress(Exception):
            sandbox.kill()
        raise
    return loop_state(run)
