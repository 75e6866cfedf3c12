"""Per-run choices in the event (model, sandbox, maxIterations): how several runs with different
settings share one engine (the console), and why a deployed stack ignores none and allows none."""

from __future__ import annotations

import pytest

from lambdas.logic.config import Settings
from lambdas.logic.errors import InvalidEvent
from lambdas.logic.events import RUN_CHOICES, parse_run_choices
from lambdas.logic.sandboxes.local import stop_all_previews
from lambdas.logic.steps.create_sandbox import create_sandbox
from statemachine.engine import hello_world_event


def event_with(**detail) -> dict:
    event = hello_world_event("Build a todo app")
    event["detail"].update(detail)
    return event


@pytest.fixture
def settings(table, pixie_home, monkeypatch) -> Settings:
    monkeypatch.setenv("PIXIE_SANDBOX", "local")
    monkeypatch.setenv("PIXIE_MODEL", "scripted:/default.json")
    yield Settings.from_env()
    stop_all_previews()


def test_a_deployment_allows_no_choices_unless_it_lists_them(settings, table):
    assert settings.event_overrides == frozenset()  # the deployed stack sets no PIXIE_EVENT_OVERRIDES
    with pytest.raises(InvalidEvent, match="detail.model cannot be chosen per run on this deployment"):
        create_sandbox("run-a", event_with(model="openai:gpt-4o"), settings, table)
    assert table.find_run("run-a") is None  # nothing was created


def test_allowed_choices_are_the_runs_settings(settings, table, monkeypatch):
    monkeypatch.setenv("PIXIE_EVENT_OVERRIDES", ",".join(RUN_CHOICES))
    allowed = Settings.from_env()

    create_sandbox("run-b", event_with(model="scripted:/mine.json", maxIterations=3), allowed, table)
    create_sandbox("run-c", event_with(), allowed, table)

    chosen, default = table.get_run("run-b"), table.get_run("run-c")
    assert (chosen.model, chosen.max_iterations, chosen.sandbox_kind) == ("scripted:/mine.json", 3, "local")
    assert (default.model, default.max_iterations) == ("scripted:/default.json", 15)


def test_only_listed_choices_are_allowed():
    event = event_with(model="openai:gpt-4.1", sandbox="e2b")
    with pytest.raises(InvalidEvent, match="detail.sandbox"):
        parse_run_choices(event, {"model"})
    assert parse_run_choices(event, {"model", "sandbox"}) == {"model": "openai:gpt-4.1", "sandbox": "e2b"}
    assert parse_run_choices(event_with(), set()) == {}


@pytest.mark.parametrize("detail", [
    {"model": "gpt-4.1"}, {"model": "openai: gpt"}, {"model": 7}, {"sandbox": "docker"},
    {"maxIterations": 0}, {"maxIterations": 201}, {"maxIterations": True}, {"maxIterations": "3"},
])
def test_bad_choices_are_invalid_events(settings, table, monkeypatch, detail):
    monkeypatch.setenv("PIXIE_EVENT_OVERRIDES", ",".join(RUN_CHOICES))
    with pytest.raises(InvalidEvent, match=f"detail.{next(iter(detail))}"):
        create_sandbox("run-d", event_with(**detail), Settings.from_env(), table)
    assert table.find_run("run-d") is None
