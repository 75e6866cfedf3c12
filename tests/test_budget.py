"""Budgets: a run's model spend (priced from the one price table) and tokens, checked before
every model call; a run that reached its budget ends BudgetExceeded with no further model request,
and `pixie resume RUN --budget-usd N` carries it on."""

from __future__ import annotations

import json

import pytest

from lambdas.logic.sandboxes.local import stop_all_previews
from openai_stub import OpenAIStub, chat_completion
from pixie.local_run import RunOptions, resume_locally, run_locally

WRITE_PAGE = json.dumps({"files": [{"path": "index.html", "content": "<h1>hi</h1>"}]})


@pytest.fixture
def stub(monkeypatch):
    server = OpenAIStub().start()
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-budget-test")
    yield server
    server.stop()
    stop_all_previews()


def test_a_run_that_reaches_its_budget_stops_before_the_next_model_call_and_resume_finishes_it(tmp_path, stub):
    # gpt-4.1 at $2 / $8 per million tokens: 1,000 in and 100 out cost $0.0028, past $0.0001.
    stub.reply(200, chat_completion(None, [("call_1", "createOrUpdateFiles", WRITE_PAGE)], usage=(1000, 100)))
    options = RunOptions(model="openai:gpt-4.1", pixie_home=tmp_path, budget_usd=0.0001)
    first = run_locally("Build a page", options)

    assert first["status"] == "FAILED" and first["error"] == "BudgetExceeded", first["cause"]
    assert len(stub.requests) == 1  # no further model request
    assert "$0.002800" in first["cause"] and "$0.0001" in first["cause"] and "--budget-usd" in first["cause"]
    assert first["files"]["index.html"] == "<h1>hi</h1>"  # the paid-for reply's tools ran
    states = [e["stateEnteredEventDetails"]["name"] for e in first["history"] if "stateEnteredEventDetails" in e]
    assert states[-3:] == ["BudgetExceeded", "CleanupSandbox", "RunFailed"]
    assert first["budgetUsd"] == pytest.approx(0.0001)

    stub.reply(200, chat_completion("<task_summary>Wrote the page</task_summary>", usage=(1200, 20)))
    resumed = resume_locally(first["runId"], tmp_path, budget_usd=1)
    assert resumed["status"] == "SUCCEEDED", resumed["cause"]
    assert len(stub.requests) == 2 and resumed["summary"] == "Wrote the page"
    assert resumed["budgetUsd"] == 1


def test_a_token_budget_stops_the_run_the_same_way(tmp_path, stub):
    stub.reply(200, chat_completion(None, [("call_1", "terminal", json.dumps({"command": "true"}))], usage=(400, 100)))
    record = run_locally("Build", RunOptions(model="openai:gpt-4.1", pixie_home=tmp_path, max_tokens=500))
    assert record["status"] == "FAILED" and record["error"] == "BudgetExceeded"
    assert "500 tokens" in record["cause"] and len(stub.requests) == 1


def test_cached_prompt_tokens_count_at_the_cached_price(tmp_path, stub):
    """gpt-4.1 bills cached input at $0.50 per million, not $2: 1,000,000 prompt tokens of which
    900,000 cached cost $0.65, not $2. A $1 budget is not reached, though the full price would be."""
    stub.reply(200, chat_completion(None, [("call_1", "terminal", json.dumps({"command": "true"}))],
                                    usage=(1_000_000, 0), cached_tokens=900_000))
    stub.reply(200, chat_completion("<task_summary>ok</task_summary>", usage=(10, 5)))
    record = run_locally("Build", RunOptions(model="openai:gpt-4.1", pixie_home=tmp_path, budget_usd=1))
    assert record["status"] == "SUCCEEDED", record["cause"]
    assert len(stub.requests) == 2

    # ... and past the budget the cause states the cached price's spend.
    stub.reply(200, chat_completion(None, [("call_1", "terminal", json.dumps({"command": "true"}))],
                                    usage=(1_000_000, 0), cached_tokens=900_000))
    stopped = run_locally("Build", RunOptions(model="openai:gpt-4.1", pixie_home=tmp_path, budget_usd=0.5))
    assert stopped["error"] == "BudgetExceeded" and "$0.650000" in stopped["cause"], stopped["cause"]


def test_within_its_budget_a_run_is_not_stopped(tmp_path, stub):
    stub.reply(200, chat_completion(None, [("call_1", "terminal", json.dumps({"command": "true"}))], usage=(10, 5)))
    stub.reply(200, chat_completion("<task_summary>ok</task_summary>", usage=(10, 5)))
    record = run_locally("Build", RunOptions(model="openai:gpt-4.1", pixie_home=tmp_path, budget_usd=0.01))
    assert record["status"] == "SUCCEEDED", record["cause"]


def test_a_dollar_budget_for_a_model_without_a_price_is_refused_before_anything_starts(tmp_path, stub):
    record = run_locally("Build", RunOptions(model="openai:some-unpriced-model", pixie_home=tmp_path, budget_usd=1))
    assert record["status"] == "FAILED" and record["error"] == "InvalidEvent"
    assert "price table" in record["cause"] and not stub.requests


def test_the_cli_stops_at_the_budget_shows_it_and_resume_with_a_higher_one_finishes(tmp_path, stub):
    from test_cli_runs import pixie

    env = {"OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "sk-budget-test"}
    stub.reply(200, chat_completion(None, [("call_1", "createOrUpdateFiles", WRITE_PAGE)], usage=(1000, 100)))
    first = pixie("run", "--json", "--no-serve", "--model", "openai:gpt-4.1", "--budget-usd", "0.0001", "Build", home=tmp_path, env=env)
    record = json.loads(first.stdout)
    assert record["status"] == "FAILED" and record["error"] == "BudgetExceeded" and len(stub.requests) == 1
    shown = pixie("show", record["runId"], home=tmp_path, env=env)
    assert "budget    $0.0001 (spent $0.0028)" in shown.stdout, shown.stdout

    stub.reply(200, chat_completion("<task_summary>Wrote the page</task_summary>"))
    again = pixie("resume", record["runId"], "--json", "--no-serve", "--budget-usd", "1", home=tmp_path, env=env)
    assert json.loads(again.stdout)["status"] == "SUCCEEDED", again.stderr
    assert len(stub.requests) == 2

    refused = pixie("run", "--no-serve", "--model", "openai:gpt-4.1", "--budget-usd", "0", "Build", home=tmp_path, env=env)
    assert refused.returncode == 2 and "--budget-usd" in refused.stderr
