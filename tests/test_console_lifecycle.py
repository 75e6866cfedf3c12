"""A console run lives as a `pixie run` does (issue 19): saved after every step, so `kill -9` of
`pixie ui` leaves it INTERRUPTED and `pixie resume` finishes it; SIGTERM and SIGHUP stop the
console as Ctrl-C does (runs ended through their cleanup and saved); and the API refuses what the
CLI refuses, with the same one-line message, creating no run and no folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from conftest import write_script_file
from console_server import PIXIE, ConsoleProcess
from process_probes import processes_in, sleeping

WAIT_S = 120  # the longest a test waits for an event (a loaded machine is slow)
WRITE_PAGE = {"content": None, "tool_calls": [
    {"name": "createOrUpdateFiles", "arguments": {"files": [{"path": "index.html", "content": "<h1>kept</h1>"}]}}]}
SLOW_COMMAND = {"content": "Waiting.", "tool_calls": [{"name": "terminal", "arguments": {"command": "sleep 60"}}]}
SUMMARY = {"content": "<task_summary>Built it, slowly</task_summary>"}


def states_entered(history: list[dict]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]


def saved_while_running(home: Path, run_id: str, console: ConsoleProcess) -> dict:
    """The run's saved record once it shows the slow command running: it is on disk while the
    console still works on it (the journal), not only when it ends."""
    path = home / "runs" / f"{run_id}.json"
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert console.proc.poll() is None, "the console ended before the test could kill it"
        try:
            record = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            record = None
        if record and any(m.get("content") == "Waiting." for m in record.get("conversation", [])):
            sandbox = home / "sandboxes" / str(record.get("sandboxId"))
            if processes_in(sandbox) or "RunTool" in states_entered(record.get("history") or []):
                return record
        time.sleep(0.1)
    raise AssertionError("the console run was never saved at its second turn's command")


def pixie(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return subprocess.run(
        [str(PIXIE), *args], env={**environment, "PIXIE_HOME": str(home), **(env or {})},
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )


def test_a_console_killed_mid_command_leaves_its_run_interrupted_and_resume_finishes_it(tmp_path):
    home = tmp_path / "home"
    script = write_script_file(tmp_path / "slow.json", [WRITE_PAGE, SLOW_COMMAND, SUMMARY])
    console = ConsoleProcess(home)
    with console:
        run_id = console.start_run("Build it slowly", model=f"scripted:{script}")
        record = saved_while_running(home, run_id, console)
        assert record["status"] == "RUNNING" and record["pid"] == console.proc.pid
        console.proc.kill()  # kill -9: nothing of the console's shutdown runs
        console.proc.wait()
    sandbox = home / "sandboxes" / record["sandboxId"]
    for orphan in processes_in(sandbox):
        try:
            os.killpg(os.getpgid(orphan), signal.SIGKILL)
        except ProcessLookupError:
            pass

    listed = pixie(home, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    row = next(r for r in json.loads(listed.stdout) if r["runId"] == run_id)
    assert row["status"] == "INTERRUPTED"

    # The turn-2 command never finished: it runs again on resume, cut short by a 1 s limit.
    resumed = pixie(home, "resume", run_id, "--json", "--no-serve", env={"PIXIE_COMMAND_TIMEOUT": "1"})
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["status"] == "SUCCEEDED" and result["summary"] == "Built it, slowly"
    assert result["files"] == {"index.html": "<h1>kept</h1>"}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_the_console_like_ctrl_c_and_save_its_runs(tmp_path, signum):
    home = tmp_path / "home"
    script = write_script_file(tmp_path / "slow.json", [SLOW_COMMAND, SUMMARY])
    with ConsoleProcess(home) as console:
        run_id = console.start_run("Sleep a while", model=f"scripted:{script}")
        saved_while_running(home, run_id, console)
        console.proc.send_signal(signum)
        assert console.proc.wait(timeout=WAIT_S) == 0, console.log.read_text()
    saved = json.loads((home / "runs" / f"{run_id}.json").read_text())
    assert saved["status"] == "FAILED" and saved["error"] == "Interrupted"
    assert "CleanupSandbox" in states_entered(saved["history"])


def test_the_api_refuses_what_pixie_run_refuses_and_creates_nothing(tmp_path):
    home = tmp_path / "home"
    fails = write_script_file(tmp_path / "fails.json", [
        {"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": "true"}}]}, SUMMARY])
    with ConsoleProcess(home) as console:
        failed_id = console.start_run("One turn is not enough", model=f"scripted:{fails}", maxIterations=1)
        assert console.wait_for(failed_id, WAIT_S)["status"] == "FAILED"
        runs_before = sorted(p.name for p in (home / "runs").iterdir())
        folders_before = sorted(p.name for p in (home / "sandboxes").iterdir())

        refusals = []
        for body in (
            {"prompt": "x", "model": "gpt4"},
            {"prompt": "x", "model": "openai:gpt-4.1"},  # no OPENAI_API_KEY in the console's environment
            {"prompt": "x", "continueFrom": failed_id},
        ):
            response = console.client.post("/api/runs", json=body)
            assert response.status_code == 400, (body, response.text)
            refusals.append(response.json()["error"])

        assert sorted(p.name for p in (home / "runs").iterdir()) == runs_before
        assert sorted(p.name for p in (home / "sandboxes").iterdir()) == folders_before

    # The same one-line messages as `pixie run`.
    cli = [
        pixie(home, "run", "--no-serve", "--model", "gpt4", "x"),
        pixie(home, "run", "--no-serve", "--model", "openai:gpt-4.1", "x"),
        pixie(home, "run", "--no-serve", "--model", f"scripted:{fails}", "--continue", failed_id, "x"),
    ]
    assert [c.returncode for c in cli] == [2, 2, 2]
    for refusal, run in zip(refusals, cli):
        assert refusal in run.stderr, (refusal, run.stderr)
    assert "unknown --model 'gpt4'" in refusals[0]
    assert "needs OPENAI_API_KEY" in refusals[1]
    assert "FAILED" in refusals[2] and "only a run that succeeded" in refusals[2]


def test_stop_ends_a_running_run_aborted_with_its_command_ended_and_saves_it(tmp_path):
    home = tmp_path / "home"
    marker = "613"  # this test's command, told apart from any other sleep
    script = write_script_file(tmp_path / "slow.json", [
        {"content": "Waiting.", "tool_calls": [{"name": "terminal", "arguments": {"command": f"sleep {marker}"}}]}, SUMMARY])
    with ConsoleProcess(home) as console:
        run_id = console.start_run("Sleep a while", model=f"scripted:{script}")
        saved_while_running(home, run_id, console)
        deadline = time.monotonic() + WAIT_S
        while not sleeping(marker):
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)

        stopped = console.client.post(f"/api/runs/{run_id}/stop", timeout=WAIT_S)
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["status"] == "ABORTED"
        # Its cleanup ended the command (the sandbox released), without waiting for its 613 s.
        while sleeping(marker):
            assert time.monotonic() < deadline, "the stopped run's command is still running"
            time.sleep(0.05)
        again = console.client.post(f"/api/runs/{run_id}/stop")
        assert again.status_code == 409 and "not running" in again.json()["error"]
        assert console.client.post("/api/runs/nosuchrun/stop").status_code == 409

    saved = json.loads((home / "runs" / f"{run_id}.json").read_text())
    assert saved["status"] == "ABORTED"
    assert saved["history"][-1]["type"] == "ExecutionAborted"
    shown = pixie(home, "show", run_id, "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "ABORTED"
    # Stopped, not interrupted: resume may carry it on (as a redrive does on AWS).
    assert "RunTool" in states_entered(saved["history"])


# --- robustness: bodies, a cap on runs, other apps' cookies, files that are not run records ----
def peak_memory_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def test_a_body_over_the_limit_is_refused_before_it_is_read_whole(tmp_path):
    from pixie.console.app import MAX_BODY_BYTES

    with ConsoleProcess(tmp_path / "home") as console:
        declared = console.client.post("/api/runs", content=b"x" * (MAX_BODY_BYTES + 1))
        assert declared.status_code == 413
        before = peak_memory_kb(console.proc.pid)

        def chunks():  # 640 MB without a Content-Length: refused while it streams
            for _ in range(10_000):
                yield b"x" * 65536

        try:
            streamed = console.client.post("/api/runs", content=chunks(), headers={"Content-Type": "application/json"})
            assert streamed.status_code == 413
        except httpx.TransportError:
            pass  # the console answered and closed while the client still sent: refused all the same
        # The console never held the body: its peak memory grew by far less than 640 MB.
        assert peak_memory_kb(console.proc.pid) - before < 100 * 1024


def test_past_the_cap_on_running_runs_a_start_is_refused_with_429(tmp_path):
    home = tmp_path / "home"
    script = write_script_file(tmp_path / "slow.json", [SLOW_COMMAND, SUMMARY])
    with ConsoleProcess(home, env={"PIXIE_CONSOLE_MAX_RUNS": "1"}) as console:
        first = console.start_run("Sleep a while", model=f"scripted:{script}")
        refused = console.client.post("/api/runs", json={"prompt": "One more", "model": f"scripted:{script}"})
        assert refused.status_code == 429 and "PIXIE_CONSOLE_MAX_RUNS" in refused.json()["error"]
        assert console.client.post(f"/api/runs/{first}/stop", timeout=WAIT_S).status_code == 200
        quick = write_script_file(tmp_path / "quick.json", [SUMMARY])
        again = console.start_run("Now there is room", model=f"scripted:{quick}")  # the stopped run freed its slot
        assert console.wait_for(again, WAIT_S)["status"] == "SUCCEEDED"


def test_another_apps_cookie_on_the_same_host_does_not_lock_the_console_out(tmp_path):
    with ConsoleProcess(tmp_path / "home") as console:
        plain = httpx.Client(base_url=console.base, timeout=30)
        try:
            plain.get(f"/?token={console.token}")  # the token becomes the console's cookie
            name = next(iter(plain.cookies.keys()))
            cookie = f'prefs={{"theme":"dark"}}; {name}={plain.cookies[name]}; other=1'
            answer = plain.get("/api/runs", headers={"Cookie": cookie})
            assert answer.status_code == 200, answer.text
            wrong = plain.get("/api/runs", headers={"Cookie": f'prefs={{"theme":"dark"}}; {name}=not-the-token'})
            assert wrong.status_code == 401
        finally:
            plain.close()


@pytest.mark.parametrize("content", ["null", '{"runId": 5}', "{not json", '{"runId": "%s", "status": "SUCCEEDED", "conversation": 5}'])
def test_a_file_that_is_not_a_run_record_is_skipped_with_one_warning_never_a_crash(tmp_path, content):
    home = tmp_path / "home"
    bad_id = "0123456789abcdef"
    (home / "runs").mkdir(parents=True)
    (home / "runs" / f"{bad_id}.json").write_text(content.replace("%s", bad_id))
    quick = write_script_file(tmp_path / "quick.json", [SUMMARY])
    good = pixie(home, "run", "--no-serve", "--json", "--model", f"scripted:{quick}", "A good run")
    assert good.returncode == 0, good.stderr
    good_id = json.loads(good.stdout)["runId"]

    listed = pixie(home, "list")
    assert listed.returncode == 0 and good_id[:8] in listed.stdout
    warnings = [line for line in listed.stderr.splitlines() if line]
    assert len(warnings) == 1 and f"{bad_id}.json" in warnings[0] and "Traceback" not in listed.stderr
    shown = pixie(home, "show", bad_id)
    assert shown.returncode == 2 and f"{bad_id}.json is not a run record" in shown.stderr and "Traceback" not in shown.stderr

    with ConsoleProcess(home) as console:
        rows = console.client.get("/api/runs")
        assert rows.status_code == 200 and [r["runId"] for r in rows.json()["runs"]] == [good_id]
        one = console.client.get(f"/api/runs/{bad_id}")
        assert one.status_code == 422 and "is not a run record" in one.json()["error"]


def test_rerun_starts_a_new_run_with_the_same_prompt_model_and_settings(tmp_path):
    home = tmp_path / "home"
    script = write_script_file(tmp_path / "page.json", [WRITE_PAGE, SUMMARY])
    with ConsoleProcess(home) as console:
        first = console.start_run("Build it again and again", model=f"scripted:{script}", maxIterations=4)
        assert console.wait_for(first, WAIT_S)["status"] == "SUCCEEDED"

        again = console.client.post("/api/runs", json={"rerunOf": first})
        assert again.status_code == 201, again.text
        second = again.json()["runId"]
        record = console.wait_for(second, WAIT_S)
        original = console.client.get(f"/api/runs/{first}").json()
        assert second != first and record["status"] == "SUCCEEDED"
        assert (record["prompt"], record["model"]) == (original["prompt"], original["model"])
        assert record["sandboxId"] != original["sandboxId"]  # a new run, not the old one again
        saved = json.loads((home / "network-state" / f"{second}.json").read_text())
        assert saved["options"]["maxIterations"] == 4

        assert console.client.post("/api/runs", json={"rerunOf": "0123456789abcdef"}).status_code == 400
        mixed = console.client.post("/api/runs", json={"rerunOf": first, "prompt": "other"})
        assert mixed.status_code == 400 and "alone" in mixed.json()["error"]
