"""The local sandbox: a project directory per run under $PIXIE_HOME/sandboxes/<sandboxId>/,
seeded from a static web template shipped in the repo, with a preview HTTP server on
127.0.0.1 standing in for E2B's dev server on port 3000.

It confines paths (symlinks included) and bounds commands in time and output. Commands run
under bubblewrap (isolation.py): only the project folder is writable, home and $PIXIE_HOME are
absent, no network unless allowed, and nothing a command starts outlives it. With isolation
"none" they run as you, on your machine."""

from __future__ import annotations

import codecs
import errno
import functools
import os
import posixpath
import re
import selectors
import shutil
import signal
import stat
import subprocess
import threading
import time
import uuid
import urllib.error
import urllib.parse
import urllib.request
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from lambdas.logic.errors import SandboxNotFound, ToolError
from lambdas.logic.sandboxes.base import PREVIEW_PORT, CommandResult, OutputCallback, normalize_project_path
from lambdas.logic.sandboxes import egress
from lambdas.logic.sandboxes.beneath import open_beneath, open_root, replace_beneath
from lambdas.logic.sandboxes.isolation import (
    ISOLATION_BWRAP,
    IsolationPolicy,
    CommandCgroup,
    bwrap_argv,
    find_bubblewrap,
    limits_script,
)

TEMPLATE_DIR = Path(__file__).parent / "local_template"
MAX_READ_BYTES = 1_000_000
# Bytes kept from each end of a command's stdout/stderr; the tool layer bounds it further.
CAPTURE_HEAD_BYTES = 64_000
CAPTURE_TAIL_BYTES = 64_000
LIVE_OUTPUT_BYTES = 256_000  # per stream, passed on live (on_output) before only the capture goes on
READ_CHUNK_BYTES = 65_536
KILL_GRACE_S = 2
# After a command ended (or was killed), how long pixie still reads what is left in its pipes:
# an unisolated command's escaped background process may hold them open.
DRAIN_S = 1.0
DISK_CHECK_S = 0.5  # how often a running command's project folder is measured against its disk bound
# Unisolated (--no-isolation), a command gets only these of pixie's environment: an allow-list,
# since a secret need not have a secret-looking name (DATABASE_URL=postgres://user:password@...).
_PASSED_ENV = frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TERM", "TMPDIR", "TZ"})
_PASSED_ENV_PREFIXES = ("LC_",)
PR_SET_DUMPABLE = 4


def unisolated_environment(environ: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k in _PASSED_ENV or k.startswith(_PASSED_ENV_PREFIXES)}


@functools.cache
def make_pixie_undumpable() -> bool:
    """An unisolated command runs as you and could read pixie's own environment (its API keys)
    from /proc/$PPID/environ, or attach a debugger: a non-dumpable process allows neither to
    processes of the same user (prctl(2), PR_SET_DUMPABLE). Commands, started with execve, are
    dumpable again. False where the call is not available."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False

_previews: dict[str, ThreadingHTTPServer] = {}
_previews_lock = threading.Lock()
# Process groups of the commands running now, so an interrupted CLI can end them too.
_running: dict[int, str] = {}  # process group of a running command -> its sandbox id
_running_lock = threading.Lock()


class _BoundedCapture:
    """One stream's output as it arrives, keeping only the first and last bytes: whatever a
    command prints, pixie holds at most CAPTURE_HEAD_BYTES + CAPTURE_TAIL_BYTES of it, in memory
    and never on disk."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = CAPTURE_HEAD_BYTES - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > CAPTURE_TAIL_BYTES:
                del self.tail[: len(self.tail) - CAPTURE_TAIL_BYTES]

    def text(self) -> str:
        omitted = self.total - len(self.head) - len(self.tail)
        cut = f"\n[... {omitted} bytes omitted ...]\n".encode() if omitted else b""
        return bytes(self.head + cut + self.tail).decode("utf-8", errors="replace")


class _LiveOutput:
    """Passes a stream's output on as text while it arrives (split multi-byte characters are
    joined), up to LIVE_OUTPUT_BYTES; past that only the capture keeps it."""

    def __init__(self, stream: str, callback: OutputCallback | None) -> None:
        self.stream = stream
        self.callback = callback
        self.left = LIVE_OUTPUT_BYTES
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, data: bytes, final: bool = False) -> None:
        if self.callback is None or self.left <= 0:
            return
        piece = data[: self.left]
        self.left -= len(data)
        text = self.decoder.decode(piece, final=final or self.left <= 0)
        if self.left <= 0:
            text += "\n[... more output, not shown live ...]\n"
        if text:
            try:
                self.callback(self.stream, text)
            except Exception:  # noqa: BLE001 - watching must never break the command
                pass


def _kill_group(pgid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        if sig == signal.SIGTERM:
            threading.Event().wait(0.1)


# --- file tools: regular files only, never blocking, never writing through a link ------------------
def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def _refuse_non_regular(name: object):
    """Only a regular file (or nothing yet) may be written: writing to a FIFO would block."""

    def check(info: os.stat_result) -> None:
        if stat.S_ISLNK(info.st_mode):
            raise _link_refused(name)
        if not stat.S_ISREG(info.st_mode):
            raise ToolError(f"cannot write {name}: it is {_kind(info.st_mode)}, not a regular file")

    return check


def _link_refused(shown: object) -> ToolError:
    return ToolError(
        f"{shown!r} is or goes through a symbolic link: the file tools never follow links (one can point "
        "outside the project, or be swapped to do so); use the real path"
    )


def _read_regular_file(root_fd: int, relative: str, shown: str) -> bytes:
    """The file's bytes, if it is a regular file with one link and within the read limit.
    Opened beneath the project without following any link and without blocking (a FIFO with no
    writer would wait forever), then checked on the open descriptor."""
    try:
        fd = open_beneath(root_fd, relative, os.O_RDONLY | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        raise ToolError(f"{shown} does not exist") from None
    try:
        _check_readable(os.fstat(fd), shown)  # before fdopen, which refuses a directory its own way
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_READ_BYTES + 1)
    if len(data) > MAX_READ_BYTES:
        raise ToolError(f"{shown} is over the {MAX_READ_BYTES}-byte read limit")
    return data


def _check_readable(info: os.stat_result, shown: str) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise ToolError(f"{shown} is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise ToolError(f"{shown} is {_kind(info.st_mode)}, not a regular file; only regular files can be read")
    if info.st_nlink > 1:
        # Another name for the same file may be outside the project (a hard link): not ours to read.
        raise ToolError(f"{shown} has {info.st_nlink} hard links; only files with one link can be read")
    if info.st_size > MAX_READ_BYTES:
        raise ToolError(f"{shown} is {info.st_size} bytes, over the {MAX_READ_BYTES}-byte read limit")


_PREVIEW_HOSTS = ("127.0.0.1", "localhost")


class _PreviewHandler(SimpleHTTPRequestHandler):
    """Serves the project folder quietly, and nothing else: only regular files inside it (a
    symlink or hard link to a file elsewhere answers 404, as the tools refuse it), no dotfiles
    (.env, .git/), no directory listings, and only to requests addressed to 127.0.0.1 or
    localhost, so a web page cannot reach it through a rebound DNS name. Any bad path is a 404."""

    def send_head(self):  # type: ignore[override] - the stdlib hook behind GET and HEAD
        if not self._host_allowed():
            self.send_error(HTTPStatus.FORBIDDEN, "Unknown Host: use 127.0.0.1 or localhost")
            return None
        try:
            return self._open_file()
        except (OSError, ValueError):  # a NUL byte, an undecodable name, a vanished file, ...
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None

    def _host_allowed(self) -> bool:
        name, _, port = (self.headers.get("Host") or "").strip().lower().partition(":")
        return name in _PREVIEW_HOSTS and (not port or port == str(self.server.server_address[1]))

    def _open_file(self):
        url_path = urllib.parse.urlsplit(self.path).path
        relative = posixpath.normpath(urllib.parse.unquote(url_path, errors="strict")).lstrip("/")
        parts = [p for p in relative.split("/") if p not in ("", ".")]
        if any(part.startswith(".") for part in parts):  # dotfiles and `..` alike
            raise FileNotFoundError(relative)
        # Opened beneath the project from its descriptor, never through a link (see beneath.py):
        # a folder swapped for a symlink mid-request is a 404, never a file from elsewhere.
        root_fd = open_root(os.path.realpath(self.directory))
        try:
            fd = open_beneath(root_fd, "/".join(parts), os.O_RDONLY | os.O_NONBLOCK) if parts else os.dup(root_fd)
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                os.close(fd)
                if not url_path.endswith("/"):
                    self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                    self.send_header("Location", url_path + "/")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                parts.append("index.html")  # a folder is its index page, never a listing
                fd = open_beneath(root_fd, "/".join(parts), os.O_RDONLY | os.O_NONBLOCK)
                info = os.fstat(fd)
            elif url_path.endswith("/"):
                os.close(fd)
                raise FileNotFoundError(relative)
        finally:
            os.close(root_fd)
        handle = os.fdopen(fd, "rb")
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
            handle.close()
            raise FileNotFoundError(relative)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-type", self.guess_type(parts[-1]))
        self.send_header("Content-Length", str(info.st_size))
        self.send_header("Last-Modified", self.date_time_string(int(info.st_mtime)))
        self.end_headers()
        return handle

    def list_directory(self, path):  # never used by send_head above; refused all the same
        self.send_error(HTTPStatus.NOT_FOUND, "File not found")
        return None

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass


class _PreviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # a client that hung up mid-answer is no traceback on the user's terminal


class LocalSandbox:
    def __init__(self, sandbox_id: str, root: Path, policy: IsolationPolicy | None = None, egress_audit: Path | None = None) -> None:
        self.id = sandbox_id
        self.root = root
        self.project_root = str(root)
        self._real_root = os.path.realpath(root)
        self.policy = policy if policy is not None else _policy_from_env()
        # Where the egress proxy writes down this sandbox's requests: outside the project, under
        # $PIXIE_HOME/egress/ (root is $PIXIE_HOME/sandboxes/<id>).
        self.egress_audit = egress_audit or egress.audit_path(Path(root).parent.parent, sandbox_id)

    # --- paths --------------------------------------------------------------------------------
    def relative(self, path: object) -> str:
        """The project-relative path the model means, or ToolError when it would leave the
        project (`..`, an absolute path elsewhere). Links are dealt with when it is opened."""
        return normalize_project_path(path, absolute_root=str(self.root))

    # --- Sandbox protocol ---------------------------------------------------------------------
    def run_command(self, command: str, timeout_s: int, on_output: OutputCallback | None = None) -> CommandResult:
        """Runs `command` with bash in the project folder: under bubblewrap (see isolation.py)
        unless the policy says "none", in its own process group, killed with everything it
        started at `timeout_s`. Output is read as it arrives, bounded, and passed to `on_output`."""
        argv, env, cgroup = self._launch(command, timeout_s)
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,  # its own process group, so a timeout kills all of it
            )
        except BaseException:
            cgroup.remove()
            raise
        with _running_lock:
            _running[proc.pid] = self.id
        disk = _DiskWatch(self._real_root, self.policy.limits.project_bytes)
        try:
            streams, timed_out = _read_until_done(proc, timeout_s, on_output, disk.check)
        finally:
            # Also ends background children: a command's processes do not outlive it here.
            _kill_group(proc.pid)
            with _running_lock:
                _running.pop(proc.pid, None)
            proc.stdout.close()
            proc.stderr.close()
            try:
                proc.wait(timeout=KILL_GRACE_S)
            finally:
                out_of_memory = cgroup.memory_exceeded()
                cgroup.remove()
        if disk.exceeded is None:
            disk.check(now_anyway=True)  # what it wrote since the last check, or all of it if it was quick
        stderr = streams["stderr"].text()
        stopped = disk.exceeded or (
            f"pixie: the command went past the memory bound ({self.policy.limits.total_memory_mb} MB for all its "
            "processes together) and the kernel killed it" if out_of_memory else None
        )
        if stopped:  # said where the model reads the result, after whatever the command printed
            stderr = f"{stderr.rstrip()}\n{stopped}\n".lstrip()
        return CommandResult(
            stdout=streams["stdout"].text(),
            stderr=stderr,
            exit_code=None if timed_out else proc.returncode,
            timed_out=timed_out,
        )

    def _launch(self, command: str, timeout_s: int) -> tuple[list[str], dict[str, str], CommandCgroup]:
        """The command line, its environment and the pids cgroup it runs in."""
        policy = self.policy
        if policy.mode == ISOLATION_BWRAP:
            bwrap = find_bubblewrap(policy.bwrap)  # IsolationUnavailable: the run fails, nothing runs unisolated
            proxy = egress.proxy_for(self.id, policy.allow_hosts, self.egress_audit) if policy.egress_proxied else None
            cgroup = CommandCgroup(policy.limits)
            argv = bwrap_argv(bwrap, policy, self._real_root, command, timeout_s, also_at=os.path.abspath(self.root),
                              egress_socket=proxy.socket_path if proxy else None)
            # bwrap starts with an empty environment: inside, its /proc/1/environ is readable.
            return cgroup.wrap(argv), {}, cgroup
        make_pixie_undumpable()
        env = unisolated_environment(dict(os.environ))
        # Unisolated, a process limit would count all of your processes: only the others apply.
        script = limits_script(policy.limits, timeout_s, processes=False)
        return ["/bin/bash", "-c", script, "/bin/bash", command], env, CommandCgroup(enabled=False)

    def write_files(self, files: dict[str, str]) -> None:
        targets = {self.relative(path): content for path, content in files.items()}  # validate all first
        root_fd = open_root(self._real_root)
        try:
            for name, content in targets.items():
                try:
                    replace_beneath(root_fd, name, content.encode("utf-8"), _refuse_non_regular(name))
                except OSError as exc:
                    raise self._write_error(name, exc) from None
        finally:
            os.close(root_fd)

    @staticmethod
    def _write_error(name: str, exc: OSError) -> ToolError:
        if exc.errno == errno.ELOOP:
            return _link_refused(name)
        if exc.errno == errno.EXDEV:
            return ToolError(f"{name!r} resolves outside the project")
        if exc.errno in (errno.EEXIST, errno.ENOTDIR):
            return ToolError(f"cannot write {name}: a parent of it is a file, not a directory")
        if exc.errno == errno.EISDIR:
            return ToolError(f"cannot write {name}: it is a directory, not a regular file")
        # name too long, permission denied, disk full, a folder swapped meanwhile...: the model's to route around
        return ToolError(f"cannot write {name}: {exc.strerror or exc}")

    def read_file(self, path: str) -> str:
        relative = self.relative(path)
        root_fd = open_root(self._real_root)
        try:
            data = _read_regular_file(root_fd, relative, path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _link_refused(path) from None
            raise ToolError(f"cannot read {path}: {exc.strerror or exc}") from None
        finally:
            os.close(root_fd)
        if b"\x00" in data:
            raise ToolError(f"{path} is a binary file")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{path} is not UTF-8 text") from None

    def get_url(self, port: int = PREVIEW_PORT) -> str:
        """The preview server's URL (one per sandbox, started on first use on a free port;
        `port` names the dev-server port the template would use and maps to it)."""
        with _previews_lock:
            server = _previews.get(self.id)
            if server is None:
                handler = functools.partial(_PreviewHandler, directory=str(self.root))
                server = _PreviewServer(("127.0.0.1", 0), handler)
                threading.Thread(target=server.serve_forever, name=f"preview-{self.id}", daemon=True).start()
                _previews[self.id] = server
        return f"http://127.0.0.1:{server.server_address[1]}/"

    def preview_status(self, timeout_s: int) -> tuple[int | None, str]:
        """What the preview answers for `/` (the done-check), asked over loopback, never a proxy."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(self.get_url(PREVIEW_PORT), timeout=timeout_s) as answer:
                return answer.status, ""
        except urllib.error.HTTPError as exc:
            exc.close()
            note = "The preview serves the project folder as files: `/` is its index.html." if exc.code == 404 else ""
            return exc.code, note
        except (urllib.error.URLError, OSError) as exc:
            return None, str(exc)

    def kill(self) -> None:
        """Stops the preview, the egress proxy and any command still running in it (as E2B's kill
        ends the sandbox's processes); the project directory stays for inspection."""
        stop_preview(self.id)
        kill_running_commands(self.id)
        egress.stop_proxies(self.id)


def stop_preview(sandbox_id: str) -> None:
    with _previews_lock:
        server = _previews.pop(sandbox_id, None)
    if server is not None:
        server.shutdown()
        server.server_close()


def kill_running_commands(sandbox_id: str | None = None) -> None:
    """Ends every command still running (with its process group), or only those of one sandbox:
    used when pixie is interrupted, since a command's own timeout dies with the process, and when
    one run is stopped."""
    with _running_lock:
        groups = [pgid for pgid, owner in _running.items() if sandbox_id is None or owner == sandbox_id]
    for pgid in groups:
        _kill_group(pgid)


def stop_all_previews() -> None:
    for sandbox_id in list(_previews):
        stop_preview(sandbox_id)


def _policy_from_env() -> IsolationPolicy:
    from lambdas.logic.config import Settings
    from lambdas.logic.sandboxes.isolation import policy_from_settings

    return policy_from_settings(Settings.from_env())


class _DiskWatch:
    """The project folder's disk use while a command runs, against its bound: checked every
    DISK_CHECK_S (less often when the folder is big, so the walk costs at most a fifth of the
    time). A command can overshoot by what it writes between two checks (and RLIMIT_FSIZE still
    bounds each file); past the bound it is stopped and told so."""

    def __init__(self, root: str, limit_bytes: int) -> None:
        self.root, self.limit = root, limit_bytes
        self.exceeded: str | None = None
        self._next = time.monotonic() + DISK_CHECK_S

    def check(self, now_anyway: bool = False) -> str | None:
        now = time.monotonic()
        if now < self._next and not now_anyway:
            return None
        used = project_disk_bytes(self.root)
        took = time.monotonic() - now
        self._next = time.monotonic() + max(DISK_CHECK_S, 4 * took)
        if used > self.limit:
            self.exceeded = (
                f"pixie: the project folder uses {used:,} bytes, past its bound of {self.limit:,} "
                "(PIXIE_MAX_PROJECT_BYTES): a command still running then is stopped; delete what is not needed"
            )
        return self.exceeded


def project_disk_bytes(root: str) -> int:
    """Bytes allocated on disk under `root` (sparse files count what they use), links not followed."""
    total = 0
    stack = [root]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue  # vanished or unreadable meanwhile
        with entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += info.st_blocks * 512
                if stat.S_ISDIR(info.st_mode):
                    stack.append(entry.path)
    return total


def _read_until_done(
    proc: subprocess.Popen, timeout_s: int, on_output: OutputCallback | None,
    watch: Callable[[], str | None] | None = None,
) -> tuple[dict[str, _BoundedCapture], bool]:
    """Reads both pipes until the command has exited and they are closed (or DRAIN_S after it
    exited), or until it times out (then it is killed). Returns the captures and whether it
    timed out."""
    captures = {"stdout": _BoundedCapture(), "stderr": _BoundedCapture()}
    live = {name: _LiveOutput(name, on_output) for name in captures}
    deadline = time.monotonic() + timeout_s
    drain_until: float | None = None
    timed_out = False
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ, "stdout")
        selector.register(proc.stderr, selectors.EVENT_READ, "stderr")
        while True:
            now = time.monotonic()
            if drain_until is None:
                if proc.poll() is not None:
                    _kill_group(proc.pid)  # what an unisolated command left behind
                    drain_until = now + DRAIN_S
                elif now >= deadline:
                    timed_out = True
                    _kill_group(proc.pid)
                    drain_until = time.monotonic() + DRAIN_S
                elif watch is not None and watch():
                    _kill_group(proc.pid)  # the watch says why; the result carries it
                    drain_until = time.monotonic() + DRAIN_S
            # A command may close its output and go on: it has ended only when it has exited.
            if drain_until is not None and (not selector.get_map() or now >= drain_until):
                break
            wait = (drain_until or deadline) - time.monotonic()
            for key, _ in selector.select(timeout=min(0.25, max(0.0, wait))):
                data = os.read(key.fd, READ_CHUNK_BYTES)
                if not data:
                    selector.unregister(key.fileobj)
                    live[key.data].add(b"", final=True)
                    continue
                captures[key.data].add(data)
                live[key.data].add(data)
    return captures, timed_out


class LocalSandboxProvider:
    kind = "local"

    def __init__(self, pixie_home: Path, policy: IsolationPolicy | None = None) -> None:
        self.base = Path(pixie_home) / "sandboxes"
        self.policy = policy

    def create(
        self, template: str, timeout_s: int, run_id: str | None = None, idempotency_key: str | None = None
    ) -> LocalSandbox:
        # The key is not needed here: nothing is lost between creating a folder and recording it.
        sandbox_id = f"local-{uuid.uuid4().hex[:12]}"
        root = self.base / sandbox_id
        shutil.copytree(TEMPLATE_DIR, root)
        return LocalSandbox(sandbox_id, root, self.policy)

    def release_run(self, run_id: str) -> int:
        """Nothing runs for a local sandbox until its preview starts, which needs a recorded run."""
        return 0

    def connect(self, sandbox_id: str, timeout_s: int) -> LocalSandbox:
        if not re.fullmatch(r"local-[0-9a-f]{12}", sandbox_id or ""):
            raise SandboxNotFound(f"{sandbox_id!r} is not a local sandbox id")
        root = self.base / sandbox_id
        if not root.is_dir():
            raise SandboxNotFound(f"local sandbox {sandbox_id} no longer exists ({root})")
        return LocalSandbox(sandbox_id, root, self.policy)
