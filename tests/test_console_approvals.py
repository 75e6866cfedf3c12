"""Approvals in the console: POST /api/runs with `approve` (checked as `pixie run --approve` is),
the run page's Approve / Deny buttons (in Chromium), POST /api/runs/ID/approve and /deny, and
`pixie approve` from another shell for a console run."""

from __future__ import annotations

import json
import subprocess
import time

from conftest import bare_environment, write_script_file
from console_server import PIXIE
from test_console_browser import LOADED_MACHINE_CEILING_MS, browser, console, page, screenshot  # noqa: F401 - fixtures

TOUCH = {"content": "Touching.", "tool_calls": [{"name": "terminal", "arguments": {"command": "touch marker && echo touched"}}]}
SUMMARY = {"content": "<task_summary>Touched</task_summary>"}
WAIT_S = 120


def waiting(console, run_id: str) -> dict:
    """The run's record once it waits for approval (an event: its pending calls are recorded)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        record = console.client.get(f"/api/runs/{run_id}").json()
        assert record["status"] == "RUNNING", record.get("cause")
        if record.get("pendingApproval"):
            return record
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} never waited for approval")


def tool_results(record: dict) -> list[str]:
    return [m["content"] for m in record["conversation"] if m["role"] == "tool"]


def test_the_approve_button_runs_the_waiting_command(console, page, tmp_path):
    script = write_script_file(tmp_path / "touch.json", [TOUCH, SUMMARY])
    page.goto(console.url)
    page.fill("#prompt", "Touch a file")
    page.fill("#model", f"scripted:{script}")
    page.select_option("#approve", "commands")
    page.click("#start")
    page.wait_for_url(lambda url: "/runs/" in url)
    page.wait_for_selector("#approval:not([hidden])", timeout=LOADED_MACHINE_CEILING_MS)
    calls = page.locator("#approval-calls li")
    assert calls.count() == 1 and "touch marker" in calls.inner_text() and "terminal" in calls.inner_text()
    assert page.locator("body[data-ended]").count() == 0  # it waits: it has not ended
    screenshot(page, "approval")
    page.click("#approve")
    page.wait_for_selector("body[data-ended='SUCCEEDED']", timeout=LOADED_MACHINE_CEILING_MS)
    assert page.locator("#approval").is_hidden()
    assert "touched" in page.locator('#conversation .tool-call[data-tool="terminal"] .result').inner_text()
    run_id = page.url.rsplit("/", 1)[-1]
    record = console.client.get(f"/api/runs/{run_id}").json()
    assert record["approve"] == "commands" and record["pendingApproval"] is None


def test_deny_through_the_api_and_pixie_approve_from_another_shell(console, tmp_path):
    script = write_script_file(tmp_path / "touch.json", [TOUCH, SUMMARY])
    refused = console.client.post("/api/runs", json={"prompt": "x", "model": f"scripted:{script}", "approve": "some"})
    assert refused.status_code == 400 and "approve" in refused.json()["error"]
    refused = console.client.post("/api/runs", json={"prompt": "x", "model": f"scripted:{script}", "approvalTimeoutSeconds": 0})
    assert refused.status_code == 400

    denied = console.start_run("Touch", model=f"scripted:{script}", approve="all")
    assert waiting(console, denied)["pendingApproval"]["calls"][0]["name"] == "terminal"
    bad = console.client.post(f"/api/runs/{denied}/deny", json={"reason": 3})
    assert bad.status_code == 400
    answer = console.client.post(f"/api/runs/{denied}/deny", json={"reason": "not on my machine"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"runId": denied, "decision": "denied", "calls": 1}
    record = console.wait_for(denied, WAIT_S)
    assert record["status"] == "SUCCEEDED"
    assert tool_results(record) == ["Error: this terminal call was not run: the user denied it; reason: not on my machine."]
    again = console.client.post(f"/api/runs/{denied}/approve")
    assert again.status_code == 409  # nothing waits any more

    approved = console.start_run("Touch", model=f"scripted:{script}", approve="commands")
    waiting(console, approved)
    shell = subprocess.run([str(PIXIE), "approve", approved, "--json"], capture_output=True, text=True, timeout=300,
                           env=bare_environment(PIXIE_HOME=str(console.home), PATH="/usr/bin:/bin"), stdin=subprocess.DEVNULL)
    assert shell.returncode == 0, shell.stderr
    assert json.loads(shell.stdout)["decision"] == "approved"
    record = console.wait_for(approved, WAIT_S)
    assert record["status"] == "SUCCEEDED" and tool_results(record)[0].startswith("exit code 0")
