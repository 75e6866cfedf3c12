"""What is running on this machine, read from /proc: for tests that check a command was ended."""

from __future__ import annotations

import os
from pathlib import Path


def sleeping(marker: str) -> list[int]:
    """Processes running `sleep <marker>` (a run's command, in or out of bubblewrap)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", marker.encode()]:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def processes_in(directory: Path) -> list[int]:
    """Processes whose working directory is `directory` (the orphaned command of a killed run)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd") == str(directory):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
