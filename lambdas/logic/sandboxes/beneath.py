"""Open files beneath a project folder, race-free, never through a symbolic link.

Checking a path (`realpath`) and then opening it by name leaves a window in which a command — or a
second run on the same folder — can swap a folder for a symlink (`renameat2(RENAME_EXCHANGE)` in a
loop), so the open lands outside the project. Here every path is resolved from a descriptor of the
project root, by the kernel in one step where it can (`openat2` with `RESOLVE_BENEATH |
RESOLVE_NO_SYMLINKS`, Linux ≥ 5.6), else component by component (`O_NOFOLLOW | O_DIRECTORY` with
`dir_fd`). A symlink anywhere on the way is refused (ELOOP), whatever it points to: a link that
stays inside today can be swapped for one that leaves tomorrow.

Writes create a temporary file in the parent folder's descriptor and rename it over the target
within that same descriptor, so a hard link to an outside file keeps its old content."""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import secrets
import stat

# linux/openat2.h
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
SYS_OPENAT2 = 437  # the same number on every architecture that has it (x86_64, aarch64, ...)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


@functools.cache
def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _openat2(dir_fd: int, relative: str, flags: int, mode: int) -> int:
    how = _OpenHow(flags | _CLOEXEC, mode if flags & os.O_CREAT else 0,
                   RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
    fd = _libc().syscall(SYS_OPENAT2, dir_fd, os.fsencode(relative), ctypes.byref(how), ctypes.sizeof(how))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), relative)
    return fd


@functools.cache
def openat2_available() -> bool:
    """Whether this kernel (and seccomp policy) lets pixie use openat2."""
    if platform.system() != "Linux":
        return False
    root = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.close(_openat2(root, ".", os.O_RDONLY | os.O_DIRECTORY, 0))
    except OSError as exc:
        return exc.errno not in (errno.ENOSYS, errno.EPERM, errno.EINVAL, errno.E2BIG)
    finally:
        os.close(root)
    return True


def _components(relative: str) -> list[str]:
    """The names along `relative` ("" and "." dropped); OSError for a NUL (the kernel would read
    the name only up to it) or a `..`."""
    if "\x00" in relative:
        raise OSError(errno.EINVAL, "NUL byte in a path", relative)
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise OSError(errno.EXDEV, "path leaves the folder", relative)
    return parts


def _parts(relative: str) -> list[str]:
    """The names along the path of a file: at least one."""
    parts = _components(relative)
    if not parts:
        raise OSError(errno.EXDEV, "path names the folder itself, not a file", relative)
    return parts


def _walk(dir_fd: int, parts: list[str], create: bool = False) -> int:
    """A new descriptor of the folder `parts` beneath `dir_fd`, no symlink followed; missing
    folders made on the way when `create`."""
    current = os.dup(dir_fd)
    try:
        for part in parts:
            try:
                following = os.open(part, _DIRECTORY_FLAGS, dir_fd=current)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, 0o755, dir_fd=current)
                except FileExistsError:
                    pass  # made by someone else meanwhile: open whatever is there, without following
                following = os.open(part, _DIRECTORY_FLAGS, dir_fd=current)
            os.close(current)
            current = following
    except BaseException:
        os.close(current)
        raise
    return current


def open_beneath(root_fd: int, relative: str, flags: int, mode: int = 0o644) -> int:
    """A descriptor of `relative` beneath the folder `root_fd`; OSError (ELOOP for a symlink on
    the way, EXDEV for a path that would leave) otherwise."""
    parts = _parts(relative)
    if openat2_available():
        return _openat2(root_fd, "/".join(parts), flags | os.O_NOFOLLOW, mode)
    parent = _walk(root_fd, parts[:-1])
    try:
        return os.open(parts[-1], flags | os.O_NOFOLLOW | _CLOEXEC, mode, dir_fd=parent)
    finally:
        os.close(parent)


def open_folder_beneath(root_fd: int, relative: str, create: bool = False) -> int:
    """A descriptor of the folder `relative` beneath `root_fd` ("" for the root itself), made
    (with its parents) when `create`."""
    return _walk(root_fd, _components(relative), create)


def open_root(path: str) -> int:
    return os.open(path, _DIRECTORY_FLAGS)


def replace_beneath(root_fd: int, relative: str, data: bytes, check_existing=None) -> None:
    """Writes `data` to `relative` beneath `root_fd`: a new file in the parent folder's
    descriptor, renamed over the target there. `check_existing(stat_result)` may refuse what is
    there now (e.g. not a regular file) by raising. The mode of the file replaced is kept."""
    parts = _parts(relative)
    parent = open_folder_beneath(root_fd, "/".join(parts[:-1]), create=True)
    name = parts[-1]
    try:
        try:
            existing = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None and check_existing is not None:
            check_existing(existing)
        mode = stat.S_IMODE(existing.st_mode) if existing is not None and stat.S_ISREG(existing.st_mode) else 0o644
        temporary = f".pixie-write-{secrets.token_hex(6)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC, 0o600, dir_fd=parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                os.fchmod(handle.fileno(), mode)
            os.rename(temporary, name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            try:
                os.unlink(temporary, dir_fd=parent)
            except OSError:
                pass
            raise
    finally:
        os.close(parent)
