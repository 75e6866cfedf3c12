"""The `pixie` CLI around runs, as a user types it: fail-fast usage errors, list, show with an id
prefix, open, --version, and no raw escape sequence from a model ever reaching the terminal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from openai_stub import OpenAIStub, chat_completion

from pixie import __version__

PIXIE = Path(sys.executable).parent / "pixie"
ESC = "\x1b"


def pixie(*args: str, home: Path, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "E2B_API_KEY")}
    environment.update({"PIXIE_HOME": str(home), **(env or {})})
    return subprocess.run(
        [str(PIXIE), *args], capture_output=True, text=True, env=environment, timeout=timeout, stdin=subprocess.DEVNULL
    )


def script(path: Path, turns: list[dict]) -> Path:
    path.write_text(json.dumps({"turns": turns}), encoding="utf-8")
    return path


def hello_script(path: Path, summary: str) -> Path:
    return script(path, [{"content": f"<task_summary>{summary}</task_summary>"}])


def test_version(tmp_path):
    result = pixie("--version", home=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"pixie {__version__}"


@pytest.mark.parametrize(
    "args, env, words",
    [
        (["--model", "gpt-4.1"], {}, ["unknown --model 'gpt-4.1'", "openai:gpt-4.1"]),
        (["--model", "openai:gpt-4.1"], {}, ["OPENAI_API_KEY", "OPENAI_BASE_URL"]),
        (["--sandbox", "e2b"], {}, ["E2B_API_KEY", "infra.e2b_template build"]),
        (["--model", "scripted:/nope/script.json"], {}, ["does not exist"]),
    ],
    ids=["bad-model", "openai-without-key", "e2b-without-key", "missing-script"],
)
def test_mistakes_exit_2_before_anything_is_created(tmp_path, args, env, words):
    home = tmp_path / "home"
    result = pixie("run", "--no-serve", *args, "Build a todo app", home=home, env=env)

    assert result.returncode == 2, result.stderr
    for word in words:
        assert word in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line, no traceback, no warning
    assert not home.exists()  # no run, no sandbox folder


def test_base_url_without_key_uses_a_placeholder_key_and_says_so(tmp_path):
    stub = OpenAIStub().start()
    try:
        stub.reply(200, chat_completion("<task_summary>Hello from llama</task_summary>"))
        result = pixie("run", "--json", "--no-serve", "--model", "openai:llama3.1", "Say hello", home=tmp_path,
                       env={"OPENAI_BASE_URL": stub.base_url})
    finally:
        stub.stop()

    assert result.returncode == 0, result.stderr
    assert "placeholder key" in result.stderr
    assert json.loads(result.stdout)["summary"] == "Hello from llama"
    sent = stub.requests[0]
    assert sent.headers["authorization"] == "Bearer pixie-placeholder-key"
    assert sent.body["stream"] is True and sent.body["model"] == "llama3.1"


def test_no_raw_escape_sequence_from_the_model_reaches_the_terminal(tmp_path):
    clipboard, erase = f"{ESC}]52;c;cm0gLXJmIH4=\x07", f"{ESC}[1A{ESC}[2K"
    hostile = script(
        tmp_path / "hostile.json",
        [
            {
                "content": f"Working{erase}",
                "tool_calls": [
                    {"name": f"terminal{clipboard}\x9b2K", "arguments": {"command": "true"}},  # 8-bit CSI too
                    {"name": "createOrUpdateFiles",
                     "arguments": {"files": [{"path": f"notes{erase}.txt", "content": f"hello{clipboard}{erase}"}]}},
                    {"name": "terminal", "arguments": {"command": "printf 'out\\033[2K\\033]52;c;eA==\\007'"}},
                ],
            },
            {"content": f"Done <task_summary>Wrote notes{clipboard}{erase}</task_summary>"},
        ],
    )
    run = pixie("run", "--no-serve", "--verbose", "--model", f"scripted:{hostile}", "x", home=tmp_path)  # logs too
    assert run.returncode == 0, run.stderr
    run_id = next(line.split()[2] for line in run.stdout.splitlines() if line.startswith("Run id:"))
    shown = pixie("show", run_id, home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    listed = pixie("list", home=tmp_path)

    for output in (run.stdout, run.stderr, shown.stdout, shown.stderr, listed.stdout):
        assert ESC not in output and "\x07" not in output and "\x9b" not in output
    assert "\\x1b]52;c;" in shown.stdout  # shown, not interpreted
    assert "Wrote notes\\x1b]52" in run.stdout
    assert '"tool call done"' in run.stderr  # the handlers' logs were on


def test_list_show_by_prefix_and_open_serve_finished_runs(tmp_path):
    first = pixie("run", "--json", "--no-serve", "--model", f"scripted:{hello_script(tmp_path / 'a.json', 'First app')}",
                  "Build the first app", home=tmp_path)
    second = pixie("run", "--json", "--no-serve", "--model", f"scripted:{hello_script(tmp_path / 'b.json', 'Second app')}",
                   "Build the second app", home=tmp_path)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    first_id, second_id = json.loads(first.stdout)["runId"], json.loads(second.stdout)["runId"]

    listed = pixie("list", "--json", home=tmp_path)
    runs = json.loads(listed.stdout)
    assert [r["runId"] for r in runs] == [second_id, first_id]  # newest first
    assert runs[0]["title"] == "Second app" and runs[0]["status"] == "SUCCEEDED" and runs[0]["turns"] == 1
    assert runs[0]["inputTokens"] > 0 and runs[0]["estimatedCostUsd"] == 0.0  # a script costs nothing
    assert runs[0]["durationS"] > 0 and runs[0]["startedAt"]
    table = pixie("list", "--limit", "1", home=tmp_path).stdout
    assert second_id[:12] in table and first_id[:12] not in table and "Second app" in table

    shown = pixie("show", first_id[:8], home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"Run {first_id}  SUCCEEDED" in shown.stdout
    for field in ("started", "duration", "model", "turns 1", "tokens", "estimated cost", "project"):
        assert field in shown.stdout
    assert pixie("show", "", home=tmp_path).returncode == 2

    folder = tmp_path / "sandboxes" / json.loads(first.stdout)["sandboxId"]
    served_before = (folder / "index.html").read_text()
    (folder / "index.html").write_text("<h1>changed by hand</h1>")  # not the run's version: not served
    environment = {**os.environ, "PIXIE_HOME": str(tmp_path)}
    server = subprocess.Popen([str(PIXIE), "open", first_id[:8]], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=environment)
    try:
        lines = [server.stdout.readline() for _ in range(4)]
        url = next(line.split()[1] for line in lines if line.startswith("Preview:"))
        assert f"Project: {folder}" in "".join(lines)
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read().decode() == served_before
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
    assert "Traceback" not in err


# --- the AWS commands: region, profile, credentials -------------------------------------------------
@pytest.fixture
def no_aws_configuration(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("AWS_") or name.startswith("PIXIE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask the network for credentials


def test_aws_commands_explain_a_missing_region_in_one_line(no_aws_configuration, capsys):
    from pixie import cli

    assert cli.main(["send", "Build a todo app"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pixie: no AWS region: pass --region") and len(err.strip().splitlines()) == 1


def test_aws_commands_explain_missing_credentials_in_one_line(no_aws_configuration, capsys):
    from pixie import cli

    arn = "arn:aws:states:eu-west-1:123456789012:execution:pixie-agent:run-1"
    assert cli.main(["watch", arn, "--region", "eu-west-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pixie: no AWS credentials found") and "--profile" in err
    assert len(err.strip().splitlines()) == 1


def test_aws_commands_name_an_unknown_profile(no_aws_configuration, capsys):
    from pixie import cli

    assert cli.main(["show", "run-1", "--aws", "--profile", "nope", "--region", "eu-west-1"]) == 2
    assert "nope" in capsys.readouterr().err


def test_a_prefix_that_matches_several_runs_asks_for_more(tmp_path):
    from pixie.runs import RunNotFound, resolve_run_id, save_run

    for run_id in ("abc111", "abc222", "def333"):
        save_run(tmp_path, {"runId": run_id, "status": "SUCCEEDED"})

    assert resolve_run_id(tmp_path, "abc1") == "abc111"
    assert resolve_run_id(tmp_path, "def333") == "def333"
    with pytest.raises(RunNotFound, match="abc matches 2 runs"):
        resolve_run_id(tmp_path, "abc")
    with pytest.raises(RunNotFound, match="no saved run zzz"):
        resolve_run_id(tmp_path, "zzz")


def test_hints_name_pixie_the_way_it_can_be_called_again(tmp_path, monkeypatch):
    from pixie import cli

    script = tmp_path / ".venv" / "bin" / "pixie"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script), "run"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert cli.pixie_command() == ".venv/bin/pixie"  # not on PATH: the path that works from here

    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")
    assert cli.pixie_command() == "pixie"  # an activated venv
