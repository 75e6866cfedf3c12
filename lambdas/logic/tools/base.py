"""What every tool shares: its argument model (which also gives the JSON schema the model sees)
and the context it runs in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel

from lambdas.dal.network_state import NetworkState
from lambdas.logic.sandboxes.base import Sandbox


@dataclass(frozen=True)
class ToolContext:
    run_id: str
    sandbox: Sandbox
    state: NetworkState
    command_timeout_s: int


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    arguments: type[BaseModel]
    run: Callable[[BaseModel, ToolContext], str]

    def definition(self) -> dict:
        """The tool in OpenAI Chat Completions format."""
        schema = self.arguments.model_json_schema()
        schema.pop("title", None)
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": schema},
        }
