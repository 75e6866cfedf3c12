"""A project across runs, end to end on the embedded engine with scripted models: continuing a
run (its sandbox handed over or its files restored, its conversation compacted), chains of runs,
resuming a run that was killed with kill -9 or failed, and the bad input around both."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import e2b
import pytest

from lambdas.logic.sandboxes.local import stop_all_previews
from pixie.local_run import RunOptions, continue_locally, resume_locally, run_locally
from pixie.run_journal import CannotStart, state_path
from pixie.runs import load_run
from statemachine.engine import hello_world_event
from process_probes import processes_in

PIXIE = Path(sys.executable).parent / "pixie"

PAGE = "<h1>Project A</h1>"
RUN_A = [
    {
        "content": "Writing the page.",
        "tool_calls": [
            {"name": "createOrUpdateFiles", "arguments": {"files": [{"path": "index.html", "content": PAGE}]}},
            {"name": "terminal", "arguments": {"command": "echo a >> log.txt"}},
        ],
    },
    {"content": "Done. <task_summary>Built the first page</task_summary>"},
]
RUN_B = [
    {"content": None, "tool_calls": [{"name": "readFiles", "arguments": {"files": ["index.html"]}}]},
    {
        "content": "Adding dark mode.",
        "tool_calls": [{"name": "createOrUpdateFiles", "arguments": {"files": [{"path": "dark.css", "content": "body{background:#000}"}]}}],
    },
    {"content": "<task_summary>Added dark mode</task_summary>"},
]


@pytest.fixture(autouse=True)
def _stop_previews():
    yield
    stop_all_previews()


def options(home: Path, script: Path, **overrides) -> RunOptions:
    return RunOptions(model=f"scripted:{script}", pixie_home=home, **overrides)


def tool_results(record: dict) -> list[str]:
    return [m["content"] for m in record["conversation"] if m["role"] == "tool"]


@pytest.fixture
def project_a(tmp_path, write_script) -> dict:
    record = run_locally("Build a page", options(tmp_path, write_script(RUN_A, "a.json")))
    assert record["status"] == "SUCCEEDED", record["cause"]
    return record


# --- continue ---------------------------------------------------------------------------------
def test_continue_forks_a_folder_of_its_own_from_the_parents_version_files_and_conversation(
    tmp_path, write_script, project_a
):
    b = continue_locally(project_a["runId"], "Add dark mode", options(tmp_path, write_script(RUN_B, "b.json")))

    assert b["status"] == "SUCCEEDED", b["cause"]
    assert b["runId"] != project_a["runId"]
    assert b["parentRunId"] == project_a["runId"] and b["projectId"] == project_a["runId"]
    # A folder of its own, seeded from A's version: A's command output (not a file in the
    # table) is there too; A's folder is left as A ended.
    assert b["sandboxId"] != project_a["sandboxId"]
    assert (tmp_path / "sandboxes" / b["sandboxId"] / "log.txt").read_text() == "a\n"
    assert not (tmp_path / "sandboxes" / project_a["sandboxId"] / "dark.css").exists()
    # B's first call read A's file; B's result lists A's files and its own.
    assert tool_results(b)[0] == f"--- index.html ---\n{PAGE}"
    assert b["files"] == {"index.html": PAGE, "dark.css": "body{background:#000}"}
    # B's conversation starts with A's prompt and what A did, tool outputs left out.
    first, second, third = b["conversation"][:3]
    assert first == {"role": "user", "content": "Build a page"}
    assert second["role"] == "assistant" and "Built the first page" in second["content"]
    assert "wrote index.html (ok)" in second["content"] and "ran `echo a >> log.txt` (ok)" in second["content"]
    assert third == {"role": "user", "content": "Add dark mode"}
    # The parent is unchanged: its own record still lists only its own files.
    assert load_run(tmp_path, project_a["runId"])["files"] == {"index.html": PAGE}


def test_continue_without_a_kept_version_restores_the_files_from_the_table(
    tmp_path, write_script, project_a
):
    shutil.rmtree(tmp_path / "sandboxes" / project_a["sandboxId"])
    shutil.rmtree(tmp_path / "versions" / "manifests")  # e.g. pruned, or made before versions were kept

    b = continue_locally(project_a["runId"], "Add dark mode", options(tmp_path, write_script(RUN_B, "b.json")))

    assert b["status"] == "SUCCEEDED", b["cause"]
    assert b["sandboxId"] != project_a["sandboxId"]
    sandbox = tmp_path / "sandboxes" / b["sandboxId"]
    assert tool_results(b)[0] == f"--- index.html ---\n{PAGE}"  # restored before the first turn
    assert (sandbox / "index.html").read_text() == PAGE
    assert not (sandbox / "log.txt").exists()  # what a command made is not in the table
    assert b["files"] == {"index.html": PAGE, "dark.css": "body{background:#000}"}
    assert b["conversation"][0]["content"] == "Build a page"


def test_a_three_run_chain_shares_the_project_and_a_second_continuation_forks_it(tmp_path, write_script, project_a):
    b = continue_locally(project_a["runId"], "Add dark mode", options(tmp_path, write_script(RUN_B, "b.json")))
    run_c = [
        {"content": None, "tool_calls": [{"name": "readFiles", "arguments": {"files": ["index.html", "dark.css"]}}]},
        {"content": "<task_summary>Checked both files</task_summary>"},
    ]
    c = continue_locally(b["runId"], "Check the files", options(tmp_path, write_script(run_c, "c.json")))

    assert c["status"] == "SUCCEEDED", c["cause"]
    assert c["parentRunId"] == b["runId"] and c["projectId"] == project_a["runId"]
    assert c["sandboxId"] not in (project_a["sandboxId"], b["sandboxId"])  # each run its own folder
    assert "body{background:#000}" in tool_results(c)[0] and PAGE in tool_results(c)[0]
    assert set(c["files"]) == {"index.html", "dark.css"}
    earlier = c["conversation"][:5]
    assert [m["role"] for m in earlier] == ["user", "assistant", "user", "assistant", "user"]
    assert [earlier[0]["content"], earlier[2]["content"], earlier[4]["content"]] == [
        "Build a page", "Add dark mode", "Check the files",
    ]
    assert "Built the first page" in earlier[1]["content"] and "Added dark mode" in earlier[3]["content"]
    # B's tool output (A's page, read back) is compacted to a note in C's context.
    assert PAGE not in earlier[3]["content"] and "read index.html (ok)" in earlier[3]["content"]

    # A second continuation of A starts from A's version in a folder of its own: B's writes
    # are not there.
    fork_script = [
        {"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": "ls"}}]},
        {"content": "<task_summary>Looked</task_summary>"},
    ]
    fork = continue_locally(project_a["runId"], "Another idea", options(tmp_path, write_script(fork_script, "f.json")))
    assert fork["status"] == "SUCCEEDED", fork["cause"]
    assert fork["sandboxId"] != project_a["sandboxId"]
    listing = tool_results(fork)[0]
    assert "index.html" in listing and "dark.css" not in listing
    assert fork["files"] == {"index.html": PAGE}


def test_continuing_on_e2b_reconnects_while_alive_and_restores_after_expiry(tmp_path, write_script, monkeypatch):
    from test_end_to_end_e2b import FakeCloud, FakeSandbox

    FakeCloud.sandboxes, FakeCloud.calls = {}, []
    monkeypatch.setattr(e2b, "Sandbox", FakeSandbox)
    monkeypatch.setenv("E2B_API_KEY", "e2b_continue_fake_key")
    e2b_options = lambda name, turns: options(tmp_path, write_script(turns, name), sandbox="e2b")  # noqa: E731

    a = run_locally("Build a page", e2b_options("a.json", RUN_A))
    b = continue_locally(a["runId"], "Add dark mode", e2b_options("b.json", RUN_B))
    assert b["status"] == "SUCCEEDED", b["cause"]
    assert b["sandboxId"] == a["sandboxId"] == "sbx0"
    assert [c for c in FakeCloud.calls if c[0] == "create"] == [("create", "pixie", 3600, "e2b_continue_fake_key")]

    FakeCloud.sandboxes["gone"] = FakeCloud.sandboxes.pop("sbx0")  # E2B's timeout ended it (ids stay unique)
    run_c = [
        {"content": None, "tool_calls": [{"name": "readFiles", "arguments": {"files": ["index.html", "dark.css"]}}]},
        {"content": "<task_summary>Read both</task_summary>"},
    ]
    c = continue_locally(b["runId"], "Check", e2b_options("c.json", run_c))
    assert c["status"] == "SUCCEEDED", c["cause"]
    assert c["sandboxId"] == "sbx1"
    assert FakeCloud.sandboxes["sbx1"].store == {
        "/home/user/index.html": PAGE,
        "/home/user/dark.css": "body{background:#000}",
    }
    assert PAGE in tool_results(c)[0] and "body{background:#000}" in tool_results(c)[0]


def test_continuing_with_an_openai_model_sends_the_earlier_run_as_plain_conversation(
    tmp_path, project_a, monkeypatch
):
    from openai_stub import OpenAIStub, chat_completion

    stub = OpenAIStub().start()
    monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-continue-test")
    stub.reply(200, chat_completion("<task_summary>Nothing to change</task_summary>"))
    try:
        b = continue_locally(project_a["runId"], "Anything to change?", RunOptions(model="openai:gpt-4.1", pixie_home=tmp_path))
    finally:
        stub.stop()

    assert b["status"] == "SUCCEEDED", b["cause"]
    [request] = stub.requests
    messages = request.body["messages"]
    # Valid Chat Completions: alternating plain messages, no dangling tool calls from run A.
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1] == {"role": "user", "content": "Build a page"}
    assert "Built the first page" in messages[2]["content"] and "tool_calls" not in messages[2]
    assert messages[3] == {"role": "user", "content": "Anything to change?"}


def test_the_event_is_checked_by_create_sandbox_too(tmp_path, write_script):
    """What `pixie send --continue` relies on: the deployed workflow refuses bad continueFrom."""
    script = write_script(RUN_B, "b.json")
    unknown = run_locally(hello_world_event("More", continue_from="nope"), options(tmp_path, script))
    assert unknown["status"] == "FAILED" and unknown["error"] == "InvalidEvent"
    assert "there is no run 'nope'" in unknown["cause"]

    malformed = hello_world_event("More")
    malformed["detail"]["continueFrom"] = "a b/c"
    bad = run_locally(malformed, options(tmp_path, script))
    assert bad["error"] == "InvalidEvent" and "detail.continueFrom" in bad["cause"]


# --- resume -----------------------------------------------------------------------------------
def test_a_failed_run_resumed_after_its_cause_is_fixed_does_each_earlier_effect_once(tmp_path, write_script, monkeypatch):
    # Turn 2 is missing from the script: the run fails with ScriptExhausted after turn 1's effects.
    script = write_script(RUN_A[:1], "short.json")
    first = run_locally("Build a page", options(tmp_path, script))
    assert first["status"] == "FAILED" and first["error"] == "ScriptExhausted"
    assert load_run(tmp_path, first["runId"])["status"] == "FAILED"
    with pytest.raises(CannotStart, match="FAILED; only a run that succeeded can be continued"):
        continue_locally(first["runId"], "More", options(tmp_path, script))

    write_script(RUN_A, "short.json")  # the cause fixed
    from lambdas.logic.models.scripted import ScriptedModel

    model_turns: list[int] = []
    complete = ScriptedModel.complete
    monkeypatch.setattr(ScriptedModel, "complete", lambda self, *a, turn, **kw: model_turns.append(turn) or complete(self, *a, turn=turn, **kw))
    resumed = resume_locally(first["runId"], tmp_path)

    assert resumed["status"] == "SUCCEEDED", resumed["cause"]
    assert resumed["runId"] == first["runId"] and resumed["sandboxId"] == first["sandboxId"]
    assert (tmp_path / "sandboxes" / resumed["sandboxId"] / "log.txt").read_text() == "a\n"
    assert model_turns == [2]  # turn 1's reply was not asked for (or paid for) again
    assert [m["role"] for m in resumed["conversation"]] == ["user", "assistant", "tool", "tool", "assistant"]
    # The resumed execution went through the whole workflow again, turn 1 from saved results.
    states = [e["stateEnteredEventDetails"]["name"] for e in resumed["history"] if "stateEnteredEventDetails" in e]
    assert states[:3] == ["CreateSandbox", "IsDuplicateEvent", "AgentTurn"] and states[-1] == "Done"

    with pytest.raises(CannotStart, match="already succeeded"):
        resume_locally(first["runId"], tmp_path)


def test_resume_restores_a_deleted_sandbox_from_the_table(tmp_path, write_script):
    first = run_locally("Build a page", options(tmp_path, write_script(RUN_A[:1], "short.json")))
    shutil.rmtree(tmp_path / "sandboxes" / first["sandboxId"])
    write_script(RUN_A[:1] + RUN_B, "short.json")  # turn 2 reads the page back

    resumed = resume_locally(first["runId"], tmp_path)

    assert resumed["status"] == "SUCCEEDED", resumed["cause"]
    assert resumed["sandboxId"] != first["sandboxId"]
    assert tool_results(resumed)[-2] == f"--- index.html ---\n{PAGE}"


def test_a_continuation_stopped_before_it_was_recorded_resumes_from_the_parent(tmp_path, write_script, project_a):
    def create_sandbox_never_runs(name, event, invoke):
        if name == "pixie-create-sandbox":
            raise RuntimeError("the process died here")
        return invoke()

    b_options = options(tmp_path, write_script(RUN_B, "b.json"))
    stopped = continue_locally(project_a["runId"], "Add dark mode", b_options, invoke_wrapper=create_sandbox_never_runs)
    assert stopped["status"] == "FAILED" and stopped["error"] == "RuntimeError" and stopped["files"] == {}

    resumed = resume_locally(stopped["runId"], tmp_path)

    assert resumed["status"] == "SUCCEEDED", resumed["cause"]
    assert resumed["parentRunId"] == project_a["runId"]
    assert resumed["files"] == {"index.html": PAGE, "dark.css": "body{background:#000}"}


def pixie_in_process(*args: str, home: Path, monkeypatch, capsys) -> tuple[int, str, str]:
    """The CLI without a new interpreter (for commands that end before any engine starts)."""
    from pixie.cli import main

    monkeypatch.setenv("PIXIE_HOME", str(home))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def pixie(*args: str, home: Path, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(PIXIE), *args], capture_output=True, text=True, env=_environment(home, env), stdin=subprocess.DEVNULL,
        timeout=kwargs.get("timeout", 120),
    )


def _environment(home: Path, extra: dict | None = None) -> dict:
    environment = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return {**environment, "PIXIE_HOME": str(home), **(extra or {})}


def test_a_run_killed_during_its_second_turn_is_listed_and_resume_finishes_it(tmp_path, write_script, monkeypatch, capsys):
    script = write_script(
        [
            RUN_A[0],
            {"content": "Waiting.", "tool_calls": [{"name": "terminal", "arguments": {"command": "sleep 30"}}]},
            {"content": "<task_summary>Built the page, slowly</task_summary>"},
        ],
        "slow.json",
    )
    runs = tmp_path / "runs"
    process = subprocess.Popen(
        [str(PIXIE), "run", "--json", "--no-serve", "--model", f"scripted:{script}", "Build a page"],
        env=_environment(tmp_path), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        record = _wait_for_second_turn_command(runs, process)
    finally:
        process.kill()  # kill -9 (SIGKILL): no cleanup runs
        process.wait()
    run_id = record["runId"]
    sandbox = tmp_path / "sandboxes" / record["sandboxId"]
    for orphan in processes_in(sandbox):  # the killed run's `sleep 30` (in its own process group)
        try:
            os.killpg(os.getpgid(orphan), signal.SIGKILL)
        except ProcessLookupError:
            pass

    code, out, _ = pixie_in_process("show", run_id, "--json", home=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    shown = json.loads(out)
    assert code == 0 and shown["status"] == "INTERRUPTED"  # saved as RUNNING, its process is gone
    assert [m["role"] for m in shown["conversation"]] == ["user", "assistant", "tool", "tool", "assistant"]
    code, _, err = pixie_in_process(
        "run", "--continue", run_id, "--model", f"scripted:{script}", "More", home=tmp_path, monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2 and "INTERRUPTED" in err and f"pixie resume {run_id}" in err

    # The turn-2 command runs again on resume (it never finished); a short limit keeps it short.
    resumed = pixie("resume", run_id, "--json", "--no-serve", home=tmp_path, env={"PIXIE_COMMAND_TIMEOUT": "1"})

    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["runId"] == run_id and result["status"] == "SUCCEEDED"
    assert result["summary"] == "Built the page, slowly"
    assert (sandbox / "log.txt").read_text() == "a\n"  # turn 1's command ran once
    assert load_run(tmp_path, run_id)["status"] == "SUCCEEDED"


def _wait_for_second_turn_command(runs: Path, process: subprocess.Popen) -> dict:
    """The run's saved record once its turn-2 command (`sleep 30`) is running."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        for path in runs.glob("*.json") if runs.is_dir() else ():
            record = json.loads(path.read_text())
            sandbox = runs.parent / "sandboxes" / str(record.get("sandboxId"))
            waiting = any(m.get("content") == "Waiting." for m in record["conversation"])
            if waiting and processes_in(sandbox):
                assert record["status"] == "RUNNING" and record["pid"] == process.pid
                return record
        time.sleep(0.1)
    raise AssertionError("the run never reached its second turn's command")


def test_cli_continue_and_resume_with_good_and_bad_input(tmp_path, write_script, project_a, monkeypatch, capsys):
    result = pixie(
        "run", "--continue", project_a["runId"], "--json", "--no-serve",
        "--model", f"scripted:{write_script(RUN_B, 'b.json')}", "Add dark mode", home=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["files"] == {"index.html": PAGE, "dark.css": "body{background:#000}"}
    def cli(*args: str) -> tuple[int, str, str]:
        return pixie_in_process(*args, home=tmp_path, monkeypatch=monkeypatch, capsys=capsys)

    shown = json.loads(cli("show", output["runId"], "--json")[1])
    assert shown["parentRunId"] == project_a["runId"] and shown["projectId"] == project_a["runId"]
    assert shown["conversation"][0]["content"] == "Build a page"
    human = cli("show", output["runId"])[1]
    assert f"Continues run {project_a['runId']} (project {project_a['runId']})" in human

    # Bad input: a clear error on stderr and exit code 2, before any engine starts.
    code, _, err = cli("resume", "0123456789abcdef")
    assert code == 2 and "no saved run 0123456789abcdef" in err
    code, _, err = cli("resume", project_a["runId"])
    assert code == 2 and "already succeeded" in err
    code, _, err = cli("run", "--continue", "0123456789abcdef", "--no-serve", "More")
    assert code == 2 and "no saved run" in err
    code, _, err = cli("run", "--continue", "../../etc", "--no-serve", "More")
    assert code == 2 and "not a run id" in err

    # A saved run still running in a live process (this one) is neither continued nor resumed.
    busy_id = "f" * 16
    running = {**load_run(tmp_path, project_a["runId"]), "runId": busy_id, "status": "RUNNING", "pid": os.getpid()}
    (tmp_path / "runs" / f"{busy_id}.json").write_text(json.dumps(running))
    shutil.copy(state_path(tmp_path, project_a["runId"]), state_path(tmp_path, busy_id))
    assert load_run(tmp_path, busy_id)["status"] == "RUNNING"
    code, _, err = cli("run", "--continue", busy_id, "--no-serve", "More")
    assert code == 2 and "still running" in err
    code, _, err = cli("resume", busy_id)
    assert code == 2 and "still running" in err


def test_a_follow_up_keeps_its_parents_model_unless_told_otherwise(tmp_path, write_script, project_a):
    """Without --model, `pixie run --continue` uses the parent's model, not the default (which
    would be the offline demo here, or gpt-4.1 with a key, silently replacing the app)."""
    parent_model = project_a["model"]
    # The parent's script answers again: its own turns, which succeed on top of its files.
    kept = pixie("run", "--continue", project_a["runId"], "--json", "--no-serve", "Again", home=tmp_path)
    assert kept.returncode == 0, kept.stderr
    kept_id = json.loads(kept.stdout)["runId"]
    assert load_run(tmp_path, kept_id)["model"] == parent_model
    chosen = write_script(RUN_B, "b.json")
    other = pixie("run", "--continue", project_a["runId"], "--json", "--no-serve", "--model", f"scripted:{chosen}", "More", home=tmp_path)
    assert other.returncode == 0, other.stderr
    assert load_run(tmp_path, json.loads(other.stdout)["runId"])["model"] == f"scripted:{chosen}"


def test_a_follow_up_of_a_run_without_a_kept_version_says_what_it_loses(tmp_path, write_script, project_a):
    shutil.rmtree(tmp_path / "versions" / "manifests")  # e.g. pruned past PIXIE_MAX_VERSIONS
    result = pixie("run", "--continue", project_a["runId"], "--json", "--no-serve",
                   "--model", f"scripted:{write_script(RUN_B, 'b.json')}", "More", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"run {project_a['runId']} has no kept version" in result.stderr
    assert "what its commands wrote is not carried over" in result.stderr


# --- what the model sees of earlier runs, and the sandbox hand-over, on the table alone ------
def test_earlier_runs_stay_bounded_however_long_the_chain_and_its_outputs(table):
    from lambdas.dal.network_state import (
        assistant_message_key,
        context_message_key,
        tool_message_key,
        user_message_key,
    )
    from lambdas.logic.continuation import MAX_EARLIER_RUNS, earlier_conversation

    parent = table.create_run(
        run_id="p", prompt="P" * 50_000, sandbox_id="s", sandbox_kind="local", model="m", template="t", max_iterations=99
    )
    for index in range(2 * 30):  # thirty earlier runs, already compacted
        table.put_message("p", context_message_key(index), {"role": "user" if index % 2 == 0 else "assistant", "content": f"r{index}"})
    table.put_message("p", user_message_key(0), {"role": "user", "content": parent.prompt})
    for turn in range(1, 40):
        call = {"id": f"c{turn}", "type": "function", "function": {"name": "terminal", "arguments": json.dumps({"command": "x" * 5_000})}}
        table.put_message("p", assistant_message_key(turn), {"role": "assistant", "content": "y" * 3_000, "tool_calls": [call]})
        table.put_message("p", tool_message_key(turn, 0), {"role": "tool", "tool_call_id": f"c{turn}", "content": "z" * 10_000})
    table.update_run("p", summary="The summary survives")

    conversation = earlier_conversation(table.get_run("p"), table)

    assert len(conversation) == 2 * MAX_EARLIER_RUNS
    assert conversation[-4]["content"] == "r58"  # the newest earlier runs are kept
    assert [m["role"] for m in conversation] == ["user", "assistant"] * MAX_EARLIER_RUNS
    assert len(json.dumps(conversation)) < 30_000
    assert "The summary survives" in conversation[-1]["content"]
    assert "z" * 100 not in conversation[-1]["content"]  # tool outputs are never carried over


def test_a_sandbox_is_handed_over_to_one_continuation_only(table):
    table.create_run(run_id="a", prompt="p", sandbox_id="s", sandbox_kind="local", model="m", template="t", max_iterations=5)
    assert table.claim_sandbox("a", "b") is True
    assert table.claim_sandbox("a", "b") is True  # the same run's retry
    assert table.claim_sandbox("a", "c") is False
