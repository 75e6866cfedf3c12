"""CleanupSandbox: a run that cannot finish releases its sandbox and records why it failed.
The conversation and files stay in the table for inspection."""

from __future__ import annotations

from typing import Any

from lambdas.dal.network_state import NetworkState
from lambdas.logic.config import Settings
from lambdas.logic.errors import SandboxNotFound
from lambdas.logic.sandboxes import sandbox_provider

MAX_CAUSE_CHARS = 4_000


def cleanup_sandbox(run_id: str, error: dict[str, Any] | None, settings: Settings, state: NetworkState) -> dict[str, Any]:
    error = error or {}
    run = state.find_run(run_id)
    if run is None:
        # Failed before the run was recorded: usually nothing was created, but a CreateSandbox cut
        # off between creating the sandbox and recording the run leaves one, tagged with the run.
        released = sandbox_provider(settings.sandbox, settings).release_run(run_id)
        return {"runId": run_id, "cleaned": released > 0}
    killed = False
    try:
        sandbox = sandbox_provider(run.sandbox_kind, settings).connect(run.sandbox_id, settings.sandbox_timeout_s)
        sandbox.kill()
        killed = True
    except SandboxNotFound:
        pass  # already gone: the goal of this step
    state.update_run(
        run_id,
        status="FAILED",
        error=str(error.get("Error", "Unknown")),
        cause=str(error.get("Cause", ""))[:MAX_CAUSE_CHARS],
    )
    return {"runId": run_id, "cleaned": killed}
