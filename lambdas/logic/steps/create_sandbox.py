"""CreateSandbox: validate the event, create the sandbox, create the run's network state."""

from __future__ import annotations

from typing import Any

from lambdas.dal.network_state import NetworkState, RunRecord, user_message_key
from lambdas.logic.config import Settings
from lambdas.logic.continuation import continuable_parent, continue_project, reattach_sandbox
from lambdas.logic.events import parse_continue_from, parse_prompt
from lambdas.logic.sandboxes import sandbox_provider


def loop_state(run: RunRecord) -> dict[str, Any]:
    """What AgentTurn needs next: ids and counters only."""
    return {"runId": run.run_id, "iteration": run.iteration, "maxIterations": run.max_iterations}


def create_sandbox(run_id: str, event: Any, settings: Settings, state: NetworkState) -> dict[str, Any]:
    prompt = parse_prompt(event, settings.max_prompt_chars)
    existing = state.find_run(run_id)
    if existing is not None:  # a retry after the run was recorded, or a resumed run: never a second sandbox
        # From iteration 0: every step already done returns its saved result (fast-forward).
        return {**loop_state(reattach_sandbox(existing, settings, state)), "iteration": 0}
    parent_id = parse_continue_from(event)
    parent = continuable_parent(parent_id, state) if parent_id else None
    if parent:
        sandbox = continue_project(run_id, parent, settings, state)
    else:
        sandbox = sandbox_provider(settings.sandbox, settings).create(settings.template, settings.sandbox_timeout_s)
    state.put_message(run_id, user_message_key(0), {"role": "user", "content": prompt})
    run = state.create_run(
        run_id=run_id,
        prompt=prompt,
        sandbox_id=sandbox.id,
        sandbox_kind=settings.sandbox,
        model=settings.model,
        template=settings.template,
        max_iterations=settings.max_iterations,
        parent_run_id=parent.run_id if parent else None,
        project_id=parent.project_id if parent else None,
    )
    return loop_state(run)
