"""What a deployed run reports to CloudWatch: EMF metrics for model tokens per turn, tool calls
by name and outcome, and iterations per run; JSON logs correlated by run id."""

from __future__ import annotations

import json

from lambdas.handlers import agent_turn, create_sandbox, get_sandbox_url, run_tool
from statemachine.engine import LambdaContext, hello_world_event

RUN = "run-observed"


def emf_records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def metric_names(record: dict) -> set[str]:
    return {m["Name"] for d in record["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}


def test_handlers_emit_tokens_tool_outcomes_and_iterations(table, pixie_home, monkeypatch, write_script, capsys):
    monkeypatch.setenv("PIXIE_SANDBOX", "local")
    script = write_script(
        [
            {"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": "exit 1"}}, {"name": "nope", "arguments": {}}]},
            {"content": "<task_summary>Done</task_summary>"},
        ]
    )
    monkeypatch.setenv("PIXIE_MODEL", f"scripted:{script}")

    create_sandbox.handler({"runId": RUN, "event": hello_world_event("Build")}, LambdaContext("pixie-create-sandbox"))
    first = agent_turn.handler({"runId": RUN, "iteration": 0, "maxIterations": 5}, LambdaContext("pixie-agent-turn"))
    for index, call in enumerate(first["toolCalls"]):
        run_tool.handler(
            {"runId": RUN, "iteration": 1, "index": index, "toolCallId": call["id"], "name": call["name"]},
            LambdaContext("pixie-run-tool"),
        )
    agent_turn.handler({"runId": RUN, "iteration": 1, "maxIterations": 5}, LambdaContext("pixie-agent-turn"))
    get_sandbox_url.handler({"runId": RUN}, LambdaContext("pixie-get-sandbox-url"))
    captured = capsys.readouterr()

    records = emf_records(captured.out)
    turns = [r for r in records if "ModelInputTokens" in metric_names(r)]
    assert len(turns) == 2 and all(r["ModelInputTokens"][0] > 0 and r["ModelOutputTokens"][0] > 0 for r in turns)
    tools = [(r["tool"], r["outcome"]) for r in records if "ToolCalls" in metric_names(r)]
    # A failing command is still a valid call; a name that is no tool is counted as "unknown" (a model
    # must not mint metric dimensions).
    assert tools == [("terminal", "ok"), ("unknown", "error")]
    finished = next(r for r in records if "IterationsPerRun" in metric_names(r))
    assert finished["IterationsPerRun"] == [2.0]
    assert all(r["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Pixie" for r in records)

    logs = [json.loads(line) for line in captured.err.splitlines() if line.startswith("{")]
    assert {entry["correlation_id"] for entry in logs} == {RUN}
    assert {"run created", "turn done", "tool call done", "run finished"} <= {entry["message"] for entry in logs}


def test_only_faults_count_as_run_faults_for_the_alarm(table, pixie_home, monkeypatch, capsys):
    """RunsFailed counts every failed run; RunFaults (the alarm's metric) only those that need a
    person: not the model using its turns, nor a user stopping the run."""
    from lambdas.handlers import cleanup_sandbox

    monkeypatch.setenv("PIXIE_SANDBOX", "local")
    endings = {"run-a": "MaxIterationsReached", "run-b": "Interrupted", "run-c": "ModelAuthFailed", "run-d": "SandboxNotFound"}
    for run_id, error in endings.items():
        create_sandbox.handler({"runId": run_id, "event": hello_world_event("Build")}, LambdaContext("pixie-create-sandbox"))
        capsys.readouterr()
        cleanup_sandbox.handler({"runId": run_id, "error": {"Error": error, "Cause": "x"}}, LambdaContext("pixie-cleanup-sandbox"))
        names = set().union(*(metric_names(r) for r in emf_records(capsys.readouterr().out)))
        assert "RunsFailed" in names, error
        assert ("RunFaults" in names) is (error in ("ModelAuthFailed", "SandboxNotFound")), error
