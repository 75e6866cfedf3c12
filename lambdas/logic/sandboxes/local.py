"""The local sandbox: a project directory per run under $PIXIE_HOME/sandboxes/<sandboxId>/,
seeded from a static web template shipped in the repo, with a preview HTTP server on
127.0.0.1 standing in for E2B's dev server on port 3000.

It confines paths (symlinks included) and bounds commands in time and output, but it is not
an isolation boundary: commands run as you, on your machine. Use E2B for untrusted prompts."""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import uuid
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from lambdas.logic.errors import SandboxNotFound, ToolError
from lambdas.logic.sandboxes.base import PREVIEW_PORT, CommandResult, normalize_project_path

TEMPLATE_DIR = Path(__file__).parent / "local_template"
MAX_READ_BYTES = 1_000_000
# Bytes kept from each end of a command's stdout/stderr; the tool layer bounds it further.
CAPTURE_HEAD_BYTES = 64_000
CAPTURE_TAIL_BYTES = 64_000
KILL_GRACE_S = 2
# Variables never passed to commands the model runs (its output goes back to the model).
_SECRET_ENV = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL)|^AWS_", re.IGNORECASE)

_previews: dict[str, ThreadingHTTPServer] = {}
_previews_lock = threading.Lock()
# Process groups of the commands running now, so an interrupted CLI can end them too.
_running: set[int] = set()
_running_lock = threading.Lock()


def _read_bounded(handle) -> str:
    handle.flush()
    size = handle.seek(0, os.SEEK_END)
    handle.seek(0)
    if size <= CAPTURE_HEAD_BYTES + CAPTURE_TAIL_BYTES:
        data = handle.read()
    else:
        head = handle.read(CAPTURE_HEAD_BYTES)
        handle.seek(size - CAPTURE_TAIL_BYTES)
        tail = handle.read()
        omitted = size - len(head) - len(tail)
        data = head + f"\n[... {omitted} bytes omitted ...]\n".encode() + tail
    return data.decode("utf-8", errors="replace")


def _kill_group(pgid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        if sig == signal.SIGTERM:
            threading.Event().wait(0.1)


class _PreviewHandler(SimpleHTTPRequestHandler):
    """Serves the project folder quietly, and nothing outside it: a symlink the agent made to
    a file elsewhere answers 404, as the tools refuse it."""

    def translate_path(self, path: str) -> str:
        translated = super().translate_path(path)
        root = os.path.realpath(self.directory)
        real = os.path.realpath(translated)
        return translated if os.path.commonpath([real, root]) == root else ""  # "" opens as 404

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass


class LocalSandbox:
    def __init__(self, sandbox_id: str, root: Path) -> None:
        self.id = sandbox_id
        self.root = root
        self.project_root = str(root)
        self._real_root = os.path.realpath(root)

    # --- paths --------------------------------------------------------------------------------
    def resolve(self, path: object) -> Path:
        """The file's real location, or ToolError when it would leave the project (via `..`,
        an absolute path elsewhere, or a symlink that points out)."""
        relative = normalize_project_path(path, absolute_root=str(self.root))
        real = os.path.realpath(os.path.join(self._real_root, relative))
        if os.path.commonpath([real, self._real_root]) != self._real_root:
            raise ToolError(f"{path!r} resolves outside the project (through a symlink)")
        return Path(real)

    # --- Sandbox protocol ---------------------------------------------------------------------
    def run_command(self, command: str, timeout_s: int) -> CommandResult:
        env = {k: v for k, v in os.environ.items() if not _SECRET_ENV.search(k)}
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(
                ["/bin/bash", "-c", command],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                start_new_session=True,  # its own process group, so a timeout kills all of it
            )
            with _running_lock:
                _running.add(proc.pid)
            timed_out = False
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                # Also ends background children: a command's processes do not outlive it here.
                _kill_group(proc.pid)
                with _running_lock:
                    _running.discard(proc.pid)
            proc.wait(timeout=KILL_GRACE_S)
            return CommandResult(
                stdout=_read_bounded(out),
                stderr=_read_bounded(err),
                exit_code=None if timed_out else proc.returncode,
                timed_out=timed_out,
            )

    def write_files(self, files: dict[str, str]) -> None:
        targets = {self.resolve(path): content for path, content in files.items()}  # validate all first
        for target, content in targets.items():
            name = target.relative_to(self._real_root)
            try:
                if target.is_dir():
                    raise ToolError(f"{name} is a directory")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content, encoding="utf-8")
            except (FileExistsError, NotADirectoryError):
                raise ToolError(f"cannot write {name}: a parent of it is a file, not a directory") from None
            except OSError as exc:  # name too long, permission denied, disk full...: the model's problem to route around
                raise ToolError(f"cannot write {name}: {exc.strerror or exc}") from None

    def read_file(self, path: str) -> str:
        target = self.resolve(path)
        try:
            if not target.exists():
                raise ToolError(f"{path} does not exist")
            if target.is_dir():
                raise ToolError(f"{path} is a directory, not a file")
            size = target.stat().st_size
            if size > MAX_READ_BYTES:
                raise ToolError(f"{path} is {size} bytes, over the {MAX_READ_BYTES}-byte read limit")
            data = target.read_bytes()
        except OSError as exc:  # name too long, permission denied, ...
            raise ToolError(f"cannot read {path}: {exc.strerror or exc}") from None
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
                server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
                server.daemon_threads = True
                threading.Thread(target=server.serve_forever, name=f"preview-{self.id}", daemon=True).start()
                _previews[self.id] = server
        return f"http://127.0.0.1:{server.server_address[1]}/"

    def kill(self) -> None:
        """Stops the preview; the project directory stays for inspection."""
        stop_preview(self.id)


def stop_preview(sandbox_id: str) -> None:
    with _previews_lock:
        server = _previews.pop(sandbox_id, None)
    if server is not None:
        server.shutdown()
        server.server_close()


def kill_running_commands() -> None:
    """Ends every command still running (with its process group): used when pixie is interrupted,
    since a command's own timeout dies with the process."""
    with _running_lock:
        groups = list(_running)
    for pgid in groups:
        _kill_group(pgid)


def stop_all_previews() -> None:
    for sandbox_id in list(_previews):
        stop_preview(sandbox_id)


class LocalSandboxProvider:
    kind = "local"

    def __init__(self, pixie_home: Path) -> None:
        self.base = Path(pixie_home) / "sandboxes"

    def create(self, template: str, timeout_s: int, idempotency_key: str | None = None) -> LocalSandbox:
        # The key is not needed here: nothing is lost between creating a folder and recording it.
        sandbox_id = f"local-{uuid.uuid4().hex[:12]}"
        root = self.base / sandbox_id
        shutil.copytree(TEMPLATE_DIR, root)
        return LocalSandbox(sandbox_id, root)

    def connect(self, sandbox_id: str, timeout_s: int) -> LocalSandbox:
        if not re.fullmatch(r"local-[0-9a-f]{12}", sandbox_id or ""):
            raise SandboxNotFound(f"{sandbox_id!r} is not a local sandbox id")
        root = self.base / sandbox_id
        if not root.is_dir():
            raise SandboxNotFound(f"local sandbox {sandbox_id} no longer exists ({root})")
        return LocalSandbox(sandbox_id, root)
