"""Versions: every run's project files, kept content-addressed, so a run can be diffed, opened,
restored and continued from exactly as it ended.

Local layout under $PIXIE_HOME/versions/:
  manifests/<runId>.json                    one version per run: {path: {sha256, size, binary}}
                                            plus what was skipped and why
  projects/<projectId>/blobs/<ab>/<sha256>  each distinct file content once per project
  projects/<projectId>/lock                 flock: writes and pruning of one project, one at a time

A run's version is written on every save of its journal (an interrupted run keeps its partial
version, `complete` false) and when it ends (`complete` true). The store is bounded per project:
past `max_versions` versions or `max_bytes` of blobs, the oldest complete versions are pruned,
then, if still past it, partial versions not rewritten for an hour (abandoned runs'; never the
one just written), and blobs no version names are deleted.

Files are read beneath the project folder without following links (beneath.py); links, hard
links, special files, dependency folders and files over the per-file limit are listed as skipped,
never read."""

from __future__ import annotations

import difflib
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

FORMAT_VERSION = 1
# Regenerable folders: a continuation reinstalls them; keeping them would dwarf the project.
SKIPPED_FOLDERS = frozenset({"node_modules", ".git", "__pycache__", ".cache", ".next", ".venv", ".pnpm-store"})
MAX_FILES_PER_VERSION = 5_000
MAX_FILE_BYTES = 10 * 1024**2  # bigger files are listed (size), not kept
MAX_VERSION_BYTES = 200 * 1024**2  # of one version's kept files together
MAX_TEXT_DIFF_BYTES = 1024**2  # bigger files are not diffed as text
DEFAULT_MAX_VERSIONS = 50  # per project (PIXIE_MAX_VERSIONS)
DEFAULT_MAX_STORE_BYTES = 500 * 1024**2  # of blobs per project (PIXIE_MAX_VERSION_BYTES)
MAX_CHANGED_PATHS = 100  # per kind, in one tool call's change list
MAX_PATH_CHARS = 300
_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]{1,80}")
_SHA = re.compile(r"[0-9a-f]{64}")


class VersionNotFound(Exception):
    """No version of that run is kept (never written, pruned, or not a local run)."""


@dataclass(frozen=True)
class StoreLimits:
    max_versions: int = DEFAULT_MAX_VERSIONS
    max_bytes: int = DEFAULT_MAX_STORE_BYTES

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "StoreLimits":
        env = os.environ if env is None else env
        return cls(
            max_versions=max(1, int(env.get("PIXIE_MAX_VERSIONS") or DEFAULT_MAX_VERSIONS)),
            max_bytes=max(1, int(env.get("PIXIE_MAX_VERSION_BYTES") or DEFAULT_MAX_STORE_BYTES)),
        )


def _checked_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SAFE_ID.fullmatch(value):
        raise VersionNotFound(f"{value!r} is not a {what}")
    return value


def is_binary(data: bytes) -> bool:
    if b"\x00" in data[:8192]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


# --- reading a project folder ------------------------------------------------------------------
def read_folder(root: Path) -> tuple[dict[str, bytes], dict[str, str], dict[str, tuple]]:
    """The project's regular files under `root`: ({path: bytes}, {path: why skipped},
    {path: fingerprint}). Walked by descriptor (os.fwalk) without following links; each file
    opened beneath its folder with O_NOFOLLOW and checked on the open descriptor."""
    files: dict[str, bytes] = {}
    skipped: dict[str, str] = {}
    fingerprints: dict[str, tuple] = {}
    linked: dict[tuple[int, int], tuple[int, bytes, list[str]]] = {}  # inode -> (its names, content, names seen)
    total = 0
    try:
        walker = os.fwalk(str(root), follow_symlinks=False)
        for folder, dirnames, filenames, dir_fd in walker:
            relative_folder = os.path.relpath(folder, str(root))
            prefix = "" if relative_folder == "." else relative_folder + "/"
            for name in list(dirnames):
                if name in SKIPPED_FOLDERS:
                    dirnames.remove(name)
                    skipped[prefix + name + "/"] = "dependency or cache folder"
                    continue
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode):  # fwalk lists a link to a folder with the folders
                    skipped[prefix + name] = "symbolic link"
            for name in sorted(filenames):
                path = prefix + name
                if name.startswith(".pixie-write-"):
                    continue  # a file tool's write in flight
                if len(files) + len(skipped) >= MAX_FILES_PER_VERSION:
                    skipped[path] = f"over {MAX_FILES_PER_VERSION} files"
                    continue
                reason, data, fingerprint = _read_entry(dir_fd, name, MAX_VERSION_BYTES - total)
                if reason == HARD_LINK:
                    *fingerprint, device, inode, names = fingerprint
                    linked.setdefault((device, inode), (names, data, []))[2].append(path)
                    fingerprint = tuple(fingerprint)
                if fingerprint is not None:
                    fingerprints[path] = fingerprint
                if reason:
                    skipped[path] = reason
                else:
                    files[path] = data
                    total += len(data)
    except FileNotFoundError:
        pass
    # A hard-linked file is kept when every one of its names is in the project (`ln a b` in it).
    for names, data, paths in linked.values():
        if len(paths) == names and total + len(data) <= MAX_VERSION_BYTES:
            for path in paths:
                files[path] = data
                skipped.pop(path, None)
            total += len(data)
    return files, skipped, fingerprints


HARD_LINK = "hard link"
# A partial version (a run's journal saves it at every step) not rewritten for this long belongs
# to a run that was killed and not resumed: pruned like a complete one. Longer than any one step
# (a command's limit is 720 s, a model turn's 600 s).
ABANDONED_PARTIAL_S = 3600


def _read_entry(dir_fd: int, name: str, room: int) -> tuple[str | None, bytes | None, tuple | None]:
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return "removed while read", None, None
    fingerprint = (info.st_size, info.st_mtime_ns, stat.S_IFMT(info.st_mode))
    if stat.S_ISLNK(info.st_mode):
        return "symbolic link", None, fingerprint
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file", None, fingerprint
    if info.st_size > MAX_FILE_BYTES:
        return f"over {MAX_FILE_BYTES:,} bytes", None, fingerprint
    if info.st_size > room:
        return f"over {MAX_VERSION_BYTES:,} bytes for the whole version", None, fingerprint
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), dir_fd=dir_fd)
    except OSError as exc:
        return ("symbolic link" if exc.errno == errno.ELOOP else f"unreadable ({exc.strerror})"), None, fingerprint
    with os.fdopen(fd, "rb") as handle:
        opened = os.fstat(handle.fileno())
        if not stat.S_ISREG(opened.st_mode):
            return "not a regular file", None, fingerprint
        data = handle.read(min(MAX_FILE_BYTES, room) + 1)
    if len(data) > min(MAX_FILE_BYTES, room):
        return f"over {MAX_FILE_BYTES:,} bytes", None, fingerprint
    if opened.st_nlink > 1:  # another name for it may be outside the project: kept only if none is
        return HARD_LINK, data, (*fingerprint, opened.st_dev, opened.st_ino, opened.st_nlink)
    return None, data, fingerprint


def fingerprints(root: Path) -> dict[str, tuple]:
    """{path: (size, mtime, type)} of the project's files, no contents read: what one tool call
    changed is the difference of two of these."""
    found: dict[str, tuple] = {}
    try:
        for folder, dirnames, filenames, dir_fd in os.fwalk(str(root), follow_symlinks=False):
            dirnames[:] = [d for d in dirnames if d not in SKIPPED_FOLDERS]
            relative_folder = os.path.relpath(folder, str(root))
            prefix = "" if relative_folder == "." else relative_folder + "/"
            for name in filenames:
                if name.startswith(".pixie-write-") or len(found) >= 4 * MAX_FILES_PER_VERSION:
                    continue
                try:
                    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                found[prefix + name] = (info.st_size, info.st_mtime_ns, info.st_ino, stat.S_IFMT(info.st_mode))
    except FileNotFoundError:
        pass
    return found


def change_list(before: dict[str, tuple], after: dict[str, tuple]) -> dict[str, Any]:
    """What one tool call did to the files: created, changed, deleted (bounded; counts exact)."""
    created = sorted(set(after) - set(before))
    deleted = sorted(set(before) - set(after))
    changed = sorted(p for p in set(after) & set(before) if after[p] != before[p])
    result: dict[str, Any] = {}
    for kind, paths in (("created", created), ("changed", changed), ("deleted", deleted)):
        result[kind] = [p[:MAX_PATH_CHARS] for p in paths[:MAX_CHANGED_PATHS]]
        if len(paths) > MAX_CHANGED_PATHS:
            result[f"{kind}Count"] = len(paths)
    return result


class _Changes:
    found: dict[str, Any] | None = None


@contextmanager
def tool_call_changes(sandbox: Any, tool: str, run_id: str, state: Any) -> Iterator[_Changes]:
    """What the tool call run inside the block did to the project's files. A local sandbox is
    compared before and after (commands included); elsewhere (E2B) only the file tool's writes
    are known, told apart from the run's recorded files."""
    changes = _Changes()
    root = getattr(sandbox, "root", None)
    before = fingerprints(Path(root)) if isinstance(root, (str, Path)) else None
    recorded = set(state.list_file_paths(run_id)) if before is None and tool == "createOrUpdateFiles" else None
    yield changes
    if before is not None:
        found = change_list(before, fingerprints(Path(root)))
    elif recorded is not None:
        written = set(state.list_file_paths(run_id)) - recorded
        found = {"created": sorted(written)[:MAX_CHANGED_PATHS], "changed": [], "deleted": []}
        # Already recorded paths may have been rewritten: the tool's arguments are not read here.
    else:
        return
    if any(found.get(kind) for kind in ("created", "changed", "deleted")):
        changes.found = found


# --- the store ---------------------------------------------------------------------------------
class VersionStore:
    def __init__(self, pixie_home: Path, limits: StoreLimits | None = None) -> None:
        self.root = Path(pixie_home) / "versions"
        self.limits = limits or StoreLimits.from_env()

    def _manifest_path(self, run_id: str) -> Path:
        return self.root / "manifests" / f"{_checked_id(run_id, 'run id')}.json"

    def _project(self, project_id: str) -> Path:
        return self.root / "projects" / _checked_id(project_id, "project id")

    def _blob_path(self, project_id: str, sha: str) -> Path:
        if not _SHA.fullmatch(sha or ""):
            raise VersionNotFound(f"{sha!r} is not a content hash")
        return self._project(project_id) / "blobs" / sha[:2] / sha

    @contextmanager
    def _locked(self, project_id: str) -> Iterator[None]:
        path = self._project(project_id) / "lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    # --- writing ----------------------------------------------------------------------------
    def save_folder(self, run_id: str, project_id: str, folder: Path, *, complete: bool, **about: Any) -> dict[str, Any]:
        """Writes the version of `run_id` from its project folder; returns the manifest."""
        files, skipped, _ = read_folder(folder)
        return self.save_files(run_id, project_id, files, skipped, complete=complete, **about)

    def save_files(
        self, run_id: str, project_id: str, files: dict[str, bytes], skipped: dict[str, str] | None = None,
        *, complete: bool, **about: Any,
    ) -> dict[str, Any]:
        entries: dict[str, dict[str, Any]] = {}
        with self._locked(project_id):
            for path, data in sorted(files.items()):
                sha = hashlib.sha256(data).hexdigest()
                self._put_blob(project_id, sha, data)
                entries[path] = {"sha256": sha, "size": len(data), "binary": is_binary(data)}
            manifest = {
                "version": FORMAT_VERSION,
                "runId": run_id,
                "projectId": project_id,
                "createdAt": time.time(),
                "complete": complete,
                "files": entries,
                "skipped": dict(sorted((skipped or {}).items())),
                **{key: value for key, value in about.items() if value is not None},
            }
            _write_atomically(self._manifest_path(run_id), manifest)
            if complete:
                self._prune(project_id, keep=run_id)
        return manifest

    def _put_blob(self, project_id: str, sha: str, data: bytes) -> None:
        path = self._blob_path(project_id, sha)
        if path.exists():
            return  # stored once, whichever versions name it
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{sha}.{os.getpid()}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, path)

    def forget(self, run_id: str, project_id: str) -> None:
        """Deletes a run's version and the contents no other version of its project names."""
        with self._locked(project_id):
            self._manifest_path(run_id).unlink(missing_ok=True)
            self._delete_unnamed_blobs(project_id, self.project_versions(project_id))

    def _delete_unnamed_blobs(self, project_id: str, kept: list[dict]) -> None:
        named = {e["sha256"] for m in kept for e in m["files"].values()}
        for blob in (self._project(project_id) / "blobs").glob("*/*"):
            if blob.name not in named and not blob.name.startswith("."):
                blob.unlink(missing_ok=True)

    def _prune(self, project_id: str, keep: str) -> list[str]:
        """Drops the project's oldest complete versions past the count or size bound, then the
        blobs no version names. Called with the project's lock held."""
        manifests = sorted(self.project_versions(project_id), key=lambda m: m.get("createdAt", 0))
        pruned: list[str] = []

        def stored_bytes(kept: list[dict]) -> int:
            return sum({e["sha256"]: e["size"] for m in kept for e in m["files"].values()}.values())

        def removable(kept: list[dict]) -> dict | None:
            # Complete versions first. Then partial ones not written for ABANDONED_PARTIAL_S: a run
            # killed and never resumed would otherwise hold its partial version past the bound for
            # ever, while a run still going rewrites its own at every step (a resume without it
            # restores the table's files).
            abandoned = time.time() - ABANDONED_PARTIAL_S
            return next((m for m in kept if m.get("complete") and m["runId"] != keep), None) or next(
                (m for m in kept if m["runId"] != keep and m.get("createdAt", 0) < abandoned), None)

        while len(manifests) > self.limits.max_versions or stored_bytes(manifests) > self.limits.max_bytes:
            oldest = removable(manifests)
            if oldest is None:
                break
            manifests.remove(oldest)
            self._manifest_path(oldest["runId"]).unlink(missing_ok=True)
            pruned.append(oldest["runId"])
        if pruned:
            self._delete_unnamed_blobs(project_id, manifests)
        return pruned

    # --- reading ----------------------------------------------------------------------------
    def manifest(self, run_id: str) -> dict[str, Any]:
        try:
            manifest = json.loads(self._manifest_path(run_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise VersionNotFound(f"no version of run {run_id} is kept (never saved, or pruned)") from None
        if manifest.get("version") != FORMAT_VERSION:
            raise VersionNotFound(f"the version of run {run_id} is in a format this pixie does not know")
        return manifest

    def has(self, run_id: str) -> bool:
        try:
            self.manifest(run_id)
        except VersionNotFound:
            return False
        return True

    def project_versions(self, project_id: str) -> list[dict[str, Any]]:
        found = []
        for path in (self.root / "manifests").glob("*.json"):
            try:
                manifest = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if manifest.get("projectId") == project_id:
                found.append(manifest)
        return found

    def read(self, manifest: dict[str, Any], path: str) -> bytes:
        entry = manifest["files"][path]
        try:
            return self._blob_path(manifest["projectId"], entry["sha256"]).read_bytes()
        except FileNotFoundError:
            raise VersionNotFound(f"the content of {path} in run {manifest['runId']}'s version is gone") from None

    def contents(self, manifest: dict[str, Any]) -> dict[str, bytes]:
        return {path: self.read(manifest, path) for path in manifest["files"]}

    def check_out(self, manifest: dict[str, Any], target: Path) -> Path:
        """Writes the version's files into the empty (or missing) folder `target`."""
        target.mkdir(parents=True, exist_ok=True)
        for path, data in self.contents(manifest).items():
            destination = target / path
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(data)
        return target


def _write_atomically(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data), encoding="utf-8")
    os.replace(temporary, path)


# --- diffs -------------------------------------------------------------------------------------
def diff_versions(store: VersionStore, old: dict[str, Any] | None, new: dict[str, Any], old_files: dict[str, bytes] | None = None) -> list[dict[str, Any]]:
    """What changed from `old` (a manifest, or None with `old_files` for a starting state) to
    `new`: one entry per added, deleted or modified file, with a unified diff for text files."""
    old_entries = dict(old["files"]) if old else {}
    old_data = dict(old_files or {})
    for path, data in old_data.items():
        old_entries.setdefault(path, {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "binary": is_binary(data)})
    changes = []
    for path in sorted(set(old_entries) | set(new["files"])):
        before, after = old_entries.get(path), new["files"].get(path)
        if before and after and before["sha256"] == after["sha256"]:
            continue
        status = "added" if before is None else "deleted" if after is None else "modified"
        binary = bool((before or {}).get("binary") or (after or {}).get("binary"))
        large = max((before or {}).get("size", 0), (after or {}).get("size", 0)) > MAX_TEXT_DIFF_BYTES
        change: dict[str, Any] = {"path": path, "status": status, "binary": binary, "additions": 0, "deletions": 0,
                                  "oldSize": (before or {}).get("size"), "newSize": (after or {}).get("size")}
        if binary or large:
            change["patch"] = None
            change["note"] = "binary file" if binary else f"over {MAX_TEXT_DIFF_BYTES:,} bytes: not diffed as text"
        else:
            old_text = (old_data[path] if path in old_data else store.read(old, path)).decode("utf-8") if before else ""
            new_text = store.read(new, path).decode("utf-8") if after else ""
            lines = list(difflib.unified_diff(
                old_text.splitlines(keepends=True), new_text.splitlines(keepends=True),
                fromfile=f"a/{header_path(path)}" if before else "/dev/null",
                tofile=f"b/{header_path(path)}" if after else "/dev/null",
            ))
            lines = [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines]
            change["patch"] = "".join(lines)
            change["additions"] = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++"))
            change["deletions"] = sum(1 for line in lines if line.startswith("-") and not line.startswith("---"))
        changes.append(change)
    return changes


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def header_path(path: str) -> str:
    """A file name as a patch header shows it: one line whatever the name holds (a command can
    create any name; a newline in one would add lines of its choosing to the diff a user reads)."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", path)
