"""The local sandbox (lambdas/logic/sandboxes/local.py): a real project directory, real
processes and a real preview server on 127.0.0.1."""

from __future__ import annotations

import os
import time
import uuid
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lambdas.logic.errors import SandboxNotFound, ToolError
from lambdas.logic.sandboxes import local
from lambdas.logic.sandboxes.local import TEMPLATE_DIR, LocalSandbox, LocalSandboxProvider


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs (a zombie nobody reaped yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def processes_running(argument: str) -> list[int]:
    """Host pids of live processes with `argument` in their command line (pids a command
    prints are its own PID namespace's, so tests find processes by a unique argument)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if argument.encode() in (entry / "cmdline").read_bytes().split(b"\0") and not process_gone(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_none_running(argument: str, within_s: float = 3.0) -> bool:
    deadline = time.monotonic() + within_s
    while processes_running(argument):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def unique_sleep() -> str:
    """A sleep duration no other process uses, so it names the process."""
    return f"300.{uuid.uuid4().int % 10**9:09d}"


def fetch(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


# --- create / connect ------------------------------------------------------------------------
def test_create_seeds_the_template_in_its_own_directory(pixie_home):
    provider = LocalSandboxProvider(pixie_home)
    sandbox = provider.create("pixie", 60)
    root = Path(sandbox.project_root)
    assert root == pixie_home / "sandboxes" / sandbox.id
    assert (root / "index.html").is_file()
    template_files = sorted(p.relative_to(TEMPLATE_DIR) for p in TEMPLATE_DIR.rglob("*") if p.is_file())
    assert template_files and sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file()) == template_files
    assert (root / "index.html").read_bytes() == (TEMPLATE_DIR / "index.html").read_bytes()

    second = provider.create("pixie", 60)
    assert second.id != sandbox.id and second.project_root != sandbox.project_root


def test_connect_finds_an_existing_sandbox(pixie_home):
    provider = LocalSandboxProvider(pixie_home)
    created = provider.create("pixie", 60)
    created.write_files({"notes.txt": "kept"})
    again = provider.connect(created.id, 60)
    assert again.id == created.id
    assert again.read_file("notes.txt") == "kept"


@pytest.mark.parametrize("sandbox_id", ["local-000000000000", "../sandboxes", "local-../../etc", "", "sbx-123", "LOCAL-0123456789AB"])
def test_connect_to_an_unknown_or_invalid_id_is_sandbox_not_found(pixie_home, sandbox_id):
    (pixie_home / "sandboxes").mkdir(exist_ok=True)
    with pytest.raises(SandboxNotFound):
        LocalSandboxProvider(pixie_home).connect(sandbox_id, 60)


def test_connect_after_the_directory_was_removed_is_sandbox_not_found(pixie_home, local_sandbox):
    import shutil

    shutil.rmtree(local_sandbox.project_root)
    with pytest.raises(SandboxNotFound, match="no longer exists"):
        LocalSandboxProvider(pixie_home).connect(local_sandbox.id, 60)


# --- commands --------------------------------------------------------------------------------
def test_run_command_gives_stdout_stderr_and_exit_code(local_sandbox):
    result = local_sandbox.run_command("echo out; echo err >&2; exit 3", 10)
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.exit_code == 3
    assert result.timed_out is False

    ok = local_sandbox.run_command("printf 'a b'", 10)
    assert (ok.stdout, ok.stderr, ok.exit_code) == ("a b", "", 0)


def test_commands_run_in_the_project_directory(local_sandbox):
    result = local_sandbox.run_command("pwd; ls", 10)
    lines = result.stdout.splitlines()
    assert os.path.realpath(lines[0]) == os.path.realpath(local_sandbox.project_root)
    assert "index.html" in lines[1:]


def test_commands_run_in_bash_and_get_no_stdin(local_sandbox):
    result = local_sandbox.run_command("echo ${BASH_VERSION:+bash}; cat; echo after", 5)
    assert result.stdout == "bash\nafter\n" and not result.timed_out


def test_a_hung_command_times_out_and_its_whole_process_group_is_killed(local_sandbox):
    sleep = unique_sleep()
    started = time.monotonic()
    result = local_sandbox.run_command(f"sleep {sleep} & echo started; sleep 30", 1)
    elapsed = time.monotonic() - started
    assert result.timed_out is True
    assert result.exit_code is None
    assert result.stdout == "started\n"  # output so far is kept
    assert elapsed < 6
    assert wait_none_running(sleep), "the background child survived the timeout"


def test_a_command_ignoring_sigterm_is_still_killed(local_sandbox):
    sleep = unique_sleep()
    result = local_sandbox.run_command(f"trap '' TERM; sleep {sleep} & wait", 1)
    assert result.timed_out
    assert wait_none_running(sleep), "a child ignored SIGTERM and was never SIGKILLed"


def test_background_processes_do_not_outlive_a_finished_command(local_sandbox):
    sleep = unique_sleep()
    result = local_sandbox.run_command(f"sleep {sleep} >/dev/null 2>&1 & echo done", 10)
    assert (result.exit_code, result.stdout, result.timed_out) == (0, "done\n", False)
    assert wait_none_running(sleep), "the background process kept running"


def test_megabytes_of_output_are_bounded_keeping_head_and_tail(local_sandbox):
    result = local_sandbox.run_command(
        "echo FIRST; yes | head -c 5000000; echo; echo LAST; yes e | head -c 3000000 >&2; echo ERR_END >&2", 30
    )
    assert result.exit_code == 0
    limit = local.CAPTURE_HEAD_BYTES + local.CAPTURE_TAIL_BYTES + 200
    assert len(result.stdout) < limit and len(result.stderr) < limit
    assert result.stdout.startswith("FIRST\ny\ny\n")
    assert result.stdout.endswith("LAST\n")
    assert "bytes omitted" in result.stdout
    assert result.stderr.endswith("ERR_END\n") and "bytes omitted" in result.stderr


def test_output_that_is_not_utf8_does_not_break_the_result(local_sandbox):
    result = local_sandbox.run_command(r"printf 'ok \xff\xfe end'", 10)
    assert result.exit_code == 0
    assert result.stdout.startswith("ok ") and result.stdout.endswith(" end")


def test_secrets_in_the_environment_are_not_visible_to_commands(local_sandbox, monkeypatch):
    secrets = {
        "OPENAI_API_KEY": "sk-test-secret-openai",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-value-123",
        "AWS_ACCESS_KEY_ID": "AKIATESTSECRETID",
        "AWS_SESSION_TOKEN": "aws-session-token-value",
        "E2B_API_KEY": "e2b_secret_value",
        "GITHUB_TOKEN": "ghp_secretvalue",
        "DB_PASSWORD": "hunter2-password",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PIXIE_VISIBLE_MARKER", "plain-setting-visible")

    result = local_sandbox.run_command("env", 10)
    if local_sandbox.policy.mode == "none":
        assert "plain-setting-visible" in result.stdout  # unisolated: the environment minus secrets
    else:
        assert "plain-setting-visible" not in result.stdout  # isolated: a fixed environment only
    for name, value in secrets.items():
        assert value not in result.stdout, f"{name} leaked to the command"
        assert f"{name}=" not in result.stdout


# --- files -----------------------------------------------------------------------------------
def test_write_and_read_round_trip_with_subdirectories(local_sandbox):
    files = {"src/components/App.js": "export default 1;\n", "a/b/c/deep.txt": "ünïcødé ✓", "index.html": "<h1>new</h1>"}
    local_sandbox.write_files(files)
    for path, content in files.items():
        assert local_sandbox.read_file(path) == content
        assert (Path(local_sandbox.project_root) / path).read_text(encoding="utf-8") == content
    # and commands see them
    assert local_sandbox.run_command("cat a/b/c/deep.txt", 5).stdout == "ünïcødé ✓"


def test_paths_are_normalized_inside_the_project(local_sandbox):
    local_sandbox.write_files({"./x/../y.txt": "Y", "dir\\win.txt": "W"})
    root = Path(local_sandbox.project_root)
    assert (root / "y.txt").read_text() == "Y"
    assert (root / "dir" / "win.txt").read_text() == "W"
    assert local_sandbox.read_file("dir/./win.txt") == "W"


def test_an_absolute_path_under_the_project_root_is_accepted(local_sandbox):
    absolute = os.path.join(local_sandbox.project_root, "abs", "file.txt")
    local_sandbox.write_files({absolute: "absolute"})
    assert local_sandbox.read_file("abs/file.txt") == "absolute"
    assert local_sandbox.read_file(absolute) == "absolute"


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../x", "..", "/", "", "   ", ".", "a/\x00b"])
def test_paths_leaving_the_project_are_rejected(local_sandbox, path):
    parent = Path(local_sandbox.project_root).parent
    with pytest.raises(ToolError):
        local_sandbox.read_file(path)
    with pytest.raises(ToolError):
        local_sandbox.write_files({path: "pwned"})
    assert not (parent / "x").exists()


def test_a_sibling_directory_with_the_same_prefix_is_outside(local_sandbox):
    sibling = local_sandbox.project_root + "-evil"
    with pytest.raises(ToolError):
        local_sandbox.write_files({sibling + "/x.txt": "pwned"})
    assert not os.path.exists(sibling)


def test_a_rejected_path_in_a_batch_writes_nothing(local_sandbox):
    with pytest.raises(ToolError):
        local_sandbox.write_files({"good.txt": "fine", "../bad.txt": "no"})
    assert not (Path(local_sandbox.project_root) / "good.txt").exists()


def test_a_symlink_pointing_outside_is_refused_for_read_and_write(local_sandbox, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret outside")
    root = Path(local_sandbox.project_root)
    os.symlink(outside, root / "link.txt")
    with pytest.raises(ToolError, match="outside the project"):
        local_sandbox.read_file("link.txt")
    with pytest.raises(ToolError, match="outside the project"):
        local_sandbox.write_files({"link.txt": "overwritten"})
    assert outside.read_text() == "secret outside"


def test_a_symlinked_directory_pointing_outside_is_refused(local_sandbox, tmp_path):
    outside_dir = tmp_path / "outside_dir"
    outside_dir.mkdir()
    (outside_dir / "there.txt").write_text("outside")
    os.symlink(outside_dir, Path(local_sandbox.project_root) / "linkdir")
    with pytest.raises(ToolError):
        local_sandbox.read_file("linkdir/there.txt")
    with pytest.raises(ToolError):
        local_sandbox.write_files({"linkdir/new.txt": "x"})
    assert not (outside_dir / "new.txt").exists()


def test_a_symlink_is_refused_even_when_it_stays_inside(local_sandbox):
    """A link inside today can be swapped for one that leaves tomorrow: the tools follow none."""
    os.symlink("index.html", Path(local_sandbox.project_root) / "alias.html")
    with pytest.raises(ToolError, match="symbolic link"):
        local_sandbox.read_file("alias.html")
    with pytest.raises(ToolError, match="symbolic link"):
        local_sandbox.write_files({"alias.html/../x.txt": "x", "alias.html": "y"})
    assert Path(local_sandbox.project_root, "alias.html").is_symlink()


def test_a_missing_file_is_a_clear_tool_error(local_sandbox):
    with pytest.raises(ToolError, match=r"nope/missing\.txt does not exist"):
        local_sandbox.read_file("nope/missing.txt")


def test_a_directory_is_not_read_or_overwritten(local_sandbox):
    local_sandbox.write_files({"sub/file.txt": "x"})
    with pytest.raises(ToolError, match="is a directory"):
        local_sandbox.read_file("sub")
    with pytest.raises(ToolError, match="is a directory"):
        local_sandbox.write_files({"sub": "x"})
    assert (Path(local_sandbox.project_root) / "sub" / "file.txt").read_text() == "x"


def test_a_path_through_a_file_is_a_clear_tool_error(local_sandbox):
    with pytest.raises(ToolError, match="index.html/x.txt: a parent of it is a file"):
        local_sandbox.write_files({"index.html/x.txt": "x"})
    with pytest.raises(ToolError, match="does not exist"):
        local_sandbox.read_file("index.html/x.txt")


def test_os_errors_become_tool_errors(local_sandbox):
    too_long = "n" * 300 + ".txt"  # over the 255-byte name limit
    with pytest.raises(ToolError, match="cannot write .*File name too long"):
        local_sandbox.write_files({too_long: "x"})
    with pytest.raises(ToolError, match="cannot read .*File name too long"):
        local_sandbox.read_file(too_long)


def test_a_binary_file_is_refused(local_sandbox):
    (Path(local_sandbox.project_root) / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ToolError, match="logo.png is a binary file"):
        local_sandbox.read_file("logo.png")


def test_a_non_utf8_file_is_refused(local_sandbox):
    (Path(local_sandbox.project_root) / "latin1.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(ToolError, match="not UTF-8"):
        local_sandbox.read_file("latin1.txt")


def test_a_file_over_the_read_limit_is_refused(local_sandbox):
    (Path(local_sandbox.project_root) / "big.txt").write_text("a" * (local.MAX_READ_BYTES + 1))
    with pytest.raises(ToolError, match=r"big\.txt is 1000001 bytes, over the"):
        local_sandbox.read_file("big.txt")
    (Path(local_sandbox.project_root) / "edge.txt").write_text("a" * local.MAX_READ_BYTES)
    assert len(local_sandbox.read_file("edge.txt")) == local.MAX_READ_BYTES


# --- preview -----------------------------------------------------------------------------------
def test_get_url_serves_the_project_over_http_on_loopback_until_killed(local_sandbox):
    url = local_sandbox.get_url(3000)
    assert url.startswith("http://127.0.0.1:") and url.endswith("/")
    status, body = fetch(url)
    assert status == 200
    assert body == (Path(local_sandbox.project_root) / "index.html").read_bytes()

    # the preview follows the project's files and is one server per sandbox
    local_sandbox.write_files({"index.html": "<h1>changed</h1>", "page/about.html": "about"})
    assert fetch(url)[1] == b"<h1>changed</h1>"
    assert fetch(url + "page/about.html")[1] == b"about"
    assert local_sandbox.get_url() == url
    reconnected = LocalSandboxProvider(Path(local_sandbox.project_root).parent.parent).connect(local_sandbox.id, 60)
    assert reconnected.get_url() == url

    local_sandbox.kill()
    with pytest.raises(urllib.error.URLError):
        fetch(url)
    local_sandbox.kill()  # stopping twice is harmless


def test_stop_preview_stops_only_that_sandbox(pixie_home):
    provider = LocalSandboxProvider(pixie_home)
    a, b = provider.create("pixie", 60), provider.create("pixie", 60)
    try:
        url_a, url_b = a.get_url(), b.get_url()
        assert url_a != url_b
        local.stop_preview(a.id)
        with pytest.raises(urllib.error.URLError):
            fetch(url_a)
        assert fetch(url_b)[0] == 200
    finally:
        local.stop_preview(a.id)
        local.stop_preview(b.id)


def test_the_preview_does_not_follow_symlinks_out_of_the_project(local_sandbox, tmp_path):
    (tmp_path / "outside.txt").write_text("secret")
    (local_sandbox.root / "leak.txt").symlink_to(tmp_path / "outside.txt")
    (local_sandbox.root / "inside.txt").write_text("fine")
    (local_sandbox.root / "alias.txt").symlink_to(local_sandbox.root / "inside.txt")
    url = local_sandbox.get_url()
    with pytest.raises(urllib.error.HTTPError) as info:
        fetch(url + "leak.txt")
    assert info.value.code == 404
    assert fetch(url + "inside.txt") == (200, b"fine")
    with pytest.raises(urllib.error.HTTPError) as info:  # nor links that stay inside (they can be swapped)
        fetch(url + "alias.txt")
    assert info.value.code == 404


def test_local_sandbox_is_constructible_from_a_plain_directory(tmp_path):
    sandbox = LocalSandbox("local-aaaaaaaaaaaa", tmp_path)
    sandbox.write_files({"f.txt": "1"})
    assert sandbox.read_file(str(tmp_path / "f.txt")) == "1"
