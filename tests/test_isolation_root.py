"""The sandbox holds when pixie runs as root (containers, CI, dev boxes) and as an ordinary user:
a command has no capability and is not root inside, so a mask cannot be unmounted, /usr cannot
be remounted writable and no nested user namespace gives capabilities back.

The root case needs root (CI runs as root and PIXIE_CI_NO_SKIP turns the skip into a failure);
the user case drops to uid 65534 in a forked child, so it runs wherever root runs the suite."""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

import pytest

from lambdas.logic.sandboxes.isolation import IsolationPolicy, Limits, SANDBOX_UID
from lambdas.logic.sandboxes.local import LocalSandbox, stop_all_previews
from pixie.local_run import RunOptions, run_locally
from conftest import require_isolation, skip_or_fail_in_ci, write_script_file

NOBODY = 65534


@pytest.fixture(autouse=True)
def _isolation_required():
    require_isolation()
    yield
    stop_all_previews()


def require_root() -> None:
    if os.geteuid() == 0:
        return
    skip_or_fail_in_ci("the root case of the isolation tests needs pixie to run as root")


def attack_commands(probe: Path) -> list[str]:
    return [
        "id -u; grep -E '^Cap(Eff|Prm|Bnd):' /proc/self/status",
        "umount /etc/shadow; echo umount-exit=$?; head -c 64 /etc/shadow | wc -c",
        f"mount -o remount,rw,bind /usr && touch {probe}; echo remount-exit=$?",
        "unshare --user --map-root-user true; echo unshare-exit=$?",
        # As root the command is root to file permissions: the host's kernel settings must still be
        # out of reach (kernel.core_pattern runs a program as root). The same value, written back.
        "cat /proc/sys/vm/swappiness > /proc/sys/vm/swappiness; echo sysctl-exit=$?",
    ]


def assert_attacks_failed(outputs: list[str], probe: Path) -> None:
    identity, umount, remount, nested, sysctl = outputs
    assert "sysctl-exit=0" not in sysctl, sysctl
    assert re.search(rf"^{SANDBOX_UID}$", identity, re.MULTILINE), identity
    capabilities = re.findall(r"^Cap(?:Eff|Prm|Bnd):\s*([0-9a-f]+)$", identity, re.MULTILINE)
    assert len(capabilities) == 3 and all(int(c, 16) == 0 for c in capabilities), identity
    assert "umount-exit=0" not in umount and re.search(r"^0$", umount, re.MULTILINE), umount  # still masked: empty
    assert "remount-exit=0" not in remount, remount
    assert not probe.exists(), "a command wrote into the host's /usr"
    assert "unshare-exit=0" not in nested, nested


def probe_path() -> Path:
    return Path("/usr/local") / f"pixie-probe-{uuid.uuid4().hex[:12]}"


def test_as_root_a_run_whose_commands_try_to_undo_the_sandbox_gets_nowhere(tmp_path):
    require_root()
    probe = probe_path()
    turns = [{"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": c}} for c in attack_commands(probe)]},
             {"content": "<task_summary>probed</task_summary>"}]
    script = write_script_file(tmp_path / "attack.json", turns)

    record = run_locally("Probe", RunOptions(model=f"scripted:{script}", pixie_home=tmp_path / "home", isolation="bwrap"))

    assert record["status"] == "SUCCEEDED", record
    outputs = [m["content"] for m in record["conversation"] if m["role"] == "tool"]
    assert_attacks_failed(outputs, probe)
    if Path("/etc/shadow").is_file():
        assert Path("/etc/shadow").stat().st_size == 0 or "root:" not in json.dumps(record)


def run_as(uid: int, work: Path, probe: Path, commands: list[str] | None = None, **policy) -> list[str]:
    """The attack commands (or `commands`) run in a sandbox by a forked child that is `uid`, not root."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            project = work / "project"
            project.mkdir()
            sandbox = LocalSandbox("local-" + "0" * 12, project, IsolationPolicy(**policy))
            if commands is not None:
                (project / "fork.py").write_text(FORK_BOMB)
            outputs = []
            for command in attack_commands(probe) if commands is None else commands:
                result = sandbox.run_command(command, 30)
                outputs.append(result.stdout + result.stderr)
            os.write(write, json.dumps(outputs).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and data, "the unprivileged child failed"
    return json.loads(data)


def test_as_an_ordinary_user_the_same_commands_get_nowhere(tmp_path):
    require_root()  # to become another user
    work = Path(os.environ.get("PIXIE_TEST_SHARED_TMP", "/var/tmp")) / f"pixie-user-{uuid.uuid4().hex[:8]}"
    work.mkdir(mode=0o755)
    os.chown(work, NOBODY, NOBODY)
    probe = probe_path()
    try:
        assert_attacks_failed(run_as(NOBODY, work, probe), probe)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


# Forks sleeping children until fork fails; never more than 400 tries, whatever happens.
FORK_BOMB = (
    "import os, time\n"
    "n = 0\n"
    "try:\n"
    "    while n < 400:\n"
    "        if os.fork() == 0:\n"
    "            time.sleep(30); os._exit(0)\n"
    "        n += 1\n"
    "except OSError as e:\n"
    "    print('stopped', n, e.errno)\n"
)


def test_as_an_ordinary_user_a_fork_bomb_stops_at_the_process_limit(tmp_path):
    """The process limit binds when pixie is not root too (as root a pids cgroup does it; as a
    user, RLIMIT_NPROC inside the command's own user namespace)."""
    require_root()  # to become another user
    work = Path(os.environ.get("PIXIE_TEST_SHARED_TMP", "/var/tmp")) / f"pixie-user-{uuid.uuid4().hex[:8]}"
    work.mkdir(mode=0o755)
    os.chown(work, NOBODY, NOBODY)
    try:
        (output,) = run_as(NOBODY, work, probe_path(), ["python3 fork.py"], limits=Limits(processes=60))
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    assert output.startswith("stopped"), output
    assert int(output.split()[1]) < 60, output


def test_doctor_checks_each_of_these_live():
    import io

    from pixie.doctor import doctor

    out = io.StringIO()
    assert doctor(out=out) == 0, out.getvalue()
    for check in ("not root", "no capabilities", "a mask cannot be removed", "/usr cannot be remounted writable",
                  "no nested user namespace", "the host's kernel settings are read-only"):
        assert re.search(rf"^  ok   .*{re.escape(check)}", out.getvalue(), re.MULTILINE), (check, out.getvalue())


def test_doctor_fails_loudly_when_the_sandbox_would_keep_root_powers(monkeypatch):
    """The sandbox as it was before this was fixed (root inside, every capability, nested user
    namespaces allowed): pixie doctor must say FAIL for each, and exit non-zero."""
    require_root()
    import io

    from lambdas.logic.sandboxes import isolation
    from pixie.doctor import doctor

    real = isolation.bwrap_argv
    weakened = {"--unshare-user", "--disable-userns"}

    def without_the_fix(*args, **kwargs):
        argv = real(*args, **kwargs)
        kept, skip = [], 0
        for i, arg in enumerate(argv):
            if skip:
                skip -= 1
                continue
            if arg in ("--uid", "--gid", "--cap-drop"):
                skip = 1
                continue
            if arg not in weakened:
                kept.append(arg)
        return kept

    from lambdas.logic.sandboxes import local

    monkeypatch.setattr(local, "bwrap_argv", without_the_fix)
    out = io.StringIO()
    assert doctor(out=out) == 1, out.getvalue()
    for check in ("not root", "no capabilities", "a mask cannot be removed", "/usr cannot be remounted writable"):
        assert re.search(rf"^  FAIL .*{re.escape(check)}", out.getvalue(), re.MULTILINE), (check, out.getvalue())
    assert "isolation is NOT working" in out.getvalue()
