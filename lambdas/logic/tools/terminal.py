"""terminal: run a shell command in the sandbox; stdout, stderr and exit code go back."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from lambdas.logic import progress
from lambdas.logic.tools.base import Tool, ToolContext


class TerminalArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: StrictStr = Field(min_length=1, description="The shell command to run in the project root")


def run_terminal(args: TerminalArgs, ctx: ToolContext) -> str:
    progress.emit(ctx.run_id, "command.start", command=args.command)

    def on_output(stream: str, text: str) -> None:
        progress.emit(ctx.run_id, "command.output", stream=stream, text=text)

    result = ctx.sandbox.run_command(args.command, ctx.command_timeout_s, on_output=on_output)
    progress.emit(ctx.run_id, "command.end", exitCode=result.exit_code, timedOut=result.timed_out)
    if result.timed_out:
        status = f"killed after the {ctx.command_timeout_s}s timeout (never start long-running servers)"
    else:
        status = f"exit code {result.exit_code}"
    return f"{status}\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"


TERMINAL = Tool(
    name="terminal",
    description="Run a shell command (bash) in the project root. Returns stdout, stderr and the exit code.",
    arguments=TerminalArgs,
    run=run_terminal,
)
