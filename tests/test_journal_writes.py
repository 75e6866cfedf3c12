"""The run record and the state file are replaced whole or not at all: a write cut short (a full
disk, a crash mid-write) leaves the previous version readable, which `pixie list`, `show` and
`resume` depend on. And the state a resumed run starts from holds its idempotency records."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from pixie.run_journal import RunJournal, load_state, resumable_state, state_path
from pixie.runs import load_run, save_run


@pytest.fixture
def disk_fills_mid_write(monkeypatch):
    """From now on every Path.write_text writes half of its text, then fails as a full disk does."""
    real = Path.write_text

    def half_then_full(self, text, *args, **kwargs):
        real(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    def start() -> None:
        monkeypatch.setattr(Path, "write_text", half_then_full)

    return start


def item(pk: str, sk: str) -> dict:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def test_a_run_record_write_cut_short_leaves_the_previous_record_whole(tmp_path, disk_fills_mid_write):
    save_run(tmp_path, {"runId": "run-1", "status": "FAILED", "summary": "first " * 1000})
    disk_fills_mid_write()
    with pytest.raises(OSError):
        save_run(tmp_path, {"runId": "run-1", "status": "SUCCEEDED", "summary": "second " * 1000})
    assert load_run(tmp_path, "run-1")["status"] == "FAILED"


def test_a_state_write_cut_short_leaves_the_previous_state_whole(tmp_path, disk_fills_mid_write):
    journal = RunJournal(tmp_path, "run-1", {"id": "evt-1"}, {})
    journal.save_state([item("RUN#run-1", "META"), item("RUN#run-1", "MSG#0001")])
    disk_fills_mid_write()
    with pytest.raises(OSError):
        journal.save_state([item("RUN#run-1", "META")] + [item("RUN#run-1", f"MSG#{n:04d}") for n in range(500)])
    saved = load_state(tmp_path, "run-1")
    assert [i["sk"]["S"] for i in saved["items"]] == ["META", "MSG#0001"]
    assert json.loads(state_path(tmp_path, "run-1").read_text())["runId"] == "run-1"


def test_the_saved_state_keeps_only_this_runs_items_and_idempotency_records(tmp_path):
    everything = [
        item("RUN#run-1", "META"),
        item("IDEMPOTENCY#AgentTurn", "pixie.AgentTurn.run-1#abc"),
        item("IDEMPOTENCY#AgentTurn", "pixie.AgentTurn.run-2#def"),  # another run in the same table
        item("RUN#run-2", "META"),
    ]
    kept = RunJournal(tmp_path, "run-1", {"id": "evt-1"}, {}).save_state(everything)
    assert [(i["pk"]["S"], i["sk"]["S"]) for i in kept] == [
        ("RUN#run-1", "META"), ("IDEMPOTENCY#AgentTurn", "pixie.AgentTurn.run-1#abc")]
    assert load_state(tmp_path, "run-1")["items"] == kept


def test_a_state_saved_before_records_named_their_run_still_resumes_with_them(tmp_path):
    """Records saved by an older pixie are keyed `pixie.<Step>#<hash>`; the hash is the same in
    both forms, so a resume renames them to this run and its finished steps are not redone."""
    state_path(tmp_path, "run-1").parent.mkdir(parents=True)
    state_path(tmp_path, "run-1").write_text(json.dumps({
        "version": 1, "runId": "run-1", "event": {"id": "evt-1"}, "options": {},
        "items": [item("RUN#run-1", "META"), item("IDEMPOTENCY#AgentTurn", "pixie.AgentTurn#abc")],
    }))
    save_run(tmp_path, {"runId": "run-1", "status": "INTERRUPTED"})
    items = resumable_state(tmp_path, "run-1")["items"]
    assert ("IDEMPOTENCY#AgentTurn", "pixie.AgentTurn.run-1#abc") in [(i["pk"]["S"], i["sk"]["S"]) for i in items]
