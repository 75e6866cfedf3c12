"""Run records: what a run left behind (result, conversation, files, execution history), as
`pixie show` and `--json` present it, for local and deployed runs alike. Finished local runs are
saved under $PIXIE_HOME/runs/<runId>.json, success or not."""

from __future__ import annotations

import json
import os
import re
import socket
from datetime import datetime
from pathlib import Path
from typing import Any


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
        "budgetUsd": run.budget_usd if run else None,  # None: no bound
        "maxTokens": run.max_tokens if run else None,
        "approve": run.approve if run else None,  # which tool calls wait for a person's decision
        # The calls waiting for that decision (pixie approve / deny), while the run waits; never its token.
        "pendingApproval": public_pending_approval(run.pending_approval) if run and status == "RUNNING" else None,
        "parentRunId": run.parent_run_id if run else None,  # the run this one continues
        "projectId": run.project_id if run else None,  # shared by a chain of continued runs
        "executionArn": execution_arn,
        "conversation": state.list_messages(run_id) if run else [],
        "fileChanges": state.list_changes(run_id) if run else [],  # per tool call: created, changed, deleted
        "history": history or [],
    }


def public_pending_approval(pending: Any) -> dict[str, Any] | None:
    """A wait for approval as people see it: the calls, the turn, when and for how long; the task
    token (which decides the wait) stays in the run's table."""
    if not isinstance(pending, dict):
        return None
    return {key: pending.get(key) for key in ("iteration", "calls", "requestedAt", "timeoutSeconds")}


def runs_dir(pixie_home: Path) -> Path:
    return Path(pixie_home) / "runs"


def save_run(pixie_home: Path, record: dict[str, Any]) -> Path:
    directory = runs_dir(pixie_home)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record['runId']}.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(record, indent=2), encoding="utf-8")  # ASCII: text a model sent (lone surrogates too) is always storable
    os.replace(temporary, path)  # never a half-written run
    return path


def load_run(pixie_home: Path, run_id: str) -> dict[str, Any]:
    if not _RUN_ID.fullmatch(run_id):
        raise FileNotFoundError(f"{run_id!r} is not a run id")
    path = runs_dir(pixie_home) / f"{run_id}.json"
    if not path.exists():
        raise FileNotFoundError(f"no saved run {run_id} in {runs_dir(pixie_home)}")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptRun(f"{path} is not a run record: {exc}") from None
    problem = _shape_problem(record, run_id)
    if problem:
        raise CorruptRun(f"{path} is not a run record: {problem}")
    return with_live_status(record)


class CorruptRun(ValueError):
    """A run file that is not what pixie saves (edited, truncated by a full disk, another tool's):
    skipped with a warning, never a crash."""


# Fields a run record always has, and the type each must be when present.
_RECORD_TYPES = {"runId": str, "status": str, "conversation": list, "history": list, "files": dict}


def _shape_problem(record: Any, run_id: str) -> str | None:
    if not isinstance(record, dict):
        return f"JSON {json.dumps(record)[:20] if record is None or isinstance(record, (bool, int, float)) else type(record).__name__}, not an object"
    if record.get("runId") != run_id:
        return f"its runId is {record.get('runId')!r}, not {run_id!r}"
    for field, kind in _RECORD_TYPES.items():
        if field in record and not isinstance(record[field], kind):
            return f"its {field} is a {type(record[field]).__name__}, not a {kind.__name__}"
    if "status" not in record:
        return "it has no status"
    return None


def with_live_status(record: dict[str, Any]) -> dict[str, Any]:
    """A record saved as RUNNING whose pixie process is gone (kill -9, a crash, a closed lid)
    reads as INTERRUPTED: `pixie resume RUN_ID` finishes it."""
    if record.get("status") == "RUNNING" and not _process_alive(record.get("pid"), record.get("host")):
        # Nothing waits for a decision any more (the wait died with the process), as for a stopped run.
        return {**record, "status": "INTERRUPTED", "pendingApproval": None}
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


# --- finding runs and summing them up (pixie list / show / open, the console, --continue) ---------
class RunNotFound(LookupError):
    """No saved run matches, or a prefix matches several (the message says which)."""


def saved_run_ids(pixie_home: Path) -> list[str]:
    """Ids of the saved local runs, newest first (by when they were saved)."""
    directory = runs_dir(pixie_home)
    if not directory.is_dir():
        return []
    paths = [p for p in directory.glob("*.json") if _RUN_ID.fullmatch(p.stem)]
    paths.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return [p.stem for p in paths]


def resolve_run_id(pixie_home: Path, prefix: str) -> str:
    """The one saved run whose id is `prefix` or starts with it."""
    if not _RUN_ID.fullmatch(prefix or ""):
        raise RunNotFound(f"{prefix!r} is not a run id")
    ids = saved_run_ids(pixie_home)
    if prefix in ids:
        return prefix
    matches = [run_id for run_id in ids if run_id.startswith(prefix)]
    if not matches:
        raise RunNotFound(f"no saved run {prefix} in {runs_dir(pixie_home)}")
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (", …" if len(matches) > 5 else "")
        raise RunNotFound(f"{prefix} matches {len(matches)} runs ({shown}): type more of the id")
    return matches[0]


def load_run_by_prefix(pixie_home: Path, prefix: str) -> dict[str, Any]:
    return load_run(pixie_home, resolve_run_id(pixie_home, prefix))


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


USAGE_FIELDS = ("inputTokens", "outputTokens", "cachedInputTokens", "cacheWriteTokens")


def token_usage(history: list[dict]) -> dict[str, int]:
    """Tokens by kind (USAGE_FIELDS): the sum of the `usage` every AgentTurn reported (a retried
    turn whose reply was already saved reports none, so nothing is counted twice). Cached and
    cache-write tokens are parts of the input tokens."""
    totals = dict.fromkeys(USAGE_FIELDS, 0)
    for event in history:
        details = event.get("stateExitedEventDetails")
        if event.get("type") != "TaskStateExited" or not isinstance(details, dict) or details.get("name") != "AgentTurn":
            continue
        try:
            output = json.loads(details.get("output") or "null")
        except json.JSONDecodeError:
            continue
        usage = output.get("usage") if isinstance(output, dict) else None
        if isinstance(usage, dict):
            for name in USAGE_FIELDS:
                totals[name] += int(usage.get(name) or 0)
    return totals


def project_folder(pixie_home: Path, record: dict[str, Any]) -> Path | None:
    """Where a local run's files are (None for E2B runs and runs that never got a sandbox)."""
    sandbox_id = record.get("sandboxId") or ""
    if not isinstance(sandbox_id, str) or not re.fullmatch(r"local-[0-9a-f]{12}", sandbox_id):
        return None
    return Path(pixie_home) / "sandboxes" / sandbox_id


def run_summary(record: dict[str, Any], pixie_home: Path | None = None) -> dict[str, Any]:
    """One line's worth of a run: what `pixie list` and the header of `pixie show` print."""
    from lambdas.logic.models.prices import estimate_cost

    history = record.get("history") or []
    times = [t for t in (_parse_time(e.get("timestamp")) for e in history) if t is not None]
    started = min(times) if times else None
    ended = max(times) if times and record.get("status") not in (None, "RUNNING") else None
    tokens = token_usage(history)
    folder = project_folder(pixie_home, record) if pixie_home is not None else None
    return {
        "runId": record.get("runId"),
        "status": record.get("status"),
        "title": record.get("title") or None,
        "prompt": record.get("prompt"),
        "model": record.get("model"),
        "startedAt": started.isoformat() if started else None,
        "durationS": round((ended - started).total_seconds(), 2) if started and ended else None,
        "turns": int(record.get("iterations") or 0),
        **tokens,
        "estimatedCostUsd": estimate_cost(
            record.get("model"), tokens["inputTokens"], tokens["outputTokens"],
            tokens["cachedInputTokens"], tokens["cacheWriteTokens"],
        ),
        "budgetUsd": record.get("budgetUsd"),
        "maxTokens": record.get("maxTokens"),
        "error": record.get("error"),
        "projectFolder": str(folder) if folder else None,
        "parentRunId": record.get("parentRunId"),
        "restoredFrom": record.get("restoredFrom"),
    }


def list_runs(pixie_home: Path, limit: int | None = None, skipped: list[str] | None = None) -> list[dict[str, Any]]:
    """Summaries of the saved local runs, newest first; a file that is not a run record is
    skipped, and why is added to `skipped`."""
    summaries = []
    for run_id in saved_run_ids(pixie_home):
        if limit is not None and len(summaries) >= limit:
            break
        try:
            summaries.append(run_summary(load_run(pixie_home, run_id), pixie_home))
        except (OSError, ValueError, TypeError, AttributeError, KeyError) as exc:
            if skipped is not None:
                skipped.append(str(exc) if isinstance(exc, CorruptRun) else f"run {run_id}: {type(exc).__name__}: {exc}")
    return summaries
