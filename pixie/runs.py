"""Run records: what a run left behind (result, conversation, files, execution history), as
`pixie show` and `--json` present it, for local and deployed runs alike. Finished local runs are
saved under $PIXIE_HOME/runs/<runId>.json, success or not."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Any

from statemachine.history import jsonable  # noqa: F401 - re-exported for the app

_RUN_ID = re.compile(r"[A-Za-z0-9_.-]{1,80}")


def run_record(
    state: Any,
    run_id: str,
    *,
    status: str,
    error: str | None = None,
    cause: str | None = None,
    execution_arn: str | None = None,
    history: list[dict] | None = None,
) -> dict[str, Any]:
    """The record of one run: its network state (a NetworkState) plus what the execution said.
    A run that failed before it was recorded (a bad event) has only the execution's part."""
    run = state.find_run(run_id)
    return {
        "runId": run_id,
        "status": status,
        "url": run.url if run else None,
        "title": run.title if run else None,
        "summary": run.summary if run else None,
        "files": state.list_files(run_id) if run else {},
        "sandboxId": run.sandbox_id if run else None,
        "error": error,
        "cause": cause,
        "prompt": run.prompt if run else None,
        "model": run.model if run else None,
        "iterations": run.iteration if run else 0,
        "parentRunId": run.parent_run_id if run else None,  # the run this one continues
        "projectId": run.project_id if run else None,  # shared by a chain of continued runs
        "executionArn": execution_arn,
        "conversation": state.list_messages(run_id) if run else [],
        "history": history or [],
    }


def runs_dir(pixie_home: Path) -> Path:
    return Path(pixie_home) / "runs"


def save_run(pixie_home: Path, record: dict[str, Any]) -> Path:
    directory = runs_dir(pixie_home)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record['runId']}.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, path)  # never a half-written run
    return path


def load_run(pixie_home: Path, run_id: str) -> dict[str, Any]:
    if not _RUN_ID.fullmatch(run_id):
        raise FileNotFoundError(f"{run_id!r} is not a run id")
    path = runs_dir(pixie_home) / f"{run_id}.json"
    if not path.exists():
        raise FileNotFoundError(f"no saved run {run_id} in {runs_dir(pixie_home)}")
    return with_live_status(json.loads(path.read_text(encoding="utf-8")))


def with_live_status(record: dict[str, Any]) -> dict[str, Any]:
    """A record saved as RUNNING whose pixie process is gone (kill -9, a crash, a closed lid)
    reads as INTERRUPTED: `pixie resume RUN_ID` finishes it."""
    if record.get("status") == "RUNNING" and not _process_alive(record.get("pid"), record.get("host")):
        return {**record, "status": "INTERRUPTED"}
    return record


def _process_alive(pid: Any, host: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    if host and host != socket.gethostname():
        return True  # another machine's process: cannot tell, so not called dead
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
