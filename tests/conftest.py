"""Shared fixtures. Nothing AWS is mocked unless a test asks for `aws` (or `table`): end-to-end
tests start the embedded engine, which brings its own mock_aws."""

from __future__ import annotations

import functools
import json
import os
import signal
from pathlib import Path
from typing import Any, Callable, NoReturn

import boto3
import pytest
from moto import mock_aws

from lambdas.dal.network_state import NetworkState, create_table
from lambdas.handlers import shared

# A suite started in the background by a non-interactive shell (`nohup make test &`, some CI
# runners) inherits SIGINT ignored, and so would every `pixie` it starts: Python then installs no
# KeyboardInterrupt handler, and a test's Ctrl-C (SIGINT) stops nothing. A handler set here is
# reset to the default in each child at exec (xdist's workers included), so children get Ctrl-C.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

TEST_TABLE = "pixie-test"
REGION = "us-east-1"

# Settings a developer may have exported; tests start from the documented defaults.
_PIXIE_ENV = (
    "PIXIE_TABLE",
    "PIXIE_MODEL",
    "PIXIE_SANDBOX",
    "PIXIE_TEMPLATE",
    "PIXIE_HOME",
    "PIXIE_MAX_ITERATIONS",
    "PIXIE_COMMAND_TIMEOUT",
    "PIXIE_SANDBOX_TIMEOUT",
    "PIXIE_MAX_PROMPT_CHARS",
    "PIXIE_MAX_TOOL_OUTPUT_CHARS",
    "PIXIE_MAX_TOOL_CALLS",
    "PIXIE_MAX_FILE_BYTES",
    "PIXIE_MAX_CALL_BYTES",
    "PIXIE_MAX_REPLY_CHARS",
    "PIXIE_OPENAI_SECRET_NAME",
    "PIXIE_E2B_SECRET_NAME",
    "PIXIE_ALLOW_NETWORK",
    "PIXIE_ALLOW_HOSTS",
    "PIXIE_BWRAP",
)


def bare_environment(**values: str) -> dict[str, str]:
    """An environment of only `values`, for a process that must work without the test's own;
    under `make coverage` it keeps coverage's settings too (they travel in the environment), so
    the process is measured like any other and behaves the same."""
    kept = {k: os.environ[k] for k in ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START") if k in os.environ}
    return {**kept, **values}


def ci_forbids_skips() -> bool:
    """PIXIE_CI_NO_SKIP=1 (.ci/run): a test that would skip for want of something fails instead."""
    return os.environ.get("PIXIE_CI_NO_SKIP", "") not in ("", "0")


def skip_or_fail_in_ci(reason: str, required_by: str | None = None, allow_module_level: bool = False) -> NoReturn:
    """The one way a test skips for want of something on this machine (a tool, root, a kernel
    feature, an address, a newer bubblewrap): it skips saying `reason`, or, under
    PIXIE_CI_NO_SKIP=1 (or the PIXIE_REQUIRE_* setting named by `required_by`), fails saying it,
    so CI is never green with such a test unrun."""
    fail_in_ci(reason, required_by)
    pytest.skip(reason, allow_module_level=allow_module_level)


def fail_in_ci(reason: str, required_by: str | None = None) -> None:
    """Fails the test under PIXIE_CI_NO_SKIP=1 (or `required_by`) saying `reason`; elsewhere returns,
    for a test that leaves out a part the machine cannot check (and says so in a comment)."""
    for setting in ("PIXIE_CI_NO_SKIP", required_by):
        if setting and os.environ.get(setting, "") not in ("", "0"):
            pytest.fail(f"{setting}={os.environ[setting]} but {reason}", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Under PIXIE_CI_NO_SKIP=1 a skip that did not go through skip_or_fail_in_ci (a plugin's, an
    importorskip added later) fails too: the suite has no skip that is not for want of something
    on the machine."""
    report = yield
    return _skip_failed_in_ci(report)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """The same for a whole module skipped at import (pytest.importorskip at module level)."""
    report = yield
    return _skip_failed_in_ci(report)


def skip_by_design(reason: str) -> NoReturn:
    """A skip that is not for want of anything on the machine, and so stands in CI too: the one
    today is tools/test_as_user.sh's ordinary user, who gets no memory cgroup by design."""
    pytest.skip(SKIPPED_BY_DESIGN + reason)


SKIPPED_BY_DESIGN = "by design, not for want of anything on this machine: "


def _skip_failed_in_ci(report):
    reason = report.longrepr[2] if report.skipped and isinstance(report.longrepr, tuple) else str(report.longrepr)
    if report.skipped and ci_forbids_skips() and SKIPPED_BY_DESIGN not in reason:
        # An xfail leaves its test unrun as surely as a skip (the suite has none by design).
        what = f"this was xfailed: {report.wasxfail}" if hasattr(report, "wasxfail") else f"this skipped: {reason}"
        report.outcome = "failed"
        report.longrepr = f"PIXIE_CI_NO_SKIP=1 but {what}"
    return report


@functools.cache
def isolation_problem() -> str | None:
    """Why commands cannot run under bubblewrap here (None: they can)."""
    from lambdas.logic.errors import IsolationUnavailable
    from lambdas.logic.sandboxes.isolation import find_bubblewrap

    try:
        find_bubblewrap()
    except IsolationUnavailable as exc:
        return str(exc)
    return None


def require_isolation() -> None:
    """Skips the test where bubblewrap cannot run, saying why; PIXIE_REQUIRE_ISOLATION=1
    or PIXIE_CI_NO_SKIP=1 (.ci/run sets both) makes that a failure."""
    problem = isolation_problem()
    if problem is not None:
        skip_or_fail_in_ci(f"commands cannot be isolated here (no working bubblewrap): {problem}",
                           required_by="PIXIE_REQUIRE_ISOLATION")


@pytest.fixture(autouse=True)
def _fresh_handler_caches(monkeypatch):
    """Cached settings and clients (lambdas.handlers.shared) must not leak between tests."""
    for name in _PIXIE_ENV:
        monkeypatch.delenv(name, raising=False)
    # Commands run isolated wherever bubblewrap works (tests/test_isolation.py checks that it
    # isolates); elsewhere the other tests still run their commands, unisolated.
    monkeypatch.setenv("PIXIE_ISOLATION", "bwrap" if isolation_problem() is None else "none")
    shared.reset()
    yield
    shared.reset()


@pytest.fixture
def aws(monkeypatch):
    """moto's mock_aws, active for the test, with fake credentials in a fake region."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield


@pytest.fixture
def table(aws, monkeypatch) -> NetworkState:
    """The network-state table, created in moto; PIXIE_TABLE names it for the handlers."""
    create_table(boto3.client("dynamodb", region_name=REGION), TEST_TABLE)
    monkeypatch.setenv("PIXIE_TABLE", TEST_TABLE)
    return NetworkState(TEST_TABLE)


@pytest.fixture
def pixie_home(tmp_path, monkeypatch) -> Path:
    """PIXIE_HOME pointed at the test's tmp_path (local sandboxes and saved runs go there)."""
    monkeypatch.setenv("PIXIE_HOME", str(tmp_path))
    return tmp_path


def write_script_file(path: Path, turns: list[dict[str, Any]]) -> Path:
    """A scripted model file (lambdas/logic/models/scripted.py) holding `turns`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"turns": turns}), encoding="utf-8")
    return path


@pytest.fixture
def write_script(tmp_path) -> Callable[..., Path]:
    """write_script(turns, name="script.json") -> the file's path, under tmp_path/scripts."""

    def write(turns: list[dict[str, Any]], name: str = "script.json") -> Path:
        return write_script_file(tmp_path / "scripts" / name, turns)

    return write


@pytest.fixture
def local_sandbox(pixie_home):
    """A fresh local sandbox under PIXIE_HOME; its preview server is stopped afterwards."""
    from lambdas.logic.sandboxes.local import LocalSandboxProvider, stop_preview

    sandbox = LocalSandboxProvider(pixie_home).create("pixie", 60)
    yield sandbox
    stop_preview(sandbox.id)

