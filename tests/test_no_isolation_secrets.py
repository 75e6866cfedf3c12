"""--no-isolation warns, and still hands out none of pixie's secrets: the command's environment is
an allow-list, and pixie's own process is non-dumpable, so /proc/$PPID/environ is unreadable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import write_script_file
from lambdas.logic.sandboxes.local import unisolated_environment

PIXIE = Path(sys.executable).parent / "pixie"
SECRETS = {
    "OPENAI_API_KEY": "sk-fake-openai-7d1f",
    "DATABASE_URL": "postgres://admin:db-password-5e2c@db.internal/app",  # no secret-looking name
    "MY_SERVICE_CONFIG": "service-config-value-81aa",
}


def test_an_unisolated_command_sees_no_secret_of_pixies_in_its_environment_or_its_parents(tmp_path):
    probes = [
        "env",
        # $? of the read itself (a pipe would report tr's)
        "tr '\\0' '\\n' < /proc/$PPID/environ; echo parent-environ-exit=$?",
        "cat /proc/$PPID/cmdline >/dev/null; ls /proc/$PPID/ >/dev/null; echo listed",
    ]
    turns = [{"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": c}} for c in probes]},
             {"content": "<task_summary>probed</task_summary>"}]
    script = write_script_file(tmp_path / "probe.json", turns)
    environment = {**os.environ, **SECRETS, "PIXIE_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [str(PIXIE), "run", "--no-serve", "--json", "--no-isolation", "--model", f"scripted:{script}", "Probe"],
        env=environment, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert "WARNING: isolation is off" in done.stderr
    record = json.loads((tmp_path / "home" / "runs" / f"{json.loads(done.stdout)['runId']}.json").read_text())
    own_env, parent_env, _ = [m["content"] for m in record["conversation"] if m["role"] == "tool"]
    assert "PATH=" in own_env  # the command did get an environment, without any secret
    for value in SECRETS.values():
        assert value not in own_env
    if os.geteuid() == 0:
        return  # root may read any process's environ (CAP_SYS_PTRACE): see the next test, as a user
    assert "parent-environ-exit=0" not in parent_env  # unreadable, not merely empty
    for value in SECRETS.values():
        assert value not in parent_env


def test_as_a_user_a_child_of_pixie_cannot_read_pixies_environ():
    """The non-dumpable bit as it holds for an ordinary user (root bypasses it): a forked child
    becomes uid 65534 with the secrets in its environment, makes itself non-dumpable as pixie
    does, and a command it starts (the same user) tries /proc/$PPID/environ."""
    if os.geteuid() != 0:
        from lambdas.logic.sandboxes.local import make_pixie_undumpable

        assert make_pixie_undumpable()  # this test process is already an ordinary user's
        read = subprocess.run(["sh", "-c", "cat /proc/$PPID/environ"], capture_output=True)
        assert read.returncode != 0 and not read.stdout
        return
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - reports through the pipe
        code = 1
        try:
            os.close(reader)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.environ.update(SECRETS)
            import ctypes

            from lambdas.logic.sandboxes.local import PR_SET_DUMPABLE, make_pixie_undumpable

            # Changing uid reset the bit (fs.suid_dumpable); a user's own pixie starts dumpable.
            ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
            make_pixie_undumpable.cache_clear()
            undumpable = make_pixie_undumpable()
            read = subprocess.run(["/bin/sh", "-c", "cat /proc/$PPID/environ"], capture_output=True, cwd="/")
            os.write(writer, json.dumps([undumpable, read.returncode, read.stdout.decode(errors="replace")]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        undumpable, returncode, leaked = json.loads(pipe.read())
    os.waitpid(child, 0)
    assert undumpable is True
    assert returncode != 0 and leaked == ""


def test_the_allow_list_passes_what_tools_need_and_nothing_else():
    passed = unisolated_environment({"PATH": "/bin", "HOME": "/h", "LC_ALL": "C", "LANG": "C.UTF-8", **SECRETS,
                                     "NPM_TOKEN": "x", "AWS_PROFILE": "p", "PYTHONPATH": "/x"})
    assert passed == {"PATH": "/bin", "HOME": "/h", "LC_ALL": "C", "LANG": "C.UTF-8"}
