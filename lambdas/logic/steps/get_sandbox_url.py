"""GetSandboxUrl: the dev server's public URL, and the run's result."""

from __future__ import annotations

from typing import Any

from lambdas.dal.network_state import NetworkState
from lambdas.logic.config import Settings
from lambdas.logic.sandboxes import sandbox_provider
from lambdas.logic.sandboxes.base import PREVIEW_PORT


def get_sandbox_url(run_id: str, settings: Settings, state: NetworkState) -> dict[str, Any]:
    run = state.get_run(run_id)
    sandbox = sandbox_provider(run.sandbox_kind, settings).connect(run.sandbox_id, settings.sandbox_timeout_s)
    url = sandbox.get_url(PREVIEW_PORT)
    state.update_run(run_id, url=url, status="SUCCEEDED")
    return {
        "runId": run_id,
        "url": url,
        "title": run.title,
        "summary": run.summary,
        "files": state.list_file_paths(run_id),
        "iterations": run.iteration,
    }
