"""GetSandboxUrl: the dev server's public URL, and the run's result."""

from __future__ import annotations

from typing import Any

from lambdas.dal.network_state import NetworkState
from lambdas.logic.config import Settings
from lambdas.logic.limits import MAX_RESULT_FILES, MAX_RESULT_FILES_JSON_CHARS, MAX_TITLE_CHARS, json_size
from lambdas.logic.continuation import live_sandbox
from lambdas.logic.sandboxes.base import PREVIEW_PORT
from lambdas.logic.summary import bound_summary


def get_sandbox_url(run_id: str, settings: Settings, state: NetworkState) -> dict[str, Any]:
    run = state.get_run(run_id)
    sandbox = live_sandbox(run, settings, state)  # restored if a cleanup released it before a redrive
    url = sandbox.get_url(PREVIEW_PORT)
    state.update_run(run_id, url=url, status="SUCCEEDED")
    paths = state.list_file_paths(run_id)
    return {
        "runId": run_id,
        "url": url,
        # Bounded when saved; bounded again here, since this is the execution's output.
        "title": run.title[:MAX_TITLE_CHARS] if run.title else run.title,
        "summary": bound_summary(run.summary) if run.summary else run.summary,
        "files": listed_paths(paths),
        "fileCount": len(paths),
        "iterations": run.iteration,
    }


def listed_paths(paths: list[str]) -> list[str]:
    """The first paths, at most MAX_RESULT_FILES of them and MAX_RESULT_FILES_JSON_CHARS of JSON
    together: the result is a state payload. fileCount says how many there are; `pixie show`
    and the table have them all."""
    listed: list[str] = []
    size = 2  # []
    for path in paths[:MAX_RESULT_FILES]:
        size += json_size(path) + 2  # ", "
        if size > MAX_RESULT_FILES_JSON_CHARS:
            break
        listed.append(path)
    return listed
