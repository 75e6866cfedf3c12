"""A local run's version: written as the run goes and when it ends, and what `pixie diff`,
`pixie open`, `pixie restore` and the console read of it (the store: lambdas/logic/versions.py)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from lambdas.logic.sandboxes.local import TEMPLATE_DIR
from lambdas.logic.versions import VersionNotFound, VersionStore, diff_versions, read_folder
from pixie.runs import load_run, project_folder, run_record, save_run, saved_run_ids, with_live_status

__all__ = ["VersionNotFound", "save_run_version", "run_diff", "check_out_version", "restore_run", "project_tree"]


def project_of(record: dict[str, Any]) -> str:
    return record.get("projectId") or record["runId"]


def save_run_version(pixie_home: Path, record: dict[str, Any], complete: bool) -> dict[str, Any] | None:
    """Writes the run's version: its local project folder as it is now, or (an E2B run, a folder
    gone) the files its record lists. None when the run has neither yet."""
    store = VersionStore(pixie_home)
    about = {"parentRunId": record.get("parentRunId"), "restoredFrom": record.get("restoredFrom"), "status": record.get("status")}
    folder = project_folder(pixie_home, record)
    if folder is not None and folder.is_dir():
        return store.save_folder(record["runId"], project_of(record), folder, complete=complete, **about)
    files = record.get("files") or {}
    if not files and not record.get("sandboxId"):
        return None  # never got a sandbox: there is no version to keep
    if not files and store.has(record["runId"]):
        return None  # the folder is gone and the record has nothing: keep what was saved
    encoded = {path: str(text).encode("utf-8", "surrogatepass") for path, text in files.items()}
    return store.save_files(record["runId"], project_of(record), encoded, complete=complete, **about)


def starting_files() -> dict[str, bytes]:
    """What a first run starts from: the local template's files."""
    return read_folder(TEMPLATE_DIR)[0]


def run_diff(pixie_home: Path, run_id: str, against: str | None = None) -> dict[str, Any]:
    """What run `run_id` changed: against `against`'s version, else its parent's, else the
    starting state (the template)."""
    store = VersionStore(pixie_home)
    new = store.manifest(run_id)
    base = against or new.get("parentRunId")
    if base:
        old = store.manifest(base)
        changes = diff_versions(store, old, new)
    else:
        changes = diff_versions(store, None, new, old_files=starting_files())
    return {"runId": run_id, "against": base, "againstStart": base is None, "complete": new.get("complete"),
            "skipped": new.get("skipped") or {}, "files": changes}


def check_out_version(pixie_home: Path, run_id: str) -> Path:
    """A fresh folder holding exactly the run's version (the caller removes it when done)."""
    store = VersionStore(pixie_home)
    manifest = store.manifest(run_id)
    parent = Path(pixie_home) / "versions" / "checkouts"
    parent.mkdir(parents=True, exist_ok=True)
    return store.check_out(manifest, Path(tempfile.mkdtemp(prefix=f"{run_id}-", dir=parent)))


def remove_checkout(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def project_runs(pixie_home: Path, project_id: str) -> list[dict[str, Any]]:
    runs = []
    for run_id in saved_run_ids(pixie_home):
        try:
            record = load_run(pixie_home, run_id)
        except (OSError, ValueError):
            continue
        if project_of(record) == project_id:
            runs.append(record)
    return runs


def newest_version(pixie_home: Path, project_id: str) -> str | None:
    """The project's newest complete version (the parent a restore builds on)."""
    versions = [m for m in VersionStore(pixie_home).project_versions(project_id) if m.get("complete")]
    return max(versions, key=lambda m: m.get("createdAt", 0))["runId"] if versions else None


def restore_run(pixie_home: Path, run_id: str) -> dict[str, Any]:
    """Makes run `run_id`'s version the project's newest: a new run (status SUCCEEDED, nothing
    run) whose version and folder hold exactly those files, on top of the project's newest
    version. Nothing is removed or overwritten; it can be opened, diffed and continued."""
    from pixie.run_journal import FORMAT_VERSION, STATE_DIR, _ItemsView, _write_atomically, load_state
    from lambdas.logic.sandboxes.local import LocalSandboxProvider
    from statemachine.engine import hello_world_event, new_run_id

    store = VersionStore(pixie_home)
    source = with_live_status(load_run(pixie_home, run_id))
    if source.get("status") == "RUNNING":  # its version is a mid-step snapshot, its conversation cut
        raise VersionNotFound(f"run {run_id} is still running (process {source.get('pid')}): restore it once it ended")
    manifest = store.manifest(run_id)
    contents = store.contents(manifest)  # every blob there before anything is made
    project_id = project_of(source)
    parent_id = newest_version(pixie_home, project_id) or run_id
    new_id = new_run_id()
    sandbox = LocalSandboxProvider(pixie_home).create("pixie", 0, run_id=new_id)
    for entry in Path(sandbox.root).iterdir():  # a fresh folder: only the template's files
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    store.check_out(manifest, Path(sandbox.root))
    prompt = f"Restore the project to run {run_id}'s version"
    old_pk, new_pk = f"RUN#{run_id}", f"RUN#{new_id}"
    items = []
    for item in load_state(pixie_home, run_id)["items"]:
        if item["pk"]["S"] != old_pk or item["sk"]["S"].startswith("CHANGES#"):
            continue
        item = {**item, "pk": {"S": new_pk}}
        if item["sk"]["S"] == "META":
            item.pop("sandboxClaimedBy", None)
            item.pop("url", None)
            item.update({
                "runId": {"S": new_id}, "sandboxId": {"S": sandbox.id}, "sandboxKind": {"S": "local"},
                "parentRunId": {"S": parent_id}, "projectId": {"S": project_id}, "prompt": {"S": prompt},
                "status": {"S": "SUCCEEDED"}, "summary": {"S": f"Restored run {run_id}'s version"},
                "title": {"S": f"Restore of {source.get('title') or run_id}"[:200]},
            })
        items.append(item)
    event = hello_world_event(prompt)
    _write_atomically(Path(pixie_home) / STATE_DIR / f"{new_id}.json",
                      {"version": FORMAT_VERSION, "runId": new_id, "event": event, "options": {}, "items": items})
    record = {**run_record(_ItemsView(items), new_id, status="SUCCEEDED"), "restoredFrom": run_id}
    save_run(pixie_home, record)
    store.save_files(new_id, project_id, contents, manifest.get("skipped"), complete=True,
                     parentRunId=parent_id, restoredFrom=run_id, status="SUCCEEDED")
    return record


def project_tree(runs: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """(depth, run) in tree order: each run after its parent, children oldest first; a run whose
    parent is not among `runs` is a root. `runs` newest first, as list_runs gives them."""
    by_id = {run["runId"]: run for run in runs}
    children: dict[str | None, list[dict]] = {}
    for run in reversed(runs):  # oldest first
        parent = run.get("parentRunId") if run.get("parentRunId") in by_id else None
        children.setdefault(parent, []).append(run)
    ordered: list[tuple[int, dict[str, Any]]] = []

    def visit(run: dict, depth: int) -> None:
        ordered.append((depth, run))
        for child in children.get(run["runId"], []):
            visit(child, depth + 1)

    roots = children.get(None, [])
    for root in reversed(roots):  # newest project first
        visit(root, 0)
    return ordered


def version_summary(pixie_home: Path, record: dict[str, Any]) -> dict[str, Any] | None:
    try:
        manifest = VersionStore(pixie_home).manifest(record["runId"])
    except VersionNotFound:
        return None
    return {"runId": manifest["runId"], "complete": manifest.get("complete"), "files": len(manifest["files"]),
            "bytes": sum(e["size"] for e in manifest["files"].values()), "skipped": len(manifest.get("skipped") or {})}
