"""A project that lives across runs: a run that continues an earlier one, and a run picked up
again after it stopped. Used by CreateSandbox.

A run whose event names `detail.continueFrom` starts where that earlier run (its parent) ended:
- sandbox: locally, always a folder of its own seeded from the parent's version (so two
  continuations of one parent are two branches, and the parent's version stays as it ended);
  on E2B the parent's sandbox when it is still alive and no other run has taken it over;
  otherwise a fresh one with the parent's version (or, without one, its files in the table)
  restored, so a project outlives E2B's sandbox timeout and a deleted local folder;
- files: the parent's file items are copied, so the new run's result lists them too;
- conversation: the earlier runs of the chain, each compacted to its request and one reply
  (tool outputs reduced to a one-line note each), stored before the new run's own prompt."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from lambdas.dal.network_state import CONTEXT_KEY_PREFIX, NetworkState, RunRecord, context_message_key
from lambdas.logic.config import Settings
from lambdas.logic.errors import InvalidEvent, SandboxNotFound, ToolError
from lambdas.logic.sandboxes import sandbox_provider
from lambdas.logic.sandboxes.base import Sandbox
from lambdas.logic.sandboxes.beneath import open_root, replace_beneath
from lambdas.logic.versions import VersionNotFound, VersionStore
from lambdas.logic.truncate import bound_text

# What the model sees of earlier runs stays bounded however long the chain gets.
MAX_EARLIER_RUNS = 10
MAX_EARLIER_PROMPT_CHARS = 4_000
MAX_EARLIER_REPLY_CHARS = 4_000
MAX_NOTE_CHARS = 200


def continuable_parent(parent_id: str, state: NetworkState) -> RunRecord:
    """The run to continue; InvalidEvent when it is unknown or did not succeed (a failed or
    unfinished run is resumed, not continued)."""
    parent = state.find_run(parent_id)
    if parent is None:
        raise InvalidEvent(f"detail.continueFrom: there is no run {parent_id!r}")
    if parent.status != "SUCCEEDED":
        raise InvalidEvent(
            f"detail.continueFrom: run {parent_id} is {parent.status}; only a run that succeeded can be "
            "continued (resume an unfinished run instead)"
        )
    return parent


def continue_project(
    run_id: str,
    parent: RunRecord,
    sandbox_kind: str,
    create: Callable[[], Sandbox],
    settings: Settings,
    state: NetworkState,
) -> Sandbox:
    """The new run's sandbox (the parent's when it can be handed over, else a fresh one from
    `create` with the files restored), files and earlier conversation. Every write has a fixed
    key, so a retry repeats them harmlessly; the run record, written after this, commits the run."""
    files = state.list_files(parent.run_id)
    sandbox = _handed_over_sandbox(run_id, parent, sandbox_kind, settings, state)
    if sandbox is None:
        sandbox = create()
        if not restore_version(sandbox, parent.run_id, settings):
            restore_files(sandbox, files)
    state.put_files(run_id, files)
    for index, message in enumerate(earlier_conversation(parent, state)):
        state.put_message(run_id, context_message_key(index), message)
    return sandbox


def reattach_sandbox(run: RunRecord, settings: Settings, state: NetworkState) -> RunRecord:
    """A recorded run started again (resumed, or CreateSandbox retried): its own sandbox when it
    is alive, otherwise a fresh one with the run's files restored and recorded as its sandbox."""
    live_sandbox(run, settings, state)
    return state.get_run(run.run_id)


def live_sandbox(run: RunRecord, settings: Settings, state: NetworkState) -> Sandbox:
    """The run's sandbox, for a step that works in it. If it is gone — released by the cleanup of
    a run that is then redriven (AWS restarts an execution at its failed state, after
    CreateSandbox: https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html),
    or expired — a fresh one with the run's files restored from the table, recorded as the run's
    sandbox, so the redriven execution finishes instead of failing with SandboxNotFound."""
    provider = sandbox_provider(run.sandbox_kind, settings)
    try:
        return provider.connect(run.sandbox_id, settings.sandbox_timeout_s)
    except SandboxNotFound:
        pass
    sandbox = provider.create(run.template, settings.sandbox_timeout_s, run_id=run.run_id)
    if not restore_version(sandbox, run.run_id, settings):
        restore_files(sandbox, state.list_files(run.run_id))
    state.update_run(run.run_id, sandboxId=sandbox.id)
    return sandbox


def _handed_over_sandbox(
    run_id: str, parent: RunRecord, sandbox_kind: str, settings: Settings, state: NetworkState
) -> Sandbox | None:
    """The parent's sandbox, if it is of the kind this run uses, still alive, and not already
    taken over by another run continuing the same parent (that run may have changed it). A local
    run never takes its parent's folder: it forks from the parent's version."""
    if sandbox_kind == "local":
        return None
    if parent.sandbox_kind != sandbox_kind or not state.claim_sandbox(parent.run_id, run_id):
        return None
    try:
        return sandbox_provider(sandbox_kind, settings).connect(parent.sandbox_id, settings.sandbox_timeout_s)
    except SandboxNotFound:
        return None


def restore_version(sandbox: Sandbox, run_id: str, settings: Settings) -> bool:
    """Makes a fresh local sandbox hold exactly run `run_id`'s kept version (commands' files
    included, not only the file tool's); False when there is none to restore (not a local
    sandbox, never saved, pruned): the caller restores the table's files instead."""
    root = getattr(sandbox, "root", None)
    if not isinstance(root, (str, Path)):
        return False
    store = VersionStore(settings.pixie_home)
    try:
        manifest = store.manifest(run_id)
        contents = store.contents(manifest)
    except VersionNotFound:
        return False
    clear_fresh_folder(Path(root))
    root_fd = open_root(os.path.realpath(root))
    try:
        for path, data in contents.items():
            try:
                replace_beneath(root_fd, path, data)
            except OSError:
                continue  # e.g. a name this file system refuses: the rest still comes back
    finally:
        os.close(root_fd)
    return True


def clear_fresh_folder(root: Path) -> None:
    """Empties a sandbox folder just made from the template (nothing runs in it yet), so a
    version restored into it has no template file the version had deleted."""
    for entry in root.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def restore_files(sandbox: Sandbox, files: dict[str, str]) -> None:
    """Writes the project's files into a fresh sandbox; one the sandbox refuses (a template
    directory where a file was) is skipped rather than failing the run."""
    try:
        sandbox.write_files(files)
    except ToolError:
        for path, content in files.items():
            try:
                sandbox.write_files({path: content})
            except ToolError:
                continue


# --- the earlier conversation ---------------------------------------------------------------
def earlier_conversation(parent: RunRecord, state: NetworkState) -> list[dict[str, Any]]:
    """The parent's own earlier runs (already compacted) followed by the parent itself, compacted:
    a user message with its request and an assistant message with what was done."""
    inherited, own = [], []
    for key, message in state.list_keyed_messages(parent.run_id):
        (inherited if key.startswith(CONTEXT_KEY_PREFIX) else own).append(message)
    conversation = inherited + compact_run(parent, own)
    return conversation[-2 * MAX_EARLIER_RUNS :]


def compact_run(run: RunRecord, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results = {m.get("tool_call_id"): str(m.get("content") or "") for m in messages if m.get("role") == "tool"}
    lines: list[str] = []
    for message in messages:
        if message.get("role") != "assistant":
            continue
        if message.get("content"):
            lines.append(str(message["content"]).strip())
        for call in message.get("tool_calls") or []:
            lines.append(_tool_note(call, results.get(call.get("id"))))
    reply = bound_text("\n".join(lines), MAX_EARLIER_REPLY_CHARS)
    if run.summary and run.summary not in reply:
        reply += f"\n<task_summary>{run.summary}</task_summary>"
    header = f"[Earlier run {run.run_id}. Tool outputs are left out; its files are in the project.]"
    return [
        {"role": "user", "content": bound_text(run.prompt, MAX_EARLIER_PROMPT_CHARS)},
        {"role": "assistant", "content": f"{header}\n{reply}"},
    ]


def _tool_note(call: dict[str, Any], result: str | None) -> str:
    function = call.get("function") or {}
    name = str(function.get("name") or "?")
    try:
        arguments = json.loads(function.get("arguments") or "null")
    except (json.JSONDecodeError, TypeError):
        arguments = None
    arguments = arguments if isinstance(arguments, dict) else {}
    if name == "terminal":
        what = f"ran `{' '.join(str(arguments.get('command', '')).split())}`"
    elif name in ("createOrUpdateFiles", "readFiles"):
        files = arguments.get("files") if isinstance(arguments.get("files"), list) else []
        paths = [str(f.get("path") if isinstance(f, dict) else f) for f in files]
        what = ("wrote " if name == "createOrUpdateFiles" else "read ") + ", ".join(paths)
    else:
        what = f"called {name}"
    outcome = "no result" if result is None else "failed" if result.startswith("Error:") else "ok"
    return bound_text(f"- {what} ({outcome})", MAX_NOTE_CHARS)
