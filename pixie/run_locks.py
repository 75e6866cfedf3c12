"""One process per run, one run per project folder, at a time.

Two `pixie resume RUN` at once would both replay the run (a completed step's command could run
twice). So a local run holds, for its whole life, an exclusive `flock` on its run id and on its
own project folder; whoever comes second is refused before anything starts
(CannotStart: exit 2), told which run and process hold it. The kernel drops a flock when its
process dies, `kill -9` included, so a stale lock file never blocks anyone."""

from __future__ import annotations

import fcntl
import json
import os
import re
from contextlib import ExitStack
from pathlib import Path

from pixie.run_journal import CannotStart

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _lock_path(pixie_home: Path, kind: str, key: str) -> Path:
    return Path(pixie_home) / "locks" / f"{kind}-{_SAFE.sub('_', key)}.lock"


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        holder = json.loads(os.read(fd, 4096) or b"{}")
        return f"run {holder.get('runId', '?')} (process {holder.get('pid', '?')})"
    except (OSError, ValueError):
        return "another pixie process"


def hold(stack: ExitStack, pixie_home: Path, kind: str, key: str, run_id: str, what: str) -> None:
    """Takes the lock (kind, key) for `run_id` until `stack` closes; CannotStart naming the
    holder when another live process has it."""
    path = _lock_path(pixie_home, kind, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise CannotStart(f"{what} is in use by {holder}; wait for it to end or stop it first") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"runId": run_id, "pid": os.getpid()}).encode(), 0)
    stack.callback(os.close, fd)  # closing the descriptor releases the lock


def hold_run(stack: ExitStack, pixie_home: Path, run_id: str, items: list[dict]) -> None:
    """Takes the locks a local run holds for its life: its id, and its own project folder when
    its saved items name one (a resume). A second resume is refused (CannotStart). A
    continuation needs no lock on its parent's folder: a local run never works in it, it forks
    from the parent's kept version (lambdas/logic/continuation.py)."""
    hold(stack, pixie_home, "run", run_id, run_id, f"run {run_id}")
    own = f"RUN#{run_id}"
    for item in items:
        if item.get("pk", {}).get("S") == own and item.get("sk", {}).get("S") == "META" and "sandboxId" in item:
            sandbox_id = item["sandboxId"]["S"]
            hold(stack, pixie_home, "folder", sandbox_id, run_id, f"the project folder {sandbox_id}")
