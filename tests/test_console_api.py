"""The console's API as scripts and pages use it: `pixie ui` as a real process (warm embedded
engine, scripted models), plus its parts in-process (graph from the ASL, event channel, views)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import bare_environment, write_script_file
from console_server import PIXIE, ConsoleProcess
from lambdas.logic import progress
from pixie.console.channel import MAX_PROGRESS_ITEMS, RunChannel, replay
from pixie.console.graph import graph
from pixie.console.views import run_row, turn_usage
from statemachine.engine import ASL_PATH

FILES_THEN_UNKNOWN_TOOL = [
    {"content": "Writing the page.", "tool_calls": [
        {"name": "createOrUpdateFiles", "arguments": {"files": [{"path": "index.html", "content": "<h1>Console test</h1>"}]}},
        {"name": "summonDragons", "arguments": {"count": 3}},
    ]},
    {"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": "cat index.html"}}]},
    {"content": "Done. <task_summary>A console test page</task_summary>"},
]


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    with ConsoleProcess(tmp_path_factory.mktemp("console-home")) as process:
        yield process


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> Path:
    return write_script_file(tmp_path_factory.mktemp("scripts") / "page.json", FILES_THEN_UNKNOWN_TOOL)


def states_entered(history: list[dict]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]


def sse_items(response: httpx.Response) -> list[dict]:
    """Parses a server-sent-event stream until the run's `end` event."""
    items, current = [], {}
    for line in response.iter_lines():
        if not line:
            if "event" in current:
                items.append({**current, "data": json.loads(current["data"])})
                if current["event"] == "end":
                    return items
            current = {}
        elif not line.startswith(":") and ":" in line:
            key, _, value = line.partition(":")
            current[key] = value.removeprefix(" ")
    return items


# --- access: token, Host, Origin ------------------------------------------------------------
def test_requests_without_the_token_are_refused(console):
    bare = httpx.Client(base_url=console.base, timeout=10)
    for path in ("/", "/api/runs", "/api/config", "/static/run.js", "/runs/x", "/api/runs/x/events"):
        assert bare.get(path).status_code == 401, path
    assert bare.post("/api/runs", json={"prompt": "x"}).status_code == 401
    wrong = bare.get("/api/runs", headers={"Authorization": "Bearer " + "A" * len(console.token)})
    assert wrong.status_code == 401
    assert bare.get("/api/runs", params={"token": console.token[:-1]}).status_code == 401


def test_the_printed_url_sets_a_cookie_and_redirects_to_the_clean_page(console):
    browser_like = httpx.Client(base_url=console.base, timeout=10)
    first = browser_like.get(f"/runs/abc?token={console.token}&x=1")
    assert first.status_code == 303
    assert first.headers["location"] == "/runs/abc?x=1"  # the token leaves the address bar
    cookie = first.headers["set-cookie"]
    assert console.token in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = browser_like.get("/runs/abc")  # the cookie jar now holds the token
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"


def test_foreign_host_or_origin_is_refused_even_with_the_token(console):
    assert console.client.get("/api/runs").status_code == 200
    port = console.host.rsplit(":", 1)[1]
    rebinding = console.client.get("/api/runs", headers={"Host": f"attacker.example:{port}"})
    assert rebinding.status_code == 403
    assert console.client.get("/api/runs", headers={"Host": "127.0.0.1:1"}).status_code == 403
    for origin in ("https://attacker.example", "null", f"http://127.0.0.1:{int(port) + 1}"):
        response = console.client.post("/api/runs", json={"prompt": "x"}, headers={"Origin": origin})
        assert response.status_code == 403, origin
    cross_site = console.client.get("/api/runs", headers={"Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 403
    same = console.client.get("/api/runs", headers={"Origin": f"http://{console.host}", "Host": f"localhost:{port}"})
    assert same.status_code == 200


def test_no_cors_headers(console):
    response = console.client.options("/api/runs", headers={
        "Origin": f"http://{console.host}", "Access-Control-Request-Method": "POST"})
    assert not any(h.lower().startswith("access-control-") for h in response.headers)
    listed = console.client.get("/api/runs", headers={"Origin": f"http://{console.host}"})
    assert "access-control-allow-origin" not in listed.headers


def test_pages_cannot_be_framed_by_other_sites_and_run_no_inline_script(console):
    """Clickjacking: no other site may frame the console; model output shown as text cannot run
    even if it reached the page as HTML: scripts only from the console's own files."""
    for path in ("/", "/runs/some-run", "/api/runs"):
        policy = console.client.get(path).headers["content-security-policy"]
        directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
        assert directives["frame-ancestors"] == ["'none'"], policy
        assert directives["script-src"] == ["'self'"], policy


# --- runs ----------------------------------------------------------------------------------
def test_a_scripted_run_started_through_the_api_succeeds_with_its_choices(console, script):
    run_id = console.start_run("Make a console test page", model=f"scripted:{script}", maxIterations=5)

    record = console.wait_for(run_id)

    assert record["status"] == "SUCCEEDED", record
    assert record["model"] == f"scripted:{script}"  # the per-run model reached CreateSandbox
    assert record["title"] == "A console test page"
    assert record["files"] == {"index.html": "<h1>Console test</h1>"}
    assert {"CreateSandbox", "AgentTurn", "RunTools", "RunTool", "GetSandboxUrl"} <= set(states_entered(record["history"]))
    calls = [c["function"]["name"] for m in record["conversation"] for c in m.get("tool_calls") or []]
    assert calls == ["createOrUpdateFiles", "summonDragons", "terminal"]
    [unknown_result] = [m["content"] for m in record["conversation"] if m.get("tool_call_id") == "call_1_1"]
    assert unknown_result.startswith("Error:") and "summonDragons" in unknown_result
    assert [t["turn"] for t in record["turns"]] == [1, 2, 3]
    assert all(t["inputTokens"] > 0 and t["costUsd"] == 0 for t in record["turns"])
    assert record["durationS"] > 0 and record["startedAt"]
    # Saved as `pixie run` saves it: `pixie show --json` reads the same record.
    shown = subprocess.run([str(PIXIE), "show", run_id, "--json"], capture_output=True, text=True,
                           env=bare_environment(PIXIE_HOME=str(console.home), PATH="/usr/bin:/bin"), timeout=60)
    assert shown.returncode == 0, shown.stderr
    saved = json.loads(shown.stdout)
    assert saved["status"] == "SUCCEEDED" and saved["conversation"] == record["conversation"]
    assert httpx.get(record["previewUrl"], timeout=10).text == "<h1>Console test</h1>"


def test_max_iterations_chosen_per_run_is_enforced(console, script):
    run_id = console.start_run("Stop me early", model=f"scripted:{script}", maxIterations=1)
    record = console.wait_for(run_id)
    assert record["status"] == "FAILED" and record["error"] == "MaxIterationsReached"
    assert record["iterations"] == 1


def test_a_budget_chosen_per_run_is_enforced_and_shown(console, script):
    run_id = console.start_run("Spend little", model=f"scripted:{script}", maxTokens=1, budgetUsd=5)
    record = console.wait_for(run_id)
    assert record["status"] == "FAILED" and record["error"] == "BudgetExceeded", record["cause"]
    assert record["iterations"] == 1 and "1 tokens" in record["cause"]
    assert record["maxTokens"] == 1 and record["budgetUsd"] == 5


def test_the_done_check_chosen_per_run(console, tmp_path_factory):
    """The console's request turns the done-check off (check: false) or gives it a command."""
    claims_done = [{"content": "<task_summary>Done</task_summary>",
                    "tool_calls": [{"name": "terminal", "arguments": {"command": "rm index.html"}}]}]
    unchecked = write_script_file(tmp_path_factory.mktemp("scripts") / "claims.json", claims_done)
    record = console.wait_for(console.start_run("Claim it", model=f"scripted:{unchecked}", check=False))
    assert record["status"] == "SUCCEEDED" and record["iterations"] == 1, record["cause"]

    summaries = write_script_file(tmp_path_factory.mktemp("scripts") / "sums.json", [{"content": "<task_summary>x</task_summary>"}] * 4)
    record = console.wait_for(console.start_run("Check it", model=f"scripted:{summaries}", checkCommand="echo nope; false"))
    assert record["status"] == "FAILED" and record["error"] == "CheckFailed" and "nope" in record["cause"]
    response = console.client.post("/api/runs", json={"prompt": "x", "check": "no"})
    assert response.status_code == 400 and "check" in response.json()["error"]


def test_events_stream_live_then_replay_and_resume(console, script):
    run_id = console.start_run("Stream me", model=f"scripted:{script}")
    with console.client.stream("GET", f"/api/runs/{run_id}/events") as live:
        assert live.headers["content-type"].startswith("text/event-stream")
        items = sse_items(live)
    assert items[-1]["event"] == "end" and items[-1]["data"]["status"] == "SUCCEEDED"
    history = [i["data"] for i in items if i["event"] == "history"]
    assert history[0]["type"] == "ExecutionStarted" and history[-1]["type"] == "ExecutionSucceeded"
    assert [int(i["id"]) for i in items] == list(range(1, len(items) + 1))
    assert [e["id"] for e in history] == sorted(e["id"] for e in history)  # in order, none twice

    # A client that comes late gets the same events first; one that resumes, only the rest.
    with console.client.stream("GET", f"/api/runs/{run_id}/events") as late:
        assert [i["data"] for i in sse_items(late)] == [i["data"] for i in items]
    with console.client.stream("GET", f"/api/runs/{run_id}/events", headers={"Last-Event-ID": "5"}) as resumed:
        rest = sse_items(resumed)
    assert [int(i["id"]) for i in rest][0] == 6 and rest[-1]["event"] == "end"


def test_three_runs_at_once_all_succeed(console, tmp_path):
    scripts = []
    for n in range(3):
        turns = [
            {"content": None, "tool_calls": [{"name": "createOrUpdateFiles", "arguments": {
                "files": [{"path": f"run{n}.txt", "content": f"run {n}"}]}}]},
            {"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": "sleep 0.5; ls"}}]},
            {"content": f"<task_summary>Parallel run {n}</task_summary>"},
        ]
        scripts.append(write_script_file(tmp_path / f"parallel{n}.json", turns))
    run_ids: list[str] = [""] * 3

    def start(n: int) -> None:
        run_ids[n] = console.start_run(f"parallel {n}", model=f"scripted:{scripts[n]}")

    threads = [threading.Thread(target=start, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(run_ids)) == 3
    records = [console.wait_for(run_id) for run_id in run_ids]
    for n, record in enumerate(records):
        assert record["status"] == "SUCCEEDED", record
        assert record["files"] == {f"run{n}.txt": f"run {n}"}  # each run in its own sandbox
        assert record["title"] == f"Parallel run {n}"
    listed = {row["runId"] for row in console.client.get("/api/runs").json()["runs"]}
    assert set(run_ids) <= listed


def saved_idempotency_records(home: Path, run_id: str) -> set[tuple[str, str]]:
    """(pk, sk) of the idempotency records in a run's saved state (what `pixie resume` loads)."""
    saved = json.loads((home / "network-state" / f"{run_id}.json").read_text())
    return {(i["pk"]["S"], i["sk"]["S"]) for i in saved["items"] if i["pk"]["S"].startswith("IDEMPOTENCY#")}


def test_a_runs_saved_state_holds_its_own_idempotency_records_not_other_runs(console, script):
    """The console's runs share one engine and one table. A run's saved state holds "its RUN#<runId>
    items and the idempotency records of its steps" (pixie/run_journal.py; README, Resume), not
    those of every run the console ran before it: otherwise each step's save grows with the whole
    session, and a run removed with `pixie rm` lives on (its run id, tool calls, usage) in the saved
    state of every later run."""
    first = console.wait_for(console.start_run("First of two", model=f"scripted:{script}"))
    second = console.wait_for(console.start_run("Second of two", model=f"scripted:{script}"))
    assert first["status"] == second["status"] == "SUCCEEDED", (first, second)

    firsts = saved_idempotency_records(console.home, first["runId"])
    seconds = saved_idempotency_records(console.home, second["runId"])
    assert firsts and seconds  # each run's steps saved theirs
    assert not firsts & seconds, f"{len(firsts & seconds)} of the first run's idempotency records are in the second's saved state"


def test_runs_made_by_pixie_run_in_the_same_home_are_listed(console, script):
    made_ids = []
    for prompt in ("Made on the command line first", "Made on the command line"):
        made = subprocess.run(
            [str(PIXIE), "run", "--no-serve", "--json", "--model", f"scripted:{script}", prompt],
            capture_output=True, text=True, env=bare_environment(PIXIE_HOME=str(console.home), PATH="/usr/bin:/bin"), timeout=120,
        )
        assert made.returncode == 0, made.stderr
        made_ids.append(json.loads(made.stdout)["runId"])
    run_id = made_ids[-1]

    runs = console.client.get("/api/runs").json()["runs"]
    [row] = [r for r in runs if r["runId"] == run_id]
    assert row["status"] == "SUCCEEDED" and row["prompt"] == "Made on the command line"
    assert row["title"] == "A console test page" and row["turns"] == 3 and row["tokens"]["input"] > 0
    started = [r["startedAt"] for r in runs]
    assert started == sorted(started, reverse=True)  # newest first
    listed = [r["runId"] for r in runs]
    assert listed.index(made_ids[1]) < listed.index(made_ids[0])

    # What the run changed, as `pixie diff RUN --json`; no kept version: 404.
    diff = console.client.get(f"/api/runs/{run_id}/diff")
    assert diff.status_code == 200 and diff.json()["runId"] == run_id and diff.json()["files"], diff.text
    assert console.client.get("/api/runs/local-0000000000000000/diff").status_code == 404

    record = console.client.get(f"/api/runs/{run_id}").json()
    # That process has ended, so the console serves the preview again from the saved sandbox.
    assert httpx.get(record["previewUrl"], timeout=10).text == "<h1>Console test</h1>"
    with console.client.stream("GET", f"/api/runs/{run_id}/events") as replayed:
        items = sse_items(replayed)
    assert [i["data"] for i in items if i["event"] == "history"] == record["history"]


def test_projects_continue_across_the_console_and_pixie_run(console, script, tmp_path):
    """Come back to a project later, from either side: the console continues a run `pixie run`
    made, and `pixie run --continue` continues the console's follow-up (its state is on disk)."""
    environment = bare_environment(PIXIE_HOME=str(console.home), PATH="/usr/bin:/bin", **console.env)
    if os.environ.get("PYTHONPATH"):  # a checkout other than the installed one
        environment["PYTHONPATH"] = os.environ["PYTHONPATH"]
    made = subprocess.run(
        [str(PIXIE), "run", "--no-serve", "--json", "--model", f"scripted:{script}", "A page"],
        capture_output=True, text=True, env=environment, timeout=120,
    )
    assert made.returncode == 0, made.stderr
    parent = json.loads(made.stdout)["runId"]
    read_it = write_script_file(tmp_path / "read.json", [
        {"content": None, "tool_calls": [{"name": "readFiles", "arguments": {"files": ["index.html"]}}]},
        {"content": "<task_summary>Read the page</task_summary>"},
    ])

    follow_up = console.wait_for(console.start_run("Read the page back", model=f"scripted:{read_it}", continueFrom=parent))

    assert follow_up["status"] == "SUCCEEDED", follow_up
    [read] = [m["content"] for m in follow_up["conversation"] if m["role"] == "tool"]
    assert "<h1>Console test</h1>" in read
    assert follow_up["conversation"][0]["content"] == "A page"  # the earlier run comes first
    again = subprocess.run(
        [str(PIXIE), "run", "--no-serve", "--json", "--continue", follow_up["runId"], "--model", f"scripted:{read_it}", "Once more"],
        capture_output=True, text=True, env=environment, timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["files"] == {"index.html": "<h1>Console test</h1>"}
    unknown = console.client.post("/api/runs", json={"prompt": "more", "continueFrom": "nosuchrun"})
    assert unknown.status_code == 400 and "nosuchrun" in unknown.text


@pytest.mark.parametrize("body, message", [
    ({}, "detail.value"),
    ({"prompt": "   "}, "empty"),
    ({"prompt": 42}, "detail.value"),
    ({"prompt": "x", "colour": "red"}, "unknown field 'colour'"),
    ({"prompt": "x", "model": "gpt 4"}, "unknown --model 'gpt 4'"),
    ({"prompt": "x", "model": ["openai:gpt-4.1"]}, "detail.model"),
    ({"prompt": "x", "sandbox": "docker"}, "detail.sandbox"),
    ({"prompt": "x", "maxIterations": 0}, "detail.maxIterations"),
    ({"prompt": "x", "maxIterations": "3"}, "detail.maxIterations"),
    ({"prompt": "x", "model": "scripted:/no/such/script.json"}, "does not exist"),
    ({"prompt": "x", "continueFrom": "../etc"}, "continueFrom"),
])
def test_bad_requests_get_a_clear_error_and_start_nothing(console, body, message):
    before = len(console.client.get("/api/runs").json()["runs"])
    response = console.client.post("/api/runs", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert len(console.client.get("/api/runs").json()["runs"]) == before


def test_not_json_and_unknown_runs(console):
    assert console.client.post("/api/runs", content=b"{nope", headers={"Content-Type": "application/json"}).status_code == 400
    assert console.client.get("/api/runs/nosuchrun").status_code == 404
    assert console.client.get("/api/runs/no..such/events").status_code == 404
    assert console.client.get("/api/runs/%2E%2E%2Fconsole").status_code == 404


def test_config_says_what_the_console_offers(console):
    config = console.client.get("/api/config").json()
    for _ in range(600):  # the engine warms up in the background: wait for it to say it is ready
        if config["ready"] or config["startupError"]:
            break
        time.sleep(0.1)
        config = console.client.get("/api/config").json()
    assert config["mode"] == "local" and config["choices"] is True and config["ready"] is True
    from lambdas.logic.events import HelloWorldDetail

    # The follow-up box appears exactly when the event model can carry continueFrom.
    assert config["continue"] == ("continueFrom" in HelloWorldDetail.model_fields)
    if not config["continue"]:
        response = console.client.post("/api/runs", json={"prompt": "more", "continueFrom": "abc123"})
        assert response.status_code == 400 and "not available" in response.json()["error"]


# --- parts, in-process -----------------------------------------------------------------------
def test_the_graph_is_the_asl_file():
    definition = json.loads(ASL_PATH.read_text())
    drawn = graph(definition)
    nested = set(definition["States"]["RunTools"]["ItemProcessor"]["States"])
    assert {n["id"] for n in drawn["nodes"]} == set(definition["States"]) | nested
    by_id = {n["id"]: n for n in drawn["nodes"]}
    assert by_id["RunTool"]["parent"] == "RunTools" and by_id["CreateSandbox"]["start"]
    edges = {(e["from"], e["to"], e["kind"]): e for e in drawn["edges"]}
    assert edges[("Router", "RunTools", "choice")]["label"] == "toolCalls[0] present"
    assert edges[("Router", "MaxIterationsReached", "choice")]["label"] == "iteration ≥ maxIterations"
    assert edges[("RunTools", "AgentTurn", "next")]["back"] and edges[("Router", "AgentTurn", "default")]["back"]
    assert not edges[("AgentTurn", "Router", "next")]["back"]
    assert ("CreateSandbox", "InvalidEvent", "catch") in edges
    # The done-check between the summary and the result, and its CheckFailed ending.
    assert ("Router", "CheckResult", "choice") in edges and ("CheckVerdict", "CheckFailed", "choice") in edges
    assert ("CheckVerdict", "GetSandboxUrl", "choice") in edges and ("CheckFailed", "CleanupSandbox", "next") in edges
    # Layered top-down along the flow; nested states inside their Map's box.
    assert by_id["CreateSandbox"]["y"] < by_id["AgentTurn"]["y"] < by_id["Router"]["y"] < by_id["GetSandboxUrl"]["y"] < by_id["Done"]["y"]
    assert by_id["CleanupSandbox"]["y"] < by_id["RunFailed"]["y"]
    box, child = by_id["RunTools"], by_id["RunTool"]
    assert box["x"] < child["x"] and child["y"] + child["h"] <= box["y"] + box["h"]
    # Another definition is drawn from its own states, not a copy of pixie's.
    other = graph({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Succeed"}}})
    assert [n["id"] for n in other["nodes"]] == ["A", "B"] and other["edges"][0]["to"] == "B"


def test_channel_replays_to_late_clients_and_resumes_after_an_id():
    channel = RunChannel("r1")
    channel.history({"id": 1, "type": "ExecutionStarted"})
    channel.progress("model.text", {"text": "Hel"})

    async def collect(after: int) -> list[dict]:
        return [item async for item in channel.stream(after)]

    async def scenario() -> tuple[list[dict], list[dict]]:
        live = asyncio.ensure_future(collect(0))
        await asyncio.sleep(0.05)
        threading.Thread(target=lambda: (channel.progress("some.future_kind", {"x": 1}), channel.end("SUCCEEDED"))).start()
        return await asyncio.wait_for(live, 5), await collect(2)

    everything, resumed = asyncio.run(scenario())
    assert [i["type"] for i in everything] == ["history", "progress", "progress", "end"]
    assert everything[2]["data"] == {"kind": "some.future_kind", "x": 1}  # unknown kinds pass through
    assert [i["seq"] for i in resumed] == [3, 4]
    channel.history({"id": 2})  # nothing after the end
    assert len(channel.items) == 4
    assert [i["type"] for i in replay("r2", [{"id": 1}], "FAILED", "Boom").items] == ["history", "end"]


def test_progress_of_every_kind_reaches_its_run_only_and_is_bounded(tmp_path):
    from pixie.console.backends import LocalRuns

    runs = LocalRuns(tmp_path, "scripted:x")
    mine, other = RunChannel("mine"), RunChannel("other")
    runs.channels.update(mine=mine, other=other)
    unsubscribe = progress.subscribe(runs._on_progress)
    try:
        progress.emit("mine", "model.text", text="Hi")
        progress.emit("mine", "command.output", stream="stdout", text="ok\n")
        progress.emit("mine", "brand.new_kind", value=[1, 2])
        progress.emit("nobody", "model.text", text="lost")
    finally:
        unsubscribe()
    assert [i["data"]["kind"] for i in mine.items] == ["model.text", "command.output", "brand.new_kind"]
    assert mine.items[2]["data"]["value"] == [1, 2] and other.items == []
    for _ in range(MAX_PROGRESS_ITEMS + 5):
        mine.progress("model.text", {"text": "x"})
    mine.end("SUCCEEDED")
    assert mine.items[-1]["data"]["progressDropped"] == 8


def test_tokens_and_cost_per_turn_from_the_history():
    def exited(turn: int, tokens_in: int, tokens_out: int, cached: int = 0) -> dict:
        output = {"iteration": turn, "usage": {"inputTokens": tokens_in, "outputTokens": tokens_out, "cachedInputTokens": cached}}
        return {"type": "TaskStateExited", "stateExitedEventDetails": {"name": "AgentTurn", "output": json.dumps(output)}}

    history = [
        {"type": "ExecutionStarted", "timestamp": "2026-11-26T10:00:00+00:00",
         "executionStartedEventDetails": {"input": json.dumps({"detail": {"value": "a prompt"}})}},
        exited(1, 1_000_000, 0), exited(2, 0, 500_000), exited(3, 1_000_000, 0, cached=1_000_000),
        {"type": "ExecutionFailed", "timestamp": "2026-11-26T10:00:12.5+00:00"},
    ]
    assert turn_usage(history, "openai:gpt-4.1") == [
        {"turn": 1, "inputTokens": 1_000_000, "cachedInputTokens": 0, "outputTokens": 0, "costUsd": 2.0},
        {"turn": 2, "inputTokens": 0, "cachedInputTokens": 0, "outputTokens": 500_000, "costUsd": 4.0},
        # Cached input at gpt-4.1's cached price, a quarter of the input price.
        {"turn": 3, "inputTokens": 1_000_000, "cachedInputTokens": 1_000_000, "outputTokens": 0, "costUsd": 0.5},
    ]
    row = run_row({"runId": "r", "status": "FAILED", "model": "openai:gpt-4.1", "history": history})
    assert row["costUsd"] == 6.5 and row["durationS"] == 12.5 and row["prompt"] == "a prompt"
    assert run_row({"runId": "r", "status": "FAILED", "model": "somebody:else", "history": history})["costUsd"] is None


def test_stopping_the_console_stops_its_runs_and_saves_them(tmp_path):
    script = write_script_file(tmp_path / "slow.json", [
        {"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": "sleep 60"}}]},
        {"content": "<task_summary>never</task_summary>"},
    ])
    with ConsoleProcess(tmp_path / "home") as process:
        run_id = process.start_run("Sleep a while", model=f"scripted:{script}")
        deadline = time.monotonic() + 60
        while "RunTool" not in states_entered(process.client.get(f"/api/runs/{run_id}").json()["history"]):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    # Ctrl-C (the fixture's SIGINT): the command was killed, the run failed through its cleanup.
    assert process.proc.returncode == 0
    saved = json.loads((tmp_path / "home" / "runs" / f"{run_id}.json").read_text())
    assert saved["status"] == "FAILED" and saved["error"] == "Interrupted"
    assert "CleanupSandbox" in states_entered(saved["history"])
