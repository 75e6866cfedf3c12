"""`pixie rm` and `pixie prune`: a deleted run leaves nothing behind (record, saved state, version,
folder) and takes nothing another run needs; a running run is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from lambdas.logic.versions import VersionStore
from pixie.run_removal import parse_age, runs_older_than

PIXIE = Path(sys.executable).parent / "pixie"


def pixie(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return subprocess.run([str(PIXIE), *args], env={**env, "PIXIE_HOME": str(home)}, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def write(path: str, content: str) -> dict:
    return {"content": None, "tool_calls": [{"name": "createOrUpdateFiles", "arguments": {"files": [{"path": path, "content": content}]}}]}


DONE = {"content": "<task_summary>done</task_summary>"}


def run(home: Path, script: Path, *extra: str) -> dict:
    result = pixie("run", "--no-serve", "--json", "--model", f"scripted:{script}", *extra, "Build", home=home)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_rm_deletes_a_run_and_what_it_left_but_not_what_its_follow_up_needs(tmp_path, write_script):
    home = tmp_path / "home"
    parent = run(home, write_script([write("index.html", "parent"), DONE], "p.json"))
    child = run(home, write_script([write("more.txt", "child"), DONE], "c.json"), "--continue", parent["runId"])
    parent_folder = home / "sandboxes" / parent["sandboxId"]
    assert parent_folder.is_dir()

    removed = pixie("rm", parent["runId"][:8], home=home)
    assert removed.returncode == 0, removed.stderr
    assert f"removed {parent['runId']}" in removed.stdout

    assert not (home / "runs" / f"{parent['runId']}.json").exists()
    assert not (home / "network-state" / f"{parent['runId']}.json").exists()
    assert not VersionStore(home).has(parent["runId"]) and not parent_folder.exists()
    # The follow-up is whole: its record, its folder, its version with the parent's file in it.
    shown = pixie("show", child["runId"], "--json", home=home)
    assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "SUCCEEDED"
    store = VersionStore(home)
    contents = store.contents(store.manifest(child["runId"]))
    assert contents["index.html"] == b"parent" and contents["more.txt"] == b"child"
    assert (home / "sandboxes" / child["sandboxId"] / "index.html").read_text() == "parent"
    listed = pixie("list", "--json", home=home)
    assert [r["runId"] for r in json.loads(listed.stdout)] == [child["runId"]]


def test_a_running_run_is_not_removed(tmp_path, write_script):
    home = tmp_path / "home"
    done = run(home, write_script([write("index.html", "x"), DONE], "p.json"))
    busy_id = "f" * 16
    record = {**json.loads((home / "runs" / f"{done['runId']}.json").read_text()), "runId": busy_id,
              "status": "RUNNING", "pid": os.getpid()}
    (home / "runs" / f"{busy_id}.json").write_text(json.dumps(record))

    refused = pixie("rm", done["runId"], busy_id, home=home)
    assert refused.returncode == 2 and f"run {busy_id} is still running" in refused.stderr
    assert (home / "runs" / f"{done['runId']}.json").exists()  # all or nothing


def test_prune_takes_the_runs_older_than_the_age_given(tmp_path, write_script):
    home = tmp_path / "home"
    first = run(home, write_script([write("index.html", "x"), DONE], "p.json"))
    assert runs_older_than(home, timedelta(days=7)) == []
    in_eight_days = datetime.now(timezone.utc) + timedelta(days=8)
    assert runs_older_than(home, timedelta(days=7), now=in_eight_days) == [first["runId"]]

    kept = pixie("prune", "--older-than", "7d", home=home)
    assert kept.returncode == 0 and "removed 0 run(s)" in kept.stdout
    assert (home / "runs" / f"{first['runId']}.json").exists()
    for bad in ("0d", "7 days", "1w"):
        refused = pixie("prune", "--older-than", bad, home=home)
        assert refused.returncode == 2 and "--older-than must be" in refused.stderr, bad


@pytest.mark.parametrize("text", ["7", "0d", "-1d", "7 days", "1w", "d", "", "1.5h"])
def test_a_prune_age_is_a_whole_number_of_days_hours_or_minutes(text):
    with pytest.raises(ValueError, match=r"must be a number of days, hours or minutes such as 7d, 12h or 30m"):
        parse_age(text)


@pytest.mark.parametrize("text, age", [("7d", timedelta(days=7)), (" 12h ", timedelta(hours=12)), ("30m", timedelta(minutes=30))])
def test_a_prune_age_reads_days_hours_and_minutes(text, age):
    assert parse_age(text) == age
