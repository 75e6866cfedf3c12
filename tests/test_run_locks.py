"""One run per project folder, one process per run: two continuations of one parent started
together never share a folder, and a second `pixie resume` of a run while the first still works
is refused (exit 2) before anything runs, so no command runs twice. A lock held by a process that
was killed (-9) blocks no one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from lambdas.logic.sandboxes.local import stop_all_previews
from pixie.local_run import RunOptions, continue_locally, resume_locally, run_locally
from pixie.run_journal import CannotStart
from pixie.run_locks import hold
from pixie.runs import load_run

PIXIE = Path(sys.executable).parent / "pixie"
WAIT_S = 120  # the longest a test waits for an event before failing (a loaded machine is slow)


@pytest.fixture(autouse=True)
def _stop_previews():
    yield
    stop_all_previews()


def terminal(command: str) -> dict:
    return {"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": command}}]}


def write(path: str, content: str) -> dict:
    return {"content": None, "tool_calls": [{"name": "createOrUpdateFiles", "arguments": {"files": [{"path": path, "content": content}]}}]}


DONE = {"content": "<task_summary>done</task_summary>"}
# A command that says it started, then waits until the test lets it go; counts its runs.
HELD_COMMAND = "echo ran >> held-runs.txt; touch started; while [ ! -e go ]; do sleep 0.05; done"


def pixie_process(home: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return subprocess.Popen(
        [str(PIXIE), *args], env={**env, "PIXIE_HOME": str(home)}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def wait_for(path: Path, process: subprocess.Popen) -> Path:
    """Waits until `path` (a glob pattern may stand in its folder) exists; returns it."""
    deadline = time.monotonic() + WAIT_S
    while not (found := next(path.parent.parent.glob(f"{path.parent.name}/{path.name}"), None)):
        if process.poll() is not None:
            raise AssertionError(f"pixie ended before {path.name} appeared: {process.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.05)
    return found


def folder(home: Path, record: dict) -> Path:
    return home / "sandboxes" / record["sandboxId"]


def test_two_continuations_started_together_never_share_a_folder(tmp_path, write_script):
    home = tmp_path / "home"
    parent = run_locally("Start", RunOptions(model=f"scripted:{write_script([write('index.html', 'parent'), DONE], 'p.json')}", pixie_home=home))
    assert parent["status"] == "SUCCEEDED", parent["cause"]
    shared = folder(home, parent)

    first_script = write_script([write("first.txt", "1"), terminal(HELD_COMMAND), DONE], "first.json")
    first = pixie_process(home, "run", "--no-serve", "--json", "--model", f"scripted:{first_script}", "--continue", parent["runId"], "First")
    try:
        first_folder = wait_for(home / "sandboxes" / "*" / "started", first).parent  # the first continuation works now
        second_script = write_script([write("second.txt", "2"), terminal("ls > listing.txt"), DONE], "second.json")
        second = continue_locally(parent["runId"], "Second", RunOptions(model=f"scripted:{second_script}", pixie_home=home))
        (first_folder / "go").touch()
        out, err = first.communicate(timeout=WAIT_S)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode == 0, err

    assert second["status"] == "SUCCEEDED", second["cause"]
    assert second["sandboxId"] != parent["sandboxId"]  # a folder of its own, from the parent's files
    own = folder(home, second)
    assert (own / "index.html").read_text() == "parent" and (own / "second.txt").read_text() == "2"
    assert not (own / "first.txt").exists() and not (own / "held-runs.txt").exists()
    assert first_folder != shared and (first_folder / "first.txt").read_text() == "1"
    assert not (first_folder / "second.txt").exists()
    assert not (shared / "second.txt").exists() and not (shared / "first.txt").exists()  # the parent's, as it ended


def test_a_second_resume_of_a_run_is_refused_and_no_command_runs_twice(tmp_path, write_script):
    home = tmp_path / "home"
    script = write_script([terminal("echo once >> effects.txt")], "r.json")  # then the script runs out
    failed = run_locally("Do it", RunOptions(model=f"scripted:{script}", pixie_home=home))
    assert failed["status"] == "FAILED" and failed["error"] == "ScriptExhausted"
    write_script([terminal("echo once >> effects.txt"), terminal(HELD_COMMAND), DONE], "r.json")  # the cause fixed
    project = folder(home, failed)

    first = pixie_process(home, "resume", "--no-serve", "--json", failed["runId"])
    try:
        wait_for(project / "started", first)
        second = subprocess.run(
            [str(PIXIE), "resume", "--no-serve", failed["runId"]], env={**os.environ, "PIXIE_HOME": str(home)},
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=WAIT_S,
        )
        (project / "go").touch()
        _, err = first.communicate(timeout=WAIT_S)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)

    assert second.returncode == 2, second.stderr
    # Refused by the record (RUNNING) or, if it came before the record said so, by the run's lock:
    # either way naming the process that holds it.
    assert f"(process {first.pid})" in second.stderr and failed["runId"] in second.stderr, second.stderr
    assert first.returncode == 0, err
    assert load_run(home, failed["runId"])["status"] == "SUCCEEDED"
    assert (project / "effects.txt").read_text() == "once\n"  # turn 1's command, once in all
    assert (project / "held-runs.txt").read_text() == "ran\n"


def test_a_lock_left_by_a_killed_process_blocks_no_one(tmp_path, write_script):
    home = tmp_path / "home"
    script = write_script([terminal("echo once >> effects.txt")], "k.json")
    failed = run_locally("Do it", RunOptions(model=f"scripted:{script}", pixie_home=home))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from contextlib import ExitStack; from pathlib import Path;"
         "from pixie.run_locks import hold; s = ExitStack(); hold(s, Path(sys.argv[1]), 'run', sys.argv[2], sys.argv[2], 'x');"
         "print('held', flush=True); time.sleep(600)", str(home), failed["runId"]],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CannotStart, match=f"in use by run {failed['runId']} \\(process {holder.pid}\\)"):
            resume_locally(failed["runId"], home)
    finally:
        holder.kill()
        holder.wait()
    write_script([terminal("echo once >> effects.txt"), DONE], "k.json")
    assert resume_locally(failed["runId"], home)["status"] == "SUCCEEDED"  # the dead holder's lock is gone


def test_the_same_process_cannot_take_one_lock_twice(tmp_path):
    with ExitStack() as stack:
        hold(stack, tmp_path, "folder", "local-abc", "r1", "the folder")
        with pytest.raises(CannotStart, match="in use by run r1"):
            hold(ExitStack(), tmp_path, "folder", "local-abc", "r2", "the folder")
    with ExitStack() as stack:  # released with the stack
        hold(stack, tmp_path, "folder", "local-abc", "r2", "the folder")


def hold_in_another_process(home: Path, kind: str, key: str, holder_run: str) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from contextlib import ExitStack; from pathlib import Path;"
         "from pixie.run_locks import hold; s = ExitStack(); hold(s, Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], 'x');"
         "print('held', flush=True); time.sleep(600)", str(home), kind, key, holder_run],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_continuation_whose_parent_folder_is_busy_before_any_claim_is_saved_forks(tmp_path, write_script):
    """The window the saved claim cannot cover: another process works in the parent's folder but
    has not saved that it took it over yet. The folder's lock alone must send this run elsewhere."""
    home = tmp_path / "home"
    parent = run_locally("Start", RunOptions(model=f"scripted:{write_script([write('index.html', 'parent'), DONE], 'p.json')}", pixie_home=home))
    holder = hold_in_another_process(home, "folder", parent["sandboxId"], "another-run")
    try:
        script = write_script([write("mine.txt", "x"), DONE], "c.json")
        child = continue_locally(parent["runId"], "More", RunOptions(model=f"scripted:{script}", pixie_home=home))
    finally:
        holder.kill()
        holder.wait()
    assert child["status"] == "SUCCEEDED", child["cause"]
    assert child["sandboxId"] != parent["sandboxId"]
    assert not (folder(home, parent) / "mine.txt").exists()
    assert (folder(home, child) / "index.html").read_text() == "parent"
