"""Sandboxes on E2B (e2b SDK 2.x, sync API). The SDK is used only here: everything else sees the
Sandbox / SandboxProvider protocols of base.py, and e2b's exceptions leave this module only as
pixie's typed errors (errors.py), whose names the state machine's Retry/Catch rules match."""

from __future__ import annotations

import hashlib
import posixpath
import re
import shlex
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import e2b

from lambdas.logic.errors import (
    SandboxAuthFailed,
    SandboxNotFound,
    SandboxThrottled,
    SandboxUnavailable,
    ToolError,
)
from lambdas.logic.sandboxes.base import PREVIEW_PORT, CommandResult, OutputCallback, normalize_project_path
from lambdas.logic.secrets import get_api_key

# The default user's home in E2B templates; the SDK resolves relative paths against it too.
PROJECT_ROOT = "/home/user"

# The SDK's own command timeout only stops waiting and leaves the process running inside the
# sandbox, so each command runs under coreutils `timeout`: TERM at the limit, KILL 5 s later.
KILL_AFTER_S = 5
# The SDK waits a little longer than that, so `timeout` always reports first (with the output).
SDK_TIMEOUT_SLACK_S = 10
# The metadata key that ties a sandbox to its run.
RUN_ID_METADATA = "pixieRunId"
# `timeout` exits 124 after TERM worked, 137 (128 + KILL) after it had to kill.
TIMEOUT_EXIT_CODES = (124, 137)


@contextmanager
def _sdk_errors(action: str, api_key: str | None) -> Iterator[None]:
    """Translate e2b's exceptions into pixie's typed errors; anything else passes unchanged.
    `action` completes "E2B could not ...". Messages are redacted of the API key and the SDK
    exception is not chained, so the key cannot reach a log through a traceback either."""
    try:
        yield
    except e2b.FileNotFoundException:
        raise  # a missing file, not a missing sandbox: file operations make it a ToolError
    except e2b.AuthenticationException as exc:
        raise SandboxAuthFailed(_message(action, exc, api_key)) from None
    # SandboxNotRunningException (killed, expired or paused) is a TimeoutException: test it first.
    except (e2b.NotFoundException, e2b.SandboxNotRunningException) as exc:
        raise SandboxNotFound(_message(action, exc, api_key)) from None
    except e2b.RateLimitException as exc:
        raise SandboxThrottled(_message(action, exc, api_key)) from None
    except (e2b.TimeoutException, e2b.ServiceBusyException) as exc:
        raise SandboxUnavailable(_message(action, exc, api_key)) from None
    except e2b.SandboxException as exc:
        if (exc.status_code or 0) >= 500:  # a 5xx answer from E2B's API: worth a retry
            raise SandboxUnavailable(_message(action, exc, api_key)) from None
        raise


def _message(action: str, exc: BaseException, api_key: str | None) -> str:
    text = f"E2B could not {action}: {type(exc).__name__}: {exc}"
    return text.replace(api_key, "[redacted]") if api_key else text


@contextmanager
def _file_problems(action: str) -> Iterator[None]:
    """File errors the model caused and can fix (a directory read as a file, a full disk):
    they go back to it as a ToolError instead of failing the step."""
    try:
        yield
    except (e2b.FileNotFoundException, e2b.InvalidArgumentException, e2b.NotEnoughSpaceException) as exc:
        raise ToolError(f"could not {action}: {exc}") from None


def _live_output(on_output: OutputCallback | None) -> dict[str, Any]:
    """The SDK's on_stdout/on_stderr callbacks, passing output on as it arrives."""
    if on_output is None:
        return {}
    return {"on_stdout": lambda text: on_output("stdout", text), "on_stderr": lambda text: on_output("stderr", text)}


class E2BSandbox:
    """One E2B sandbox. Paths are relative to PROJECT_ROOT; absolute ones only inside it."""

    project_root = PROJECT_ROOT

    def __init__(
        self,
        sdk_sandbox: Any,
        api_key: str | None = None,  # only to keep it out of error messages
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sbx = sdk_sandbox
        self._api_key = api_key
        self._clock = clock
        self.id: str = sdk_sandbox.sandbox_id

    def run_command(self, command: str, timeout_s: int, on_output: OutputCallback | None = None) -> CommandResult:
        # `timeout 0` and the SDK's timeout=0 both mean "no limit": never pass 0 on.
        timeout_s = max(1, int(timeout_s))
        # The command reaches bash as one quoted word, so quotes, $(...) and ; stay the command's own.
        wrapped = f"timeout -k {KILL_AFTER_S} {timeout_s} bash -lc {shlex.quote(command)}"
        started = self._clock()
        with _sdk_errors("run a command", self._api_key):
            try:
                result = self._sbx.commands.run(
                    wrapped,
                    timeout=timeout_s + KILL_AFTER_S + SDK_TIMEOUT_SLACK_S,
                    cwd=PROJECT_ROOT,
                    **_live_output(on_output),
                )
            except e2b.CommandExitException as exc:  # a non-zero exit is a result, not an error
                result = exc
            except (e2b.SandboxNotRunningException, e2b.SandboxUnreachableException):
                raise  # the sandbox is gone or unreachable, not the command slow: _sdk_errors maps it
            except e2b.TimeoutException:
                # The SDK gave up waiting although `timeout` should have answered first.
                return CommandResult(stdout="", stderr="", exit_code=None, timed_out=True)
        # 124/137 can also come from the command itself (its own `timeout`, an OOM kill): it was
        # our limit only if the limit has actually passed.
        timed_out = result.exit_code in TIMEOUT_EXIT_CODES and self._clock() - started >= timeout_s
        return CommandResult(
            stdout=result.stdout or "",
            stderr=result.stderr or "",
            exit_code=None if timed_out else result.exit_code,
            timed_out=timed_out,
        )

    def write_files(self, files: dict[str, str]) -> None:
        # Check every path before writing any, so a bad path writes nothing.
        entries = []
        for path, content in files.items():
            if not isinstance(content, str):
                raise ToolError(f"content of {path!r} must be a string")
            entries.append({"path": self._absolute(path), "data": content})
        if not entries:
            return
        with _sdk_errors("write files", self._api_key), _file_problems("write files"):
            self._sbx.files.write_files(entries)

    def read_file(self, path: str) -> str:
        absolute = self._absolute(path)
        relative = posixpath.relpath(absolute, PROJECT_ROOT)
        with _sdk_errors(f"read {relative}", self._api_key), _file_problems(f"read {relative}"):
            try:
                return self._sbx.files.read(absolute)
            except e2b.FileNotFoundException:
                raise ToolError(f"{relative} does not exist") from None

    def get_url(self, port: int = PREVIEW_PORT) -> str:
        return "https://" + self._sbx.get_host(port)

    def preview_status(self, timeout_s: int) -> tuple[int | None, str]:
        """What the dev server answers for `/` (the done-check), asked from inside the sandbox with
        Node's fetch (the template's image has Node, not curl)."""
        script = (
            f"fetch('http://localhost:{PREVIEW_PORT}/').then(async r => {{ console.log(r.status); "
            "if (!r.ok) console.log((await r.text()).slice(0, 2000)); }, "
            "e => console.log('no answer: ' + ((e.cause && e.cause.message) || e.message)))"
        )
        result = self.run_command(f"node -e {shlex.quote(script)}", timeout_s)
        first, _, rest = result.stdout.strip().partition("\n")
        if first.isdigit():
            return int(first), rest.strip()
        return None, (result.stdout + result.stderr).strip() or f"exit code {result.exit_code}"

    def kill(self) -> None:
        with _sdk_errors("kill the sandbox", self._api_key):
            try:
                self._sbx.kill()  # answers False, not an error, for an unknown sandbox...
            except (e2b.NotFoundException, e2b.SandboxNotRunningException):
                pass  # ...and a sandbox that is already gone is what we wanted anyway

    @staticmethod
    def _absolute(path: str) -> str:
        # The SDK does not stop `..`: normalize_project_path does (ToolError), before any call.
        return posixpath.join(PROJECT_ROOT, normalize_project_path(path, PROJECT_ROOT))


IDEMPOTENCY_KEY = re.compile(r"[a-z0-9-]{1,255}")


def e2b_idempotency_key(key: str) -> str:
    """E2B takes 1-255 lowercase letters, digits and hyphens (an EventBridge event id, a UUID, is
    one already); any other key is replaced by its SHA-256 in hex, still one key per input."""
    if IDEMPOTENCY_KEY.fullmatch(key):
        return key
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class E2BSandboxProvider:
    kind = "e2b"

    def __init__(self, api_key: str | None = None, sandbox_cls: Any = None) -> None:
        self._api_key = api_key if api_key is not None else get_api_key("E2B_API_KEY", "PIXIE_E2B_SECRET_NAME")
        self._sandbox_cls = sandbox_cls if sandbox_cls is not None else e2b.Sandbox

    def create(
        self, template: str, timeout_s: int, run_id: str | None = None, idempotency_key: str | None = None
    ) -> E2BSandbox:
        options: dict[str, Any] = {}
        if run_id:
            # Tagged with its run, so CleanupSandbox can find it even if the run was never recorded.
            options["metadata"] = {RUN_ID_METADATA: run_id}
        if idempotency_key is not None:
            # E2B answers a repeated create with the same key with the same sandbox (SDK >= 2.63).
            options["idempotency_key"] = e2b_idempotency_key(idempotency_key)
        with _sdk_errors(f"create a sandbox from template {template!r}", self._api_key):
            sbx = self._sandbox_cls.create(template=template, timeout=timeout_s, api_key=self._api_key, **options)
        return E2BSandbox(sbx, api_key=self._api_key)

    def release_run(self, run_id: str) -> int:
        """Kills the sandboxes tagged with `run_id` (one created by a CreateSandbox that failed, or
        was cut off, before it recorded the run); returns how many."""
        killed = 0
        with _sdk_errors(f"list the sandboxes of run {run_id}", self._api_key):
            pages = self._sandbox_cls.list(query=e2b.SandboxQuery(metadata={RUN_ID_METADATA: run_id}), api_key=self._api_key)
            while pages.has_next:
                for info in pages.next_items():
                    if self._sandbox_cls.kill(info.sandbox_id, api_key=self._api_key):
                        killed += 1
        return killed

    def connect(self, sandbox_id: str, timeout_s: int) -> E2BSandbox:
        # Connecting also sets the sandbox's lifetime (it only ever extends it): pass it every time.
        with _sdk_errors(f"connect to sandbox {sandbox_id}", self._api_key):
            sbx = self._sandbox_cls.connect(sandbox_id, timeout=timeout_s, api_key=self._api_key)
        return E2BSandbox(sbx, api_key=self._api_key)
