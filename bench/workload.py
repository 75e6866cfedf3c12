"""The benchmark workload: scripted runs through the real handlers, tools and local sandbox, either
on the embedded engine (the real agent.asl.json on moto's interpreter) or in a plain Python loop
that calls the same handlers in the same order against the same moto DynamoDB."""

from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from unittest import mock

import boto3
from moto import mock_aws

from bench.metrics import DynamoDBMeter, metering
from lambdas.dal.network_state import create_table
from lambdas.logic.limits import MAX_ITERATIONS_CAP
from lambdas.logic.models.scripted import forget_cached_prefixes
from lambdas.logic.sandboxes.local import stop_all_previews
from statemachine.engine import REGION, TABLE_NAME, LambdaContext, LocalEngine, hello_world_event
from pixie.local_run import RunOptions

PROMPT = "Build a todo app"
LINE = "pixie bench: a line of tool output, 0123456789 abcdefghij\n"


def output_command(size_bytes: int) -> str:
    """A terminal command whose stdout is exactly `size_bytes` bytes of text lines."""
    return f"yes {LINE.strip()!r} | head -c {int(size_bytes)}"


PATTERNS = ("terminal", "alternate", "both")


def make_turns(iterations: int, output_bytes: int, pattern: str = "terminal", file_bytes: int = 2048) -> list[dict]:
    """`iterations` model turns; the last writes the <task_summary>, so the run makes exactly
    `iterations` AgentTurn calls. Each turn before it makes tool calls by `pattern`:
      terminal   one terminal command printing `output_bytes`
      alternate  one call: odd turns write a new ~`file_bytes` file, even turns the terminal command
      both       two calls: write a new file, then the terminal command"""
    if iterations < 1:
        raise ValueError("a run has at least one turn")
    if pattern not in PATTERNS:
        raise ValueError(f"unknown pattern {pattern!r}: use one of {PATTERNS}")
    turns: list[dict] = []
    for turn in range(1, iterations):
        content = (f"// module {turn}\n" + "export const answer = 42;\n" * (file_bytes // 26 + 1))[:file_bytes]
        write = {"name": "createOrUpdateFiles", "arguments": {"files": [{"path": f"src/module_{turn:03d}.js", "content": content}]}}
        run = {"name": "terminal", "arguments": {"command": output_command(output_bytes)}}
        calls = {"terminal": [run], "alternate": [write] if turn % 2 else [run], "both": [write, run]}[pattern]
        turns.append({"content": f"Step {turn}.", "tool_calls": calls})
    turns.append({"content": "All done.\n<task_summary>\nBuilt the benchmark app.\n</task_summary>"})
    return turns


@dataclass
class Workload:
    """A scripted run to repeat: the script file and the settings every run of it uses."""

    iterations: int
    output_bytes: int
    pattern: str
    home: Path
    compaction: bool = True  # False: PIXIE_COMPACT_AFTER_TURNS=0, every tool result sent whole

    def __post_init__(self) -> None:
        self.script = self.home / "scripts" / f"{self.pattern}-{self.iterations}-{self.output_bytes}.json"
        self.script.parent.mkdir(parents=True, exist_ok=True)
        turns = make_turns(self.iterations, self.output_bytes, self.pattern)
        self.script.write_text(json.dumps({"turns": turns}), encoding="utf-8")

    def options(self) -> RunOptions:
        # Headroom over the script's length, within pixie's cap: the script, not the limit, ends the run.
        return RunOptions(
            model=f"scripted:{self.script}", sandbox="local", pixie_home=self.home,
            max_iterations=min(self.iterations + 5, MAX_ITERATIONS_CAP),
            extra_env=() if self.compaction else (("PIXIE_COMPACT_AFTER_TURNS", "0"),),
        )


@dataclass
class EngineRun:
    status: str
    error: str | None
    history: list[dict]
    wall_ms: float
    invocations: list[tuple[str, float]]  # (function name, measured handler ms), in order
    dynamodb: dict[str, Any]
    output: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def run_on_engine(workload: Workload, invoke_wrapper: Callable[[str, dict, Callable[[], Any]], Any] | None = None) -> EngineRun:
    """One run of the workload on a fresh embedded engine. The wall time covers start_execution
    to the final status (the engine's own polling included), not the engine's setup. Every handler
    invocation is timed (around `invoke_wrapper`, if given), and every DynamoDB request the run
    makes is metered."""
    invocations: list[tuple[str, float]] = []

    def timed(name: str, event: dict, invoke: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return invoke_wrapper(name, event, invoke) if invoke_wrapper else invoke()
        finally:
            invocations.append((name, (time.perf_counter() - start) * 1000))

    meter = DynamoDBMeter()
    forget_cached_prefixes()  # each run starts with a cold (simulated) prompt cache
    try:
        with LocalEngine(workload.options().env(), invoke_wrapper=timed) as engine:
            with metering(meter):
                start = time.perf_counter()
                execution = engine.run(hello_world_event(PROMPT))
                wall_ms = (time.perf_counter() - start) * 1000
    finally:
        stop_all_previews()
    return EngineRun(
        status=execution.status,
        error=execution.error,
        history=execution.history,
        wall_ms=wall_ms,
        invocations=invocations,
        dynamodb=meter.as_dict(),
        output=execution.output,
    )


@dataclass
class PlainRun:
    wall_ms: float
    turns: int
    tool_calls: int
    result: dict


def run_plain(workload: Workload) -> PlainRun:
    """The same handlers in the same order as the state machine calls them (CreateSandbox, then
    AgentTurn and each of its tool calls' RunTool until a turn has the summary, then GetSandboxUrl),
    from a plain loop: same moto DynamoDB table, same local sandbox, same scripted model."""
    env = {"PIXIE_TABLE": TABLE_NAME, "AWS_DEFAULT_REGION": REGION, **workload.options().env()}
    with ExitStack() as stack:
        stack.enter_context(mock.patch.dict(os.environ, env))
        stack.enter_context(mock_aws())
        stack.callback(stop_all_previews)
        from lambdas.handlers import agent_turn, create_sandbox, get_sandbox_url, run_tool, shared

        shared.reset()
        stack.callback(shared.reset)
        boto3.setup_default_session(region_name=REGION)
        create_table(boto3.client("dynamodb", region_name=REGION), env["PIXIE_TABLE"])
        run_id = os.urandom(8).hex()
        event = hello_world_event(PROMPT)

        start = time.perf_counter()
        state = create_sandbox.handler({"runId": run_id, "event": event}, LambdaContext("pixie-create-sandbox"))
        turns = calls = 0
        while True:
            state = agent_turn.handler(
                {"runId": run_id, "iteration": state["iteration"], "maxIterations": state["maxIterations"]},
                LambdaContext("pixie-agent-turn"),
            )
            turns += 1
            if state["hasSummary"]:
                break
            if state["iteration"] >= state["maxIterations"]:
                raise RuntimeError("the plain loop reached the iteration limit: the workload is wrong")
            for index, call in enumerate(state["toolCalls"]):
                run_tool.handler(
                    {"runId": run_id, "iteration": state["iteration"], "index": index, "toolCallId": call["id"], "name": call["name"]},
                    LambdaContext("pixie-run-tool"),
                )
                calls += 1
        result = get_sandbox_url.handler({"runId": run_id}, LambdaContext("pixie-get-sandbox-url"))
        wall_ms = (time.perf_counter() - start) * 1000
    return PlainRun(wall_ms=wall_ms, turns=turns, tool_calls=calls, result=result)


def scratch_home() -> tempfile.TemporaryDirectory:
    """PIXIE_HOME for the benchmark's sandboxes and scripts, removed afterwards."""
    return tempfile.TemporaryDirectory(prefix="pixie-bench-")
