"""NetworkState (lambdas/dal/network_state.py) against moto's DynamoDB."""

from __future__ import annotations

import random
import time

import boto3
import pytest
from botocore.exceptions import ClientError

from lambdas.dal.network_state import (
    RUN_TTL_SECONDS,
    NetworkState,
    assistant_message_key,
    tool_message_key,
    user_message_key,
)
from lambdas.logic.errors import RunNotFound


def new_run(table: NetworkState, run_id: str = "run-1", **overrides):
    fields = dict(
        run_id=run_id,
        prompt="Build a todo app",
        sandbox_id="local-0123456789ab",
        sandbox_kind="local",
        model="scripted:/tmp/s.json",
        template="pixie",
        max_iterations=7,
    )
    fields.update(overrides)
    return table.create_run(**fields)


def raw_item(table: NetworkState, run_id: str, sk: str) -> dict:
    return table.table.get_item(Key={"pk": f"RUN#{run_id}", "sk": sk})["Item"]


# --- the run record ---------------------------------------------------------------------------
def test_create_run_returns_the_record_and_get_run_reads_it_back(table):
    created = new_run(table, prompt="Make a clock", max_iterations=9)
    assert created.iteration == 0 and created.status == "RUNNING" and created.summary is None

    fetched = table.get_run("run-1")
    assert fetched == created
    assert fetched.prompt == "Make a clock"
    assert fetched.sandbox_id == "local-0123456789ab"
    assert fetched.sandbox_kind == "local"
    assert fetched.model == "scripted:/tmp/s.json"
    assert fetched.max_iterations == 9
    assert isinstance(fetched.max_iterations, int) and isinstance(fetched.iteration, int)


def test_update_run_sets_only_the_given_fields(table):
    new_run(table)
    table.update_run("run-1", iteration=3, summary="Built it", title="Built it")
    run = table.get_run("run-1")
    assert (run.iteration, run.summary, run.title) == (3, "Built it", "Built it")
    assert run.status == "RUNNING" and run.prompt == "Build a todo app"

    table.update_run("run-1", status="SUCCEEDED", url="http://127.0.0.1:1234/")
    run = table.get_run("run-1")
    assert (run.status, run.url, run.iteration) == ("SUCCEEDED", "http://127.0.0.1:1234/", 3)


def test_update_run_with_no_fields_changes_nothing(table):
    new_run(table)
    table.update_run("run-1")
    assert table.get_run("run-1").iteration == 0


def test_update_of_an_unknown_run_fails_and_creates_nothing(table):
    with pytest.raises(ClientError) as info:
        table.update_run("ghost", iteration=1)
    assert info.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert table.find_run("ghost") is None


def test_unknown_run(table):
    assert table.find_run("nope") is None
    with pytest.raises(RunNotFound, match="nope"):
        table.get_run("nope")


def test_runs_are_separate(table):
    new_run(table, "a", prompt="first")
    new_run(table, "b", prompt="second")
    table.update_run("a", iteration=5)
    assert table.get_run("a").prompt == "first" and table.get_run("a").iteration == 5
    assert table.get_run("b").prompt == "second" and table.get_run("b").iteration == 0


def test_ttl_attribute_is_set_about_thirty_days_ahead(table):
    before = int(time.time())
    new_run(table)
    item = raw_item(table, "run-1", "META")
    after = int(time.time())
    assert before + RUN_TTL_SECONDS <= int(item["expiresAt"]) <= after + RUN_TTL_SECONDS
    assert RUN_TTL_SECONDS == 30 * 24 * 3600
    assert before <= int(item["createdAt"]) <= after


# --- messages --------------------------------------------------------------------------------
def conversation() -> list[tuple[str, dict]]:
    """A run's messages in the order the model must see them, keyed as the steps key them."""
    messages = [(user_message_key(0), {"role": "user", "content": "prompt"})]
    messages.append(
        (
            assistant_message_key(1),
            {"role": "assistant", "content": None, "tool_calls": [{"id": f"c{i}"} for i in range(12)]},
        )
    )
    # 12 results: index 10 and 11 must still come after index 2 (zero-padded keys).
    messages += [(tool_message_key(1, i), {"role": "tool", "tool_call_id": f"c{i}", "content": str(i)}) for i in range(12)]
    messages.append((assistant_message_key(2), {"role": "assistant", "content": "thinking"}))
    messages.append((user_message_key(3), {"role": "user", "content": "nudge"}))
    messages.append((assistant_message_key(3), {"role": "assistant", "content": "turn 3"}))
    # Turns past 9 sort after turn 3 too.
    messages.append((user_message_key(10), {"role": "user", "content": "nudge 10"}))
    messages.append((assistant_message_key(10), {"role": "assistant", "content": "turn 10"}))
    messages.append((tool_message_key(10, 0), {"role": "tool", "tool_call_id": "t10", "content": "r10"}))
    return messages


def test_messages_come_back_in_key_order_whatever_the_write_order(table):
    expected = conversation()
    shuffled = expected[:]
    random.Random(7).shuffle(shuffled)
    assert shuffled != expected
    for key, message in shuffled:
        table.put_message("run-1", key, message)
    assert table.list_messages("run-1") == [message for _, message in expected]


def test_message_keys_order_user_then_assistant_then_tools_within_a_turn():
    keys = [tool_message_key(2, 0), assistant_message_key(2), user_message_key(2), tool_message_key(1, 1)]
    assert sorted(keys) == [tool_message_key(1, 1), user_message_key(2), assistant_message_key(2), tool_message_key(2, 0)]


def test_messages_keep_unicode_and_structure(table):
    message = {"role": "assistant", "content": "héllo ✓ \"quotes\"\n", "tool_calls": [{"id": "x", "function": {"arguments": "{\"a\": 1}"}}]}
    table.put_message("run-1", assistant_message_key(1), message)
    assert table.get_message("run-1", assistant_message_key(1)) == message
    assert table.get_message("run-1", assistant_message_key(2)) is None


def test_writing_the_same_message_key_again_overwrites(table):
    key = tool_message_key(1, 0)
    table.put_message("run-1", user_message_key(0), {"role": "user", "content": "p"})
    table.put_message("run-1", key, {"role": "tool", "tool_call_id": "c", "content": "first"})
    table.put_message("run-1", key, {"role": "tool", "tool_call_id": "c", "content": "second"})
    messages = table.list_messages("run-1")
    assert len(messages) == 2
    assert messages[1]["content"] == "second"


def test_messages_of_other_runs_and_files_are_not_listed(table):
    new_run(table)
    table.put_message("run-1", user_message_key(0), {"role": "user", "content": "mine"})
    table.put_message("run-10", user_message_key(0), {"role": "user", "content": "other"})
    table.put_files("run-1", {"index.html": "<h1>"})
    assert table.list_messages("run-1") == [{"role": "user", "content": "mine"}]
    assert table.list_files("run-1") == {"index.html": "<h1>"}
    assert table.list_files("run-10") == {}


def test_more_than_a_megabyte_of_messages_is_read_across_query_pages(table, monkeypatch):
    # 14 items of ~100 KB: one Query page holds at most 1 MB, so reading needs several pages.
    big = "x" * 100_000
    for turn in range(1, 15):
        table.put_message("run-1", assistant_message_key(turn), {"role": "assistant", "content": f"{turn}:{big}"})

    pages = []
    real_query = table.table.query

    def counting_query(**kwargs):
        page = real_query(**kwargs)
        pages.append(len(page["Items"]))
        return page

    monkeypatch.setattr(table.table, "query", counting_query)
    messages = table.list_messages("run-1")
    assert len(pages) > 1, "expected the 1 MB page limit to split the query"
    assert sum(pages) == 14
    assert [m["content"].split(":")[0] for m in messages] == [str(t) for t in range(1, 15)]
    assert all(m["content"].endswith(big) for m in messages)


# --- files -----------------------------------------------------------------------------------
def test_files_put_list_and_overwrite(table):
    table.put_files("run-1", {"index.html": "<h1>v1</h1>", "src/app.js": "console.log(1)"})
    table.put_files("run-1", {"index.html": "<h1>v2</h1>", "style.css": "body{}"})
    assert table.list_files("run-1") == {
        "index.html": "<h1>v2</h1>",
        "src/app.js": "console.log(1)",
        "style.css": "body{}",
    }


def test_put_files_with_many_files_writes_them_all(table):
    files = {f"dir/file{i:02d}.txt": f"content {i}" for i in range(40)}  # more than one batch of 25
    table.put_files("run-1", files)
    assert table.list_files("run-1") == files


def test_put_files_with_nothing_is_harmless(table):
    table.put_files("run-1", {})
    assert table.list_files("run-1") == {}


def test_a_second_store_on_the_same_table_sees_the_same_state(table):
    new_run(table)
    table.put_files("run-1", {"a.txt": "A"})
    other = NetworkState(table.table.name, boto3.resource("dynamodb", region_name="us-east-1"))
    assert other.get_run("run-1").prompt == "Build a todo app"
    assert other.list_files("run-1") == {"a.txt": "A"}


def test_file_paths_are_listed_sorted_without_reading_contents(table):
    table.put_files("run-paths", {"src/b.js": "b" * 50_000, "a.html": "a", "src/a.js": "x"})
    returned: list[dict] = []
    events = table.table.meta.client.meta.events
    capture = lambda parsed, **_: returned.extend(parsed.get("Items", []))  # noqa: E731
    events.register("after-call.dynamodb.Query", capture)
    try:
        assert table.list_file_paths("run-paths") == ["a.html", "src/a.js", "src/b.js"]
    finally:
        events.unregister("after-call.dynamodb.Query", capture)
    assert returned and all(set(item) == {"path"} for item in returned)  # no content came back


def test_one_network_state_answers_queries_from_many_threads_at_once(table):
    """The local engine's threads share one NetworkState. boto3's condition builder on a shared
    resource is not thread-safe (boto/boto3#1332): a burst of runs got "Query condition missed
    key schema element" now and then. A tiny switch interval makes the interleaving likely."""
    import sys
    import threading

    new_run(table, "run-a")
    key, message = conversation()[0]
    table.put_message("run-a", key, message)
    errors: list[str] = []

    def ask() -> None:
        try:
            for _ in range(150):
                assert len(table.list_messages("run-a")) == 1
        except Exception as exc:  # noqa: BLE001 - every failure is reported below
            errors.append(repr(exc)[:300])

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=ask) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[:3]
