"""The `pixie` console script as a user runs it: a real process, the embedded engine, a
scripted model or the bundled demo, and `pixie show` on the saved run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

PIXIE = Path(sys.executable).parent / "pixie"


def pixie(*args: str, home: Path, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    environment.update({"PIXIE_HOME": str(home), **(env or {})})
    return subprocess.run(
        [str(PIXIE), *args], capture_output=True, text=True, env=environment, timeout=timeout, stdin=subprocess.DEVNULL
    )


def test_run_without_keys_uses_the_announced_demo_and_prints_url_files_summary(tmp_path):
    result = pixie("run", "--no-serve", "Build a todo app", home=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "scripted demo" in result.stderr  # nobody mistakes it for generation
    assert "Preview: http://127.0.0.1:" in result.stdout
    for name in ("index.html", "style.css", "app.js"):
        assert name in result.stdout
    assert "Summary:" in result.stdout and "todo" in result.stdout.lower()
    # Live progress went to stderr, state by state.
    assert "CreateSandbox" in result.stderr and "GetSandboxUrl" in result.stderr


def test_run_json_with_a_script_then_show_json(tmp_path, write_script):
    script = write_script(
        [
            {
                "content": None,
                "tool_calls": [
                    {
                        "name": "createOrUpdateFiles",
                        "arguments": {"files": [{"path": "src/main.js", "content": "console.log(1)"}]},
                    }
                ],
            },
            {"content": "Done. <task_summary>Wrote main.js</task_summary>"},
        ]
    )
    result = pixie("run", "--json", "--no-serve", "--model", f"scripted:{script}", "Write main.js", home=tmp_path)

    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)  # stdout holds exactly one JSON object
    assert set(output) == {"runId", "status", "url", "title", "summary", "files", "sandboxId", "error", "cause"}
    assert output["status"] == "SUCCEEDED"
    assert output["files"] == {"src/main.js": "console.log(1)"}
    assert output["summary"] == "Wrote main.js"
    assert output["url"].startswith("http://127.0.0.1:")
    assert output["error"] is None
    sandbox = tmp_path / "sandboxes" / output["sandboxId"]
    assert (sandbox / "src" / "main.js").read_text() == "console.log(1)"

    shown = pixie("show", output["runId"], "--json", home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    saved = json.loads(shown.stdout)
    assert [m["role"] for m in saved["conversation"]] == ["user", "assistant", "tool", "assistant"]
    assert saved["conversation"][0]["content"] == "Write main.js"
    states = [e["stateEnteredEventDetails"]["name"] for e in saved["history"] if "stateEnteredEventDetails" in e]
    assert states[:3] == ["CreateSandbox", "IsDuplicateEvent", "AgentTurn"]
    assert {"Router", "RunTools", "RunTool", "GetSandboxUrl"} <= set(states)

    human = pixie("show", output["runId"], home=tmp_path)
    assert human.returncode == 0
    assert "[tool call_1_0]" in human.stdout and "Wrote src/main.js" in human.stdout


def test_failed_run_exits_nonzero_with_error_and_cause(tmp_path):
    script = tmp_path / "loop.json"
    turn = {"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": "true"}}]}
    script.write_text(json.dumps({"turns": [turn] * 5}))
    result = pixie(
        "run", "--json", "--no-serve", "--max-iterations", "2", "--model", f"scripted:{script}", "Loop", home=tmp_path
    )

    assert result.returncode == 1
    output = json.loads(result.stdout)
    assert output["status"] == "FAILED"
    assert output["error"] == "MaxIterationsReached"
    assert output["cause"]


def test_usage_errors_are_clear(tmp_path):
    missing = pixie("run", "--model", "scripted:/nope/script.json", "x", home=tmp_path)
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    unknown = pixie("run", "--model", "claude", "x", home=tmp_path)
    assert unknown.returncode != 0 and "unknown --model" in unknown.stderr
    no_run = pixie("show", "does-not-exist", home=tmp_path)
    assert no_run.returncode == 2 and "no saved run" in no_run.stderr


@pytest.mark.parametrize(
    "setting", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_CONFIG_FILE", "AWS_PROFILE", "AWS_USE_FIPS_ENDPOINT"]
)
def test_a_local_run_is_not_steered_by_aws_settings_in_the_shell(tmp_path, setting):
    """A developer's shell often carries AWS settings for other work: LocalStack or DynamoDB Local
    (AWS_ENDPOINT_URL*, or endpoint_url in the default profile of ~/.aws/config), a profile this
    machine lacks, FIPS endpoints. The embedded engine answers AWS calls itself (README, Amazon
    Bedrock models: "runs inside moto, which ... answers AWS calls itself"), so a local run of the
    demo must neither fail for them nor send its table there."""
    with socket.socket() as closed:  # bound, never listening: a connection to it is refused at once
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
        config = tmp_path / "aws-config"
        config.write_text(f"[default]\nendpoint_url = {endpoint}\n")
        values = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
            "AWS_CONFIG_FILE": str(config),
            "AWS_PROFILE": "a-profile-this-machine-does-not-have",
            "AWS_USE_FIPS_ENDPOINT": "true",
        }
        result = pixie("run", "--json", "--no-serve", "Build a todo app", home=tmp_path, env={setting: values[setting]})

    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["status"] == "SUCCEEDED"
