"""`pixie stop RUN` from another shell stops a run that a `pixie run` or the console is running,
as StopExecution does: ABORTED, its command ended by the cleanup, saved; `pixie resume` carries
it on. A run that is not running is refused (exit 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import write_script_file
from console_server import PIXIE, ConsoleProcess
from process_probes import sleeping

WAIT_S = 120  # the longest a test waits for an event (a loaded machine is slow)
SUMMARY = {"content": "<task_summary>Slept, then finished</task_summary>"}


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return {**env, "PIXIE_HOME": str(home), **extra}


def pixie(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(PIXIE), *args], env=environment(home, **extra), capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def sleep_script(tmp_path: Path, marker: str) -> Path:
    """Turn 1 sleeps `marker` seconds unless the file `again` exists; turn 2 summarizes."""
    command = f"if [ -e again ]; then echo again; else sleep {marker}; fi"
    return write_script_file(tmp_path / f"sleep-{marker}.json", [
        {"content": "Waiting.", "tool_calls": [{"name": "terminal", "arguments": {"command": command}}]}, SUMMARY])


def running_record(home: Path, marker: str, alive) -> dict:
    """The saved record of the one run in `home` once its command runs."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert alive(), "the process running the run ended first"
        records = [json.loads(p.read_text()) for p in (home / "runs").glob("*.json")] if (home / "runs").is_dir() else []
        if records and sleeping(marker):
            (record,) = records
            assert record["status"] == "RUNNING"
            return record
        time.sleep(0.05)
    raise AssertionError("the run's command never started")


def test_pixie_stop_stops_a_pixie_run_in_another_process_and_resume_finishes_it(tmp_path):
    home, marker = tmp_path / "home", "617"
    script = sleep_script(tmp_path, marker)
    process = subprocess.Popen(
        [str(PIXIE), "run", "--no-serve", "--json", "--model", f"scripted:{script}", "Sleep"],
        env=environment(home), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        record = running_record(home, marker, lambda: process.poll() is None)
        run_id = record["runId"]
        stopped = pixie(home, "stop", run_id[:8], "--json")
        assert stopped.returncode == 0, stopped.stderr
        assert json.loads(stopped.stdout) == {"runId": run_id, "status": "ABORTED"}
        out, err = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert json.loads(out)["status"] == "ABORTED", err
    assert not sleeping(marker)  # the cleanup ended it, not its 617 s
    assert pixie(home, "stop", run_id).returncode == 2  # not running any more

    (home / "sandboxes" / record["sandboxId"] / "again").touch()
    resumed = pixie(home, "resume", run_id, "--json", "--no-serve")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "SUCCEEDED"


def test_pixie_stop_stops_one_console_run_and_leaves_the_console_and_its_other_runs(tmp_path):
    home = tmp_path / "home"
    # The command's own limit (120 s by default) must outlast the wait below: only the stop may end it.
    with ConsoleProcess(home, env={"PIXIE_COMMAND_TIMEOUT": "720"}) as console:
        run_id = console.start_run("Sleep", model=f"scripted:{sleep_script(tmp_path, '618')}")
        running_record(home, "618", lambda: console.proc.poll() is None)
        stopped = pixie(home, "stop", run_id, "--json")
        assert stopped.returncode == 0, stopped.stderr
        assert json.loads(stopped.stdout)["status"] == "ABORTED"
        assert console.proc.poll() is None  # the console goes on
        deadline = time.monotonic() + WAIT_S
        while sleeping("618"):  # the cleanup ended the command, though the console still runs
            assert time.monotonic() < deadline, "the stopped run's command is still running"
            time.sleep(0.05)
        other = console.start_run("Another", model=f"scripted:{write_script_file(tmp_path / 'quick.json', [SUMMARY])}")
        assert console.wait_for(other, WAIT_S)["status"] == "SUCCEEDED"
    assert json.loads((home / "runs" / f"{run_id}.json").read_text())["status"] == "ABORTED"
