"""The egress allow-list (lambdas/logic/sandboxes/egress.py): a local sandbox's commands reach the
listed hosts and ports through pixie's proxy, and nothing else; every request is in the run's
record under `egress`.

The servers stand in for a registry on this machine's own non-loopback address (the proxy refuses
loopback unless an entry names it), started and stopped by each test; no other network."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lambdas.logic.sandboxes import egress
from lambdas.logic.sandboxes.egress import AllowList, parse_allow_hosts
from lambdas.logic.sandboxes.isolation import IsolationPolicy
from lambdas.logic.sandboxes.local import LocalSandboxProvider, stop_all_previews
from pixie.local_run import RunOptions, run_locally
from conftest import fail_in_ci, require_isolation, skip_or_fail_in_ci, write_script_file

PIXIE = Path(sys.executable).parent / "pixie"
FILE_BODY = "registry-file-5b1e\n"


own_address = egress.own_address


class Serving:
    """A ThreadingHTTPServer the test starts on `host` (port chosen by the OS), answered by
    `handler` in a thread of its own, until stop()."""

    def __init__(self, host: str, handler: type) -> None:
        self.server = ThreadingHTTPServer((host, 0), handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class Server(Serving):
    """An HTTP server the test starts (and stops) on `host`: serves FILE_BODY at /f, records
    every request it gets."""

    def __init__(self, host: str, redirects: dict[str, str] | None = None) -> None:
        requests: list[str] = []
        self.requests = requests
        redirects = redirects or {}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                requests.append(self.path)
                if self.path in redirects:
                    self.send_response(302)
                    self.send_header("Location", redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = FILE_BODY.encode() if self.path == "/f" else b"other\n"
                self.send_response(200 if self.path == "/f" else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        super().__init__(host, Handler)


@pytest.fixture(autouse=True)
def _isolation_required():
    require_isolation()
    yield
    stop_all_previews()
    egress.stop_proxies()


@pytest.fixture
def address() -> str:
    found = own_address()
    if found is None:
        skip_or_fail_in_ci("this machine has no non-loopback IPv4 address to serve the stand-in registry on "
                           "(.ci/ensure-address gives a CI machine one)")
    return found


@pytest.fixture
def servers(address):
    """Two servers on this machine's own address: the listed one and another port."""
    listed, other = Server(address), Server(address)
    yield listed, other
    listed.stop()
    other.stop()


def commands(address: str, port: int, other_port: int) -> list[str]:
    return [
        f"curl -s http://{address}:{port}/f",
        f"curl -s -i http://{address}:{other_port}/f",
        "python3 -c 'import socket; socket.create_connection((\"%s\", %d), timeout=5); print(\"connected\")'" % (address, port),
    ]


def script_for(path: Path, runs: list[str]) -> Path:
    calls = [{"name": "terminal", "arguments": {"command": command}} for command in runs]
    return write_script_file(path, [{"content": None, "tool_calls": calls}, {"content": "<task_summary>Fetched.</task_summary>"}])


def tool_outputs(record: dict) -> list[str]:
    return [m["content"] for m in record["conversation"] if m["role"] == "tool"]


def pixie(*args: str, home: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    environment.update({"PIXIE_HOME": str(home), **(env or {})})
    return subprocess.run([str(PIXIE), *args], capture_output=True, text=True, env=environment, timeout=300,
                          stdin=subprocess.DEVNULL)


# --- whole runs: the "done when" -------------------------------------------------------------
def test_allow_host_reaches_the_listed_port_only_and_the_run_records_every_request(tmp_path, address, servers):
    listed, other = servers
    script = script_for(tmp_path / "s.json", commands(address, listed.port, other.port))

    ran = pixie("run", "--json", "--no-serve", "--allow-host", f"{address}:{listed.port}", "--model", f"scripted:{script}",
                "Fetch", home=tmp_path / "home")

    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout)["runId"]
    shown = pixie("show", run_id, "--json", home=tmp_path / "home")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    fetched, other_port, direct = tool_outputs(record)
    assert FILE_BODY.strip() in fetched and "exit code 0" in fetched
    assert "403 Forbidden" in other_port and "not on the allow-list" in other_port and FILE_BODY.strip() not in other_port
    assert "unreachable" in direct and "exit code 0" not in direct
    assert listed.requests == ["/f"]  # the curl, through the proxy; the direct socket never arrived
    assert other.requests == []
    audit = record["egress"]
    assert [(e["host"], e["port"], e["method"], e["verdict"]) for e in audit] == [
        (address, listed.port, "GET", "allowed"),
        (address, other.port, "GET", "refused"),
    ]
    assert audit[0]["bytes"] > len(FILE_BODY) and "not on the allow-list" in audit[1]["reason"]
    assert all(set(e) >= {"time", "host", "port", "method", "bytes", "verdict", "reason"} for e in audit)

    plain = pixie("show", run_id, home=tmp_path / "home")
    assert plain.returncode == 0, plain.stderr
    listing = plain.stdout.split("\nEgress ", 1)[1].split("\n\n", 1)[0].splitlines()
    assert listing[0] == "(2 requests through the allow-list proxy: 1 allowed, 1 refused):"
    assert "allowed" in listing[1] and f"GET  {address}:{listed.port}" in listing[1] and f"matches {address}:{listed.port}" in listing[1]
    assert "refused" in listing[2] and f"{address}:{other.port}  0 B  port {other.port} of {address} is not on the allow-list" in listing[2]


def test_without_the_allow_list_the_same_commands_reach_nothing(tmp_path, address, servers):
    listed, other = servers
    script = script_for(tmp_path / "s.json", commands(address, listed.port, other.port))

    record = run_locally("Fetch", RunOptions(model=f"scripted:{script}", pixie_home=tmp_path / "home"))

    assert record["status"] == "SUCCEEDED", record
    for output in tool_outputs(record):
        assert FILE_BODY.strip() not in output and "403" not in output and "exit code 0" not in output
    assert listed.requests == [] and other.requests == []
    assert record["egress"] == []


# --- one sandbox, the rules one by one -----------------------------------------------------------------
def sandbox_with(home: Path, *entries: str):
    policy = IsolationPolicy(allow_hosts=parse_allow_hosts(entries))
    return LocalSandboxProvider(home / ".pixie", policy).create("pixie", 60)


def through_proxy(url: str) -> str:
    # --noproxy '': even loopback goes through the proxy (NO_PROXY keeps it direct otherwise).
    return f"curl -s -i --noproxy '' -x http://127.0.0.1:{egress.PROXY_PORT} {url}"


def test_a_listed_name_resolving_to_loopback_is_refused_but_loopback_named_explicitly_is_allowed(tmp_path):
    server = Server("127.0.0.1")
    try:
        by_name = sandbox_with(tmp_path, f"localhost:{server.port}").run_command(through_proxy(f"http://localhost:{server.port}/f"), 30)
        assert "403 Forbidden" in by_name.stdout and "loopback" in by_name.stdout
        assert server.requests == []

        named = sandbox_with(tmp_path, f"127.0.0.1:{server.port}").run_command(through_proxy(f"http://127.0.0.1:{server.port}/f"), 30)
        assert FILE_BODY.strip() in named.stdout
        assert server.requests == ["/f"]
    finally:
        server.stop()


def test_a_host_not_on_the_list_is_refused_before_anything_is_sent(tmp_path, address, servers):
    listed, _ = servers
    sandbox = sandbox_with(tmp_path, f"registry.invalid:{listed.port}")
    refused = sandbox.run_command(through_proxy(f"http://{address}:{listed.port}/f"), 30)
    assert "403 Forbidden" in refused.stdout and f"{address} is not on the allow-list" in refused.stdout
    assert listed.requests == []
    audit = egress.read_audit(sandbox.egress_audit)
    assert [(e["host"], e["verdict"]) for e in audit] == [(address, "refused")]


def fixed(addresses: dict[str, list[str]]):
    return lambda host, port: addresses[host]


@pytest.mark.parametrize("resolved, kind", [
    ("127.0.0.1", "loopback"), ("169.254.169.254", "link-local"), ("10.1.2.3", "private"),
    ("192.168.0.9", "private"), ("::1", "loopback"), ("fe80::1", "link-local"), ("224.0.0.1", "multicast"),
    ("::ffff:169.254.169.254", "link-local"),
])
def test_the_decision_is_on_the_resolved_address(resolved, kind):
    rules = AllowList(parse_allow_hosts(["registry.example:443"]))
    decision = rules.decide("registry.example", 443, fixed({"registry.example": [resolved]}))
    assert not decision.allowed and kind in decision.reason
    public = rules.decide("registry.example", 443, fixed({"registry.example": ["93.184.216.34"]}))
    assert public.allowed and public.addresses == ("93.184.216.34",)
    # Only the public one of several is used.
    mixed = rules.decide("registry.example", 443, fixed({"registry.example": [resolved, "93.184.216.34"]}))
    assert mixed.allowed and mixed.addresses == ("93.184.216.34",)


def test_host_and_port_rules():
    rules = AllowList(parse_allow_hosts(["pkg.example:443", "*.cdn.example", "10.0.0.5:8080"]))
    public = fixed({"pkg.example": ["93.184.216.34"], "a.cdn.example": ["93.184.216.35"], "cdn.example": ["93.184.216.36"],
                    "evilpkg.example": ["93.184.216.37"], "x.evilcdn.example": ["93.184.216.38"], "10.0.0.5": ["10.0.0.5"]})
    assert rules.decide("pkg.example", 443, public).allowed
    assert rules.decide("PKG.example.", 443, public).allowed
    assert "port 80 of pkg.example" in rules.decide("pkg.example", 80, public).reason
    assert not rules.decide("evilpkg.example", 443, public).allowed
    assert rules.decide("a.cdn.example", 8443, public).allowed  # no port given: any
    assert not rules.decide("cdn.example", 443, public).allowed  # *.suffix is names under it only
    assert not rules.decide("x.evilcdn.example", 443, public).allowed
    assert rules.decide("10.0.0.5", 8080, public).allowed  # private, but named
    assert not rules.decide("10.0.0.5", 8081, public).allowed


@pytest.mark.parametrize("entry", ["", "a b", "host:0", "host:99999", "*", "a.*.b", "x" * 400, "@nope"])
def test_bad_entries_are_refused_with_the_entry_named(entry):
    with pytest.raises(ValueError):
        parse_allow_hosts([entry or ":80"])


def test_the_audit_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(egress, "MAX_AUDIT_LINES", 3)
    audit = egress.Audit(tmp_path / "egress" / "s.jsonl")
    for n in range(5):
        audit.write(egress._entry("h", n, "GET", egress.ALLOWED, "ok"))
    assert [e["port"] for e in egress.read_audit(tmp_path / "egress" / "s.jsonl")] == [0, 1, 2]
    monkeypatch.setattr(egress, "MAX_RUN_ENTRIES", 2)
    assert [e["port"] for e in egress.run_entries(tmp_path, "s")] == [1, 2]


# --- presets ---------------------------------------------------------------------------------------
def test_presets_expand_to_their_registry_hosts_on_https_only():
    hosts = lambda *values: [str(rule) for rule in parse_allow_hosts(values)]  # noqa: E731
    assert hosts("@npm") == ["registry.npmjs.org:443", "registry.yarnpkg.com:443"]
    assert hosts("@PyPI") == ["pypi.org:443", "files.pythonhosted.org:443"]
    assert hosts("@github") == ["github.com:443", "*.github.com:443", "*.githubusercontent.com:443"]
    # Mixed with plain entries and each other, comma-separated or repeated; duplicates once.
    assert hosts("@pypi,example.org:8080", "@pypi") == ["pypi.org:443", "files.pythonhosted.org:443", "example.org:8080"]
    public = fixed({"raw.githubusercontent.com": ["185.199.108.133"], "files.pythonhosted.org": ["151.101.0.223"]})
    rules = AllowList(parse_allow_hosts(["@github", "@pypi"]))
    assert rules.decide("raw.githubusercontent.com", 443, public).allowed
    assert not rules.decide("raw.githubusercontent.com", 80, public).allowed  # HTTPS only
    assert rules.decide("files.pythonhosted.org", 443, public).allowed


def test_an_unknown_preset_is_one_clear_line_naming_it_and_the_known_ones(tmp_path):
    script = script_for(tmp_path / "s.json", ["true"])
    with pytest.raises(ValueError, match=r"unknown allow-host preset '@npmjs': use @npm, @pypi, @github"):
        parse_allow_hosts(["example.org", "@npmjs"])

    refused = pixie("run", "--no-serve", "--allow-host", "@npmjs", "--model", f"scripted:{script}", "Fetch",
                    home=tmp_path / "home")
    assert refused.returncode == 2
    assert refused.stderr.strip() == "pixie: --allow-host: unknown allow-host preset '@npmjs': use @npm, @pypi, @github"
    assert not (tmp_path / "home" / "runs").exists()  # nothing started

    from_env = pixie("run", "--no-serve", "--model", f"scripted:{script}", "Fetch", home=tmp_path / "home",
                     env={"PIXIE_ALLOW_HOSTS": "@github,@bogus"})
    assert from_env.returncode == 2 and "PIXIE_ALLOW_HOSTS: unknown allow-host preset '@bogus'" in from_env.stderr
    assert "Traceback" not in from_env.stderr


# --- redirects and CONNECT -------------------------------------------------------------------------
def test_a_redirect_to_an_unlisted_port_or_host_is_refused_when_the_client_follows_it(tmp_path, address, servers):
    _, other = servers
    listed = Server(address, redirects={"/to-port": f"http://{address}:{other.port}/f", "/to-host": "http://unlisted.invalid/f"})
    try:
        sandbox = sandbox_with(tmp_path, f"{address}:{listed.port}")
        for path, reason in (("/to-port", f"port {other.port} of {address} is not on the allow-list"),
                             ("/to-host", "unlisted.invalid is not on the allow-list")):
            followed = sandbox.run_command(through_proxy(f"-L http://{address}:{listed.port}{path}"), 30)
            assert "302" in followed.stdout and "403 Forbidden" in followed.stdout, followed
            assert reason in followed.stdout and FILE_BODY.strip() not in followed.stdout
        assert listed.requests == ["/to-port", "/to-host"] and other.requests == []
        audit = egress.read_audit(sandbox.egress_audit)
        assert [(e["host"], e["port"], e["verdict"]) for e in audit] == [
            (address, listed.port, "allowed"), (address, other.port, "refused"),
            (address, listed.port, "allowed"), ("unlisted.invalid", 80, "refused"),
        ]
    finally:
        listed.stop()


def ask_proxy(proxy: egress.EgressProxy, request: bytes, then: bytes = b"") -> bytes:
    """Sends `request` on the proxy's unix socket; after a 200 to a CONNECT, `then` through the
    tunnel. Everything the proxy (or the far end) answered, until it closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(30)
        conn.connect(proxy.socket_path)
        conn.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = conn.recv(65536)
            if not chunk:
                return answer
            answer += chunk
        if answer.startswith(b"HTTP/1.1 200") and then:
            conn.sendall(then)
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_connect_reaches_only_a_listed_host_and_port(tmp_path, address, servers):
    listed, other = servers
    proxy = egress.EgressProxy(parse_allow_hosts([f"{address}:{listed.port}"]), tmp_path / "audit.jsonl")
    try:
        get = f"GET /f HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n".encode()
        tunnel = ask_proxy(proxy, f"CONNECT {address}:{listed.port} HTTP/1.1\r\nHost: {address}:{listed.port}\r\n\r\n".encode(), get)
        assert tunnel.startswith(b"HTTP/1.1 200 Connection Established") and FILE_BODY.encode() in tunnel

        wrong_port = ask_proxy(proxy, f"CONNECT {address}:{other.port} HTTP/1.1\r\n\r\n".encode(), get)
        assert wrong_port.startswith(b"HTTP/1.1 403 Forbidden")
        assert f"X-Pixie-Egress: refused; port {other.port} of {address} is not on the allow-list".encode() in wrong_port

        wrong_host = ask_proxy(proxy, b"CONNECT registry.invalid:443 HTTP/1.1\r\n\r\n", get)
        assert wrong_host.startswith(b"HTTP/1.1 403") and b"registry.invalid is not on the allow-list" in wrong_host

        no_port = ask_proxy(proxy, f"CONNECT {address} HTTP/1.1\r\n\r\n".encode())
        assert no_port.startswith(b"HTTP/1.1 400")
    finally:
        proxy.stop()
    assert listed.requests == ["/f"] and other.requests == []
    audit = egress.read_audit(tmp_path / "audit.jsonl")
    assert [(e["host"], e["port"], e["method"], e["verdict"]) for e in audit] == [
        (address, listed.port, "CONNECT", "allowed"), (address, other.port, "CONNECT", "refused"),
        ("registry.invalid", 443, "CONNECT", "refused"), (address, None, "CONNECT", "refused"),
    ]


# --- a real package manager ------------------------------------------------------------------------
PROBE = "pixie_egress_probe"


def build_wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel, built here (no network, no build backend)."""
    files = {
        f"{PROBE}.py": b"VALUE = 23\n",
        f"{PROBE}-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: pixie-egress-probe\nVersion: 1.0\n",
        f"{PROBE}-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: pixie-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
              for name, data in files.items()]
    files[f"{PROBE}-1.0.dist-info/RECORD"] = ("\n".join(record + [f"{PROBE}-1.0.dist-info/RECORD,,"]) + "\n").encode()
    wheel = folder / f"{PROBE}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


class IndexServer(Serving):
    """A PEP 503 simple index with one project, served from a folder on `host`."""

    def __init__(self, host: str, root: Path) -> None:
        wheel = build_wheel(root)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        project = root / "simple" / "pixie-egress-probe"
        project.mkdir(parents=True)
        (project / "index.html").write_text(f'<a href="/{wheel.name}#sha256={digest}">{wheel.name}</a>\n')
        self.requests: list[str] = []
        requests = self.requests

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args) -> None:
                pass

        super().__init__(host, Handler)


def test_pip_downloads_from_a_listed_index_through_the_proxy_in_a_run(tmp_path, address):
    if subprocess.run(["/usr/bin/python3", "-m", "pip", "--version"], capture_output=True).returncode != 0:
        skip_or_fail_in_ci("the system python3 has no pip (Debian: apt-get install python3-pip)")
    (tmp_path / "index").mkdir()
    index = IndexServer(address, tmp_path / "index")
    try:
        download = (f"python3 -m pip download --no-deps --no-cache-dir --disable-pip-version-check -d wheels --trusted-host {address} "
                    f"--index-url http://{address}:{index.port}/simple/ pixie-egress-probe && ls wheels")
        script = script_for(tmp_path / "s.json", [download])
        record = run_locally("Fetch", RunOptions(model=f"scripted:{script}", pixie_home=tmp_path / "home",
                                                 allow_hosts=(f"{address}:{index.port}",)))
    finally:
        index.stop()
    assert record["status"] == "SUCCEEDED", record
    (output,) = tool_outputs(record)
    assert "exit code 0" in output and f"{PROBE}-1.0-py3-none-any.whl" in output, output
    assert index.requests[0] == "/simple/pixie-egress-probe/" and f"/{PROBE}-1.0-py3-none-any.whl" in index.requests
    assert [e["verdict"] for e in record["egress"]] == ["allowed"] * len(index.requests)


# --- resume ------------------------------------------------------------------------------------------
def test_resume_carries_the_runs_allow_list_over_whatever_the_environment_says_now(tmp_path, address, servers, monkeypatch):
    from pixie.local_run import resume_locally

    listed, other = servers
    fetch = f"curl -s http://{address}:{listed.port}/f"
    first_turn = {"content": None, "tool_calls": [{"name": "terminal", "arguments": {"command": fetch}}]}
    # Turn 2 is missing from the script: the run fails (ScriptExhausted) after turn 1's fetch.
    script = write_script_file(tmp_path / "s.json", [first_turn])
    first = run_locally("Fetch", RunOptions(model=f"scripted:{script}", pixie_home=tmp_path / "home",
                                            allow_hosts=(f"{address}:{listed.port}",)))
    assert first["status"] == "FAILED" and first["error"] == "ScriptExhausted", first
    assert FILE_BODY.strip() in tool_outputs(first)[0]

    write_script_file(tmp_path / "s.json", [first_turn, first_turn, {"content": "<task_summary>Fetched.</task_summary>"}])  # turn 2 fetches again
    # The shell that resumes it lists another host: the run keeps its own list.
    monkeypatch.setenv("PIXIE_ALLOW_HOSTS", f"{address}:{other.port}")
    resumed = resume_locally(first["runId"], tmp_path / "home")

    assert resumed["status"] == "SUCCEEDED", resumed
    assert FILE_BODY.strip() in tool_outputs(resumed)[-1] and "exit code 0" in tool_outputs(resumed)[-1]
    assert listed.requests == ["/f", "/f"] and other.requests == []
    assert [(e["port"], e["verdict"]) for e in resumed["egress"]][-1] == (listed.port, "allowed")


def test_the_saved_options_hold_the_effective_allow_list(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXIE_ALLOW_HOSTS", "from-env.example:443, @pypi")
    assert RunOptions(model="m", allow_hosts=("flag.example",)).saved()["allowHosts"] == ["flag.example"]
    assert RunOptions(model="m").saved()["allowHosts"] == ["from-env.example:443", "@pypi"]
    monkeypatch.delenv("PIXIE_ALLOW_HOSTS")
    assert RunOptions(model="m").saved()["allowHosts"] == []


# --- where people read the audit: pixie show, the console -------------------------------------------
def test_the_plain_listing_is_bounded_and_escaped_and_deployed_runs_say_the_audit_is_local_only():
    from pixie.egress_view import SHOWN, egress_lines

    hostile = egress._entry("\x1b]52;c;cGl4aWU=\x07evil.example\u202e" + "x" * 500, 443, "CONNECT", egress.REFUSED,
                            "\x1b[2Jnot on the allow-list " + "y" * 1000)
    entries = [egress._entry("pkg.example", 443, "CONNECT", egress.ALLOWED, "matches pkg.example:443", 10, 20)] * (SHOWN + 5)
    lines = egress_lines({"sandboxId": "local-0123456789ab", "egress": [*entries, hostile, "not a dict"]})
    assert lines[0] == f"Egress ({SHOWN + 7} requests through the allow-list proxy: {SHOWN + 5} allowed, 1 refused; the last {SHOWN} here, all in --json):"
    assert len(lines) == SHOWN + 1
    shown = "\n".join(lines)
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown and "\\x1b]52" in shown
    assert all(len(line) < 300 for line in lines)
    assert "30 B  matches pkg.example:443" in lines[-3] and lines[-1] == "  (not an egress entry)"

    assert egress_lines({"sandboxId": "local-0123456789ab", "egress": []}) == []
    for record, deployed in (({"sandboxId": "i3x9e2bsandbox"}, False), ({"sandboxId": None}, True)):
        (line,) = egress_lines(record, deployed=deployed)
        assert line.startswith("Egress: not recorded (the egress audit is local-only")


def test_an_e2b_run_is_refused_an_allow_list_it_would_not_get(tmp_path):
    script = script_for(tmp_path / "s.json", ["true"])
    refused = pixie("run", "--no-serve", "--sandbox", "e2b", "--allow-host", "@npm", "--model", f"scripted:{script}", "x",
                    home=tmp_path / "home", env={"E2B_API_KEY": "e2b_" + "0" * 40})
    assert refused.returncode == 2 and "--allow-host applies to the local sandbox" in refused.stderr, refused.stderr


def egress_rows_in_a_browser(console, run_id: str):
    """The Egress panel's rows as Chromium renders them (cells, <marquee> elements, row classes),
    or None where there is no browser to ask (the API assertions stand alone)."""
    try:
        from playwright.sync_api import sync_playwright
        from test_console_browser import chromium_path
    except ImportError:
        fail_in_ci("Playwright for Python is not installed: the Egress panel's rendering is unchecked", "PIXIE_REQUIRE_BROWSER")
        return None
    executable = chromium_path()
    if executable is None:
        fail_in_ci("no Chromium found: the Egress panel's rendering is unchecked", "PIXIE_REQUIRE_BROWSER")
        return None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        try:
            page = browser.new_page()
            page.set_default_timeout(180_000)  # bounds a hang only: every wait is for an element
            page.goto(f"{console.base}/runs/{run_id}?token={console.token}")
            page.wait_for_selector("#egress:not([hidden]) tbody tr:nth-child(3)")
            rows = page.locator("#egress tbody tr")
            cells = [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]
            return cells, page.locator("#egress marquee").count(), [rows.nth(i).get_attribute("class") for i in range(rows.count())]
        finally:
            browser.close()


def test_the_console_run_page_has_an_egress_panel_fed_by_the_record(tmp_path, address, servers):
    from console_server import ConsoleProcess
    from pixie.console.views import run_view

    listed, other = servers
    # A host name with markup in it, as a model's command may ask for one.
    marked_up = ("python3 -c 'import socket; s = socket.create_connection((\"127.0.0.1\", %d)); "
                 "s.sendall(b\"GET http://<marquee>evil.invalid/ HTTP/1.1\\r\\n\\r\\n\"); print(s.recv(300))'" % egress.PROXY_PORT)
    script = script_for(tmp_path / "s.json", [*commands(address, listed.port, other.port), marked_up])
    with ConsoleProcess(tmp_path / "home", env={"PIXIE_ALLOW_HOSTS": f"{address}:{listed.port}"}) as console:
        run_id = console.start_run("Fetch", model=f"scripted:{script}")
        record = console.wait_for(run_id)
        page = console.client.get(f"/runs/{run_id}")
        script_js = console.client.get("/static/run.js")
        rows = egress_rows_in_a_browser(console, run_id)
    assert record["status"] == "SUCCEEDED", record
    assert [(e["host"], e["port"], e["verdict"]) for e in record["egress"]] == [
        (address, listed.port, "allowed"), (address, other.port, "refused"), ("<marquee>evil.invalid", 80, "refused")]
    assert record["egressAudit"] == {"recorded": True, "note": None, "allowed": 1, "refused": 2}
    if rows is not None:  # what the page shows: one row per request, markup as text
        cells, marquees, pwned_classes = rows
        assert [row[1:4] for row in cells] == [
            ["allowed", "GET", f"{address}:{listed.port}"], ["refused", "GET", f"{address}:{other.port}"],
            ["refused", "GET", "<marquee>evil.invalid:80"]]
        assert marquees == 0 and pwned_classes == ["egress-allowed", "egress-refused", "egress-refused"]
    assert page.status_code == 200 and 'id="egress-title">Egress</h2>' in page.text and '<table id="egress"' in page.text
    assert "renderEgress(record)" in script_js.text and "innerHTML" not in script_js.text  # text only, never markup
    deployed = run_view({"runId": "r", "sandboxId": "e2b-sandbox-id", "history": []})["egressAudit"]
    assert not deployed["recorded"] and "local-only" in deployed["note"]


# --- pixie doctor ----------------------------------------------------------------------------------
def test_doctor_checks_the_proxy_path_end_to_end():
    import io

    from pixie.doctor import doctor

    out = io.StringIO()
    assert doctor(out=out) == 0, out.getvalue()
    checks = out.getvalue().split("egress allow-list (--allow-host, through pixie's proxy; no other network):\n")[1].splitlines()
    assert [line[:6] for line in checks[:4]] == ["  ok  "] * 4 and checks[4] == "isolation works"
    assert ": a command reaches it through the egress proxy" in checks[0] and "refused by the proxy with 403" in checks[1]
    assert egress._proxies == {}  # its proxy stopped with it


def test_doctor_says_fail_when_the_proxy_lets_an_unlisted_port_through(monkeypatch):
    import io

    from pixie.doctor import _egress_checks

    anything = lambda self, host, port, resolver=egress.resolve: egress.Decision(True, "any", (host,))  # noqa: E731
    monkeypatch.setattr(egress.AllowList, "decide", anything)
    out = io.StringIO()
    assert _egress_checks(None, out) is False
    assert "FAIL another port" in out.getvalue() and "FAIL both requests are in the audit" in out.getvalue()


def test_npm_view_asks_a_listed_registry_through_the_proxy(tmp_path, address):
    if shutil.which("npm") is None:
        skip_or_fail_in_ci("no npm on PATH (Debian's nodejs has none: apt-get install npm)")
    seen: list[str] = []

    class Registry(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            seen.append(self.path)
            body = json.dumps({"name": "pixie-egress-probe", "dist-tags": {"latest": "1.0.0"}, "versions": {"1.0.0": {
                "name": "pixie-egress-probe", "version": "1.0.0", "description": "registry-answer-23",
                "dist": {"tarball": f"http://{address}:{port}/p.tgz", "shasum": "0" * 40}}}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    registry = Serving(address, Registry)
    port = registry.port
    try:
        sandbox = sandbox_with(tmp_path, f"{address}:{port}")
        viewed = sandbox.run_command(f"npm_config_update_notifier=false npm view pixie-egress-probe description "
                                     f"--registry http://{address}:{port}/", 120)
    finally:
        registry.stop()
    assert viewed.exit_code == 0 and viewed.stdout.strip() == "registry-answer-23", viewed
    assert seen == ["/pixie-egress-probe"]
    assert [(e["port"], e["verdict"]) for e in egress.read_audit(sandbox.egress_audit)] == [(port, "allowed")]


# --- attacks (isolation2): what a malicious model's commands can do to the proxy and its audit ----------
def noise(count: int) -> str:
    """A command making `count` requests the proxy refuses (an unlisted name: no lookup, cheap)."""
    return f"for i in $(seq {count}); do curl -s -o /dev/null http://noise-$i.invalid/; done"


def test_refused_requests_past_the_audit_cap_do_not_hide_a_later_allowed_request(tmp_path, address, servers, monkeypatch):
    # Past MAX_AUDIT_LINES (10,000 per sandbox: about 4 s of a loop of refused requests, or many
    # continued runs of npm installs) the audit drops every request, the allowed ones included,
    # and counts none: the record then shows refusals only, or nothing at all.
    listed, _ = servers
    monkeypatch.setattr(egress, "MAX_AUDIT_LINES", 5)
    script = script_for(tmp_path / "s.json", [noise(5), f"curl -s http://{address}:{listed.port}/f", "true"])

    record = run_locally("Fetch", RunOptions(model=f"scripted:{script}", pixie_home=tmp_path / "home",
                                             allow_hosts=(f"{address}:{listed.port}",)))

    assert record["status"] == "SUCCEEDED", record
    assert FILE_BODY.strip() in tool_outputs(record)[1] and listed.requests == ["/f"]  # it reached the host
    assert [(e["host"], e["port"]) for e in record["egress"] if e["verdict"] == "allowed"] == [(address, listed.port)]


def test_refused_noise_after_an_allowed_request_does_not_make_the_record_say_nothing_was_allowed(tmp_path, address, servers, monkeypatch):
    # The record keeps the last MAX_RUN_ENTRIES (500) requests and its counts are those of what it
    # kept: an upload to a listed host followed by 500 refused requests reads "0 allowed".
    from pixie.console.views import egress_audit
    from pixie.egress_view import egress_lines

    listed, _ = servers
    monkeypatch.setattr(egress, "MAX_RUN_ENTRIES", 5)
    script = script_for(tmp_path / "s.json", [f"curl -s http://{address}:{listed.port}/f", noise(5)])

    record = run_locally("Fetch", RunOptions(model=f"scripted:{script}", pixie_home=tmp_path / "home",
                                             allow_hosts=(f"{address}:{listed.port}",)))

    assert record["status"] == "SUCCEEDED", record
    assert listed.requests == ["/f"]
    assert egress_audit(record)["allowed"] == 1, egress_audit(record)  # the console's Egress panel
    assert "1 allowed" in egress_lines(record)[0], egress_lines(record)[0]  # pixie show


class HeldAnswerServer(Serving):
    """A listed host that sends its answer's head at once and the body only when `release` is set
    (a slow endpoint: a long poll, a big upload being processed)."""

    def __init__(self, host: str) -> None:
        self.requests: list[str] = []
        self.release = threading.Event()
        requests, release = self.requests, self.release

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", str(len(FILE_BODY)))
                self.end_headers()
                self.wfile.flush()
                release.wait(600)
                self.wfile.write(FILE_BODY.encode())

            def log_message(self, *args) -> None:
                pass

        super().__init__(host, Handler)

    def stop(self) -> None:
        self.release.set()  # its held answers end, so the server's threads can
        super().stop()


def test_a_request_whose_answer_has_not_ended_when_the_run_ends_is_in_the_run_record(tmp_path, address):
    # An allowed request is written to the audit only when its relay ends: one the command leaves
    # (it read the answer's head, then exited) while the listed host has not finished answering is
    # in no run record (and with `pixie run`, whose process exits, in no audit file either).
    server = HeldAnswerServer(address)
    try:
        leave_early = ("python3 -c 'import socket; s = socket.create_connection((\"127.0.0.1\", %d)); "
                       "s.sendall(b\"GET http://%s:%d/slow HTTP/1.1\\r\\n\\r\\n\"); print(s.recv(200))'"
                       % (egress.PROXY_PORT, address, server.port))
        script = script_for(tmp_path / "s.json", [leave_early])
        record = run_locally("Fetch", RunOptions(model=f"scripted:{script}", pixie_home=tmp_path / "home",
                                                 allow_hosts=(f"{address}:{server.port}",)))
    finally:
        server.stop()
    assert record["status"] == "SUCCEEDED", record
    assert "200 OK" in tool_outputs(record)[0] and server.requests == ["/slow"]  # the host got it and answered
    assert [(e["host"], e["port"], e["verdict"]) for e in record["egress"]] == [(address, server.port, "allowed")]


def test_a_command_cannot_make_the_proxy_hold_more_threads_than_its_own_process_limit(tmp_path):
    # Each connection to the proxy's socket is a thread of pixie's own process, outside the
    # command's pids cgroup and RLIMIT_NPROC, kept while the head is unfinished (30 s per byte:
    # forever, one byte at a time) or a tunnel is open. A command that connects straight to
    # /run/pixie/egress.sock (no forwarder thread of its own) held 3,000 of them in pixie with one
    # process; the machine's threads-max is the only bound.
    import resource

    from lambdas.logic.sandboxes.isolation import Limits

    bound = Limits().processes
    connections = bound + 100
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * connections + 200  # both ends live in this process
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            skip_or_fail_in_ci(f"this process may open {hard} files, the test needs {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    proxy = egress.EgressProxy(parse_allow_hosts(["registry.invalid:443"]), tmp_path / "audit.jsonl")
    held: list[socket.socket] = []
    all_taken = threading.Event()

    def open_connections() -> None:
        for _ in range(connections):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            held.append(conn)
            conn.connect(proxy.socket_path)  # blocking: waits while the proxy's accept queue is full
            conn.sendall(b"GET http://registry.invalid/")  # a head never finished
        # One whole request behind them: once it is answered, the proxy has taken every
        # connection before it (its accept loop takes them in order).
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as last:
            last.connect(proxy.socket_path)
            last.sendall(b"GET http://unlisted.invalid/ HTTP/1.1\r\n\r\n")
            while last.recv(65536):
                pass
        all_taken.set()

    before = threading.active_count()
    opener = threading.Thread(target=open_connections, daemon=True)
    opener.start()
    try:
        all_taken.wait(300)  # bounds a hang only: a bounded proxy may stop taking connections
        threads = threading.active_count() - before - opener.is_alive()
    finally:
        proxy.stop()  # a connect still waiting is refused
        opener.join()
        for conn in held:
            conn.close()
    assert threads <= bound, f"{threads} threads in pixie's process for one command's {connections} connections"


def test_a_request_the_proxy_cannot_parse_is_answered_400_and_audited(tmp_path):
    # urlsplit raises ValueError on an unclosed "[": the handler dies, the client gets no answer
    # and the request is in no audit ("every request, allowed or refused").
    proxy = egress.EgressProxy(parse_allow_hosts(["registry.invalid:443"]), tmp_path / "audit.jsonl")
    try:
        answers = [ask_proxy(proxy, request) for request in (
            b"GET http://[registry.invalid/ HTTP/1.1\r\n\r\n", b"CONNECT [registry.invalid:443 HTTP/1.1\r\n\r\n")]
    finally:
        proxy.stop()
    assert [answer[:12] for answer in answers] == [b"HTTP/1.1 400"] * 2, answers
    assert [(e["method"], e["verdict"]) for e in egress.read_audit(tmp_path / "audit.jsonl")] == [("GET", "refused"), ("CONNECT", "refused")]


def test_an_allow_list_is_not_silently_dropped_for_the_whole_network_by_pixie_allow_network_in_the_environment(tmp_path, address, servers):
    # PIXIE_ALLOW_NETWORK=1 left in a shell profile wins over an explicit --allow-host: the command
    # gets the whole network (LAN, 127.0.0.1, metadata), no proxy, no audit, and the only word on
    # the terminal is "network on". An E2B run with --allow-host is refused for the same reason
    # (README: "refused rather than silently unfiltered").
    listed, other = servers
    script = script_for(tmp_path / "s.json", [f"curl -s http://{address}:{other.port}/f"])

    ran = pixie("run", "--no-serve", "--allow-host", f"{address}:{listed.port}", "--model", f"scripted:{script}", "Fetch",
                home=tmp_path / "home", env={"PIXIE_ALLOW_NETWORK": "1"})

    # Refused (exit 2, as with E2B) or the list applies: either way the unlisted port is not reached.
    assert other.requests == [], f"--allow-host was given, yet the command reached an unlisted port directly: {ran.stderr}"


def test_the_run_record_keeps_allowed_requests_first_and_counts_every_request(tmp_path, monkeypatch):
    # Past MAX_RUN_ENTRIES the record keeps the allowed requests, then the last refused ones, and
    # its totals (what `pixie show` and the console's Egress panel say) count every request.
    from pixie.console.views import egress_audit
    from pixie.egress_view import egress_lines

    monkeypatch.setattr(egress, "MAX_RUN_ENTRIES", 3)
    audit = egress.Audit(egress.audit_path(tmp_path, "local-kept"))
    audit.write({**egress._entry("registry.example", 443, "CONNECT", egress.ALLOWED, "matches"), "id": "a"})
    for i in range(5):
        audit.write(egress._entry(f"noise-{i}.invalid", 80, "GET", egress.REFUSED, "not on the allow-list"))

    entries = egress.run_entries(tmp_path, "local-kept")
    record = {"sandboxId": "local-kept", "egress": entries, "egressTotals": egress.run_totals(tmp_path, "local-kept")}

    assert [e["host"] for e in entries] == ["registry.example", "noise-3.invalid", "noise-4.invalid"]
    assert egress_audit(record)["allowed"] == 1 and egress_audit(record)["refused"] == 5, egress_audit(record)
    assert egress_lines(record)[0].startswith("Egress (6 requests through the allow-list proxy: 1 allowed, 5 refused"), egress_lines(record)[0]


def test_a_request_head_sent_a_byte_at_a_time_is_cut_off_at_the_head_deadline_and_audited(tmp_path, monkeypatch):
    # The head timeout is for the whole head: a byte before each per-read timeout must not keep a
    # proxy thread forever. Bytes are paced well inside the deadline; the proxy must answer 408.
    monkeypatch.setattr(egress, "HEAD_TIMEOUT_S", 1)
    proxy = egress.EgressProxy(parse_allow_hosts(["registry.invalid:443"]), tmp_path / "audit.jsonl")
    answer = b""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(proxy.socket_path)
            conn.settimeout(0.2)  # paces the bytes: a read with nothing to read yet sends the next
            for byte in b"GET http://registry.invalid/" + b"x" * 200:  # 45 s of bytes: far past the deadline
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    conn.sendall(bytes([byte]))  # fails once the proxy has answered and closed; its answer is still there
                try:
                    answer += conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if answer:
                    break
            cut_off_while_sending = bool(answer)
            conn.settimeout(30)
            with contextlib.suppress(OSError):
                while answer and (chunk := conn.recv(65536)):
                    answer += chunk
    finally:
        proxy.stop()
    assert cut_off_while_sending, "the proxy still waited for the head after 45 s of single bytes"
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert [e["verdict"] for e in egress.read_audit(tmp_path / "audit.jsonl")] == ["refused"]


def test_an_allow_list_in_the_environment_wins_over_pixie_allow_network_in_the_environment():
    # A resumed run gets its saved list as PIXIE_ALLOW_HOSTS: PIXIE_ALLOW_NETWORK=1 left in the
    # environment must not give its commands the whole network in the list's place.
    from lambdas.logic.config import Settings

    both = Settings.from_env({"PIXIE_ALLOW_NETWORK": "1", "PIXIE_ALLOW_HOSTS": "registry.example:443"})
    assert both.allow_hosts == ("registry.example:443",) and both.allow_network is False
    assert Settings.from_env({"PIXIE_ALLOW_NETWORK": "1"}).allow_network is True


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_allow_host_with_the_whole_network_is_refused_before_the_run_starts(tmp_path, how):
    # Either way the list would not be what the command gets: said in one line, exit 2, no run.
    script = script_for(tmp_path / "s.json", ["true"])
    network = ["--allow-network"] if how == "flag" else []
    ran = pixie("run", "--no-serve", *network, "--allow-host", "registry.example:443", "--model", f"scripted:{script}", "Fetch",
                home=tmp_path / "home", env={"PIXIE_ALLOW_NETWORK": "1"} if how == "environment" else {})
    assert ran.returncode == 2 and "PIXIE_ALLOW_NETWORK" in ran.stderr, ran.stderr
    assert not (tmp_path / "home" / "runs").exists() or not any((tmp_path / "home" / "runs").iterdir())


# --- the forwarder inside the sandbox, run here on the host's loopback ------------------------------
# In a run it is the sandbox's system python3 that runs egress_forwarder.py (bound in at
# /run/pixie/egress_forwarder.py), where coverage cannot follow; run directly it is measured too.
@contextlib.contextmanager
def forwarder_to(unix_path: Path):
    """The forwarder listening on a free loopback port, passing connections to `unix_path`; its
    forked server is in the starter's process group, stopped with it afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    starter = subprocess.Popen([sys.executable, str(egress.FORWARDER_SOURCE), str(unix_path), str(port)], start_new_session=True)
    try:
        assert starter.wait(timeout=60) == 0  # it returns once listening
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(starter.pid, 15)


def test_the_forwarder_passes_bytes_both_ways_and_closes_a_connection_the_proxy_cannot_take(tmp_path):
    unix_path = tmp_path / "egress.sock"
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    upstream.bind(str(unix_path))
    upstream.listen(4)

    def answer_once():
        conn, _ = upstream.accept()
        with conn:
            asked = b""
            while not asked.endswith(b"\n"):
                asked += conn.recv(1024)
            conn.sendall(b"proxy saw " + asked)

    answering = threading.Thread(target=answer_once, daemon=True)
    answering.start()
    with forwarder_to(unix_path) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as client:
            client.sendall(b"CONNECT example.com:443\n")
            client.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := client.recv(1024):
                got += chunk
        assert got == b"proxy saw CONNECT example.com:443\n"
        answering.join(timeout=60)
        upstream.close()
        unix_path.unlink()
        # With nothing on the socket the client is closed at once, not left hanging.
        with socket.create_connection(("127.0.0.1", port), timeout=60) as client:
            assert client.recv(1024) == b""


def test_malformed_requests_are_answered_400_saying_why_and_audited(tmp_path):
    """What a command might send the proxy by mistake or on purpose: each gets a 400 naming the
    problem (in the body and the X-Pixie-Egress header), is audited as refused, and reaches no one."""
    proxy = egress.EgressProxy(parse_allow_hosts(["registry.invalid:443"]), tmp_path / "audit.jsonl")
    try:
        cases = [
            (b"HELLO\r\n\r\n", b"not an HTTP request line"),
            (b"GET https://registry.invalid/ HTTP/1.1\r\n\r\n", b"the proxy takes absolute http:// URLs (HTTPS goes through CONNECT)"),
            (b"GET /index.html HTTP/1.1\r\nHost: registry.invalid\r\n\r\n", b"the proxy takes absolute http:// URLs"),
            (b"CONNECT registry.invalid:https HTTP/1.1\r\n\r\n", b"CONNECT needs HOST:PORT"),
            # One byte over the limit, with no end of head in sight.
            (b"GET http://registry.invalid/ HTTP/1.1\r\nX-Filler: " + b"a" * egress.MAX_HEAD_BYTES, b"request head too long"),
        ]
        answers = [ask_proxy(proxy, request[: egress.MAX_HEAD_BYTES + 1]) for request, _ in cases]
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:  # a head cut short
            conn.settimeout(30)
            conn.connect(proxy.socket_path)
            conn.sendall(b"GET http://registry.invalid/ HTTP/1.1\r\nHost: reg")
            conn.shutdown(socket.SHUT_WR)
            cut_short = b""
            while chunk := conn.recv(65536):
                cut_short += chunk
    finally:
        proxy.stop()
    for answer, (_, reason) in zip([*answers, cut_short], [*cases, (b"", b"connection closed before a whole request head")]):
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 Bad Request"), answer[:200]
        assert b"X-Pixie-Egress: refused; " + reason in head and body.startswith(b"pixie egress: " + reason)
    assert [e["verdict"] for e in egress.read_audit(tmp_path / "audit.jsonl")] == ["refused"] * (len(cases) + 1)
