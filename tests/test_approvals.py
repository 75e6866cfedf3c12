"""Approvals as durable waits (--approve commands|all): the run waits in AwaitApproval (a
`.waitForTaskToken` task) with its pending calls saved; `pixie approve` / `pixie deny` from another
shell decide; a denied call is not run and the model is told why; no decision within
--approval-timeout counts as a denial; a stopped run's wait ends with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import write_script_file
from console_server import PIXIE
from lambdas.logic.approvals import decision_from, needs_approval, pending_calls
from lambdas.logic.limits import (
    HISTORY_EVENTS_PER_APPROVAL,
    HISTORY_EVENTS_PER_CALL,
    HISTORY_EVENTS_PER_CHECK,
    HISTORY_EVENTS_PER_TURN,
)
from lambdas.logic.sandboxes.local import stop_all_previews
from pixie.local_run import RunOptions, request_decision, run_locally

WAIT_S = 120  # the longest a test waits for an event (a loaded machine is slow)
TOUCH = {"content": "Touching.", "tool_calls": [{"name": "terminal", "arguments": {"command": "touch marker"}}]}
SUMMARY = {"content": "<task_summary>Done</task_summary>"}


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return {**env, "PIXIE_HOME": str(home)}


def pixie(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(PIXIE), *args], env=environment(home), capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def no_run_left_waiting():
    """A run waits up to 24 h for a decision: a test that fails before deciding must not leave it."""
    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start_in_background(home: Path, script: Path, *flags: str) -> subprocess.Popen:
    STARTED.append(subprocess.Popen(
        [str(PIXIE), "run", "--no-serve", "--json", "--model", f"scripted:{script}", *flags, "Touch a file"],
        env=environment(home), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    ))
    return STARTED[-1]


def waiting_run_id(home: Path, alive) -> str:
    """The id of the one run in `home` once its saved record shows a pending approval."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert alive(), "the process running the run ended first"
        for path in (home / "runs").glob("*.json") if (home / "runs").is_dir() else []:
            try:
                record = json.loads(path.read_text())
            except json.JSONDecodeError:
                continue  # being replaced
            if record.get("pendingApproval"):
                return record["runId"]
        time.sleep(0.05)
    raise AssertionError("the run never waited for approval")


def marker_exists(home: Path, record: dict) -> bool:
    return (home / "sandboxes" / record["sandboxId"] / "marker").exists()


def finish(process: subprocess.Popen) -> dict:
    try:
        out, err = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert out.strip(), err
    return json.loads(out)


def test_deny_from_another_shell_skips_the_command_and_tells_the_model_then_approve_runs_it(tmp_path):
    home = tmp_path / "home"
    script = write_script_file(tmp_path / "touch.json", [TOUCH, SUMMARY])

    denied_run = start_in_background(home, script, "--approve", "commands")
    run_id = waiting_run_id(home, lambda: denied_run.poll() is None)
    shown = pixie(home, "show", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    pending = json.loads(shown.stdout)["pendingApproval"]
    assert pending["iteration"] == 1 and pending["timeoutSeconds"] == 24 * 3600
    assert [(c["name"], json.loads(c["arguments"])) for c in pending["calls"]] == [("terminal", {"command": "touch marker"})]
    assert "taskToken" not in pending and "taskToken" not in shown.stdout  # the token decides: it stays in the table
    denied = pixie(home, "deny", run_id[:8], "--reason", "no")
    assert denied.returncode == 0, denied.stderr
    assert "1 tool call(s) denied" in denied.stdout
    result = finish(denied_run)
    record = json.loads(pixie(home, "show", run_id, "--json").stdout)
    assert result["status"] == "SUCCEEDED" and record["pendingApproval"] is None
    assert not marker_exists(home, record)  # the command did not run
    (tool_result,) = [m["content"] for m in record["conversation"] if m["role"] == "tool"]
    assert tool_result == "Error: this terminal call was not run: the user denied it; reason: no."
    (denial,) = [e for e in record["history"] if e["type"] == "TaskFailed"]  # SendTaskFailure, as on AWS
    assert denial["taskFailedEventDetails"] == {"resourceType": "lambda", "resource": "invoke.waitForTaskToken",
                                                "error": "ApprovalDenied", "cause": "no"}
    again = pixie(home, "approve", run_id)  # nothing waits any more: one clear line, exit 2
    assert again.returncode == 2 and f"run {run_id} is not waiting for approval (it is SUCCEEDED)" in again.stderr

    approved_run = start_in_background(home, script, "--approve", "commands")
    run_id = waiting_run_id(home, lambda: approved_run.poll() is None)
    approved = pixie(home, "approve", run_id, "--json")
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout) == {"runId": run_id, "decision": "approved", "calls": 1}
    assert finish(approved_run)["status"] == "SUCCEEDED"
    record = json.loads(pixie(home, "show", run_id, "--json").stdout)
    assert marker_exists(home, record)
    (tool_result,) = [m["content"] for m in record["conversation"] if m["role"] == "tool"]
    assert tool_result.startswith("exit code 0")


def test_a_run_waiting_for_approval_stops_at_once_and_resume_asks_again(tmp_path):
    home = tmp_path / "home"
    process = start_in_background(home, write_script_file(tmp_path / "touch.json", [TOUCH, SUMMARY]), "--approve", "all")
    run_id = waiting_run_id(home, lambda: process.poll() is None)
    stopped = pixie(home, "stop", run_id, "--json")
    assert stopped.returncode == 0, stopped.stderr
    assert finish(process)["status"] == "ABORTED"
    record = json.loads(pixie(home, "show", run_id, "--json").stdout)
    assert record["pendingApproval"] is None and not marker_exists(home, record)

    # The saved wait's token died with its process: a resume starts without it (never offered stale).
    from pixie.run_journal import load_state, resumable_state

    def wait_in(items: list[dict]) -> list[dict]:
        return [item for item in items if item["sk"]["S"] == "META" and "pendingApproval" in item]

    assert wait_in(load_state(home, run_id)["items"]) and not wait_in(resumable_state(home, run_id)["items"])
    # Resumed, the undecided turn waits again (its settings are the run's), and then runs.
    resumed = subprocess.Popen([str(PIXIE), "resume", run_id, "--json", "--no-serve"], env=environment(home),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    STARTED.append(resumed)
    assert waiting_run_id(home, lambda: resumed.poll() is None) == run_id  # its own wait: the old one's token died
    approved = pixie(home, "approve", run_id)
    assert approved.returncode == 0, approved.stderr
    assert finish(resumed)["status"] == "SUCCEEDED"
    assert marker_exists(home, json.loads(pixie(home, "show", run_id, "--json").stdout))


def run_with(tmp_path: Path, turns: list[dict], decide=None, **choices) -> dict:
    """A run in this process; `decide(run_id)` answers each wait from another thread."""
    home = tmp_path / "home"
    options = RunOptions(model=f"scripted:{write_script_file(tmp_path / 's.json', turns)}", pixie_home=home, **choices)
    done = threading.Event()
    decisions: list[dict] = []

    def answer_each() -> None:
        answered: set[int] = set()
        while not done.is_set():
            for path in (home / "runs").glob("*.json") if (home / "runs").is_dir() else []:
                try:
                    pending = json.loads(path.read_text()).get("pendingApproval")
                except json.JSONDecodeError:
                    continue
                if pending and pending["iteration"] not in answered:
                    answered.add(pending["iteration"])
                    decisions.append(decide(path.stem))
            done.wait(0.05)

    answerer = threading.Thread(target=answer_each, daemon=True)
    if decide:
        answerer.start()
    try:
        record = run_locally("Build", options)
    finally:
        done.set()
        stop_all_previews()
    record["decisions"] = decisions
    return record


def test_no_decision_within_the_timeout_counts_as_denied(tmp_path):
    record = run_with(tmp_path, [TOUCH, SUMMARY], approve="commands", approval_timeout_s=1)
    assert record["status"] == "SUCCEEDED", record["cause"]
    (tool_result,) = [m["content"] for m in record["conversation"] if m["role"] == "tool"]
    assert "no one decided before the approval timeout" in tool_result
    assert "TaskTimedOut" in [e["type"] for e in record["history"]]
    assert not marker_exists(tmp_path / "home", record)


def test_approve_all_waits_on_every_turn_with_calls_and_commands_only_on_terminal_calls(tmp_path):
    write = {"content": None, "tool_calls": [{"name": "createOrUpdateFiles",
                                              "arguments": {"files": [{"path": "a.txt", "content": "a"}]}}]}
    turns = [write, TOUCH, SUMMARY]
    home = tmp_path / "home"

    def approve(run_id: str) -> dict:
        return request_decision(home, run_id, True)

    everything = run_with(tmp_path / "all", turns, lambda run_id: request_decision(tmp_path / "all" / "home", run_id, True),
                          approve="all")
    assert everything["status"] == "SUCCEEDED" and len(everything["decisions"]) == 2
    commands = run_with(tmp_path, turns, approve, approve="commands")
    assert commands["status"] == "SUCCEEDED" and len(commands["decisions"]) == 1
    assert marker_exists(home, commands)
    # The history arithmetic of the caps, with a wait on the turn that ran a command.
    calls_run = [1, 1, 0]
    expected = (16 + HISTORY_EVENTS_PER_TURN * 3 - 4 + HISTORY_EVENTS_PER_CALL * sum(calls_run) + HISTORY_EVENTS_PER_APPROVAL
                + HISTORY_EVENTS_PER_CHECK)  # the done-check of the summary, passed
    assert len(commands["history"]) == expected


def test_deciding_a_run_no_process_runs_is_refused(tmp_path):
    home = tmp_path / "home"
    with pytest.raises(TimeoutError):
        request_decision(home, "nobody", True, wait_s=0.2)
    record = run_with(tmp_path, [SUMMARY], approve="all")
    assert record["status"] == "SUCCEEDED" and record["pendingApproval"] is None
    refused = pixie(home, "deny", record["runId"], "--reason", "x")
    assert refused.returncode == 2 and "is not waiting for approval" in refused.stderr


def test_bad_approval_options_are_refused_before_anything_starts(tmp_path):
    home = tmp_path / "home"
    for flags, said in ((["--approve", "some"], "invalid choice"), (["--approval-timeout", "0"], "must be a time"),
                        (["--approval-timeout", "400d"], "must be a time")):
        result = pixie(home, "run", "--no-serve", *flags, "Build")
        assert result.returncode == 2 and said in result.stderr, result.stderr
    assert not (home / "runs").exists()


def test_decisions_and_pending_calls_are_bounded_and_read_strictly():
    assert decision_from(None) is None
    assert decision_from({"approved": True}).approved
    assert not decision_from({"approved": "yes"}).approved  # only SendTaskSuccess's exact output runs calls
    assert not decision_from({"Error": "ApprovalDenied", "Cause": "x" * 5000}).approved
    assert len(decision_from({"Error": "ApprovalDenied", "Cause": "x" * 5000}).reason) < 1200
    assert "timeout" in decision_from({"Error": "States.Timeout", "Cause": ""}).reason
    assert needs_approval("commands", ["readFiles", "terminal"]) and not needs_approval("commands", ["readFiles"])
    assert needs_approval("all", ["readFiles"]) and not needs_approval("none", ["terminal"]) and not needs_approval("all", [])
    huge = {"tool_calls": [{"id": "c" * 500, "function": {"name": "n" * 500, "arguments": "a" * 100_000}}] * 40}
    calls = pending_calls(huge, 32)
    assert len(calls) == 32 and len(json.dumps(calls)) < 32 * 2_300



def test_pixie_run_on_a_terminal_asks_inline_and_a_no_with_a_reason_denies(tmp_path):
    import pty
    import select

    home = tmp_path / "home"
    script = write_script_file(tmp_path / "touch.json", [TOUCH, SUMMARY])
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [str(PIXIE), "run", "--no-serve", "--json", "--model", f"scripted:{script}", "--approve", "commands", "Touch"],
        env=environment(home), stdin=terminal, stdout=subprocess.PIPE, stderr=terminal, text=True, start_new_session=True,
    )
    os.close(terminal)
    shown = b""
    try:
        deadline = time.monotonic() + WAIT_S
        while b"run them?" not in shown:  # the question, after the calls
            assert process.poll() is None and time.monotonic() < deadline, shown.decode(errors="replace")
            if select.select([controller], [], [], 0.1)[0]:
                shown += os.read(controller, 65536)
        assert b"touch marker" in shown and b"waits for your approval of 1 tool call" in shown
        os.write(controller, b"not today\n")

        def drain() -> None:  # the live view goes on writing: a full terminal buffer would block the run
            try:
                while os.read(controller, 65536):
                    pass
            except OSError:
                pass

        threading.Thread(target=drain, daemon=True).start()
        out, _ = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        os.close(controller)
    assert json.loads(out)["status"] == "SUCCEEDED"
    record = json.loads(pixie(home, "show", json.loads(out)["runId"], "--json").stdout)
    assert not marker_exists(home, record)
    (tool_result,) = [m["content"] for m in record["conversation"] if m["role"] == "tool"]
    assert tool_result.endswith("reason: not today.")


def test_an_approved_call_runs_only_what_the_person_was_shown(tmp_path):
    # A hostile model pads its command so that the part that matters falls in the middle, which
    # the bounded pending call (head ... tail) leaves out: the person approves "echo xxx...xxx"
    # and `touch pwned` runs. Either the whole call is shown, or a call too long to show is not
    # run on that approval.
    home = tmp_path / "home"
    pad = "x" * 3000
    hidden = {"content": "Echoing.", "tool_calls": [{"name": "terminal", "arguments": {"command": f"echo {pad} ; touch pwned ; echo {pad}"}}]}
    process = start_in_background(home, write_script_file(tmp_path / "hidden.json", [hidden, SUMMARY]), "--approve", "commands")
    run_id = waiting_run_id(home, lambda: process.poll() is None)
    (call,) = json.loads(pixie(home, "show", run_id, "--json").stdout)["pendingApproval"]["calls"]
    approved = pixie(home, "approve", run_id)
    assert approved.returncode == 0, approved.stderr
    assert finish(process)["status"] == "SUCCEEDED"
    record = json.loads(pixie(home, "show", run_id, "--json").stdout)
    ran = (home / "sandboxes" / record["sandboxId"] / "pwned").exists()
    assert not ran or "touch pwned" in call["arguments"], "a command ran that the person approving it was never shown"


def test_a_yes_on_the_terminal_approves_only_the_calls_it_was_asked_about(tmp_path):
    # The terminal asks about turn 1's `touch marker`; meanwhile another shell denies it, the
    # model's turn 2 calls `touch pwned` and waits. The "y" typed for the question on screen
    # (turn 1's calls) must not approve turn 2's calls, which the person never saw.
    import pty
    import select

    home = tmp_path / "home"
    other = {"content": "Again.", "tool_calls": [{"name": "terminal", "arguments": {"command": "touch pwned"}}]}
    script = write_script_file(tmp_path / "two.json", [TOUCH, other, SUMMARY])
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [str(PIXIE), "run", "--no-serve", "--no-check", "--json", "--model", f"scripted:{script}", "--approve", "commands", "Touch"],
        env=environment(home), stdin=terminal, stdout=subprocess.PIPE, stderr=terminal, text=True, start_new_session=True,
    )
    os.close(terminal)
    shown = b""

    def drain() -> None:  # the live view goes on writing: a full terminal buffer would block the run
        try:
            while os.read(controller, 65536):
                pass
        except OSError:
            pass

    def waiting_on(run_id: str, iteration: int) -> None:
        deadline = time.monotonic() + WAIT_S
        while True:
            pending = json.loads(pixie(home, "show", run_id, "--json").stdout).get("pendingApproval")
            if pending and pending["iteration"] == iteration:
                return
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)

    try:
        deadline = time.monotonic() + WAIT_S
        while b"run them?" not in shown:
            assert process.poll() is None and time.monotonic() < deadline, shown.decode(errors="replace")
            if select.select([controller], [], [], 0.1)[0]:
                shown += os.read(controller, 65536)
        assert b"touch marker" in shown and b"touch pwned" not in shown
        run_id = waiting_run_id(home, lambda: process.poll() is None)
        assert pixie(home, "deny", run_id, "--reason", "no").returncode == 0  # turn 1, from another shell
        waiting_on(run_id, 2)  # turn 2's `touch pwned` waits now; the terminal still shows turn 1's question
        threading.Thread(target=drain, daemon=True).start()
        os.write(controller, b"y\n")  # the answer to the question on screen: turn 1's calls
        while process.poll() is None:  # whatever still waits is denied from the other shell
            if pixie(home, "deny", run_id, "--reason", "not seen").returncode != 0 and process.poll() is None:
                time.sleep(0.05)
        out, _ = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        os.close(controller)
    record = json.loads(pixie(home, "show", json.loads(out)["runId"], "--json").stdout)
    assert not (home / "sandboxes" / record["sandboxId"] / "pwned").exists(), "a yes for turn 1's calls ran turn 2's"


def test_two_shells_deciding_at_once_both_get_an_answer(tmp_path):
    # `pixie approve RUN` in one shell and `pixie deny RUN` in another (or the inline prompt and
    # another shell): one request file per run, so the second replaces the first unread, and the
    # first asker waits its whole DECISION_WAIT_S, then says the process "did not answer"
    # although the process is alive and the run was decided.
    home = tmp_path / "home"
    process = start_in_background(home, write_script_file(tmp_path / "touch.json", [TOUCH, SUMMARY]), "--approve", "commands")
    run_id = waiting_run_id(home, lambda: process.poll() is None)
    answers: dict[str, object] = {}

    def ask(name: str, approve: bool) -> None:
        try:
            answers[name] = request_decision(home, run_id, approve, "no", wait_s=WAIT_S)
        except Exception as exc:  # noqa: BLE001 - what the asker is told
            answers[name] = exc

    askers = [threading.Thread(target=ask, args=("approve", True)), threading.Thread(target=ask, args=("deny", False))]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join()
    assert finish(process)["status"] == "SUCCEEDED"
    assert not [a for a in answers.values() if isinstance(a, TimeoutError)], answers
    decided = [a for a in answers.values() if isinstance(a, dict)]
    assert len(decided) == 1, answers  # one decides; the other hears that nothing waits any more


def test_a_run_killed_while_waiting_shows_no_pending_approval(tmp_path):
    # `kill -9` of `pixie run` during AwaitApproval: nothing waits any more (the token died with
    # the process and `pixie approve` says so), yet `pixie show --json` still offers
    # pendingApproval, which a script polling for it (as the README suggests) acts on forever.
    # A stopped run shows None (test_a_run_waiting_for_approval_stops_at_once_and_resume_asks_again).
    home = tmp_path / "home"
    process = start_in_background(home, write_script_file(tmp_path / "touch.json", [TOUCH, SUMMARY]), "--approve", "commands")
    run_id = waiting_run_id(home, lambda: process.poll() is None)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    approved = pixie(home, "approve", run_id)
    assert approved.returncode == 2 and "is not waiting for approval" in approved.stderr
    record = json.loads(pixie(home, "show", run_id, "--json").stdout)
    assert record["status"] == "INTERRUPTED" and record["pendingApproval"] is None


def test_with_approve_commands_the_done_check_runs_no_model_written_command_unasked(tmp_path):
    # The model writes package.json (a file write: no approval under --approve commands) whose
    # `test` script is any command it likes, then summarizes; the done-check runs `npm test` in
    # the sandbox. A command the model wrote must not run without the person's yes.
    package = json.dumps({"name": "app", "scripts": {"test": "touch pwned"}})
    write = {"content": "Writing.", "tool_calls": [{"name": "createOrUpdateFiles", "arguments": {"files": [
        {"path": "package.json", "content": package}, {"path": "index.html", "content": "<p>hi</p>"}]}}]}
    asked: list[dict] = []

    def deny(run_id: str) -> dict:
        asked.append({"runId": run_id})
        return request_decision(tmp_path / "home", run_id, approve=False, reason="no")

    record = run_with(tmp_path, [write, SUMMARY, SUMMARY, SUMMARY], decide=deny, approve="commands", max_iterations=4)
    ran = (tmp_path / "home" / "sandboxes" / record["sandboxId"] / "pwned").exists()
    assert not ran or asked, "the done-check ran the model's own `npm test` script with nobody asked"


@pytest.mark.parametrize(
    "choices, problem",
    [
        ({"approve": "everything"}, "approve must be one of none, commands, all, got 'everything'"),
        ({"approve": "x" * 500}, "got '" + "x" * 40 + "'"),  # what it echoes is bounded
        ({"approval_timeout_s": 0}, "the approval timeout must be a whole number of seconds from 1 to 31,536,000, got '0'"),
        ({"approval_timeout_s": 365 * 24 * 3600 + 1}, "got '31536001'"),
        ({"approval_timeout_s": True}, "got 'True'"),  # a JSON true is not one second
        ({"approval_timeout_s": "60"}, "got '60'"),
        ({"check_command": "   "}, "the check command is empty"),
    ],
)
def test_approval_and_check_choices_out_of_range_refuse_the_run_before_it_starts(tmp_path, choices, problem):
    from pixie.run_checks import RunRefused, check_prompt_and_settings

    model = f"scripted:{write_script_file(tmp_path / 'touch.json', [TOUCH, SUMMARY])}"
    home = tmp_path / "home"
    with pytest.raises(RunRefused) as refused:
        check_prompt_and_settings("Build a page", RunOptions(model=model, pixie_home=home, **choices))
    assert problem in str(refused.value)
    assert not home.exists()  # nothing was created
    check_prompt_and_settings("Build a page", RunOptions(model=model, pixie_home=home, approve="all", approval_timeout_s=60))
