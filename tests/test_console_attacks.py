"""What an attack session on the run lifecycle (issue 19) found, kept as tests: `pixie rm` and a
crafted sandboxId, two stops of one run at once, and a previewed app filling the console host's
cookie jar."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from console_server import PIXIE
from process_probes import sleeping


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return {**env, "PIXIE_HOME": str(home)}


def test_rm_never_deletes_outside_pixie_home(tmp_path):
    """A run record naming sandboxId `local-x/../../../victim` (a copied or edited home) must not
    make `pixie rm` delete a folder outside $PIXIE_HOME/sandboxes."""
    home, victim = tmp_path / "home", tmp_path / "victim"
    (home / "runs").mkdir(parents=True)
    (home / "sandboxes" / "local-aaaa").mkdir(parents=True)
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    run_id = "1234567890abcdef"
    (home / "runs" / f"{run_id}.json").write_text(json.dumps({
        "runId": run_id, "status": "SUCCEEDED", "sandboxId": "local-aaaa/../../../victim",
        "conversation": [], "history": [], "files": {},
    }))
    subprocess.run([str(PIXIE), "rm", run_id], env=_env(home), capture_output=True, text=True, timeout=120,
                   stdin=subprocess.DEVNULL)
    assert (victim / "precious.txt").read_text() == "keep me"


def test_stopping_a_console_run_twice_at_once_never_answers_500(tmp_path):
    """A double click on Stop (or a script and the page at once): each answer is the stopped
    record or a 409, never an internal error."""
    import threading
    import time

    from conftest import write_script_file
    from console_server import ConsoleProcess

    marker = "7193"
    script = write_script_file(tmp_path / "sleep.json", [
        {"content": "Waiting.", "tool_calls": [{"name": "terminal", "arguments": {"command": f"sleep {marker}"}}]},
        {"content": "<task_summary>done</task_summary>"},
    ])
    with ConsoleProcess(tmp_path / "home") as console:
        run_id = console.start_run("Sleep", model=f"scripted:{script}")
        deadline = time.monotonic() + 120
        while not sleeping(marker):
            assert time.monotonic() < deadline, "the run's command never started"
            time.sleep(0.05)
        barrier, answers = threading.Barrier(3), []

        def stop() -> None:
            barrier.wait()
            answers.append(console.client.post(f"/api/runs/{run_id}/stop").status_code)

        threads = [threading.Thread(target=stop) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert 200 in answers
    assert set(answers) <= {200, 409}, answers


BOMB_PAGE = (
    "<!doctype html><html><body><script>"
    "for (let i = 0; i < 60; i++) document.cookie = `bomb${i}=${'x'.repeat(3900)}; path=/; max-age=31536000`;"
    "document.title = 'bombed';"
    "</script></body></html>"
)


def test_a_preview_cannot_lock_the_user_out_of_the_console(tmp_path):
    """The preview frame now has allow-same-origin on its own port of 127.0.0.1, the console's
    host: cookies are per host, not per port, so a previewed app's script can fill 127.0.0.1's
    cookie jar; the browser then sends a Cookie header the console refuses (400) on every page
    and API call, for as long as the cookies live (here a year). The app must not act on the console."""
    import base64

    from conftest import write_script_file
    from console_server import ConsoleProcess
    from test_console_browser import chromium_path, skip_or_fail

    try:
        import playwright.sync_api as playwright_api
    except ImportError:
        skip_or_fail("Playwright for Python is not installed")
    executable = chromium_path()
    if executable is None:
        skip_or_fail("no Chromium on this machine: the browser tests need one (apt install chromium)")
    encoded = base64.b64encode(BOMB_PAGE.encode()).decode()
    script = write_script_file(tmp_path / "bomb.json", [
        {"content": "Writing.", "tool_calls": [{"name": "terminal", "arguments": {
            "command": f"echo {encoded} | base64 -d > index.html"}}]},
        {"content": "<task_summary>A page</task_summary>"},
    ])
    with ConsoleProcess(tmp_path / "home") as console, playwright_api.sync_playwright() as playwright:
        run_id = console.start_run("A page", model=f"scripted:{script}")
        record = console.wait_for(run_id, timeout_s=120)
        assert record["status"] == "SUCCEEDED", record
        preview_url = record["url"]
        assert preview_url
        browser = playwright.chromium.launch(executable_path=executable)
        try:
            context = browser.new_context()
            page = context.new_page()
            assert page.goto(console.url).status == 200  # the printed URL: the console's cookie is set
            preview = context.new_page()
            preview.goto(preview_url)  # the user opens (or the console frames) the run's preview
            preview.wait_for_function("document.title === 'bombed'")
            answer = context.request.get(console.base + "/api/runs")  # with the browser's cookies
            assert answer.status == 200, f"{answer.status}: {answer.text()[:200]}"
        finally:
            browser.close()
def test_a_console_follow_up_without_a_model_keeps_its_parents_model(tmp_path):
    """`pixie run --continue RUN` keeps the parent's model unless --model is given (pixie/cli.py,
    continued_model); `POST /api/runs {"prompt", "continueFrom"}` with no model must do the same,
    not silently switch to the console's default (the issue's "a follow-up silently changes model")."""
    from conftest import write_script_file
    from console_server import ConsoleProcess

    script = write_script_file(tmp_path / "parent.json", [{"content": "<task_summary>Nothing to do</task_summary>"}])
    with ConsoleProcess(tmp_path / "home") as console:
        parent = console.start_run("Do nothing", model=f"scripted:{script}")
        assert console.wait_for(parent, timeout_s=120)["status"] == "SUCCEEDED"
        response = console.client.post("/api/runs", json={"prompt": "And again", "continueFrom": parent})
        assert response.status_code == 201, response.text
        child = response.json()["runId"]
        console.wait_for(child, timeout_s=120)
    saved = json.loads((tmp_path / "home" / "runs" / f"{child}.json").read_text())
    assert saved.get("model") == f"scripted:{script}", saved.get("model")


def _record(home: Path, run_id: str, **fields) -> None:
    (home / "runs").mkdir(parents=True, exist_ok=True)
    (home / "runs" / f"{run_id}.json").write_text(json.dumps({"runId": run_id, **fields}))


def _pixie(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(PIXIE), *args], env=_env(home), capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_rm_of_a_valid_run_is_not_broken_by_a_wrong_shaped_neighbour(tmp_path):
    """One run file whose sandboxId is a list (hand-edited, another tool's) made `pixie rm` of
    every other run crash with a traceback (TypeError: unhashable type: 'list')."""
    home = tmp_path / "home"
    _record(home, "dddddddddddddddd", status="FAILED", conversation=[], history=[], files={})
    _record(home, "cccccccccccccccc", status="SUCCEEDED", sandboxId=["a"])
    removed = _pixie(home, "rm", "dddd")
    assert "Traceback" not in removed.stderr, removed.stderr[-400:]
    assert removed.returncode == 0
    assert not (home / "runs" / "dddddddddddddddd.json").exists()


def test_corrupt_run_files_give_one_line_never_a_traceback(tmp_path):
    """Issue 19: corrupt or wrong-shaped run files are skipped with one line, never a crash:
    `pixie rm` of a corrupt file (the way to clean it up) and `pixie show` of a wrong-shaped one."""
    home = tmp_path / "home"
    (home / "runs").mkdir(parents=True)
    (home / "runs" / "aaaaaaaaaaaaaaaa.json").write_text("null")
    _record(home, "cccccccccccccccc", status="SUCCEEDED", sandboxId=["a"], projectId="../../x")
    for args in (("rm", "aaaa"), ("rm", "cccc"), ("show", "cccc")):
        answer = _pixie(home, *args)
        assert "Traceback" not in answer.stderr, f"pixie {' '.join(args)}: {answer.stderr[-300:]}"


def test_the_console_answers_wrong_shaped_run_files_without_a_500(tmp_path):
    """A run file whose history holds a non-object-typed event, and a saved network state of
    `null`: the run's page and Rerun must answer a one-line error (or the record), never 500."""
    from console_server import ConsoleProcess

    home = tmp_path / "home"
    _record(home, "cccccccccccccccc", status="SUCCEEDED", history=[{"type": 5}])
    _record(home, "ffffffffffffffff", status="SUCCEEDED")
    (home / "network-state").mkdir()
    (home / "network-state" / "ffffffffffffffff.json").write_text("null")
    import httpx

    def status(call) -> str:
        try:
            response = call()
        except httpx.TransportError as exc:  # the server dropped the connection on an exception
            return f"no answer: {type(exc).__name__}"
        return f"{response.status_code} {response.text[:120]}"

    with ConsoleProcess(home) as console:
        shown = status(lambda: console.client.get("/api/runs/cccccccccccccccc"))
        rerun = status(lambda: console.client.post("/api/runs", json={"rerunOf": "ffffffffffffffff"}))
    assert shown.startswith(("200", "404", "422")), shown
    assert rerun.startswith("400"), rerun
