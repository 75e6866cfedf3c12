"""A run's egress audit (what its commands asked the allow-list proxy for) as lines for people:
`pixie show RUN`. Host names and reasons come from what a model's commands asked for, so each
field is bounded and passed through `visible` (no escape sequence reaches the terminal)."""

from __future__ import annotations

from typing import Any

from pixie.terminal_text import visible

SHOWN = 50  # the last requests listed; `pixie show RUN --json` has all that were kept
MAX_HOST_CHARS = 80
MAX_REASON_CHARS = 120
LOCAL_ONLY = ("the egress audit is local-only: it is what pixie's proxy for the local sandbox saw; an E2B "
              "sandbox's network is E2B's, neither filtered by --allow-host nor recorded by pixie")


def _cut(value: Any, limit: int) -> str:
    text = visible(value, one_line=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def egress_line(entry: Any) -> str:
    if not isinstance(entry, dict):
        return "  (not an egress entry)"
    port = _number(entry.get("port"))
    host = _cut(entry.get("host") or "?", MAX_HOST_CHARS)
    where = f"[{host}]" if ":" in host else host
    size = _number(entry.get("bytes"))
    return "  ".join([
        " ",
        _cut(entry.get("time") or "?", 24),
        f"{_cut(entry.get('verdict') or '?', 8):<8}",
        _cut(entry.get("method") or "?", 10),
        where + (f":{port}" if port is not None else ""),
        f"{size:,} B" if size is not None else "? B",
        _cut(entry.get("reason") or "", MAX_REASON_CHARS),
    ]).rstrip()


def egress_counts(record: dict[str, Any]) -> tuple[int, int, int]:
    """(requests, allowed, refused) over all of a run's requests: its `egressTotals`, which the record keeps
    beside the entries it lists (at most egress.MAX_RUN_ENTRIES); counted from the entries for a
    record made before totals were kept."""
    totals = record.get("egressTotals")
    if isinstance(totals, dict) and all(_number(totals.get(k)) is not None for k in ("requests", "allowed", "refused")):
        return totals["requests"], totals["allowed"], totals["refused"]
    entries = record.get("egress") if isinstance(record.get("egress"), list) else []
    verdicts = [e.get("verdict") for e in entries if isinstance(e, dict)]
    return len(entries), verdicts.count("allowed"), verdicts.count("refused")


def egress_lines(record: dict[str, Any], deployed: bool = False) -> list[str]:
    """What `pixie show` prints about a run's network requests ([] for a local run that made none
    and had no allow-list proxy to make them through)."""
    sandbox_id = record.get("sandboxId")
    if deployed or (isinstance(sandbox_id, str) and sandbox_id and not sandbox_id.startswith("local-")):
        return [f"Egress: not recorded ({LOCAL_ONLY})"]
    entries = record.get("egress")
    if not isinstance(entries, list) or not entries:
        return []
    requests, allowed, refused = egress_counts(record)
    shown = entries[-SHOWN:]
    head = f"Egress ({requests} requests through the allow-list proxy: {allowed} allowed, {refused} refused"
    if len(entries) < requests:  # the record keeps the allowed ones first, then the last refused
        head += f"; the last {len(shown)} here, {len(entries)} kept in --json):"
    else:
        head += f"; the last {len(shown)} here, all in --json):" if len(shown) < len(entries) else "):"
    return [head, *(egress_line(entry) for entry in shown)]
