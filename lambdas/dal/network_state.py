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
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import boto3
from boto3.dynamodb.conditions import Key

from lambdas.logic.errors import RunNotFound

RUN_TTL_SECONDS = 30 * 24 * 3600


def _pk(run_id: str) -> str:
    return f"RUN#{run_id}"


def user_message_key(turn: int) -> str:
    return f"MSG#{turn:04d}#0user"


def assistant_message_key(turn: int) -> str:
    return f"MSG#{turn:04d}#1assistant"


def tool_message_key(turn: int, index: int) -> str:
    return f"MSG#{turn:04d}#2tool#{index:03d}"


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
        )


class NetworkState:
    """Reads and writes one table. Thread-safe: boto3 resources are created per instance and
    DynamoDB calls are independent."""

    def __init__(self, table_name: str, dynamodb_resource: Any | None = None) -> None:
        resource = dynamodb_resource or boto3.resource("dynamodb")
        self.table = resource.Table(table_name)

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
        }
        if parent_run_id:
            item["parentRunId"] = parent_run_id
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
    def put_message(self, run_id: str, key: str, message: dict[str, Any]) -> None:
        self.table.put_item(
            Item={"pk": _pk(run_id), "sk": key, "message": json.dumps(message, ensure_ascii=False)}
        )

    def get_message(self, run_id: str, key: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key={"pk": _pk(run_id), "sk": key}, ConsistentRead=True).get("Item")
        return json.loads(item["message"]) if item else None

    def list_messages(self, run_id: str) -> list[dict[str, Any]]:
        return [json.loads(item["message"]) for item in self._query(run_id, "MSG#")]

    def list_keyed_messages(self, run_id: str) -> list[tuple[str, dict[str, Any]]]:
        """(sort key, message) pairs in order: the key says where a message belongs."""
        return [(item["sk"], json.loads(item["message"])) for item in self._query(run_id, "MSG#")]

    # --- files ------------------------------------------------------------------------------
    def put_files(self, run_id: str, files: dict[str, str]) -> None:
        with self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for path, content in files.items():
                batch.put_item(
                    Item={"pk": _pk(run_id), "sk": f"FILE#{path}", "path": path, "content": content}
                )

    def list_files(self, run_id: str) -> dict[str, str]:
        return {item["path"]: item["content"] for item in self._query(run_id, "FILE#")}

    def list_file_paths(self, run_id: str) -> list[str]:
        """Sorted paths only: reads no file contents (capacity is billed by bytes read)."""
        return sorted(item["path"] for item in self._query(run_id, "FILE#", projection="#path"))

    def _query(self, run_id: str, prefix: str, projection: str | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(_pk(run_id)) & Key("sk").begins_with(prefix),
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
