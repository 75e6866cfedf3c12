"""The CLI's promises, through the real `pixie` console script in its own process: exit codes
(0, 1, 2, 130), the default model when OPENAI_API_KEY is set (against a stand-in OpenAI server),
`--sandbox e2b` with `--template` and `--verbose` (E2B faked through a sitecustomize shim), and the
serving loop. `pixie send --stack` runs in-process against moto, with agent.asl.json itself deployed
there as the state machine, since moto lives in the test's process."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from openai_stub import OpenAIStub, chat_completion

PIXIE = Path(sys.executable).parent / "pixie"
FAKE_E2B_SITE = Path(__file__).parent / "fake_e2b_site"
WRITE_PAGE = [
    {
        "content": None,
        "tool_calls": [
            {"name": "createOrUpdateFiles", "arguments": {"files": [{"path": "index.html", "content": "<h1>served by pixie</h1>"}]}}
        ],
    },
    {"content": "<task_summary>Wrote the page</task_summary>"},
]


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "E2B_", "PIXIE_"))}
    return {**env, "PIXIE_HOME": str(home), **extra}


def pixie(*args: str, env: dict[str, str], timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(PIXIE), *args], capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL
    )


class Running:
    """A `pixie` process whose stderr is read line by line as it comes."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [str(PIXIE), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.put(line)

    def wait_for_line(self, needle: str, timeout_s: float = 180) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.stderr.append(line)
            if needle in line:
                return line
        raise AssertionError(f"pixie never wrote {needle!r}; stderr so far:\n{''.join(self.stderr)}")

    def interrupt(self, timeout_s: float = 60) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def fetch(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


# --- exit codes -----------------------------------------------------------------------------------
def test_usage_errors_exit_2(tmp_path):
    env = environment(tmp_path)
    no_prompt = pixie("run", env=env)
    assert no_prompt.returncode == 2 and "prompt" in no_prompt.stderr
    bad_flag = pixie("run", "--max-iterations", "0", "x", env=env)
    assert bad_flag.returncode == 2 and "between 1 and 50" in bad_flag.stderr
    no_run = pixie("show", "no-such-run", env=env)
    assert no_run.returncode == 2


def test_ctrl_c_during_a_run_stops_it_saves_it_and_exits_130(tmp_path, write_script):
    script = write_script([{"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": "touch started; sleep 120"}}]}])
    run = Running("run", "--no-serve", "--model", f"scripted:{script}", "Wait", env=environment(tmp_path))
    try:
        deadline = time.monotonic() + 180
        while not list((tmp_path / "sandboxes").glob("*/started")):
            assert run.process.poll() is None and time.monotonic() < deadline, "the command never started"
            time.sleep(0.1)
        began = time.monotonic()
        code = run.interrupt()
        run.wait_for_line("interrupted", timeout_s=10)
    finally:
        run.kill()

    assert code == 130
    assert time.monotonic() - began < 60  # the 120 s command was killed, not waited for
    [saved] = (tmp_path / "runs").glob("*.json")
    record = json.loads(saved.read_text())
    assert (record["status"], record["error"]) == ("FAILED", "Interrupted")


# --- the default model, --sandbox e2b, --template, --verbose -------------------------------------------
@pytest.fixture
def openai_stub():
    stub = OpenAIStub().start()
    yield stub
    stub.stop()


def test_with_an_openai_key_the_default_model_is_gpt_4_1(tmp_path, openai_stub):
    openai_stub.reply(200, chat_completion("<task_summary>Said hello</task_summary>"))
    env = environment(tmp_path, OPENAI_API_KEY="sk-pixie-cli-test", OPENAI_BASE_URL=openai_stub.base_url)
    result = pixie("run", "--no-serve", "--json", "Say hello", env=env)

    assert result.returncode == 0, result.stderr
    assert "scripted demo" not in result.stderr
    [request] = openai_stub.requests
    assert request.body["model"] == "gpt-4.1"
    assert request.headers["authorization"] == "Bearer sk-pixie-cli-test"
    assert json.loads(result.stdout)["summary"] == "Said hello"
    assert "run created" not in result.stderr  # the handlers' logs only with --verbose


def test_e2b_run_with_a_template_and_verbose_logs(tmp_path, write_script):
    log = tmp_path / "e2b.json"
    env = environment(
        tmp_path,
        E2B_API_KEY="e2b_cli_fake_key",
        FAKE_E2B_LOG=str(log),
        PYTHONPATH=os.pathsep.join(filter(None, [str(FAKE_E2B_SITE), os.environ.get("PYTHONPATH")])),
    )
    script = write_script(WRITE_PAGE)
    result = pixie(
        "run", "--sandbox", "e2b", "--template", "my-template", "--verbose", "--json", "--model", f"scripted:{script}", "Page",
        env=env,
    )

    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["url"] == "https://3000-sbx0.e2b.app" and output["sandboxId"] == "sbx0"
    seen = json.loads(log.read_text())
    creates = [call for call in seen["calls"] if call[0] == "create"]
    assert creates == [["create", "my-template", 3600, "e2b_cli_fake_key"]]
    assert seen["files"]["sbx0"] == {"/home/user/index.html": "<h1>served by pixie</h1>"}
    assert "run created" in result.stderr  # --verbose: the handlers' INFO logs
    assert "e2b_cli_fake_key" not in result.stderr + result.stdout


# --- the serving loop ----------------------------------------------------------------------------------
def test_a_local_run_serves_its_preview_until_ctrl_c(tmp_path, write_script):
    script = write_script(WRITE_PAGE)
    run = Running("run", "--model", f"scripted:{script}", "Page", env=environment(tmp_path))
    try:
        line = run.wait_for_line("Serving the preview at ")
        url = line.split("Serving the preview at ", 1)[1].split(" ", 1)[0].rstrip(".")
        assert fetch(url) == (200, "<h1>served by pixie</h1>")
        time.sleep(1)
        assert run.process.poll() is None and fetch(url)[0] == 200  # still serving
        code = run.interrupt()
    finally:
        run.kill()

    assert code == 0
    with pytest.raises(urllib.error.URLError):
        fetch(url)


# --- send --stack, against agent.asl.json deployed on moto ---------------------------------------------
def test_send_with_stack_runs_agent_asl_json_deployed_on_moto(tmp_path, write_script, monkeypatch, capsys):
    from lambdas.logic.sandboxes.local import stop_all_previews
    from pixie import cli
    from pixie.local_run import RunOptions
    from statemachine.engine import LocalEngine
    import test_cli_aws
    from test_cli_aws import ACCOUNT, Rule, pixie_stack

    # moto's EventBridge delivers events without `account`, which AWS always sets: the relay that
    # plays the rule's Step Functions target adds it, so the event is the one AWS would deliver.
    start = test_cli_aws.start
    monkeypatch.setattr(test_cli_aws, "start", lambda arn, event, name=None: start(arn, {"account": ACCOUNT, **event}, name))
    for name in ("PIXIE_STATE_MACHINE_ARN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("pixie.aws_commands.AWS_POLL_S", 0.05)
    options = RunOptions(model=f"scripted:{write_script(WRITE_PAGE)}", pixie_home=tmp_path)
    # The engine deploys agent.asl.json on moto, each lambda:invoke going to the real handler.
    with LocalEngine(options.env()) as engine:
        pixie_stack({"StateMachineArn": engine.state_machine_arn, "TableName": engine.env["PIXIE_TABLE"]}, name="MyPixie")
        try:
            with Rule(engine.state_machine_arn) as rule:
                code = cli.main(["send", "Write a page", "--stack", "MyPixie", "--json"])
            sent = capsys.readouterr()
            [(event, execution_arn)] = rule.started
            watched_code = cli.main(["watch", execution_arn])
            watched = capsys.readouterr()
            run_id = execution_arn.rsplit(":", 1)[-1]
            shown_code = cli.main(["show", run_id, "--aws", "--stack", "MyPixie", "--json"])
            shown = json.loads(capsys.readouterr().out)
        finally:
            stop_all_previews()

    assert code == 0, sent.err
    result = json.loads(sent.out)
    assert result["status"] == "SUCCEEDED" and result["executionArn"] == execution_arn
    assert result["summary"] == "Wrote the page" and result["files"] == ["index.html"]
    assert event["detail"] == {"value": "Write a page"}
    # The live display followed the real workflow's states.
    for state in ("CreateSandbox", "AgentTurn", "RunTool", "GetSandboxUrl"):
        assert state in sent.err
    assert watched_code == 0 and "Wrote the page" in watched.out and "index.html" in watched.out
    assert shown_code == 0 and shown["status"] == "SUCCEEDED"
    assert [m["role"] for m in shown["conversation"]] == ["user", "assistant", "tool", "assistant"]
    assert shown["files"] == {"index.html": "<h1>served by pixie</h1>"}
