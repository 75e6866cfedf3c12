"""What the egress proxy adds to a request (`python -m bench --only egress`).

A stand-in registry (an HTTP server in a process of its own) listens on this machine's own
non-loopback address. One small client program (standard library only, run with the system
python3, the interpreter commands inside the sandbox use) makes N requests, each on a new
connection as the proxy makes them, and times each one, three ways:
- direct: from outside any sandbox, straight to the server (the baseline);
- proxy: from outside, through the proxy's unix socket (pixie's process decides, connects, relays);
- sandbox: inside a local sandbox allowed `ADDR:PORT`, through the in-sandbox forwarder on
  127.0.0.1:3128 and the proxy: the whole path a command's `curl` or `pip` takes.
The rounds alternate (direct, proxy, sandbox, again), so drift on a shared machine hits all alike.
The added latency is the difference of the medians (and of the 95th percentiles) from direct."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from lambdas.logic.sandboxes import egress
from lambdas.logic.sandboxes.isolation import IsolationPolicy, find_bubblewrap

BODY = b"pixie bench: a registry file\n" * 100  # ~3 KB, the size of a small package index page

SERVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
body = b"pixie bench: a registry file\n" * 100
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer((sys.argv[1], 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""

# argv: MODE N HOST PORT [SOCKET]; MODE direct | tcp-proxy (HOST:PORT through 127.0.0.1:3128) |
# unix-proxy (through the unix socket SOCKET). Prints the milliseconds of each request, as JSON.
CLIENT = r"""
import json, socket, sys, time
mode, n, host, port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
target = "/f" if mode == "direct" else "http://%s:%d/f" % (host, port)
request = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n" % (target, host, port)).encode()
def one():
    if mode == "unix-proxy":
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(sys.argv[5])
    else:
        conn = socket.create_connection((host, port) if mode == "direct" else ("127.0.0.1", 3128), timeout=30)
    with conn:
        conn.sendall(request)
        data = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data.startswith(b"HTTP/1.") or b" 200 " not in data.split(b"\r\n", 1)[0] or not data.endswith(b"registry file\n"):
        raise SystemExit("unexpected answer: %r" % data[:300])
for _ in range(3):  # warm up: first connections, the interpreter's lazy imports
    one()
times = []
for _ in range(n):
    started = time.perf_counter()
    one()
    times.append((time.perf_counter() - started) * 1000)
print(json.dumps(times))
"""

SYSTEM_PYTHON = egress.SANDBOX_PYTHON


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "p95": round(_percentile(values, 0.95), 2)}


def _added(path: list[float], direct: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(path) - statistics.median(direct), 2),
        "p95": round(_percentile(path, 0.95) - _percentile(direct, 0.95), 2),
    }


def _client(argv: list[str]) -> list[float]:
    done = subprocess.run([SYSTEM_PYTHON, "-I", "-S", "-c", CLIENT, *argv], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"egress bench client ({argv[0]}) failed: {done.stderr[-1000:]}")
    return json.loads(done.stdout)


def measure(home: Path, requests: int = 300, rounds: int = 3) -> dict[str, Any]:
    address = egress.own_address()
    if address is None:
        return {"egress_proxy_error": "this machine has no non-loopback IPv4 address to serve the stand-in registry on"}
    server = subprocess.Popen([sys.executable, "-I", "-c", SERVER, address], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        port = int(server.stdout.readline())
        rules = egress.parse_allow_hosts([f"{address}:{port}"])
        sandbox = None
        sandbox_error = None
        try:
            find_bubblewrap()
            from lambdas.logic.sandboxes.local import LocalSandboxProvider

            sandbox = LocalSandboxProvider(home / ".pixie", IsolationPolicy(allow_hosts=rules)).create("pixie", 600)
            sandbox.write_files({"egress_bench_client.py": CLIENT})
        except Exception as exc:  # noqa: BLE001 - no sandbox here: the proxy figure still stands
            sandbox_error = f"{type(exc).__name__}: {exc}"
        per_round = max(1, requests // rounds)
        times: dict[str, list[float]] = {"direct": [], "proxy": [], "sandbox": []}
        with tempfile.TemporaryDirectory(prefix="pixie-bench-egress-") as folder:
            proxy = egress.EgressProxy(rules, Path(folder) / "audit.jsonl")
            try:
                for _ in range(rounds):
                    times["direct"] += _client(["direct", str(per_round), address, str(port)])
                    times["proxy"] += _client(["unix-proxy", str(per_round), address, str(port), proxy.socket_path])
                    if sandbox is not None:
                        ran = sandbox.run_command(
                            f"{SYSTEM_PYTHON} -I -S egress_bench_client.py tcp-proxy {per_round} {address} {port}", 600)
                        if ran.exit_code != 0:
                            raise RuntimeError(f"egress bench client in the sandbox failed: {ran.stderr[-1000:]}")
                        times["sandbox"] += json.loads(ran.stdout)
            finally:
                proxy.stop()
                if sandbox is not None:
                    sandbox.kill()
    finally:
        server.kill()
        server.wait()
    result: dict[str, Any] = {
        "egress_requests_per_path": len(times["direct"]),
        "egress_request_ms": {path: _summary(values) for path, values in times.items() if values},
        "egress_proxy_added_ms": _added(times["proxy"], times["direct"]),
        "egress_how": (f"{len(times['direct'])} GETs of a {len(BODY)} B file from a local server on {address}, one connection each, "
                       "direct vs through the proxy's unix socket vs from inside a sandbox through the forwarder and the proxy; "
                       f"{rounds} alternating rounds"),
    }
    if times["sandbox"]:
        result["egress_sandbox_path_added_ms"] = _added(times["sandbox"], times["direct"])
    else:
        result["egress_sandbox_path_error"] = sandbox_error
    return result
