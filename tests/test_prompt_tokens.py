"""What the model is sent, turn after turn: a prefix that stays byte for byte the same (so a
provider's prompt cache bills it at a discount), and long-stale tool results left out of the
prompt (compaction) but never out of the store."""

from __future__ import annotations

import json

import pytest

from lambdas.dal.network_state import assistant_message_key, tool_message_key, user_message_key
from lambdas.logic.compaction import NOTE_PREFIX, Compaction, compact
from lambdas.logic.models.scripted import ScriptedModel, forget_cached_prefixes
from tests.test_steps_and_handlers import RUN, create, env, model_calls, terminal_call, tool, turn  # noqa: F401

BIG = 3000  # characters of output per command: past the default compaction threshold


def big_output(tag: str) -> dict:
    return terminal_call(f"yes {tag} | head -c {BIG}")


def read_call(*paths: str) -> dict:
    return {"name": "readFiles", "arguments": {"files": list(paths)}}


def run_turns(env, calls: list[dict]) -> list[dict]:  # noqa: F811 - the fixture's value
    """A run whose turn N makes calls[N-1] (one call), then summarizes; returns AgentTurn's outputs."""
    env.script([{"content": f"Step {n}.", "tool_calls": [call]} for n, call in enumerate(calls, 1)]
               + [{"content": "<task_summary>Done</task_summary>"}])
    create()
    outputs, state = [], {"iteration": 0}
    while True:
        state = turn(state["iteration"], max_iterations=len(calls) + 1)
        outputs.append(state)
        if state["hasSummary"]:
            return outputs
        for index, call in enumerate(state["toolCalls"]):
            tool(state["iteration"], index, call["id"], call["name"])


# --- caching ---------------------------------------------------------------------------------------
def test_each_prompt_begins_with_the_previous_one_byte_for_byte_and_is_read_from_the_cache(env, model_calls, monkeypatch):  # noqa: F811
    monkeypatch.setenv("PIXIE_COMPACT_AFTER_TURNS", "0")  # compaction off: only growth at the end
    forget_cached_prefixes()

    outputs = run_turns(env, [big_output(f"t{n}") for n in range(1, 5)])

    prompts = [json.dumps(call["tools"]) + "".join(json.dumps(m) for m in call["messages"]) for call in model_calls]
    assert len(prompts) == 5
    for earlier, later in zip(prompts, prompts[1:]):
        assert later.startswith(earlier)
    usage = [o["usage"] for o in outputs]
    # The simulated provider cache (OpenAI's rules) finds the previous prompt each turn.
    assert usage[0]["cachedInputTokens"] == 0
    for previous, current in zip(usage[1:], usage[2:]):
        assert 0 < current["cachedInputTokens"] <= current["inputTokens"]
        assert current["cachedInputTokens"] >= previous["inputTokens"] - 128  # all of it, to the 128-token step


def test_the_simulated_cache_misses_when_an_earlier_message_changes():
    forget_cached_prefixes()
    model = ScriptedModel.__new__(ScriptedModel)  # only complete() is used, with a script of our own
    model.path, model.name = None, "scripted:test"
    model.turns = [{"content": "a"}, {"content": "b"}, {"content": "c"}]
    long = {"role": "user", "content": "x" * 8000}
    first = model.complete([long, {"role": "user", "content": "one"}], [], turn=1).usage
    same_start = model.complete([long, {"role": "user", "content": "two"}], [], turn=2).usage
    changed = model.complete([{**long, "content": "y" + long["content"][1:]}], [], turn=3).usage
    assert first.cached_input_tokens == 0
    assert 1024 <= same_start.cached_input_tokens <= 2000
    assert changed.cached_input_tokens == 0


# --- compaction ------------------------------------------------------------------------------------
def _conversation(turns: int, output: str = "o" * BIG) -> list[tuple[str, dict]]:
    keyed = [(user_message_key(0), {"role": "user", "content": "Build it"})]
    for n in range(1, turns + 1):
        call = {"id": f"c{n}", "type": "function", "function": {"name": "terminal", "arguments": json.dumps({"command": f"make step{n}"})}}
        keyed.append((assistant_message_key(n), {"role": "assistant", "content": None, "tool_calls": [call]}))
        keyed.append((tool_message_key(n, 0), {"role": "tool", "tool_call_id": f"c{n}", "content": output}))
    return keyed


def test_old_large_results_become_a_note_naming_what_was_left_out():
    keyed = _conversation(12)

    sent = compact(keyed, 13, Compaction(after_turns=6, min_chars=2000))

    results = {m["tool_call_id"]: m["content"] for m in sent if m["role"] == "tool"}
    # The line moves in steps of 6 turns: at turn 13 results of turns 1..6 are old.
    for n in range(1, 7):
        assert results[f"c{n}"].startswith(NOTE_PREFIX)
        assert f"`make step{n}`" in results[f"c{n}"] and f"turn {n}" in results[f"c{n}"] and "3,000 characters" in results[f"c{n}"]
    for n in range(7, 13):
        assert results[f"c{n}"] == "o" * BIG
    # Only the prompt changes: the stored messages are untouched.
    assert all(m["content"] == "o" * BIG for _, m in keyed if m["role"] == "tool")


def test_small_results_and_a_switched_off_compaction_send_everything_whole():
    small = _conversation(12, output="ok")
    assert compact(small, 13, Compaction(6, 2000)) == [m for _, m in small]
    big = _conversation(12)
    assert compact(big, 13, Compaction(after_turns=0, min_chars=0)) == [m for _, m in big]


def test_between_two_steps_the_compacted_prompt_only_grows_at_its_end():
    compaction = Compaction(6, 2000)
    keyed = _conversation(14)
    prompts = {t: json.dumps(compact(keyed[: 1 + 2 * (t - 1)], t, compaction)) for t in range(7, 15)}
    # A step at turn 12: before it and after it, each prompt starts with the one before.
    for t in (8, 9, 10, 11, 13, 14):
        assert prompts[t].startswith(prompts[t - 1][:-1]), t
    assert not prompts[12].startswith(prompts[11][:-1])  # the step elides turns 1..6


def test_a_file_read_again_is_sent_only_as_its_newest_read():
    def read(n: int, paths: list[str], content: str) -> list[tuple[str, dict]]:
        call = {"id": f"r{n}", "type": "function", "function": {"name": "readFiles", "arguments": json.dumps({"files": paths})}}
        return [(assistant_message_key(n), {"role": "assistant", "content": None, "tool_calls": [call]}),
                (tool_message_key(n, 0), {"role": "tool", "tool_call_id": f"r{n}", "content": content})]

    keyed = [(user_message_key(0), {"role": "user", "content": "Fix it"}),
             *read(1, ["app.js", "style.css"], "--- app.js ---\nold app\n--- style.css ---\nbody {}\n" * 10),
             *read(2, ["app.js"], "--- app.js ---\nnew app\n"),
             *read(3, ["style.css"], "--- style.css ---\nnew body {}\n" * 10)]

    results = [m["content"] for m in compact(keyed, 4, Compaction(6, 2000)) if m["role"] == "tool"]

    assert results[0].startswith(NOTE_PREFIX) and "app.js, style.css" in results[0] and "read again later" in results[0]
    assert results[1:] == ["--- app.js ---\nnew app\n", "--- style.css ---\nnew body {}\n" * 10]
    # Read only in part again: the older read is still the only copy of the other file.
    partly = keyed[:5]
    assert [m["content"] for m in compact(partly, 3, Compaction(6, 2000)) if m["role"] == "tool"][0].startswith("--- app.js")


def test_a_run_sends_the_note_while_the_store_keeps_the_whole_output(env, model_calls, monkeypatch):  # noqa: F811
    monkeypatch.setenv("PIXIE_COMPACT_AFTER_TURNS", "2")
    monkeypatch.setenv("PIXIE_COMPACT_MIN_CHARS", "1000")

    run_turns(env, [big_output(f"t{n}") for n in range(1, 5)])

    last = model_calls[-1]["messages"]  # turn 5: the line is at turn 2 (steps of 2 turns)
    sent = [m["content"] for m in last if m["role"] == "tool"]
    assert [s.startswith(NOTE_PREFIX) for s in sent] == [True, True, False, False]
    assert "head -c 3000" in sent[0]
    stored = [m["content"] for m in env.state.list_messages(RUN) if m["role"] == "tool"]
    assert all(not s.startswith(NOTE_PREFIX) and len(s) >= BIG for s in stored)


def test_compaction_settings_are_checked(monkeypatch):
    from lambdas.logic.config import InvalidSetting, Settings

    assert Settings.from_env({}).compaction == Compaction(6, 2000)
    assert Settings.from_env({"PIXIE_COMPACT_AFTER_TURNS": "0"}).compaction.after_turns == 0
    with pytest.raises(InvalidSetting):
        Settings.from_env({"PIXIE_COMPACT_AFTER_TURNS": "-1"})
