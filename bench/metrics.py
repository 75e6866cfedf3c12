"""What the benchmarks read from a run: payload sizes and state transitions from the execution
history, DynamoDB request units from the calls the handlers make, and the cost of it all.

Prices (us-east-1 list prices, checked 2026-11; free tiers ignored):
- Step Functions Standard: $0.025 per 1,000 state transitions.
- Lambda arm64: $0.0000133334 per GB-second, $0.20 per 1M requests (x86_64: $0.0000166667/GB-s).
- DynamoDB on-demand: $0.125 per 1M read request units, $0.625 per 1M write request units.
- The model: OpenAI gpt-4.1 from pixie's one price table (lambdas/logic/models/prices.py): $2.00 per
  1M input tokens, $0.50 per 1M cached input tokens, $8.00 per 1M output tokens.
"""

from __future__ import annotations

import json
import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import botocore.endpoint

PRICES: dict[str, float] = {
    "stepfunctions_per_transition": 0.025 / 1000,
    "lambda_gb_s_arm64": 0.0000133334,
    "lambda_gb_s_x86_64": 0.0000166667,
    "lambda_per_request": 0.20 / 1_000_000,
    "dynamodb_per_rru": 0.125 / 1_000_000,
    "dynamodb_per_wru": 0.625 / 1_000_000,
}
MODEL_PRICED_AS = "openai:gpt-4.1"

PAYLOAD_FIELDS = ("input", "output", "parameters")


# --- execution history ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Payload:
    bytes: int
    event_type: str
    state: str | None
    field: str


def largest_payload(history: list[dict], skip_states: tuple[str, ...] = ()) -> Payload:
    """The largest state input/output/parameters string (UTF-8 bytes) in any *EventDetails of the
    history: what Step Functions checks against its 256 KiB limit. Events of `skip_states` (and,
    if any are given, the execution's own start event) are left out."""
    best = Payload(0, "", None, "")
    state = None  # the state the event belongs to: the one entered last
    for event in history:
        entered = event.get("stateEnteredEventDetails")
        if entered:
            state = entered.get("name")
        if skip_states and (state in skip_states or event["type"] == "ExecutionStarted"):
            continue
        for key, details in event.items():
            if not key.endswith("EventDetails") or not isinstance(details, dict):
                continue
            for name in PAYLOAD_FIELDS:
                value = details.get(name)
                if isinstance(value, str) and len(value.encode()) > best.bytes:
                    best = Payload(len(value.encode()), event["type"], details.get("name") or state, name)
    return best


TRANSITIONS_RULE_SOURCE = "https://docs.aws.amazon.com/step-functions/latest/dg/concepts-transitions.html"


def state_transitions(history: list[dict]) -> dict[str, int]:
    """State transitions as Step Functions Standard bills them, counted from the history. Rule:
    one per state entered (every *StateEntered event, the states inside Inline Map iterations
    included), plus one per retry (a Task scheduled again without entering its state again).
    Inline Map iterations themselves are not billed (AWS: "you aren't charged a state transition
    for each iteration of the Inline Map state"); they are reported, not added."""
    entered = sum(1 for e in history if e["type"].endswith("StateEntered"))
    map_iterations = sum(1 for e in history if e["type"] == "MapIterationStarted")
    scheduled = sum(1 for e in history if e["type"] == "TaskScheduled")
    task_entries = sum(1 for e in history if e["type"] == "TaskStateEntered")
    retries = max(0, scheduled - task_entries)
    return {
        "statesEntered": entered,
        "retries": retries,
        "total": entered + retries,
        "inlineMapIterationsNotBilled": map_iterations,
    }


def state_outputs(history: list[dict], state: str) -> list[dict]:
    """The output of each exit of `state`, parsed (e.g. every AgentTurn's output, in order)."""
    outputs = []
    for event in history:
        details = event.get("stateExitedEventDetails")
        if details and details.get("name") == state and details.get("output"):
            outputs.append(json.loads(details["output"]))
    return outputs


def history_bytes(history: list[dict]) -> int:
    return sum(len(json.dumps(e).encode()) for e in history)


# --- DynamoDB request units ----------------------------------------------------------------------
def attribute_size(value: dict[str, Any]) -> int:
    """Size of one low-level attribute value, by DynamoDB's item-size rules (approximate for
    numbers: about one byte per two significant digits, plus one)."""
    (kind, data), = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        digits = len(str(data).lstrip("-").replace(".", "").strip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "B":
        return len(data) if isinstance(data, (bytes, bytearray)) else len(str(data).encode())
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in data)
    if kind == "NS":
        return sum(attribute_size({"N": n}) for n in data)
    if kind == "BS":
        return sum(len(b) for b in data)
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in data.items())
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in data)
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(item: dict[str, dict[str, Any]] | None) -> int:
    """Bytes of a low-level item: attribute names plus values."""
    return sum(len(name.encode()) + attribute_size(value) for name, value in (item or {}).items())


def _read_units(size: int, consistent: bool) -> float:
    return max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)


def _write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


@dataclass
class DynamoDBMeter:
    """Request units of every DynamoDB call any boto3 client makes while `metering()` is active.

    Rules (on-demand): a read is ceil(bytes / 4 KB) RRU, at least 1, halved when eventually
    consistent (GetItem: the item returned; Query/Scan/BatchGetItem: the items returned, summed
    per page). A write is ceil(bytes / 1 KB) WRU, at least 1 (PutItem and BatchWriteItem: the item
    written; UpdateItem: its key plus the values it sets, which undercounts only items over
    1 KB, and pixie only updates small ones: the run record and idempotency records; DeleteItem:
    1). A conditional write that fails still costs its units, as on AWS."""

    rru: float = 0.0
    wru: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, operation: str, params: dict[str, Any], response: dict[str, Any] | None) -> None:
        response = response or {}
        consistent = bool(params.get("ConsistentRead"))
        rru = wru = 0.0
        if operation == "GetItem":
            rru = _read_units(item_size(response.get("Item")), consistent)
        elif operation in ("Query", "Scan"):
            rru = _read_units(sum(item_size(i) for i in response.get("Items", [])), consistent)
        elif operation == "BatchGetItem":
            for table, items in (response.get("Responses") or {}).items():
                request = params.get("RequestItems", {}).get(table, {})
                rru += sum(_read_units(item_size(i), bool(request.get("ConsistentRead"))) for i in items)
        elif operation == "PutItem":
            wru = _write_units(item_size(params.get("Item")))
        elif operation == "UpdateItem":
            wru = _write_units(item_size(params.get("Key")) + sum(
                attribute_size(v) for v in (params.get("ExpressionAttributeValues") or {}).values()
            ))
        elif operation == "DeleteItem":
            wru = 1
        elif operation == "BatchWriteItem":
            for requests in params.get("RequestItems", {}).values():
                for request in requests:
                    if "PutRequest" in request:
                        wru += _write_units(item_size(request["PutRequest"]["Item"]))
                    else:
                        wru += 1
        elif operation in ("TransactWriteItems", "TransactGetItems"):
            raise NotImplementedError(f"metering {operation} (pixie does not use it)")
        else:
            return  # control plane (CreateTable, DescribeTable, ...): not request units
        with self._lock:
            self.rru += rru
            self.wru += wru
            self.calls[operation] = self.calls.get(operation, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {"rru": self.rru, "wru": self.wru, "calls": dict(sorted(self.calls.items()))}


@contextmanager
def metering(meter: DynamoDBMeter) -> Iterator[DynamoDBMeter]:
    """Counts every DynamoDB request any boto3 client in this process sends (the handlers' table
    resource and Powertools' own idempotency client alike), at botocore's endpoint, where the
    request body and the parsed response are both in DynamoDB's low-level form. Requests still go
    wherever they went (moto here); retried requests are counted each time."""
    original = botocore.endpoint.Endpoint.make_request

    def counted(self: Any, operation_model: Any, request_dict: dict[str, Any]) -> Any:
        result = original(self, operation_model, request_dict)
        if operation_model.service_model.service_name == "dynamodb":
            body = request_dict.get("body") or b"{}"
            params = json.loads(body.decode() if isinstance(body, (bytes, bytearray)) else body)
            _, parsed = result
            meter.record(operation_model.name, params, parsed if isinstance(parsed, dict) else None)
        return result

    botocore.endpoint.Endpoint.make_request = counted
    try:
        yield meter
    finally:
        botocore.endpoint.Endpoint.make_request = original


# --- cost ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FunctionSize:
    memory_mb: int
    architecture: str  # "arm64" or "x86_64"


def lambda_cost(
    invocations: list[tuple[str, float]],
    sizes: dict[str, FunctionSize],
    extra_seconds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """GB-seconds and price of the invocations [(function, measured ms)]: each billed in whole
    milliseconds at its function's memory and architecture, plus `extra_seconds[function]` per
    invocation (time spent waiting, e.g. on the model), plus the request price."""
    extra_seconds = extra_seconds or {}
    per_function: dict[str, dict[str, float]] = {}
    gb_s_total = usd = 0.0
    for name, ms in invocations:
        size = sizes[name]
        seconds = math.ceil(ms) / 1000 + extra_seconds.get(name, 0.0)
        gb_s = seconds * size.memory_mb / 1024
        price = gb_s * PRICES[f"lambda_gb_s_{size.architecture}"] + PRICES["lambda_per_request"]
        entry = per_function.setdefault(name, {"invocations": 0, "measuredMs": 0.0, "gbSeconds": 0.0, "usd": 0.0})
        entry["invocations"] += 1
        entry["measuredMs"] += ms
        entry["gbSeconds"] += gb_s
        entry["usd"] += price
        gb_s_total += gb_s
        usd += price
    return {"gbSeconds": gb_s_total, "requests": len(invocations), "usd": usd, "perFunction": per_function}


def model_cost(usages: list[dict], cached: bool = True) -> dict[str, Any]:
    """Tokens of AgentTurn's usages and their price as MODEL_PRICED_AS; `cached=False` prices
    every input token at the full input price (as if nothing were cached)."""
    from lambdas.logic.models.prices import estimate_cost

    totals = {
        name: sum(int(u.get(name) or 0) for u in usages)
        for name in ("inputTokens", "cachedInputTokens", "cacheWriteTokens", "outputTokens")
    }
    usd = estimate_cost(
        MODEL_PRICED_AS, totals["inputTokens"], totals["outputTokens"],
        totals["cachedInputTokens"] if cached else 0, totals["cacheWriteTokens"] if cached else 0,
    )
    return {"pricedAs": MODEL_PRICED_AS, **totals, "usd": usd}
