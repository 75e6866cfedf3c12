"""The run's network state in one DynamoDB table (AgentKit's `network.state`, made durable).

Items, all under pk = RUN#<runId>:
  sk = META                          the run record: prompt, sandbox, model, iteration, summary, status;
                                     parentRunId and projectId when it continues an earlier run;
                                     sandboxClaimedBy once a continuing run took its sandbox over
  sk = MSG#<turn:04d>#<part>         one conversation message each, in order (a Query returns them
                                     sorted); a retried step writes the same key, so it overwrites
                                     instead of duplicating
  sk = MSG#0000#0ctx#<n:03d>         a continued run's earlier runs, compacted (before its prompt)
  sk = FILE#<path>                   one file each: the latest content the agent wrote
  sk = CHANGES#<turn:04d>#<index:03d> the files one tool call created, changed and deleted
  sk = PART#<sk>#<n>                 part n (1, 2, ...) of a message or file too big for one item
                                     (400 KB): the item itself holds part 0 and the count
and, under pk = EVENT#<eventId>, sk = RUN: which run the triggering event started (one run per
event, however often EventBridge delivers it).

Every item carries `expiresAt` (the table's TTL attribute): a run's data goes away as a whole.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from dataclasses import dataclass
from typing import Any

import boto3

from lambdas.logic.errors import RunNotFound

RUN_TTL_SECONDS = 30 * 24 * 3600
# UTF-8 bytes of text per item: DynamoDB's limit is 400 KB per item, names and keys included.
PART_BYTES = 350_000


def expires_at() -> int:
    """The TTL of an item written now (epoch seconds)."""
    return int(time.time()) + RUN_TTL_SECONDS


def _pk(run_id: str) -> str:
    return f"RUN#{run_id}"


def user_message_key(turn: int) -> str:
    return f"MSG#{turn:04d}#0user"


def assistant_message_key(turn: int) -> str:
    return f"MSG#{turn:04d}#1assistant"


def tool_message_key(turn: int, index: int) -> str:
    return f"MSG#{turn:04d}#2tool#{index:03d}"


def notice_message_key(turn: int, name: str) -> str:
    """A message of pixie's own to the model, before the turn's reply (after its other user message)."""
    return f"MSG#{turn:04d}#0user#{name}"


def changes_key(turn: int, index: int) -> str:
    return f"CHANGES#{turn:04d}#{index:03d}"


def file_changes(item: dict[str, Any]) -> dict[str, Any]:
    """A CHANGES# item as the run record lists it."""
    return {
        key: int(value) if isinstance(value, Decimal) else value  # DynamoDB numbers come back as Decimal
        for key, value in item.items()
        if key not in ("pk", "sk", "expiresAt")
    }


CONTEXT_KEY_PREFIX = "MSG#0000#0ctx#"  # sorts before user_message_key(0): earlier runs come first


def context_message_key(index: int) -> str:
    return f"{CONTEXT_KEY_PREFIX}{index:03d}"


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    prompt: str
    sandbox_id: str
    sandbox_kind: str
    model: str
    template: str
    max_iterations: int
    iteration: int
    status: str
    summary: str | None
    title: str | None
    url: str | None
    created_at: int
    parent_run_id: str | None = None  # the run this one continues
    project_id: str | None = None  # shared by a chain of runs: the first run's id
    budget_usd: float | None = None  # the run ends BudgetExceeded once its model calls cost this much
    max_tokens: int | None = None  # ... or used this many tokens (input + output)
    input_tokens: int = 0  # every model call's usage, added as it is paid for
    output_tokens: int = 0
    # Parts of input_tokens billed at their own rates: read from and written to the prompt cache.
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    # The done-check before its summary is accepted (False: --no-check), and a command of the
    # user's that it runs (None: the project's own npm scripts).
    check: bool = True
    check_command: str | None = None
    # Approvals: which tool calls wait for a person ("none", "commands", "all"), for how long, and
    # the wait in progress ({taskToken, iteration, calls, requestedAt, timeoutSeconds}) if any.
    approve: str = "none"
    approval_timeout_s: int | None = None
    pending_approval: dict[str, Any] | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> "RunRecord":
        return cls(
            run_id=item["runId"],
            prompt=item["prompt"],
            sandbox_id=item["sandboxId"],
            sandbox_kind=item["sandboxKind"],
            model=item["model"],
            template=item["template"],
            max_iterations=int(item["maxIterations"]),
            iteration=int(item.get("iteration", 0)),
            status=item.get("status", "RUNNING"),
            summary=item.get("summary"),
            title=item.get("title"),
            url=item.get("url"),
            created_at=int(item.get("createdAt", 0)),
            parent_run_id=item.get("parentRunId"),
            project_id=item.get("projectId") or item["runId"],
            budget_usd=float(item["budgetUsd"]) if item.get("budgetUsd") is not None else None,
            max_tokens=int(item["maxTokens"]) if item.get("maxTokens") is not None else None,
            input_tokens=int(item.get("inputTokens", 0)),
            output_tokens=int(item.get("outputTokens", 0)),
            cached_input_tokens=int(item.get("cachedInputTokens", 0)),
            cache_write_tokens=int(item.get("cacheWriteTokens", 0)),
            check=bool(item.get("check", True)),
            check_command=item.get("checkCommand"),
            approve=str(item.get("approve") or "none"),
            approval_timeout_s=int(item["approvalTimeoutSeconds"]) if item.get("approvalTimeoutSeconds") is not None else None,
            pending_approval=_plain(item.get("pendingApproval")),
        )


class NetworkState:
    """Reads and writes one table. Thread-safe: boto3 resources are created per instance and
    DynamoDB calls are independent."""

    def __init__(self, table_name: str, dynamodb_resource: Any | None = None) -> None:
        self._resource = dynamodb_resource or boto3.resource("dynamodb")
        self.table = self._resource.Table(table_name)

    # --- run record -------------------------------------------------------------------------
    def create_run(
        self,
        *,
        run_id: str,
        prompt: str,
        sandbox_id: str,
        sandbox_kind: str,
        model: str,
        template: str,
        max_iterations: int,
        parent_run_id: str | None = None,
        project_id: str | None = None,
        budget_usd: float | None = None,
        max_tokens: int | None = None,
        check: bool = True,
        check_command: str | None = None,
        approve: str = "none",
        approval_timeout_s: int | None = None,
    ) -> RunRecord:
        now = int(time.time())
        item = {
            "pk": _pk(run_id),
            "sk": "META",
            "runId": run_id,
            "prompt": prompt,
            "sandboxId": sandbox_id,
            "sandboxKind": sandbox_kind,
            "model": model,
            "template": template,
            "maxIterations": max_iterations,
            "iteration": 0,
            "status": "RUNNING",
            "createdAt": now,
            "expiresAt": now + RUN_TTL_SECONDS,
            "projectId": project_id or run_id,
            "check": bool(check),
        }
        if check_command:
            item["checkCommand"] = check_command
        if parent_run_id:
            item["parentRunId"] = parent_run_id
        item.update(budget_fields(budget_usd, max_tokens))
        if approve != "none":
            item["approve"] = approve
            item["approvalTimeoutSeconds"] = approval_timeout_s
        self.table.put_item(Item=item)
        return RunRecord.from_item(item)

    def find_run(self, run_id: str) -> RunRecord | None:
        item = self.table.get_item(Key={"pk": _pk(run_id), "sk": "META"}, ConsistentRead=True).get("Item")
        return RunRecord.from_item(item) if item else None

    def get_run(self, run_id: str) -> RunRecord:
        run = self.find_run(run_id)
        if run is None:
            raise RunNotFound(f"no run {run_id!r} in table {self.table.name}")
        return run

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set the given attributes of the run record (camelCase names)."""
        if not fields:
            return
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":v{i}": value for i, value in enumerate(fields.values())}
        assignments = ", ".join(f"#f{i} = :v{i}" for i in range(len(fields)))
        self.table.update_item(
            Key={"pk": _pk(run_id), "sk": "META"},
            UpdateExpression=f"SET {assignments}",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ConditionExpression="attribute_exists(pk)",
        )

    def add_usage(
        self, run_id: str, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0, cache_write_tokens: int = 0
    ) -> None:
        """Adds one model call's tokens to the run's totals (an atomic ADD: a retried call that was
        paid for again is counted again, as it was billed)."""
        self.table.update_item(
            Key={"pk": _pk(run_id), "sk": "META"},
            UpdateExpression="ADD inputTokens :i, outputTokens :o, cachedInputTokens :c, cacheWriteTokens :w",
            ExpressionAttributeValues={
                ":i": int(input_tokens), ":o": int(output_tokens),
                ":c": int(cached_input_tokens), ":w": int(cache_write_tokens),
            },
            ConditionExpression="attribute_exists(pk)",
        )

    def set_pending_approval(self, run_id: str, pending: dict[str, Any]) -> None:
        """The wait AwaitApproval is in: its task token and the calls it holds back."""
        self.update_run(run_id, pendingApproval=pending)

    def clear_pending_approval(self, run_id: str, iteration: int) -> None:
        """The wait of turn `iteration` is decided (a later turn's is left alone)."""
        try:
            self.table.update_item(
                Key={"pk": _pk(run_id), "sk": "META"},
                UpdateExpression="REMOVE pendingApproval",
                ConditionExpression="pendingApproval.iteration = :iteration",
                ExpressionAttributeValues={":iteration": int(iteration)},
            )
        except self.table.meta.client.exceptions.ConditionalCheckFailedException:
            pass  # nothing pending for that turn (already cleared by another call of it)

    # --- one run per event ------------------------------------------------------------------
    def claim_event(self, event_id: str, run_id: str) -> str:
        """Records that `run_id` handles the event `event_id`, unless another run already does.
        Returns the run that owns the event: `run_id` itself (claimed now, or by an earlier attempt
        of the same run) or the other run (this one is a duplicate delivery). One conditional write,
        so two executions racing for one event cannot both win."""
        key = {"pk": f"EVENT#{event_id}", "sk": "RUN"}
        while True:
            try:
                self.table.put_item(
                    Item={**key, "eventId": event_id, "runId": run_id, "createdAt": int(time.time()), "expiresAt": expires_at()},
                    ConditionExpression="attribute_not_exists(pk) OR runId = :run",
                    ExpressionAttributeValues={":run": run_id},
                )
                return run_id
            except self.table.meta.client.exceptions.ConditionalCheckFailedException:
                owner = (self.table.get_item(Key=key, ConsistentRead=True).get("Item") or {}).get("runId")
                if owner:
                    return str(owner)
                # the claim expired between the two calls: claim again

    def claim_sandbox(self, run_id: str, claimant_run_id: str) -> bool:
        """Hands the run's sandbox over to the run that continues it, once: True for the first
        claimant (and its retries), False when another run already took it."""
        try:
            self.table.update_item(
                Key={"pk": _pk(run_id), "sk": "META"},
                UpdateExpression="SET sandboxClaimedBy = :claimant",
                ConditionExpression="attribute_exists(pk) AND "
                "(attribute_not_exists(sandboxClaimedBy) OR sandboxClaimedBy = :claimant)",
                ExpressionAttributeValues={":claimant": claimant_run_id},
            )
        except self.table.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    # --- conversation -----------------------------------------------------------------------
    # Messages are stored as JSON with non-ASCII escaped: any text a model sends (lone surrogates
    # included) is storable, and a message's size in the table is its length.
    def put_message(self, run_id: str, key: str, message: dict[str, Any]) -> None:
        self.put_messages(run_id, {key: message})

    def put_messages(self, run_id: str, messages: dict[str, dict[str, Any]]) -> None:
        """Several messages in batches (a turn's "not run" results)."""
        with self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for key, message in messages.items():
                for item in _items(run_id, key, "message", json.dumps(message)):
                    batch.put_item(Item=item)

    def get_message(self, run_id: str, key: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key={"pk": _pk(run_id), "sk": key}, ConsistentRead=True).get("Item")
        if not item:
            return None
        return json.loads(self._joined(run_id, [item], "message")[0])

    def list_messages(self, run_id: str) -> list[dict[str, Any]]:
        return [json.loads(text) for text in self._joined(run_id, self._query(run_id, "MSG#"), "message")]

    def list_keyed_messages(self, run_id: str) -> list[tuple[str, dict[str, Any]]]:
        """(sort key, message) pairs in order: the key says where a message belongs."""
        items = self._query(run_id, "MSG#")
        return [(item["sk"], json.loads(text)) for item, text in zip(items, self._joined(run_id, items, "message"))]

    # --- files ------------------------------------------------------------------------------
    def put_files(self, run_id: str, files: dict[str, str]) -> None:
        with self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for path, content in files.items():
                for item in _items(run_id, f"FILE#{path}", "content", content):
                    if item["sk"].startswith("FILE#"):
                        item["path"] = path
                    batch.put_item(Item=item)

    def list_files(self, run_id: str) -> dict[str, str]:
        items = self._query(run_id, "FILE#")
        return {item["path"]: content for item, content in zip(items, self._joined(run_id, items, "content"))}

    def put_changes(self, run_id: str, turn: int, index: int, changes: dict[str, Any]) -> None:
        """The files tool call `index` of turn `turn` touched (lists bounded by the caller)."""
        item = {**changes, "pk": _pk(run_id), "sk": changes_key(turn, index), "turn": turn, "index": index, "expiresAt": expires_at()}
        self.table.put_item(Item=item)

    def list_changes(self, run_id: str) -> list[dict[str, Any]]:
        return [file_changes(item) for item in self._query(run_id, "CHANGES#")]

    def list_file_paths(self, run_id: str) -> list[str]:
        """Sorted paths only: reads no file contents (capacity is billed by bytes read)."""
        return sorted(item["path"] for item in self._query(run_id, "FILE#", projection="#path"))

    def _joined(self, run_id: str, items: list[dict[str, Any]], attribute: str) -> list[str]:
        """Each item's text with its parts (read in batches) appended."""
        wanted = [part_key(item["sk"], n) for item in items for n in range(1, int(item.get("parts", 1)))]
        parts: dict[str, str] = {}
        for start in range(0, len(wanted), 100):  # BatchGetItem's limit per call
            keys = [{"pk": _pk(run_id), "sk": sk} for sk in wanted[start : start + 100]]
            request = {self.table.name: {"Keys": keys, "ConsistentRead": True}}
            while request:
                answer = self._resource.batch_get_item(RequestItems=request)
                for got in answer["Responses"].get(self.table.name, []):
                    parts[got["sk"]] = got[attribute]
                request = answer.get("UnprocessedKeys") or None
        texts = []
        for item in items:
            count = int(item.get("parts", 1))
            pieces = [item[attribute]] + [parts[part_key(item["sk"], n)] for n in range(1, count)]
            texts.append("".join(pieces))
        return texts

    def _query(self, run_id: str, prefix: str, projection: str | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        # Written out, not built with boto3's Key(): the builder lives on the resource's client and
        # is not thread-safe (boto/boto3#1332); the local engine's threads share this object, and
        # a burst of runs got "Query condition missed key schema element" now and then.
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": _pk(run_id), ":prefix": prefix},
            "ConsistentRead": True,
        }
        if projection:
            kwargs["ProjectionExpression"] = projection
            kwargs["ExpressionAttributeNames"] = {name: name[1:] for name in projection.split(", ")}
        while True:
            page = self.table.query(**kwargs)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def part_key(sk: str, n: int) -> str:
    """The key of part n (1, 2, ...) of the item `sk` (a message or file too big for one item)."""
    return f"PART#{sk}#{n:04d}"


def _split(text: str, max_bytes: int = PART_BYTES) -> list[str]:
    """`text` in pieces of at most `max_bytes` UTF-8 bytes each, never splitting a character."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return [text]
    pieces, start = [], 0
    while start < len(data):
        end = min(start + max_bytes, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # a continuation byte: back off
            end -= 1
        pieces.append(data[start:end].decode("utf-8"))
        start = end
    return pieces


def _items(run_id: str, sk: str, attribute: str, text: str) -> list[dict[str, Any]]:
    """The item for `text` and, when it is too big for one, its parts (written first); all with
    the run's TTL."""
    pieces = _split(text)
    expiry = expires_at()
    parts = [
        {"pk": _pk(run_id), "sk": part_key(sk, n), attribute: piece, "expiresAt": expiry}
        for n, piece in enumerate(pieces)
        if n
    ]
    head: dict[str, Any] = {"pk": _pk(run_id), "sk": sk, attribute: pieces[0], "expiresAt": expiry}
    if len(pieces) > 1:
        head["parts"] = len(pieces)
    return [*parts, head]


def _plain(value: Any) -> Any:
    """A DynamoDB map as plain JSON values (its numbers come back as Decimal)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def budget_fields(budget_usd: float | None, max_tokens: int | None) -> dict[str, Any]:
    """A run's budget as table attributes (DynamoDB numbers are Decimals; None leaves a bound unset)."""
    fields: dict[str, Any] = {}
    if budget_usd is not None:
        fields["budgetUsd"] = Decimal(str(budget_usd))
    if max_tokens is not None:
        fields["maxTokens"] = int(max_tokens)
    return fields


def create_table(dynamodb_client: Any, table_name: str) -> None:
    """The table's shape, for the embedded engine and tests (CDK defines the deployed one)."""
    dynamodb_client.create_table(
        TableName=table_name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
