"""`pixie rm` and `pixie prune`: delete saved local runs with everything they left under
$PIXIE_HOME — the run record, its saved network state, its kept version (and the contents no
other version names) and its project folder, unless another saved run still uses that folder.
A run still running is refused, never deleted from under its process."""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from lambdas.logic.versions import VersionNotFound, VersionStore
from pixie.run_journal import state_path
from pixie.runs import CorruptRun, load_run, project_folder, run_summary, runs_dir, saved_run_ids

_AGE = re.compile(r"(\d+)([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


class CannotRemove(Exception):
    """A run that cannot be deleted (still running, unknown); the message says which."""


def parse_age(text: str) -> timedelta:
    """`7d`, `12h`, `30m`: ValueError for anything else."""
    match = _AGE.fullmatch(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"must be a number of days, hours or minutes such as 7d, 12h or 30m, not {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def remove_runs(pixie_home: Path, run_ids: list[str]) -> list[str]:
    """Deletes the runs (all of them, or none if one is running); returns what was deleted."""
    records = {run_id: _record_or_stub(pixie_home, run_id) for run_id in run_ids}
    running = [run_id for run_id, record in records.items() if record.get("status") == "RUNNING"]
    if running:
        raise CannotRemove(f"run {running[0]} is still running (process {records[running[0]].get('pid')}): stop it first")
    kept_folders = _folders_of_other_runs(pixie_home, set(run_ids))
    store = VersionStore(pixie_home)
    for run_id, record in records.items():
        try:
            store.forget(run_id, record.get("projectId") or run_id)
        except VersionNotFound:  # a project id that is not one (an edited record): no version to find
            pass
        state_path(pixie_home, run_id).unlink(missing_ok=True)
        folder = project_folder(pixie_home, record)  # None unless the id is a plain local-<hex> name
        if folder is not None and record["sandboxId"] not in kept_folders and folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
        (runs_dir(pixie_home) / f"{run_id}.json").unlink(missing_ok=True)  # last: the rest is found from it
    return list(records)


def _record_or_stub(pixie_home: Path, run_id: str) -> dict[str, Any]:
    """The run's record; for a file that is not a run record, just its id: deleting it is how
    it is cleaned up (there is no folder or version it could name safely)."""
    try:
        return load_run(pixie_home, run_id)
    except CorruptRun:
        return {"runId": run_id, "status": "CORRUPT"}


def runs_older_than(pixie_home: Path, age: timedelta, now: datetime | None = None) -> list[str]:
    """Saved runs that started before now - age and are not running."""
    cutoff = (now or datetime.now(timezone.utc)) - age
    old = []
    for run_id in saved_run_ids(pixie_home):
        try:
            record = load_run(pixie_home, run_id)
        except (OSError, CorruptRun):
            continue
        if record.get("status") != "RUNNING" and _started(pixie_home, record) < cutoff:
            old.append(run_id)
    return old


def _started(pixie_home: Path, record: dict[str, Any]) -> datetime:
    """When the run started (its first history event), else when its record was saved."""
    started = run_summary(record).get("startedAt")
    if started:
        moment = datetime.fromisoformat(started)
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    saved = (runs_dir(pixie_home) / f"{record['runId']}.json").stat().st_mtime
    return datetime.fromtimestamp(saved, timezone.utc)


def _folders_of_other_runs(pixie_home: Path, leaving: set[str]) -> set[Any]:
    folders = set()
    for run_id in saved_run_ids(pixie_home):
        if run_id in leaving:
            continue
        try:
            sandbox_id = load_run(pixie_home, run_id).get("sandboxId")
        except (OSError, CorruptRun):
            continue
        if isinstance(sandbox_id, str):
            folders.add(sandbox_id)
    return folders
