"""What the agent needs from a sandbox: run a command, write and read project files, and a
public URL for the dev server. Paths are relative to the project root."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Callable, Protocol

from lambdas.logic.errors import ToolError
from lambdas.logic.limits import MAX_PATH_BYTES

PREVIEW_PORT = 3000

# Called with ("stdout" | "stderr", text) as a command's output arrives, for live display.
OutputCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class CommandResult:
    stdout: str
    stderr: str
    exit_code: int | None  # None when the command was killed at its timeout
    timed_out: bool = False


class Sandbox(Protocol):
    id: str
    project_root: str  # the project directory as the model may name it in absolute paths

    def run_command(self, command: str, timeout_s: int, on_output: OutputCallback | None = None) -> CommandResult: ...

    def write_files(self, files: dict[str, str]) -> None: ...

    def read_file(self, path: str) -> str: ...

    def get_url(self, port: int = PREVIEW_PORT) -> str: ...

    def preview_status(self, timeout_s: int) -> tuple[int | None, str]:
        """The HTTP status the preview answers for `/` (None: no answer) and a note on why."""
        ...

    def kill(self) -> None: ...


class SandboxProvider(Protocol):
    kind: str

    def create(
        self, template: str, timeout_s: int, run_id: str | None = None, idempotency_key: str | None = None
    ) -> Sandbox:
        """`run_id` tags the sandbox so it can be released without its run record;
        `idempotency_key`: the same key never creates a second sandbox (where the provider
        supports it), so a retried create after a lost response gets the first one."""
        ...

    def release_run(self, run_id: str) -> int:
        """Releases the sandboxes created for `run_id` (found without its run record)."""
        ...

    def connect(self, sandbox_id: str, timeout_s: int) -> Sandbox: ...


def normalize_project_path(path: object, absolute_root: str | None = None) -> str:
    """A project-relative POSIX path, or ToolError when the path is unusable or would leave the
    project root. An absolute path is accepted only under `absolute_root` (the sandbox's own
    project directory as the model sees it, e.g. /home/user) and made relative to it."""
    if not isinstance(path, str) or not path.strip():
        raise ToolError(f"path must be a non-empty string, got {path!r}")
    if "\x00" in path:
        raise ToolError("path must not contain NUL bytes")
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise ToolError("path must be valid Unicode text (it has a lone surrogate)") from None
    if size > MAX_PATH_BYTES:
        raise ToolError(f"path is {size} bytes long; the limit is {MAX_PATH_BYTES}")
    candidate = path.strip().replace("\\", "/")
    if candidate.startswith("/"):
        root = posixpath.normpath(absolute_root) if absolute_root else None
        absolute = posixpath.normpath(candidate)
        if root is None or not (absolute + "/").startswith(root + "/"):
            raise ToolError(f"{path!r} is outside the project: use a path relative to the project root")
        candidate = posixpath.relpath(absolute, root)
    normalized = posixpath.normpath(candidate)
    if normalized == ".." or normalized.startswith("../"):
        raise ToolError(f"{path!r} escapes the project root")
    if normalized == ".":
        raise ToolError(f"{path!r} is the project root itself, not a file")
    return normalized
