"""Loaded by a `pixie` subprocess whose PYTHONPATH starts with this folder (Python imports
`sitecustomize` at startup): E2B's cloud is replaced by the same fake the in-process tests use
(tests/test_end_to_end_e2b.py), and what it saw is written as JSON to $FAKE_E2B_LOG at exit."""

import atexit
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, for the fake

import e2b  # noqa: E402
from test_end_to_end_e2b import FakeCloud, FakeSandbox  # noqa: E402

e2b.Sandbox = FakeSandbox


@atexit.register
def _write_log() -> None:
    log = {
        "calls": FakeCloud.calls,
        "killed": {sandbox_id: box.killed for sandbox_id, box in FakeCloud.sandboxes.items()},
        "files": {sandbox_id: box.store for sandbox_id, box in FakeCloud.sandboxes.items()},
    }
    Path(os.environ["FAKE_E2B_LOG"]).write_text(json.dumps(log))


# The console script leaves through os._exit (no interpreter teardown, so no atexit): write first.
_real_exit = os._exit


def _exit_after_writing_the_log(code: int) -> None:
    _write_log()
    _real_exit(code)


os._exit = _exit_after_writing_the_log
