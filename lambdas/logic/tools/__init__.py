"""The agent's three tools and the one way to run a tool call."""

from __future__ import annotations

import json

from pydantic import ValidationError

from lambdas.logic.errors import ToolError, describe_validation_error
from lambdas.logic.limits import MAX_TOOL_NAME_CHARS
from lambdas.logic.tools.base import Tool, ToolContext
from lambdas.logic.tools.files import CREATE_OR_UPDATE_FILES, READ_FILES
from lambdas.logic.tools.terminal import TERMINAL
from lambdas.logic.truncate import bound_text

TOOLS: dict[str, Tool] = {tool.name: tool for tool in (TERMINAL, CREATE_OR_UPDATE_FILES, READ_FILES)}


def tool_definitions() -> list[dict]:
    return [tool.definition() for tool in TOOLS.values()]


def execute_tool(name: str, raw_arguments: str, ctx: ToolContext, max_output_chars: int) -> tuple[str, bool]:
    """Runs one tool call. Returns (content for the model, ok). Never raises for a bad call:
    the error goes back to the model as the call's result, so it can correct itself."""
    try:
        if not isinstance(name, str) or len(name) > MAX_TOOL_NAME_CHARS:
            shown = ascii(name)[:MAX_TOOL_NAME_CHARS]
            raise ToolError(
                f"unknown tool {shown}… (names are at most {MAX_TOOL_NAME_CHARS} characters); "
                f"available tools: {', '.join(TOOLS)}"
            )
        tool = TOOLS.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}; available tools: {', '.join(TOOLS)}")
        try:
            parsed = json.loads(raw_arguments or "{}")
        except (json.JSONDecodeError, TypeError) as exc:
            raise ToolError(f"arguments are not valid JSON ({exc})") from None
        try:
            args = tool.arguments.model_validate(parsed)
        except ValidationError as exc:
            raise ToolError(f"invalid arguments for {name}: {describe_validation_error(exc, 'arguments')}") from None
        return bound_text(tool.run(args, ctx), max_output_chars), True
    except ToolError as exc:
        return bound_text(f"Error: {exc}", max_output_chars), False
