"""The file tools and the preview under a folder/symlink swap loop: `renameat2(RENAME_EXCHANGE)`
swaps a project folder with a symlink to a host folder thousands of times while the tools read and
write through it and the preview serves from it. Nothing outside the project is ever read or
written, and every call ends as a result or a tool error, never a crash."""

from __future__ import annotations

import ctypes
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import skip_or_fail_in_ci

from lambdas.logic.errors import ToolError
from lambdas.logic.sandboxes.local import LocalSandbox, stop_all_previews

RENAME_EXCHANGE = 2
AT_FDCWD = -100
HOST_SECRET = "HOST-SECRET-3b9e"
OPERATIONS = 2000  # each of reads, writes and preview requests


@pytest.fixture(autouse=True)
def _stop_previews():
    yield
    stop_all_previews()


def exchange(a: Path, b: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


class SwapLoop:
    """Swaps `folder` and `link` (a symlink to a host folder) until stopped, counting swaps."""

    def __init__(self, folder: Path, link: Path) -> None:
        self.folder, self.link = folder, link
        self.swaps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            exchange(self.folder, self.link)
            self.swaps += 1

    def __enter__(self) -> "SwapLoop":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture(params=["openat2", "walk"])
def raced(tmp_path, request, monkeypatch):
    """A project whose folder `d` is swapped with `s`, a symlink to a host folder holding a secret."""
    try:
        exchange(tmp_path / "missing-a", tmp_path / "missing-b")
    except OSError as exc:
        if exc.errno not in (2,):  # ENOENT: the call exists; anything else: no renameat2 here
            skip_or_fail_in_ci(f"renameat2(RENAME_EXCHANGE) unavailable: {exc}")
    except AttributeError:
        skip_or_fail_in_ci("this C library has no renameat2")
    from lambdas.logic.sandboxes import beneath

    if request.param == "walk":  # the component-by-component walk kernels without openat2 get
        monkeypatch.setattr(beneath, "openat2_available", lambda: False)
    elif not beneath.openat2_available():
        skip_or_fail_in_ci("this kernel has no openat2 (before Linux 5.6; the walk case still runs)")
    host = tmp_path / "host"
    host.mkdir()
    (host / "x.txt").write_text(HOST_SECRET)
    project = tmp_path / "project"
    (project / "d").mkdir(parents=True)
    (project / "d" / "x.txt").write_text("inside")
    (project / "index.html").write_text("<p>home</p>")
    (project / "s").symlink_to(host)
    return LocalSandbox("local-" + "r" * 12, project), project, host


def test_file_tools_never_read_or_write_outside_during_a_swap_loop(raced):
    sandbox, project, host = raced
    outcomes = {"read": 0, "wrote": 0, "refused": 0}
    with SwapLoop(project / "d", project / "s") as loop:
        for i in range(OPERATIONS):
            try:
                content = sandbox.read_file("d/x.txt")
                assert content == "inside", content
                outcomes["read"] += 1
            except ToolError:
                outcomes["refused"] += 1
            try:
                sandbox.write_files({f"d/w{i % 7}.txt": f"written {i}"})
                outcomes["wrote"] += 1
            except ToolError:
                outcomes["refused"] += 1
    assert loop.swaps > 100, "the loop barely ran: the race was not exercised"
    assert sorted(p.name for p in host.iterdir()) == ["x.txt"], "a write landed in the host folder"
    assert (host / "x.txt").read_text() == HOST_SECRET
    assert outcomes["read"] and outcomes["wrote"], outcomes  # the tools still work between swaps


def test_the_preview_never_serves_a_host_file_during_a_swap_loop(raced):
    sandbox, project, _ = raced
    url = sandbox.get_url() + "d/x.txt"
    served = {200: 0, 404: 0}
    with SwapLoop(project / "d", project / "s") as loop:
        for _ in range(OPERATIONS):
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    body = response.read().decode()
                assert body == "inside", body
                served[200] += 1
            except urllib.error.HTTPError as error:
                assert error.code == 404
                served[404] += 1
    assert loop.swaps > 100
    assert served[200], served


# --- beneath.py's refusals and writes, on both paths (openat2 and the walk) -------------------------
@pytest.fixture(params=["openat2", "walk"])
def beneath_root(tmp_path, request, monkeypatch):
    from lambdas.logic.sandboxes import beneath

    if request.param == "walk":
        monkeypatch.setattr(beneath, "openat2_available", lambda: False)
    elif not beneath.openat2_available():
        skip_or_fail_in_ci("this kernel has no openat2 (before Linux 5.6; the walk case still runs)")
    (tmp_path / "project" / "src").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text(HOST_SECRET)
    (tmp_path / "project" / "out").symlink_to(tmp_path / "outside")
    root = beneath.open_root(str(tmp_path / "project"))
    yield beneath, root, tmp_path
    os.close(root)


@pytest.mark.parametrize(
    "relative, code",
    [("a\x00b", "EINVAL"), ("../outside/secret.txt", "EXDEV"), ("src/../../outside/secret.txt", "EXDEV"), ("", "EXDEV"), ("./", "EXDEV")],
)
def test_a_nul_a_path_that_leaves_or_the_folder_itself_is_refused_before_any_open(beneath_root, relative, code):
    import errno

    beneath, root, _ = beneath_root
    with pytest.raises(OSError) as refused:
        beneath.open_beneath(root, relative, os.O_RDONLY)
    assert refused.value.errno == getattr(errno, code)


def test_a_symlink_on_the_way_is_never_followed_for_reading_or_writing(beneath_root):
    beneath, root, tmp_path = beneath_root
    with pytest.raises(OSError):
        beneath.open_beneath(root, "out/secret.txt", os.O_RDONLY)
    with pytest.raises(OSError):
        beneath.replace_beneath(root, "out/secret.txt", b"overwritten")
    with pytest.raises(OSError):
        beneath.open_folder_beneath(root, "out/deeper", create=True)
    assert (tmp_path / "outside" / "secret.txt").read_text() == HOST_SECRET
    assert sorted(p.name for p in (tmp_path / "outside").iterdir()) == ["secret.txt"]


def test_replace_makes_folders_keeps_the_mode_and_leaves_nothing_behind_when_refused(beneath_root):
    beneath, root, tmp_path = beneath_root
    project = tmp_path / "project"
    beneath.replace_beneath(root, "new/deep/run.sh", b"echo one\n")
    assert (project / "new" / "deep" / "run.sh").read_bytes() == b"echo one\n"
    (project / "new" / "deep" / "run.sh").chmod(0o755)
    beneath.replace_beneath(root, "new/deep/run.sh", b"echo two\n")
    assert (project / "new" / "deep" / "run.sh").stat().st_mode & 0o777 == 0o755  # still executable

    def refuse(existing):
        raise ToolError("not a regular file")

    with pytest.raises(ToolError):
        beneath.replace_beneath(root, "new/deep/run.sh", b"echo three\n", check_existing=refuse)
    assert (project / "new" / "deep" / "run.sh").read_bytes() == b"echo two\n"
    assert sorted(p.name for p in (project / "new" / "deep").iterdir()) == ["run.sh"]  # no temporary file left
    fd = beneath.open_folder_beneath(root, "")  # "" is the root itself for a folder
    try:
        assert sorted(os.listdir(fd)) == ["new", "out", "src"]
    finally:
        os.close(fd)
