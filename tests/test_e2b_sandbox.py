"""E2BSandbox / E2BSandboxProvider against a fake at the SDK boundary (E2B itself is not
reachable from tests). The fake raises e2b's real exception classes, and the calls it records are
bound against the real SDK signatures, so a renamed parameter fails here rather than on AWS."""

from __future__ import annotations

import inspect
import shlex

import e2b
import pytest
from e2b.sandbox_sync.commands.command import Commands
from e2b.sandbox_sync.filesystem.filesystem import Filesystem

from lambdas.logic.errors import (
    SandboxAuthFailed,
    SandboxNotFound,
    SandboxThrottled,
    SandboxUnavailable,
    ToolError,
)
from lambdas.logic.sandboxes import e2b_sandbox
from lambdas.logic.sandboxes.e2b_sandbox import PROJECT_ROOT, E2BSandbox, E2BSandboxProvider

API_KEY = "e2b_test_0123456789abcdef"


# --- the fake SDK ---------------------------------------------------------------------------
class FakeCommands:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        # What run() answers: an SDK CommandResult, or an exception to raise.
        self.outcome: object = e2b.CommandResult(stdout="hello\n", stderr="", exit_code=0, error=None)

    def run(self, cmd, **kwargs):
        self.calls.append((cmd, kwargs))
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


class FakeFiles:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.store: dict[str, str] = {}
        self.error: BaseException | None = None

    def write_files(self, files):
        self.calls.append(("write_files", files))
        if self.error:
            raise self.error
        self.store.update({entry["path"]: entry["data"] for entry in files})

    def read(self, path):
        self.calls.append(("read", path))
        if self.error:
            raise self.error
        if path not in self.store:
            raise e2b.FileNotFoundException(f"path '{path}' does not exist")  # as envd's 404 maps
        return self.store[path]


class FakeSdkSandbox:
    """Stands in for e2b.Sandbox: classmethods create/connect, `commands` and `files`."""

    created: list[dict] = []
    connected: list[tuple[str, dict]] = []
    error: BaseException | None = None  # raised by create/connect when set

    def __init__(self, sandbox_id: str) -> None:
        self.sandbox_id = sandbox_id
        self.commands = FakeCommands()
        self.files = FakeFiles()
        self.kill_calls = 0
        self.kill_error: BaseException | None = None

    @classmethod
    def create(cls, **kwargs):
        cls.created.append(kwargs)
        if cls.error:
            raise cls.error
        return cls("sbx-new")

    @classmethod
    def list(cls, query=None, **kwargs):
        """Sandbox.list: a paginator over the sandboxes created here whose metadata match the
        query's (all of them are "sbx-new", as create names them)."""
        wanted = dict(getattr(query, "metadata", None) or {})
        matching = [
            "sbx-new" for kwargs_ in cls.created if wanted.items() <= dict(kwargs_.get("metadata") or {}).items()
        ]

        class Pages:
            has_next = True

            def next_items(self):
                Pages.has_next = False
                return [type("SandboxInfo", (), {"sandbox_id": sandbox_id})() for sandbox_id in matching]

        return Pages()

    @classmethod
    def connect(cls, sandbox_id, **kwargs):
        cls.connected.append((sandbox_id, kwargs))
        if cls.error:
            raise cls.error
        return cls(sandbox_id)

    def get_host(self, port: int) -> str:
        return f"{port}-{self.sandbox_id}.e2b.app"

    def kill(self) -> bool:
        self.kill_calls += 1
        if self.kill_error:
            raise self.kill_error
        return True


@pytest.fixture
def sdk_cls():
    # A fresh subclass per test, so the recorded calls don't leak between tests.
    return type("FakeSdk", (FakeSdkSandbox,), {"created": [], "connected": [], "error": None})


@pytest.fixture
def provider(sdk_cls):
    return E2BSandboxProvider(api_key=API_KEY, sandbox_cls=sdk_cls)


@pytest.fixture
def sdk():
    return FakeSdkSandbox("sbx-1")


def make_sandbox(sdk, elapsed: float = 0.0) -> E2BSandbox:
    """An E2BSandbox whose clock says `elapsed` seconds passed during the command."""
    ticks = iter([100.0, 100.0 + elapsed])
    return E2BSandbox(sdk, api_key=API_KEY, clock=lambda: next(ticks))


def bind(method, *args, **kwargs) -> None:
    """Fail when the real SDK method would not accept these arguments."""
    inspect.signature(method).bind(*args, **kwargs)


# --- provider ---------------------------------------------------------------------------------
def test_create_passes_template_timeout_and_key(provider, sdk_cls):
    sandbox = provider.create("pixie", 900)

    assert provider.kind == "e2b"
    assert sdk_cls.created == [{"template": "pixie", "timeout": 900, "api_key": API_KEY}]
    assert sandbox.id == "sbx-new"
    assert sandbox.project_root == PROJECT_ROOT == "/home/user"
    bind(e2b.Sandbox.create, **sdk_cls.created[0])
    assert "api_key" in e2b.ApiParams.__annotations__  # create/connect take it through **opts


def test_connect_passes_id_timeout_and_key(provider, sdk_cls):
    sandbox = provider.connect("sbx-42", 600)

    assert sdk_cls.connected == [("sbx-42", {"timeout": 600, "api_key": API_KEY})]
    assert sandbox.id == "sbx-42"
    # Sandbox.connect called on the class dispatches to this classmethod.
    bind(e2b.Sandbox._cls_connect_sandbox, "sbx-42", **sdk_cls.connected[0][1])


def test_api_key_defaults_to_secrets_lookup(monkeypatch, sdk_cls):
    looked_up = []
    monkeypatch.setattr(e2b_sandbox, "get_api_key", lambda *names: looked_up.append(names) or "from-env")

    E2BSandboxProvider(sandbox_cls=sdk_cls).create("pixie", 60)

    assert looked_up == [("E2B_API_KEY", "PIXIE_E2B_SECRET_NAME")]
    assert sdk_cls.created[0]["api_key"] == "from-env"


def test_sandbox_cls_defaults_to_the_real_sdk():
    assert E2BSandboxProvider(api_key=API_KEY)._sandbox_cls is e2b.Sandbox


# --- run_command ------------------------------------------------------------------------------
def test_command_success(sdk):
    result = make_sandbox(sdk, elapsed=1).run_command("echo hello", 30)

    assert (result.stdout, result.stderr, result.exit_code, result.timed_out) == ("hello\n", "", 0, False)
    cmd, kwargs = sdk.commands.calls[0]
    assert cmd == "timeout -k 5 30 bash -lc 'echo hello'"
    assert kwargs["cwd"] == PROJECT_ROOT
    assert kwargs["timeout"] > 30 + 5  # the SDK waits longer than coreutils timeout needs
    bind(Commands.run, None, cmd, **kwargs)


def test_command_is_quoted_exactly(sdk):
    command = """echo "it's $(whoami)" && printf '%s\\n' a;b `date` > "out file" """
    make_sandbox(sdk).run_command(command, 10)

    wrapped = sdk.commands.calls[0][0]
    prefix = "timeout -k 5 10 bash -lc "
    assert wrapped.startswith(prefix)
    # Split the way the outer shell splits it, the last word is the command, byte for byte.
    assert shlex.split(wrapped) == ["timeout", "-k", "5", "10", "bash", "-lc", command]


def test_non_zero_exit_is_a_result(sdk):
    # Built exactly as CommandHandle.wait() builds it.
    sdk.commands.outcome = e2b.CommandExitException(
        stdout="compiling\n", stderr="error TS2304\n", exit_code=2, error="exit status 2"
    )
    result = make_sandbox(sdk, elapsed=3).run_command("npm run build", 120)

    assert (result.stdout, result.stderr, result.exit_code, result.timed_out) == (
        "compiling\n",
        "error TS2304\n",
        2,
        False,
    )


@pytest.mark.parametrize("code", [124, 137])
def test_coreutils_timeout_is_timed_out(sdk, code):
    sdk.commands.outcome = e2b.CommandExitException(stdout="partial", stderr="", exit_code=code, error=None)
    result = make_sandbox(sdk, elapsed=30.2).run_command("npm run dev", 30)

    assert (result.stdout, result.exit_code, result.timed_out) == ("partial", None, True)


def test_fast_137_is_the_command_s_own_exit(sdk):
    # e.g. an OOM kill after 2 s: the limit did not pass, so it is not our timeout.
    sdk.commands.outcome = e2b.CommandExitException(stdout="", stderr="Killed", exit_code=137, error=None)
    result = make_sandbox(sdk, elapsed=2).run_command("next build", 300)

    assert (result.exit_code, result.timed_out) == (137, False)


def test_sdk_timeout_is_timed_out(sdk):
    sdk.commands.outcome = e2b.TimeoutException("context deadline exceeded")
    result = make_sandbox(sdk).run_command("sleep 999", 5)

    assert (result.exit_code, result.timed_out) == (None, True)


def test_zero_timeout_never_means_unlimited(sdk):
    make_sandbox(sdk).run_command("true", 0)

    assert sdk.commands.calls[0][0].startswith("timeout -k 5 1 bash -lc ")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (e2b.SandboxNotRunningException("sandbox was not found"), SandboxNotFound),
        (e2b.SandboxUnreachableException("port is not open"), SandboxUnavailable),
        (e2b.RateLimitException("429"), SandboxThrottled),
        (e2b.AuthenticationException("401"), SandboxAuthFailed),
    ],
)
def test_command_sandbox_errors_are_mapped(sdk, exc, expected):
    sdk.commands.outcome = exc
    with pytest.raises(expected):
        make_sandbox(sdk).run_command("ls", 10)


# --- files ------------------------------------------------------------------------------------
def test_write_and_read_under_project_root(sdk):
    sandbox = make_sandbox(sdk)
    sandbox.write_files({"app/page.tsx": "export default 1\n", "/home/user/README.md": "# hi\n"})

    assert sdk.files.calls[0] == (
        "write_files",
        [
            {"path": "/home/user/app/page.tsx", "data": "export default 1\n"},
            {"path": "/home/user/README.md", "data": "# hi\n"},
        ],
    )
    bind(Filesystem.write_files, None, sdk.files.calls[0][1])
    assert sandbox.read_file("./app/page.tsx") == "export default 1\n"
    assert sdk.files.calls[-1] == ("read", "/home/user/app/page.tsx")
    bind(Filesystem.read, None, "/home/user/app/page.tsx")


def test_absolute_path_inside_root_is_accepted(sdk):
    sdk.files.store["/home/user/app/page.tsx"] = "x"

    assert make_sandbox(sdk).read_file("/home/user/app/page.tsx") == "x"
    assert sdk.files.calls == [("read", "/home/user/app/page.tsx")]


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../../x", "/home/user/../x", "/home/userx/a", "", "."])
def test_escaping_paths_are_rejected_before_any_sdk_call(sdk, bad):
    sandbox = make_sandbox(sdk)
    with pytest.raises(ToolError):
        sandbox.read_file(bad)
    with pytest.raises(ToolError):
        sandbox.write_files({"ok.txt": "fine", bad: "evil"})  # nothing is written, not even ok.txt

    assert sdk.files.calls == []


def test_non_string_content_is_a_tool_error(sdk):
    with pytest.raises(ToolError):
        make_sandbox(sdk).write_files({"a.txt": None})
    assert sdk.files.calls == []


def test_missing_file_is_a_tool_error(sdk):
    with pytest.raises(ToolError, match=r"^app/missing\.ts does not exist$"):
        make_sandbox(sdk).read_file("app/missing.ts")


@pytest.mark.parametrize(
    "exc",
    [e2b.InvalidArgumentException("path is a directory"), e2b.NotEnoughSpaceException("507: no space")],
)
def test_file_problems_are_tool_errors(sdk, exc):
    sdk.files.error = exc
    with pytest.raises(ToolError):
        make_sandbox(sdk).write_files({"a.txt": "x"})
    with pytest.raises(ToolError):
        make_sandbox(sdk).read_file("app")


def test_gone_sandbox_while_reading_is_not_a_tool_error(sdk):
    sdk.files.error = e2b.SandboxNotRunningException("sandbox was not found")
    with pytest.raises(SandboxNotFound):
        make_sandbox(sdk).read_file("a.txt")


def test_empty_write_makes_no_call(sdk):
    make_sandbox(sdk).write_files({})
    assert sdk.files.calls == []


# --- url and kill -----------------------------------------------------------------------------
def test_get_url(sdk):
    sandbox = make_sandbox(sdk)
    assert sandbox.get_url() == "https://3000-sbx-1.e2b.app"
    assert sandbox.get_url(8080) == "https://8080-sbx-1.e2b.app"


def test_kill(sdk):
    make_sandbox(sdk).kill()
    assert sdk.kill_calls == 1


@pytest.mark.parametrize(
    "gone", [e2b.SandboxNotFoundException("Sandbox sbx-1 not found"), e2b.SandboxNotRunningException("sandbox was not found")]
)
def test_kill_of_a_sandbox_that_is_already_gone_asks_e2b_and_succeeds(sdk, gone):
    sdk.kill_error = gone
    assert make_sandbox(sdk).kill() is None  # not SandboxNotFound: a gone sandbox is what kill wants
    assert sdk.kill_calls == 1


def test_kill_maps_other_errors(sdk):
    sdk.kill_error = e2b.RateLimitException("429")
    with pytest.raises(SandboxThrottled):
        make_sandbox(sdk).kill()


# --- error mapping on create / connect ----------------------------------------------------------
MAPPED = [
    (e2b.AuthenticationException(f"401: Unauthorized - key {API_KEY} is invalid"), SandboxAuthFailed),
    (e2b.SandboxNotFoundException(f"Paused sandbox sbx-42 not found ({API_KEY})"), SandboxNotFound),
    (e2b.NotFoundException(f"404: not found {API_KEY}"), SandboxNotFound),
    (e2b.RateLimitException(f"429: Rate limit exceeded {API_KEY}"), SandboxThrottled),
    (e2b.TimeoutException(f"Request timed out {API_KEY}"), SandboxUnavailable),
    (e2b.ServiceBusyException(f"503: Service temporarily unavailable {API_KEY}"), SandboxUnavailable),
    (e2b.SandboxException(f"500: internal error {API_KEY}", status_code=500), SandboxUnavailable),
]


@pytest.mark.parametrize(("exc", "expected"), MAPPED, ids=[type(exc).__name__ for exc, _ in MAPPED])
@pytest.mark.parametrize("call", ["create", "connect"])
def test_errors_are_mapped_without_the_key(provider, sdk_cls, exc, expected, call):
    sdk_cls.error = exc
    with pytest.raises(expected) as raised:
        provider.create("pixie", 60) if call == "create" else provider.connect("sbx-42", 60)

    message = str(raised.value)
    assert API_KEY not in message
    assert "[redacted]" in message  # the SDK's text is kept, only the key is cut out
    assert raised.value.__cause__ is None and raised.value.__suppress_context__  # no chained original


def test_other_sdk_errors_pass_through(provider, sdk_cls):
    # A 4xx that is none of the above (e.g. a bad template name) is not retryable: not mapped.
    sdk_cls.error = e2b.InvalidArgumentException("400: bad template")
    with pytest.raises(e2b.InvalidArgumentException):
        provider.create("no such template", 60)
