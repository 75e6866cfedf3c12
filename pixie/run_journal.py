"""A local run saved as it goes, so it outlives its process: `pixie list`/`show` see it from its
first step, `pixie resume` finishes it after a kill -9, and `pixie run --continue` builds on it.

Each `pixie run` has its own in-memory moto table, so whatever a later run needs of it must be
on disk. After every step (every in-process Lambda invocation, successful or not) the journal
writes, each file atomically (a temporary file, then os.replace):

  $PIXIE_HOME/network-state/<runId>.json   {"runId", "event", "options", "items"}: the run's table
                                           items in DynamoDB JSON, its RUN#<runId> items and the
                                           idempotency records of its steps
  $PIXIE_HOME/runs/<runId>.json            the run record so far: status RUNNING, this process's id

A later process loads those items into its own fresh table before the execution starts:
- continue: the parent's RUN#<parent> items (record, conversation, files);
- resume: all of the run's items, less the idempotency records of steps that were still in
  progress when the process died (their owner is gone) and CreateSandbox's (so that step runs
  again and reattaches or restores the sandbox). A new execution with the same name and the
  original event then fast-forwards: every completed step returns its saved result."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from lambdas.dal.network_state import RunRecord, file_changes, part_key
from pixie.runs import load_run, run_record, save_run
from statemachine.engine import InvokeWrapper, LocalEngine

STATE_DIR = "network-state"
FORMAT_VERSION = 1
IDEMPOTENCY_PREFIX = "IDEMPOTENCY#"
# Redone on resume: it reconnects to the run's sandbox, or restores the files into a new one.
REDONE_ON_RESUME = f"{IDEMPOTENCY_PREFIX}CreateSandbox"
# After these steps the project's files may have changed: the run's version is saved again.
VERSION_STEPS = frozenset({"pixie-create-sandbox", "pixie-run-tool"})


class CannotStart(Exception):
    """A continue or resume that cannot start (unknown run, wrong status, nothing saved). Its
    message says why and what to do; the CLI exits 2."""


def state_path(pixie_home: Path, run_id: str) -> Path:
    return Path(pixie_home) / STATE_DIR / f"{run_id}.json"


def _write_atomically(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data), encoding="utf-8")
    os.replace(temporary, path)


def load_state(pixie_home: Path, run_id: str) -> dict[str, Any]:
    path = state_path(pixie_home, run_id)
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CannotStart(f"run {run_id} has no saved network state ({path}); was it made by an older pixie?") from None
    if saved.get("version") != FORMAT_VERSION:
        raise CannotStart(f"{path} is not in a format this pixie knows (version {saved.get('version')!r})")
    return saved


class RunJournal:
    def __init__(self, pixie_home: Path, run_id: str, event: dict, options: dict[str, Any], parent_id: str | None = None):
        self.pixie_home = Path(pixie_home)
        self.run_id = run_id
        self.event = event
        self.options = options
        self.parent_id = parent_id
        self._engine: LocalEngine | None = None
        self._parent_meta: dict | None = None
        # Saves come from the engine's threads; once the run's final record is written (close),
        # a late one must not put a RUNNING record over it.
        self._lock = threading.Lock()
        self._closed = False

    def attach(self, engine: LocalEngine, items: list[dict] = ()) -> None:
        """Loads saved items into the engine's fresh table and saves the run as started."""
        self._engine = engine
        for item in items:
            engine.dynamodb.put_item(TableName=engine.env["PIXIE_TABLE"], Item=item)
        self._parent_meta = next((i for i in items if self.parent_id and _is_meta(i, self.parent_id)), None)
        self.save()

    def wrap(self, inner: InvokeWrapper | None = None) -> InvokeWrapper:
        """An invoke wrapper for the engine: each invocation (through `inner`, e.g. fault
        injection), then a save, whatever its outcome."""

        def invoke_and_save(name: str, event: dict, invoke: Any) -> Any:
            try:
                return inner(name, event, invoke) if inner else invoke()
            finally:
                self.save(with_version=name in VERSION_STEPS)

        return invoke_and_save

    def close(self) -> None:
        """No more saves: the run's final record is about to be written."""
        with self._lock:
            self._closed = True

    def save(self, with_version: bool = False) -> None:
        with self._lock:
            if self._engine is None or self._closed:
                return
            record = self._save()
            if with_version and record.get("sandboxId"):
                from pixie.versions import save_run_version

                save_run_version(self.pixie_home, record, complete=False)  # an interrupted run keeps its partial version

    def _save(self) -> dict[str, Any]:
        everything = self._engine.table_items()
        items = self.save_state(everything)
        record = run_record(_ItemsView(items), self.run_id, status="RUNNING")
        if record["prompt"] is None:  # before CreateSandbox recorded the run (or a malformed event)
            detail = self.event.get("detail") if isinstance(self.event, dict) else None
            record["prompt"] = detail.get("value") if isinstance(detail, dict) else None
        save_run(self.pixie_home, {**record, "pid": os.getpid(), "host": socket.gethostname()})
        if self.parent_id:
            self._write_back_parent(next((i for i in everything if _is_meta(i, self.parent_id)), None))
        return record

    def save_state(self, everything: list[dict]) -> list[dict]:
        """Writes the run's own table items (and the idempotency records) from `everything`, the
        engine's table; returns them. The console calls it once a run ended, as it shares its
        engine between runs and keeps the final record itself."""
        own = f"RUN#{self.run_id}"
        items = [item for item in everything if item["pk"]["S"] == own or _run_of_record(item) == self.run_id]
        _write_atomically(
            state_path(self.pixie_home, self.run_id),
            {"version": FORMAT_VERSION, "runId": self.run_id, "event": self.event, "options": self.options, "items": items},
        )
        return items

    def _write_back_parent(self, meta: dict | None) -> None:
        """The parent's record changes when this run takes over its sandbox: that must reach the
        parent's saved state, or a second continuation of it would take the same sandbox."""
        if meta is None or meta == self._parent_meta:
            return
        path = state_path(self.pixie_home, self.parent_id)
        if not path.exists():  # removed meanwhile: nothing left to keep consistent
            return
        saved = json.loads(path.read_text(encoding="utf-8"))
        saved["items"] = [meta if _is_meta(item, self.parent_id) else item for item in saved["items"]]
        _write_atomically(path, saved)
        self._parent_meta = meta


class _ItemsView:
    """What run_record reads of a run (record, files, messages), from its items in DynamoDB JSON:
    no further reads of the table."""

    def __init__(self, items: list[dict]) -> None:
        deserialize = TypeDeserializer().deserialize
        self._items = sorted(
            ({key: deserialize(value) for key, value in item.items()} for item in items),
            key=lambda item: (item["pk"], item["sk"]),
        )

    def _with_prefix(self, run_id: str, prefix: str) -> list[dict]:
        return [i for i in self._items if i["pk"] == f"RUN#{run_id}" and i["sk"].startswith(prefix)]

    def find_run(self, run_id: str) -> RunRecord | None:
        meta = [i for i in self._with_prefix(run_id, "META") if i["sk"] == "META"]
        return RunRecord.from_item(meta[0]) if meta else None

    def _joined(self, run_id: str, item: dict, attribute: str) -> str:
        """The item's text with the parts of a message or file too big for one item appended."""
        by_key = {i["sk"]: i[attribute] for i in self._with_prefix(run_id, "PART#") if attribute in i}
        return item[attribute] + "".join(by_key[part_key(item["sk"], n)] for n in range(1, int(item.get("parts", 1))))

    def list_files(self, run_id: str) -> dict[str, str]:
        return {i["path"]: self._joined(run_id, i, "content") for i in self._with_prefix(run_id, "FILE#")}

    def list_messages(self, run_id: str) -> list[dict]:
        return [json.loads(self._joined(run_id, i, "message")) for i in self._with_prefix(run_id, "MSG#")]

    def list_changes(self, run_id: str) -> list[dict]:
        return [file_changes(i) for i in self._with_prefix(run_id, "CHANGES#")]


def _is_meta(item: dict, run_id: str) -> bool:
    return item["pk"]["S"] == f"RUN#{run_id}" and item["sk"]["S"] == "META"


# --- what a later process loads ---------------------------------------------------------------
def _saved_record(pixie_home: Path, run_id: str, action: str) -> dict[str, Any]:
    try:
        return load_run(pixie_home, run_id)
    except FileNotFoundError as exc:
        raise CannotStart(f"cannot {action} {run_id}: {exc}") from None


def parent_items(pixie_home: Path, parent_id: str) -> list[dict]:
    """The saved items of a run to continue; CannotStart unless it succeeded."""
    parent = _saved_record(pixie_home, parent_id, "continue")
    status = parent.get("status")
    if status == "RUNNING":
        raise CannotStart(f"cannot continue {parent_id}: it is still running (process {parent.get('pid')})")
    if status != "SUCCEEDED":
        raise CannotStart(
            f"cannot continue {parent_id}: it is {status}; only a run that succeeded can be continued. "
            f"Finish it first with: pixie resume {parent_id}"
        )
    saved = load_state(pixie_home, parent_id)
    return [item for item in saved["items"] if item["pk"]["S"] == f"RUN#{parent_id}"]


def resumable_state(pixie_home: Path, run_id: str) -> dict[str, Any]:
    """The saved state of a run to resume, with the items a fresh table should start from;
    CannotStart when the run finished or is still running."""
    record = _saved_record(pixie_home, run_id, "resume")
    status = record.get("status")
    if status == "SUCCEEDED":
        raise CannotStart(
            f"run {run_id} already succeeded; to build on it: pixie run --continue {run_id} \"what to change\""
        )
    if status == "RUNNING":
        raise CannotStart(f"run {run_id} is still running (process {record.get('pid')}); wait for it or stop it first")
    saved = load_state(pixie_home, run_id)
    # A wait for approval ended with the process that ran it (its token is dead): an undecided
    # turn asks again, with a new token, when the resumed execution reaches it.
    saved["items"] = [_keyed_to(run_id, _without_wait(item)) for item in saved["items"] if _kept_on_resume(item)]
    parent_id = continued_run(saved["event"])
    if parent_id and not any(_is_meta(item, run_id) for item in saved["items"]):
        # Killed before CreateSandbox recorded it: that step will need the parent's items again.
        saved["items"] += parent_items(pixie_home, parent_id)
    return saved


def continued_run(event: Any) -> str | None:
    """The run an event continues (detail.continueFrom), if any."""
    detail = event.get("detail") if isinstance(event, dict) else None
    return detail.get("continueFrom") if isinstance(detail, dict) else None


def _without_wait(item: dict) -> dict:
    return {k: v for k, v in item.items() if k != "pendingApproval"} if item["sk"]["S"] == "META" else item


def _run_of_record(item: dict) -> str | None:
    """The run an idempotency record belongs to, from its key `pixie.<Step>.<runId>#<hash>`
    (lambdas/handlers/shared.py); None for any other item."""
    if not item["pk"]["S"].startswith(IDEMPOTENCY_PREFIX):
        return None
    prefix = item["sk"]["S"].partition("#")[0]
    _pixie, _step, run_id = (prefix.split(".", 2) + ["", ""])[:3]
    return run_id or None


def _keyed_to(run_id: str, item: dict) -> dict:
    """A record saved before keys named their run (`pixie.<Step>#<hash>`) gets this run's name:
    the hash is the same either way, so a resumed step still finds its result."""
    prefix, hash_mark, rest = item["sk"]["S"].partition("#")
    if not item["pk"]["S"].startswith(IDEMPOTENCY_PREFIX) or not hash_mark or prefix.count(".") != 1:
        return item
    return {**item, "sk": {"S": f"{prefix}.{run_id}#{rest}"}}


def _kept_on_resume(item: dict) -> bool:
    pk = item["pk"]["S"]
    if not pk.startswith(IDEMPOTENCY_PREFIX):
        return True
    in_progress = item.get("status", {}).get("S") == "INPROGRESS"  # its process died mid-step
    return not in_progress and pk != REDONE_ON_RESUME
