"""What the console shows about a run, derived from its record (the same record `pixie show
--json` prints): tokens and cost per turn, start, duration, and the row of the runs list."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from lambdas.logic.models.prices import estimate_cost
from pixie.egress_view import LOCAL_ONLY, egress_counts

PROMPT_PREVIEW_CHARS = 240


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _exit_output(event: dict[str, Any], state: str) -> dict[str, Any] | None:
    details = event.get("stateExitedEventDetails") or {}
    if details.get("name") != state:
        return None
    try:
        output = json.loads(details.get("output") or "null")
    except json.JSONDecodeError:
        return None
    return output if isinstance(output, dict) else None


def turn_usage(history: list[dict[str, Any]], model: str | None) -> list[dict[str, Any]]:
    """Tokens and estimated cost of each model turn, from AgentTurn's outputs in the history (a
    retried turn that found its reply saved reports no usage: it paid nothing)."""
    turns = []
    for event in history:
        output = _exit_output(event, "AgentTurn")
        if output is None:
            continue
        usage = output.get("usage") or {}
        tokens_in, tokens_out = int(usage.get("inputTokens") or 0), int(usage.get("outputTokens") or 0)
        cached, written = int(usage.get("cachedInputTokens") or 0), int(usage.get("cacheWriteTokens") or 0)
        turns.append({
            "turn": output.get("iteration"),
            "inputTokens": tokens_in,
            "cachedInputTokens": cached,  # part of inputTokens
            "outputTokens": tokens_out,
            "costUsd": estimate_cost(model, tokens_in, tokens_out, cached, written),
        })
    return turns


def timing(history: list[dict[str, Any]]) -> dict[str, Any]:
    """When the execution started and, once it ended, how long it took."""
    if not history:
        return {"startedAt": None, "endedAt": None, "durationS": None}
    start = _parse_time(history[0].get("timestamp"))
    last = history[-1]
    ended = last.get("type", "").startswith("Execution") and last.get("type") != "ExecutionStarted"
    end = _parse_time(last.get("timestamp")) if ended else None
    return {
        "startedAt": start.isoformat() if start else None,
        "endedAt": end.isoformat() if end else None,
        "durationS": round((end - start).total_seconds(), 2) if start and end else None,
    }


def run_view(record: dict[str, Any]) -> dict[str, Any]:
    """The record plus what the run page shows from it."""
    turns = turn_usage(record.get("history") or [], record.get("model"))
    costs = [t["costUsd"] for t in turns]
    return {
        **record,
        **timing(record.get("history") or []),
        "turns": turns,
        "tokens": {
            "input": sum(t["inputTokens"] for t in turns),
            "cachedInput": sum(t["cachedInputTokens"] for t in turns),
            "output": sum(t["outputTokens"] for t in turns),
        },
        "costUsd": None if any(c is None for c in costs) else round(sum(costs), 6),
        "egressAudit": egress_audit(record),
    }


def egress_audit(record: dict[str, Any]) -> dict[str, Any]:
    """What the Egress panel says above the requests (record["egress"]): their counts, or why a
    run has none to show (an E2B sandbox: the audit is local-only)."""
    sandbox_id = record.get("sandboxId")
    if isinstance(sandbox_id, str) and sandbox_id and not sandbox_id.startswith("local-"):
        return {"recorded": False, "note": LOCAL_ONLY, "allowed": 0, "refused": 0}
    _, allowed, refused = egress_counts(record)
    return {"recorded": True, "note": None, "allowed": allowed, "refused": refused}


def run_row(record: dict[str, Any], source: str = "local") -> dict[str, Any]:
    """One line of the runs list."""
    view = run_view(record)
    prompt = record.get("prompt") or _prompt_from_history(record.get("history") or [])
    return {
        "runId": record["runId"],
        "status": record.get("status"),
        "title": record.get("title"),
        "prompt": (prompt or "")[:PROMPT_PREVIEW_CHARS],
        "model": record.get("model"),
        "startedAt": view["startedAt"],
        "durationS": view["durationS"],
        "turns": record.get("iterations") or len(view["turns"]),
        "tokens": view["tokens"],
        "costUsd": view["costUsd"],
        "error": record.get("error"),
        "source": source,
    }


def _prompt_from_history(history: list[dict[str, Any]]) -> str | None:
    """A run that failed before it was recorded (a bad event) still has the event it was sent."""
    for event in history[:1]:
        try:
            started = json.loads((event.get("executionStartedEventDetails") or {}).get("input") or "null")
        except json.JSONDecodeError:
            return None
        value = (started or {}).get("detail", {}).get("value") if isinstance(started, dict) else None
        return value if isinstance(value, str) else None
    return None
