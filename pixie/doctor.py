"""`pixie doctor`: how the local sandbox isolates commands on this machine, proven live. The
decision a run makes (isolated, refused, or unisolated and announced) is the sandbox code's:
lambdas/logic/sandboxes/run_isolation.py."""

from __future__ import annotations

import os
import platform
import secrets
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


# Run inside the sandbox: GET URL through the proxy HTTP_PROXY names; prints the status and the
# proxy's reason header, or the body's first line.
EGRESS_PROBE = """
import os, sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": os.environ["HTTP_PROXY"]}))
try:
    with opener.open(sys.argv[1], timeout=15) as answer:
        print(answer.status, answer.read(200).decode("ascii", "replace").strip())
except urllib.error.HTTPError as refused:
    print(refused.code, refused.headers.get("X-Pixie-Egress"))
"""
EGRESS_BODY = "pixie-doctor-egress-ok"


def _egress_checks(bwrap_path: str | None, out: TextIO) -> bool:
    """The allow-list path end to end (--allow-host): a server here, named by address and port in
    the list, reached from a sandbox through the forwarder and pixie's proxy; another port
    refused with 403; a direct socket unreachable; both requests in the audit."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from lambdas.logic.sandboxes import egress
    from lambdas.logic.sandboxes.local import LocalSandbox

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            body = EGRESS_BODY.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    address = egress.own_address() or "127.0.0.1"  # loopback is allowed too when an entry names it
    servers = [ThreadingHTTPServer((address, 0), Answer) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    listed, unlisted = (server.server_address[1] for server in servers)
    where = f"[{address}]" if ":" in address else address
    ok = True
    sandbox_id = f"local-{secrets.token_hex(6)}"  # its own proxy: another doctor's or run's is left alone
    try:
        with tempfile.TemporaryDirectory(prefix="pixie-doctor-egress-") as scratch:
            project = Path(scratch, "project")
            project.mkdir()
            audit = Path(scratch, "egress.jsonl")
            policy = IsolationPolicy(allow_hosts=egress.parse_allow_hosts([f"{where}:{listed}"]), bwrap=bwrap_path)
            sandbox = LocalSandbox(sandbox_id, project, policy, egress_audit=audit)
            sandbox.write_files({"egress_probe.py": EGRESS_PROBE})
            probe = f"python3 egress_probe.py http://{where}:{{}}/f"
            checks = [
                (f"--allow-host {where}:{listed}: a command reaches it through the egress proxy",
                 probe.format(listed), lambda code, text: code == 0 and text == f"200 {EGRESS_BODY}"),
                (f"another port ({unlisted}) is refused by the proxy with 403",
                 probe.format(unlisted), lambda code, text: code == 0 and text.startswith("403 refused; port")),
                (f"a direct socket to {where}:{listed} is unreachable",
                 f"python3 -c 'import socket; socket.create_connection((\"{address}\", {listed}), timeout=3)'",
                 lambda code, text: code != 0),
            ]
            for label, command, passed in checks:
                exit_code, text = _check(sandbox, command)
                good = passed(exit_code, text)
                ok &= good
                out.write(f"  {'ok  ' if good else 'FAIL'} {label}\n")
            verdicts = [(e.get("port"), e.get("verdict")) for e in egress.read_audit(audit)]
            good = verdicts == [(listed, egress.ALLOWED), (unlisted, egress.REFUSED)]
            ok &= good
            out.write(f"  {'ok  ' if good else 'FAIL'} both requests are in the audit (allowed, refused)\n")
    finally:
        egress.stop_proxies(sandbox_id)
        for server in servers:
            server.shutdown()
            server.server_close()
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
    out.write("egress allow-list (--allow-host, through pixie's proxy; no other network):\n")
    works &= _egress_checks(os.environ.get("PIXIE_BWRAP") or None, out)
    out.write(f"isolation {'works' if works else 'is NOT working as expected'}\n")
    return 0 if works else 1
