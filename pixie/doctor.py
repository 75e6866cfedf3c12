"""`pixie doctor`: how the local sandbox isolates commands on this machine, proven live. The
decision a run makes (isolated, refused, or unisolated and announced) is the sandbox code's:
lambdas/logic/sandboxes/run_isolation.py."""

from __future__ import annotations

import os
import platform
import socket
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from lambdas.logic.errors import IsolationUnavailable
from lambdas.logic.sandboxes.run_isolation import network_allowed
from lambdas.logic.sandboxes.isolation import (
    ISOLATION_NONE,
    IsolationPolicy,
    MASKED_FILES,
    Limits,
    find_bubblewrap,
    memory_cgroup_base,
    pids_cgroup_base,
)

# --- pixie doctor ---------------------------------------------------------------------------------
def _check(sandbox, command: str) -> tuple[int | None, str]:
    result = sandbox.run_command(command, 20)
    return result.exit_code, (result.stdout + result.stderr).strip()


# The first mask a run puts over a host file (umount of a mount point that is not a mask would
# prove nothing); /tmp, a mount of the sandbox's own, when the host has none of them.
MASK_PROBE = next((m for m in MASKED_FILES if os.path.isfile(m)), "/tmp")


def _live_checks(policy: IsolationPolicy, out: TextIO) -> bool:
    """Runs a few commands the way a run would and says what they could reach."""
    from lambdas.logic.sandboxes.local import LocalSandbox

    ok = True
    home = str(Path.home())
    with tempfile.TemporaryDirectory(prefix="pixie-doctor-") as scratch, socket.socket() as listener:
        project = Path(scratch, "project")
        project.mkdir()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        sandbox = LocalSandbox("local-000000000000", project, policy)
        checks = [
            ("the project folder is writable", f"echo ok > {project}/.doctor && cat {project}/.doctor", True),
            ("your home folder is hidden", f"test -e {home!r} && ls -A {home!r} | head -c 200", False),
            ("system folders are read-only", "touch /etc/pixie-doctor-probe /usr/pixie-doctor-probe", False),
            ("commands run as an ordinary user, not root", 'test "$(id -u)" != 0', True),
            ("commands have no capabilities", "grep -Eq '^CapEff:[[:space:]]*0+$' /proc/self/status", True),
            (f"a mask cannot be removed (umount {MASK_PROBE})", f"umount {MASK_PROBE}", False),
            ("/usr cannot be remounted writable", "mount -o remount,rw,bind /usr && touch /usr/pixie-doctor-probe", False),
            ("no nested user namespace", "unshare --user true", False),
            ("the host's kernel settings are read-only (/proc/sys)", "cat /proc/sys/vm/swappiness > /proc/sys/vm/swappiness", False),
            (
                f"a port on 127.0.0.1 ({'reachable: network allowed' if policy.allow_network else 'unreachable: no network'})",
                f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), timeout=3); print(\"connected\")'",
                policy.allow_network,
            ),
        ]
        for label, command, should_succeed in checks:
            exit_code, _ = _check(sandbox, command)
            passed = (exit_code == 0) == should_succeed
            ok &= passed
            out.write(f"  {'ok  ' if passed else 'FAIL'} {label}\n")
        # Outside the project, a write lands in the sandbox's own memory at most, never here.
        _check(sandbox, f"echo changed > {scratch}/outside")
        passed = not Path(scratch, "outside").exists()
        ok &= passed
        out.write(f"  {'ok  ' if passed else 'FAIL'} a write next to the project does not reach your disk\n")
    return ok


def doctor(allow_network: bool = False, out: TextIO = sys.stdout) -> int:
    """Prints which isolation local commands get here and whether it works; 0 when it does."""
    allowed = network_allowed(allow_network)
    out.write(f"platform: {platform.system()} {platform.machine()}, Python {platform.python_version()}\n")
    if os.environ.get("PIXIE_ISOLATION") == ISOLATION_NONE:
        out.write("PIXIE_ISOLATION=none: local commands would run unisolated (pixie run warns every time)\n")
    try:
        bwrap = find_bubblewrap(os.environ.get("PIXIE_BWRAP") or None)
    except IsolationUnavailable as exc:
        out.write(f"isolation: NONE — {exc}\n")
        out.write(
            "  pixie run refuses real models on the local sandbox here; use --sandbox e2b, or --no-isolation "
            "(unisolated, warned). The scripted demo still runs, unisolated and announced.\n"
        )
        if sys.platform == "darwin":
            out.write("  macOS has no isolation for local commands yet (no Seatbelt profile).\n")
        return 1
    from lambdas.logic.config import Settings
    from lambdas.logic.sandboxes.isolation import policy_from_settings

    try:
        limits = policy_from_settings(Settings.from_env()).limits
    except ValueError as exc:  # InvalidSetting: say it, check with the defaults
        out.write(f"settings: {exc}; checking with the defaults\n")
        limits = Limits()
    out.write(f"isolation: bubblewrap — {bwrap.describe()}\n")
    out.write(f"network: {'allowed (PIXIE_ALLOW_NETWORK / --allow-network)' if allowed else 'off by default (--allow-network or PIXIE_ALLOW_NETWORK=1 to allow)'}\n")
    cgroup = pids_cgroup_base()
    processes = f"at most {limits.processes} processes " + (
        f"(pids cgroup under {cgroup})" if cgroup else "(RLIMIT_NPROC in the sandbox's user namespace; does not bind root)"
    )
    memory = memory_cgroup_base()
    out.write(
        f"memory per command, all processes together: "
        + (f"{limits.total_memory_mb} MB (memory cgroup under {memory})" if memory else "not bounded (no memory cgroup pixie may create; per-process limits only)")
        + f"; project disk use: {limits.project_bytes // 1024**2} MB (PIXIE_MAX_PROJECT_BYTES, checked while commands run)\n"
    )
    out.write(
        f"limits per command: {processes}; files up to {limits.file_size_mb} MB; {limits.memory_mb} MB of data per "
        f"process; CPU time up to the command timeout; /tmp {limits.tmp_mb} MB"
        f"{'' if bwrap.sized_tmp else ' (not enforced: this bubblewrap has no --size)'}\n"
    )
    out.write("checks (commands run as in a run):\n")
    works = _live_checks(IsolationPolicy(allow_network=allowed, bwrap=os.environ.get("PIXIE_BWRAP") or None), out)
    out.write(f"isolation {'works' if works else 'is NOT working as expected'}\n")
    return 0 if works else 1
