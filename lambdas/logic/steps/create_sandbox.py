"""CreateSandbox: validate the event, create the sandbox, create the run's network state."""

from __future__ import annotations

from typing import Any

from lambdas.dal.network_state import NetworkState, RunRecord, user_message_key
from lambdas.logic.config import Settings
from lambdas.logic.errors import InvalidEvent
from lambdas.logic.events import parse_prompt
from lambdas.logic.sandboxes import sandbox_provider


MAX_EVENT_ID_CHARS = 256


def loop_state(run: RunRecord) -> dict[str, Any]:
    """What AgentTurn needs next: ids and counters only."""
    return {"runId": run.run_id, "iteration": run.iteration, "maxIterations": run.max_iterations}


def create_sandbox(run_id: str, event: Any, settings: Settings, state: NetworkState) -> dict[str, Any]:
    prompt = parse_prompt(event, settings.max_prompt_chars)
    existing = state.find_run(run_id)
    if existing is not None:  # a retry after the run was recorded: never a second sandbox
        return loop_state(existing)
    # One run per event: EventBridge delivers at least once, each delivery starting an execution.
    event_id = str(event["id"])  # parse_prompt checked it: every EventBridge event has one
    if not 0 < len(event_id) <= MAX_EVENT_ID_CHARS:  # EventBridge's are UUIDs; it becomes a table key
        raise InvalidEvent(f"the event id must be 1 to {MAX_EVENT_ID_CHARS} characters, got {len(event_id)}")
    owner = state.claim_event(event_id, run_id)
    if owner != run_id:  # a repeated delivery: the event's run exists, start nothing
        return {"runId": run_id, "duplicateOf": owner, "eventId": event_id}
    provider = sandbox_provider(settings.sandbox, settings)
    sandbox = provider.create(settings.template, settings.sandbox_timeout_s, idempotency_key=event_id)
    state.put_message(run_id, user_message_key(0), {"role": "user", "content": prompt})
    run = state.create_run(
        run_id=run_id,
        prompt=prompt,
        sandbox_id=sandbox.id,
        sandbox_kind=settings.sandbox,
        model=settings.model,
        template=settings.template,
        max_iterations=settings.max_iterations,
    )
    return loop_state(run)
