"""What every tool shares: its argument model (which also gives the JSON schema the model sees)
and the context it runs in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel

from lambdas.dal.network_state import NetworkState
from lambdas.logic.limits import DEFAULT_MAX_CALL_BYTES, DEFAULT_MAX_FILE_BYTES
from lambdas.logic.sandboxes.base import Sandbox


@dataclass(frozen=True)
class ToolContext:
    run_id: str
    sandbox: Sandbox
    state: NetworkState
    command_timeout_s: int
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES  # createOrUpdateFiles: one file's content, UTF-8
    max_call_bytes: int = DEFAULT_MAX_CALL_BYTES  # ... and all files of one call


def _inline_refs(schema: dict) -> dict:
    """The JSON schema with $defs inlined and titles dropped: some OpenAI-compatible servers
    do not resolve $ref."""
    definitions = schema.pop("$defs", {})

    def resolve(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve(schema)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    arguments: type[BaseModel]
    run: Callable[[BaseModel, ToolContext], str]

    def definition(self) -> dict:
        """The tool in OpenAI Chat Completions format."""
        schema = _inline_refs(self.arguments.model_json_schema())
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": schema},
        }
