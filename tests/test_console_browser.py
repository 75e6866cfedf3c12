"""The console in a real browser: Playwright for Python driving the OS's Chromium (Playwright's
own browser download has no network here). Skipped, saying why, when no Chromium is found;
PIXIE_REQUIRE_BROWSER=1 (set by .ci/run) turns that skip into a failure. Screenshots of the main
pages go to test-artifacts/ (not committed)."""

from __future__ import annotations

import os
import re
import shutil
import urllib.request
from pathlib import Path

import pytest

from conftest import bare_environment, skip_or_fail_in_ci, write_script_file
from console_server import ROOT, ConsoleProcess

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")

LIVE_SCRIPT = [
    {"content": "I'll write the page, then look at it.", "tool_calls": [
        {"name": "createOrUpdateFiles", "arguments": {"files": [
            {"path": "index.html", "content": "<!doctype html><title>t</title><h1 id='hello'>Hello from the browser test</h1>"},
            {"path": "notes.md", "content": "line\n" * 200}]}},
        {"name": "summonDragons", "arguments": {"count": 3}}]},
    {"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": "sleep 2; echo slept"}}]},
    {"content": "Done. <task_summary>Browser test page with a greeting</task_summary>"},
]
HOSTILE_SCRIPT = [
    {"content": "<img src=x onerror=\"window.__pwned=1\"><b>not bold</b>", "tool_calls": [
        {"name": "<script>window.__pwned=2</script>", "arguments": "{\"a\": \"<svg onload=window.__pwned=3>\"}"}]},
    {"content": "<task_summary><img src=y onerror=\"window.__pwned=4\">Title</task_summary>"},
]


def chromium_path() -> str | None:
    """PIXIE_CHROMIUM if set (and there), else a Chromium on PATH or where Debian puts it."""
    if os.environ.get("PIXIE_CHROMIUM"):
        return os.environ["PIXIE_CHROMIUM"] if Path(os.environ["PIXIE_CHROMIUM"]).is_file() else None
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found or next((p for p in CHROMIUM_CANDIDATES if Path(p).exists()), None)


def skip_or_fail(reason: str) -> None:
    skip_or_fail_in_ci(f"{reason}: the browser tests need it (Debian: apt-get install chromium)",
                       required_by="PIXIE_REQUIRE_BROWSER")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("Playwright for Python is not installed")
    executable = chromium_path()
    if executable is None:
        skip_or_fail("no Chromium found")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def console(browser, tmp_path_factory):  # after `browser`: no server is started for a skip
    with ConsoleProcess(tmp_path_factory.mktemp("browser-home")) as process:
        yield process


LOADED_MACHINE_CEILING_MS = 180_000


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    # Every wait is for an event (a URL, a selector); the ceiling only bounds a hang. Playwright's
    # 30 s default was reached under `stress --cpu 2` when starting a run loads the engine.
    context.set_default_timeout(LOADED_MACHINE_CEILING_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors  # no script errors on any page


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=True)


def test_the_start_button_waits_for_the_page_script(console, browser):
    """Before runs.js attaches its handler, a click on Start (or Enter in the prompt) would submit
    the form as a plain GET of the page and lose the prompt: the button starts disabled, and
    the script enables it once the handler is in place."""
    without_script = browser.new_context(java_script_enabled=False)
    try:
        bare = without_script.new_page()
        bare.goto(console.url)
        assert bare.locator("#start").is_disabled()
    finally:
        without_script.close()


def test_start_a_run_from_the_page_and_watch_it_live(console, page, tmp_path):
    script = write_script_file(tmp_path / "live.json", LIVE_SCRIPT)
    page.goto(console.url)  # the printed URL: the token becomes a cookie
    assert "token=" not in page.url
    page.fill("#prompt", "Build a greeting page")
    page.fill("#model", f"scripted:{script}")
    page.click("#start")
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]+$"))
    run_id = page.url.rsplit("/", 1)[-1]

    # Live: the timeline fills while the run is still going (the terminal call sleeps 2 s).
    running = page.locator("body:not([data-ended]) .step.running", has_text="RunTool · terminal")
    running.wait_for(timeout=LOADED_MACHINE_CEILING_MS)
    rows_while_running = page.locator("#timeline .step").count()
    assert page.locator('#graph g[data-state="RunTool"].active').count() == 1  # current state lit
    page.wait_for_selector("body[data-ended='SUCCEEDED']", timeout=LOADED_MACHINE_CEILING_MS)
    page.wait_for_selector("#usage tbody tr:nth-child(3)")
    assert page.locator("#timeline .step").count() > rows_while_running

    assert page.locator("h1#title").inner_text() == "Browser test page with a greeting"
    timeline = page.locator("#timeline").inner_text()
    for state in ("CreateSandbox", "AgentTurn", "RunTools", "RunTool · summonDragons", "RunTool · terminal", "GetSandboxUrl"):
        assert state in timeline
    for state in ("CreateSandbox", "AgentTurn", "Router", "RunTools", "RunTool", "GetSandboxUrl", "Done"):
        assert int(page.locator(f'#graph g[data-state="{state}"]').get_attribute("data-visits")) >= 1, state
    assert page.locator('#graph g[data-state="AgentTurn"]').get_attribute("data-visits") == "3"
    assert page.locator('#graph g[data-state="MaxIterationsReached"]').get_attribute("data-visits") == "0"

    # A step's input and output.
    page.locator("#timeline .step", has_text="RunTool · terminal").click()
    assert '"toolCallId": "call_2_0"' in page.locator("#step-input").inner_text()
    assert '"ok": true' in page.locator("#step-output").inner_text()

    # The conversation: text, each tool call by name (the unknown one too), arguments, results.
    conversation = page.locator("#conversation")
    assert "I'll write the page, then look at it." in conversation.inner_text()
    tools = conversation.locator(".tool-name").all_inner_texts()
    assert tools == ["createOrUpdateFiles", "summonDragons", "terminal"]
    dragons = conversation.locator('.tool-call[data-tool="summonDragons"]')
    assert '"count": 3' in dragons.locator(".args").inner_text()
    assert "Error:" in dragons.locator(".result").inner_text()
    assert "slept" in conversation.locator('.tool-call[data-tool="terminal"] .result').inner_text()
    # Long parts are folded: the 200-line file in the arguments opens on a click.
    folded = conversation.locator('.tool-call[data-tool="createOrUpdateFiles"] details.fold')
    assert folded.count() == 1 and folded.get_attribute("open") is None

    # Files with contents, tokens and cost per turn, the preview on its own origin, sandboxed.
    page.locator("#files summary", has_text="index.html").click()
    assert "Hello from the browser test" in page.locator("#files").inner_text()
    assert page.locator("#usage tbody tr").count() == 3
    frame = page.locator("#preview")
    # Its own origin (another port): same-origin for its storage, never the console's.
    assert frame.get_attribute("sandbox") == "allow-scripts allow-forms allow-modals allow-same-origin"
    assert not frame.get_attribute("src").startswith(console.base)
    assert page.frame_locator("#preview").locator("#hello").inner_text(timeout=LOADED_MACHINE_CEILING_MS) == "Hello from the browser test"
    screenshot(page, "run")

    # The runs page lists it, with its title.
    page.goto(console.base + "/")
    row = page.locator(f'#runs tr[data-run-id="{run_id}"]')
    row.wait_for()
    assert "Browser test page with a greeting" in row.inner_text() and "SUCCEEDED" in row.inner_text()
    screenshot(page, "runs")


def test_model_output_is_shown_as_text_never_as_html(console, page, tmp_path):
    script = write_script_file(tmp_path / "hostile.json", HOSTILE_SCRIPT)
    run_id = console.start_run("Be hostile", model=f"scripted:{script}")
    console.wait_for(run_id)
    page.goto(f"{console.base}/runs/{run_id}?token={console.token}")
    page.wait_for_selector("body[data-ended]")
    page.wait_for_selector("#conversation .tool-call")

    assert page.evaluate("window.__pwned") is None
    conversation = page.locator("#conversation")
    assert '<b>not bold</b>' in conversation.inner_text()
    assert conversation.locator("b, img, script, svg").count() == 0
    assert conversation.locator(".tool-name").inner_text() == "<script>window.__pwned=2</script>"
    assert page.locator("h1#title img").count() == 0


def test_a_run_started_with_the_api_shows_on_its_page_after_a_deep_link_with_the_token(console, browser, tmp_path):
    quick = [LIVE_SCRIPT[0], {"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": "echo hi"}}]}, LIVE_SCRIPT[2]]
    script = write_script_file(tmp_path / "late.json", quick)
    run_id = console.start_run("Look later", model=f"scripted:{script}")
    assert console.wait_for(run_id)["status"] == "SUCCEEDED"

    context = browser.new_context()
    try:
        page = context.new_page()
        refused = page.goto(f"{console.base}/runs/{run_id}")
        assert refused.status == 401
        page.goto(f"{console.base}/runs/{run_id}?token={console.token}")
        page.wait_for_selector("body[data-ended='SUCCEEDED']")
        assert page.url == f"{console.base}/runs/{run_id}"
        # A page opened after the run replays it: title, every state, every tool call, the preview.
        assert page.locator("h1#title").inner_text() == "Browser test page with a greeting"
        timeline = page.locator("#timeline").inner_text()
        for state in ("CreateSandbox", "AgentTurn", "RunTools", "GetSandboxUrl"):
            assert state in timeline
        assert page.locator("#timeline .step.running").count() == 0
        tools = page.locator("#conversation .tool-name").all_inner_texts()
        assert tools == ["createOrUpdateFiles", "summonDragons", "terminal"]
        assert page.frame_locator("#preview").locator("#hello").inner_text(timeout=LOADED_MACHINE_CEILING_MS) == "Hello from the browser test"
        # The follow-up box is there exactly when this pixie can continue a run.
        assert page.locator("#follow-up").is_visible() == console.client.get("/api/config").json()["continue"]
    finally:
        context.close()


def test_retried_steps_show_their_attempts_and_errors(console, page, tmp_path):
    """A run made by `pixie run` with injected Lambda faults, in the console's PIXIE_HOME."""
    import json
    import subprocess

    from console_server import PIXIE

    made = subprocess.run(
        [str(PIXIE), "run", "--no-serve", "--json", "--inject-faults", "0.3", "--fault-seed", "7",
         "--model", "scripted:examples/hello.json", "Retry me"],
        capture_output=True, text=True, cwd=ROOT, env=bare_environment(PIXIE_HOME=str(console.home), PATH="/usr/bin:/bin"), timeout=180,
    )
    assert made.returncode == 0, made.stderr
    run_id = json.loads(made.stdout)["runId"]
    history = console.client.get(f"/api/runs/{run_id}").json()["history"]
    failed = sum(1 for e in history if e["type"] == "TaskFailed")
    assert failed > 0  # the seed injects faults

    page.goto(f"{console.base}/runs/{run_id}?token={console.token}")
    page.wait_for_selector("body[data-ended='SUCCEEDED']")
    retried = page.locator("#timeline .step.had-errors")
    assert retried.count() >= 1
    assert page.locator("#timeline .step-errors .error").count() == failed  # one line per failed attempt
    first = retried.first
    assert "attempts" in first.locator(".step-attempts").inner_text()
    assert "Lambda.ServiceException" in first.inner_text()
    first.click()
    assert "failed: Lambda.ServiceException" in page.locator("#step-attempts").inner_text()
    assert page.locator("#graph g.failed").count() >= 1


def _page_script(path: Path, marker: str) -> Path:
    html = f"<!doctype html>\n<html>\n<body>\n<h1>{marker}</h1>\n</body>\n</html>\n"
    return write_script_file(path, [
        {"content": "Writing.", "tool_calls": [{"name": "createOrUpdateFiles", "arguments": {"files": [{"path": "index.html", "content": html}]}}]},
        {"content": f"<task_summary>{marker}</task_summary>"},
    ])


def test_a_run_page_shows_its_diff_and_opens_an_older_version(console, page, tmp_path):
    first = console.start_run("Page A", model=f"scripted:{_page_script(tmp_path / 'va.json', 'MARKER-A')}")
    assert console.wait_for(first)["status"] == "SUCCEEDED"
    second = console.start_run("Page B", model=f"scripted:{_page_script(tmp_path / 'vb.json', 'MARKER-B')}", continueFrom=first)
    assert console.wait_for(second)["status"] == "SUCCEEDED"

    page.goto(f"{console.base}/runs/{second}?token={console.token}")
    change = page.locator('#changes details[data-path="index.html"]')
    change.wait_for()
    assert "modified index.html" in change.locator("summary").inner_text()
    change.locator("summary").click()
    patch = change.locator("pre.diff").inner_text()
    assert "-<h1>MARKER-A</h1>" in patch and "+<h1>MARKER-B</h1>" in patch
    assert first in page.locator("#changes-against").inner_text()
    # The timeline says which files each tool call touched.
    touched = page.locator(".step", has_text="RunTool · createOrUpdateFiles").locator(".step-files")
    touched.wait_for()
    assert touched.inner_text() == "~index.html"

    page.goto(f"{console.base}/runs/{first}?token={console.token}")
    page.locator("#open-version").wait_for(state="visible")
    page.locator("#open-version").click()
    link = page.locator("#version-link")
    link.wait_for(state="visible")
    url = link.get_attribute("href")
    assert url.startswith("http://127.0.0.1:") and not url.startswith(console.base)  # another origin
    assert page.locator("#preview").get_attribute("src") == url
    with urllib.request.urlopen(url, timeout=30) as response:
        assert "MARKER-A" in response.read().decode()  # the older version, though its child changed the page


def test_the_stop_button_stops_a_running_run_and_only_a_run_that_succeeded_offers_a_follow_up(console, page, tmp_path):
    script = write_script_file(tmp_path / "slow.json", [
        {"content": "Waiting.", "tool_calls": [{"name": "terminal", "arguments": {"command": "sleep 619"}}]},
        {"content": "<task_summary>never</task_summary>"},
    ])
    run_id = console.start_run("Stop me", model=f"scripted:{script}")
    page.goto(f"{console.base}/runs/{run_id}?token={console.token}")
    page.wait_for_selector("#conversation .tool-call")  # its command is running
    stop = page.locator("#stop")
    assert stop.is_visible() and not page.locator("#follow-up").is_visible()  # no follow-up on a running run

    stop.click()

    page.wait_for_selector("body[data-ended='ABORTED']")
    page.wait_for_selector("#stop", state="hidden")
    assert not page.locator("#follow-up").is_visible()  # nor on a stopped one
    assert console.client.get(f"/api/runs/{run_id}").json()["status"] == "ABORTED"

    # Rerun: a new run with the same prompt and model, on its own page.
    page.click("#rerun")
    page.wait_for_url(lambda url: "/runs/" in url and not url.endswith(run_id))
    rerun_id = page.url.rsplit("/", 1)[-1]
    rerun = console.client.get(f"/api/runs/{rerun_id}").json()
    assert rerun["prompt"] == "Stop me" and rerun["model"] == f"scripted:{script}"
    assert console.client.post(f"/api/runs/{rerun_id}/stop", timeout=120).status_code in (200, 409)


def _counter_app(console_base: str) -> str:
    """A page that counts clicks in localStorage, and tries the console's API from inside the frame."""
    return f"""<!doctype html><title>counter</title>
<button id="add">add</button> <span id="count"></span> <span id="attack"></span>
<script>
const shown = document.getElementById("count");
shown.textContent = localStorage.getItem("n") || "0";
document.getElementById("add").onclick = () => {{
  const next = Number(localStorage.getItem("n") || 0) + 1;
  localStorage.setItem("n", String(next));
  shown.textContent = String(next);
}};
const api = "{console_base}/api/runs";
Promise.all([
  fetch(api, {{method: "POST", credentials: "include", headers: {{"Content-Type": "application/json"}},
               body: JSON.stringify({{prompt: "started by the preview"}})}}).then(r => "post " + r.status, () => "post blocked"),
  fetch(api, {{credentials: "include"}}).then(r => r.text()).then(t => "read " + t.length, () => "read blocked"),
]).then(results => {{ document.getElementById("attack").textContent = results.join(", "); }});
</script>"""


def test_a_localstorage_app_works_in_the_preview_frame_which_cannot_use_the_console(console, page, tmp_path):
    script = write_script_file(tmp_path / "counter.json", [
        {"content": None, "tool_calls": [{"name": "createOrUpdateFiles", "arguments": {"files": [
            {"path": "index.html", "content": _counter_app(console.base)}]}}]},
        {"content": "<task_summary>A counter</task_summary>"},
    ])
    run_id = console.start_run("Build a counter", model=f"scripted:{script}")
    assert console.wait_for(run_id)["status"] == "SUCCEEDED"
    page.goto(f"{console.base}/runs/{run_id}?token={console.token}")
    frame = page.frame_locator("#preview")
    frame.locator("#count").wait_for()
    assert frame.locator("#count").inner_text() == "0"
    frame.locator("#add").click()
    frame.locator("#add").click()
    assert frame.locator("#count").inner_text() == "2"

    # Reloaded, the frame still has its count: its storage is its own origin's.
    page.evaluate("const f = document.getElementById('preview'); f.src = f.src")
    frame.locator("#count", has_text="2").wait_for()

    # The app's own script could neither start a run nor read the console's API.
    attack = frame.locator("#attack")
    frame.locator("#attack:not(:empty)").wait_for()
    assert attack.inner_text() == "post blocked, read blocked"
    prompts = [r.get("prompt") for r in console.client.get("/api/runs").json()["runs"]]
    assert "started by the preview" not in prompts
