"""Runs one command and, when it ends or this process gets SIGTERM, kills every process it left
behind: `python tools/reaper.py COMMAND...` exits with the command's exit code (143 on SIGTERM).

tools/mutants.py runs each mutant's pytest under it. A test may start a pixie server, a sandbox
(`bwrap --new-session`), Chromium: processes that call setsid or daemonize escape a process-group
kill, and would keep running in the scratch copy the next mutant reuses. This process is a child
subreaper (prctl PR_SET_CHILD_SUBREAPER, man 2 prctl), so an orphaned descendant is reparented to
it instead of to init, and every process the command started stays below it until killed here.
Only this process's descendants are touched: the other worker's reaper has its own."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1


class Terminated(Exception):
    pass


def children(pid: int) -> list[int]:
    found: list[int] = []
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in listing.read_text().split()]
        except OSError:  # the thread ended meanwhile
            pass
    return found


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = children(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo += children(child)
    return found


def kill_descendants() -> None:
    """SIGKILLs every descendant and reaps them. An orphan is reparented here when its parent dies
    (this is a subreaper), so no children left means no descendants left; a process that forks
    while being killed leaves its child to a later round."""
    while True:
        for pid in descendants(os.getpid()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def main(command: list[str]) -> int:
    def on_sigterm(signum, frame):
        raise Terminated

    signal.signal(signal.SIGTERM, on_sigterm)
    libc = ctypes.CDLL(None, use_errno=True)
    # SIGTERM here too when the thread that started this dies (tools.mutants killed outright).
    for option, value in ((PR_SET_CHILD_SUBREAPER, 1), (PR_SET_PDEATHSIG, signal.SIGTERM)):
        if libc.prctl(option, int(value), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"prctl({option}, {int(value)})")
    try:
        try:
            # tools/mutants.py starts this from worker threads that block SIGINT and SIGTERM (so
            # they reach its main thread only); the command gets the ordinary mask back.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
            child = subprocess.Popen(command)
            return child.wait()
        except Terminated:
            return 128 + signal.SIGTERM
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            kill_descendants()
    except Terminated:  # a SIGTERM between the try and the handler's removal
        kill_descendants()
        return 128 + signal.SIGTERM


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
