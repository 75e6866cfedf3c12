"""The local engine's small pieces on their own: the fault injector's two kinds of failure, the
ASL's substitutions, and where a redrive restarts (statemachine/engine.py)."""

from __future__ import annotations

import json

import pytest

from statemachine.engine import ExecutionNotRedrivable, FaultInjector, InjectedFault, function_arn, load_definition, unsuccessful_state


@pytest.mark.parametrize("rate", [-0.1, 1, 1.5])
def test_a_fault_rate_outside_zero_to_one_is_refused(rate):
    with pytest.raises(ValueError, match="at least 0 and below 1"):
        FaultInjector(rate)


def test_no_faults_at_rate_zero_and_both_kinds_at_a_high_rate_with_their_side_effects():
    calls: list[str] = []
    calm = FaultInjector(0, seed=1)
    assert [calm("pixie-run-tool", {}, lambda: calls.append("ran") or "result") for _ in range(20)] == ["result"] * 20
    assert calm.injected == [] and len(calls) == 20

    stormy = FaultInjector(0.999, seed=3)
    outcomes = []
    for _ in range(40):
        calls.clear()
        with pytest.raises(InjectedFault) as failure:
            stormy("pixie-agent-turn", {}, lambda: calls.append("ran"))
        outcomes.append((stormy.injected[-1][1], calls == ["ran"], str(failure.value)))
    # "before": the handler never ran; "after": it ran, its effects stand, its response is lost.
    assert {(kind, ran) for kind, ran, _ in outcomes} == {("before", False), ("after", True)}
    assert all(("failed before it ran" in why) == (kind == "before") for kind, _, why in outcomes)
    assert all(("response was lost" in why) == (kind == "after") for kind, _, why in outcomes)
    assert len(stormy.injected) == 40


def test_the_definition_gets_local_function_arns_and_an_unknown_substitution_is_an_error(tmp_path):
    definition = json.loads(load_definition())
    resources = json.dumps(definition)
    assert "${" not in resources and function_arn("pixie-agent-turn") in resources
    unknown = tmp_path / "agent.asl.json"
    unknown.write_text('{"Resource": "${AgentTurnFunctionArn}", "Other": "${SomethingElseArn}"}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"substitutions the engine does not know: \['\$\{SomethingElseArn\}'\]"):
        load_definition(unknown)


def entered(name: str, data: str = "{}") -> dict:
    return {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": name, "input": data}}


def exited(name: str) -> dict:
    return {"type": "TaskStateExited", "stateExitedEventDetails": {"name": name}}


def test_a_redrive_restarts_at_the_top_level_state_entered_and_never_exited_with_its_input():
    top_level = {"CreateSandbox", "AgentTurn", "RunTools"}
    history = [
        {"type": "ExecutionStarted"},
        entered("CreateSandbox"), exited("CreateSandbox"),
        {"type": "MapStateEntered", "stateEnteredEventDetails": {"name": "RunTools", "input": '{"turn": 2}'}},
        entered("RunTool", '{"inner": true}'),  # inside the Map: its Map restarts, not it
        exited("RunTool"),
        {"type": "ExecutionFailed"},
    ]
    assert unsuccessful_state(history, top_level) == ("RunTools", '{"turn": 2}')
    everything_exited = [*history[:3], entered("AgentTurn"), exited("AgentTurn"), {"type": "ExecutionFailed"}]
    with pytest.raises(ExecutionNotRedrivable, match="nothing to redrive"):
        unsuccessful_state(everything_exited, top_level)
    # A state entered without an input restarts with an empty one.
    bare = [{"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "AgentTurn"}}]
    assert unsuccessful_state(bare, top_level) == ("AgentTurn", "{}")
