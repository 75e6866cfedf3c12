"""Egress allow-list for the local sandbox: a proxy outside the command's network namespace,
reached through a unix socket bound into the sandbox, that lets a command reach only the hosts
and ports it was given (`--allow-host`, PIXIE_ALLOW_HOSTS) and writes down every request.

The command itself still has no route out (its namespace has only an empty loopback). Inside, a
small forwarder (egress_forwarder.py, run with the system python3) listens on 127.0.0.1:PROXY_PORT
of the sandbox's own loopback and passes each connection to the socket; HTTP_PROXY, HTTPS_PROXY,
npm's and pip's proxy settings point at it. So a client that honours them (curl, pip, npm, git
over https) goes through the proxy; a direct socket reaches nothing.

The proxy decides after DNS, on the address it then connects to (no second lookup a rebinding
DNS server could answer differently):
- the host must match an entry: exactly, or `*.suffix` for any name under suffix; and the port,
  when the entry gives one;
- every address used must be public: loopback, link-local (cloud metadata at 169.254.169.254),
  private, multicast and other non-global addresses are refused unless an entry names that very
  address (with a matching port);
- HTTPS is a CONNECT tunnel to the allowed host:port (the proxy sees no more than the host name);
  plain HTTP must be an absolute http:// URI, sent on with `Connection: close`, so each request
  is one connection and one decision. A redirect is only a response: the client asks the proxy
  again for the new place, which is decided the same way.
Anything refused gets `403` with the reason in an `X-Pixie-Egress` header. Every request, allowed
or refused, is one JSON line in the sandbox's audit file (time, host, port, method, bytes,
verdict, reason), which the run's record and `pixie show` carry as `egress`.

What it cannot do: see inside HTTPS, or stop a command from sending data to a host that is on
the list (an allowed registry accepts uploads too)."""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import os
import selectors
import shutil
import socket
import socketserver
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable

# Named sets of registry hosts (HTTPS only).
PRESETS: dict[str, tuple[str, ...]] = {
    "@npm": ("registry.npmjs.org:443", "registry.yarnpkg.com:443"),
    "@pypi": ("pypi.org:443", "files.pythonhosted.org:443"),
    "@github": ("github.com:443", "*.github.com:443", "*.githubusercontent.com:443"),
}
PROXY_PORT = 3128  # on the sandbox's own loopback: each command has a network namespace of its own
SOCKET_IN_SANDBOX = "/run/pixie/egress.sock"
FORWARDER_IN_SANDBOX = "/run/pixie/egress_forwarder.py"
FORWARDER_SOURCE = Path(__file__).with_name("egress_forwarder.py")
SANDBOX_PYTHON = "/usr/bin/python3"  # the forwarder's interpreter: the system one, visible inside
MAX_ENTRY_CHARS = 300  # one allow-list entry
MAX_ENTRIES = 200
MAX_HEAD_BYTES = 64 * 1024  # a request line and its headers
HEAD_TIMEOUT_S = 30
CONNECT_TIMEOUT_S = 15
IDLE_TIMEOUT_S = 300  # a tunnel with no bytes either way for this long is closed
RELAY_CHUNK = 65536
MAX_AUDIT_LINES = 10_000  # per sandbox and verdict: refused noise never crowds out an allowed request
MAX_AUDIT_HOST_CHARS = 255
MAX_RUN_ENTRIES = 500  # kept in a run's record: allowed ones first, then the last refused ones
REASON_HEADER = "X-Pixie-Egress"
ALLOWED, REFUSED = "allowed", "refused"


def proxy_environment(port: int = PROXY_PORT) -> dict[str, str]:
    """The variables that send a command's HTTP(S) clients through the forwarder inside."""
    url = f"http://127.0.0.1:{port}"
    local = "localhost,127.0.0.1,::1"  # the command's own servers (dev server, tests) stay direct
    return {
        "HTTP_PROXY": url, "HTTPS_PROXY": url, "http_proxy": url, "https_proxy": url,
        "NO_PROXY": local, "no_proxy": local,
        "npm_config_proxy": url, "npm_config_https_proxy": url, "PIP_PROXY": url,
    }


# --- the allow-list -------------------------------------------------------------------------------
@dataclass(frozen=True)
class HostRule:
    host: str  # lower case, no trailing dot; "*.example.com", a name, or an address
    port: int | None  # None: any port

    @property
    def address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The address this entry names literally, if it is one."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    def matches_host(self, host: str) -> bool:
        if self.host.startswith("*."):
            return host.endswith(self.host[1:]) and len(host) > len(self.host) - 1
        return host == self.host

    def matches(self, host: str, port: int) -> bool:
        return self.matches_host(host) and (self.port is None or self.port == port)

    def __str__(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return shown if self.port is None else f"{shown}:{self.port}"


def _normal_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(host))  # one spelling per address
    return host


def _parse_entry(text: str) -> HostRule:
    entry = text.strip()
    if len(entry) > MAX_ENTRY_CHARS:
        raise ValueError(f"allow-host entry is over {MAX_ENTRY_CHARS} characters")
    host, port = entry, None
    if entry.startswith("["):  # [v6] or [v6]:port
        inner, _, rest = entry[1:].partition("]")
        host = inner
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"allow-host {entry!r}: expected [ADDRESS]:PORT")
            port = rest[1:]
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    host = _normal_host(host)
    if port is not None:
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"allow-host {entry!r}: the port must be a number from 1 to 65535")
        port = int(port)
    is_address = False
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        is_address = True
    name = host[2:] if host.startswith("*.") else host
    labels = name.split(".")
    if not is_address and (not name or "*" in name or any(not label or len(label) > 63 for label in labels)
                           or any(not all(c.isalnum() or c in "-_" for c in label) for label in labels)):
        raise ValueError(f"allow-host {entry!r} is not a host name, *.suffix or address")
    return HostRule(host, port)


def parse_allow_hosts(values: Iterable[str]) -> tuple[HostRule, ...]:
    """The rules a list of `HOST[:PORT][,…]` strings and @presets gives; ValueError naming the
    entry that is not one."""
    rules: list[HostRule] = []
    for value in values:
        for entry in str(value).split(","):
            entry = entry.strip()
            if not entry:
                continue
            if entry.startswith("@"):
                if entry.lower() not in PRESETS:
                    raise ValueError(f"unknown allow-host preset {entry!r}: use {', '.join(PRESETS)}")
                rules += [_parse_entry(e) for e in PRESETS[entry.lower()]]
            else:
                rules.append(_parse_entry(entry))
    if len(rules) > MAX_ENTRIES:
        raise ValueError(f"at most {MAX_ENTRIES} allow-host entries")
    return tuple(dict.fromkeys(rules))


def address_kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why this address is not a public one (None when it is): what the proxy refuses unless an
    entry names it."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "not a public address"
    return None


Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    addresses: tuple[str, ...] = ()  # to connect to, in order (allowed only)


class AllowList:
    def __init__(self, rules: Iterable[HostRule]) -> None:
        self.rules = tuple(rules)

    def decide(self, host: str, port: int, resolver: Resolver = resolve) -> Decision:
        host = _normal_host(host)
        rule = next((r for r in self.rules if r.matches(host, port)), None)
        if rule is None:
            listed = any(r.matches_host(host) for r in self.rules)
            return Decision(False, f"port {port} of {host} is not on the allow-list" if listed else f"{host} is not on the allow-list")
        try:
            addresses = resolver(host, port)
        except (OSError, UnicodeError) as exc:
            return Decision(False, f"{host} does not resolve: {exc}")
        usable, refused = [], []
        for text in addresses:
            address = ipaddress.ip_address(text.split("%")[0])
            kind = address_kind(address)
            if kind is None or self._names_address(address, port):
                usable.append(text)
            else:
                refused.append(f"{address} ({kind})")
        if not usable:
            return Decision(False, f"{host} resolves to {', '.join(refused) or 'nothing'}: only addresses an entry names are allowed there")
        return Decision(True, f"matches {rule}", tuple(usable))

    def _names_address(self, address, port: int) -> bool:
        return any(r.address == address and (r.port is None or r.port == port) for r in self.rules)


def own_address() -> str | None:
    """This machine's own non-loopback IPv4 address, if it has one (no packet is sent): where a
    stand-in registry listens for `pixie doctor`, the bench and the tests."""
    candidates = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # a UDP "connect" only picks the route's source address
            candidates.append(probe.getsockname()[0])
        except OSError:
            pass
    with contextlib.suppress(OSError):
        candidates += [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)]
    for candidate in candidates:
        try:
            address = ipaddress.ip_address(candidate)
        except ValueError:
            continue
        if not address.is_loopback and not address.is_link_local and not address.is_unspecified:
            return candidate
    return None


# --- the audit -------------------------------------------------------------------------------------
class Audit:
    """Appends JSON lines to a file outside the sandbox: at most MAX_AUDIT_LINES requests of each
    verdict (so refused noise cannot crowd out an allowed request). An allowed request is written
    when it is decided and again, with its bytes, when its relay ends (same `id`; read_audit keeps
    the last), so one whose answer never ends is still in the record."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock = threading.Lock()
        self.requests: dict[str, int] | None = None  # per verdict, counted on first write

    def write(self, entry: dict[str, Any], update: bool = False) -> bool:
        """`update`: the second line of a request already written (not counted again). False when
        the entry was over the bound and not written."""
        with self.lock:
            if self.requests is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.requests = {ALLOWED: 0, REFUSED: 0}
                for old in read_audit(self.path):
                    verdict = old.get("verdict")
                    self.requests[verdict if verdict in self.requests else REFUSED] += 1
            verdict = entry.get("verdict") if entry.get("verdict") in self.requests else REFUSED
            if not update:
                if self.requests[verdict] >= MAX_AUDIT_LINES:
                    return False
                self.requests[verdict] += 1
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(entry) + "\n")
            return True


def audit_path(pixie_home: Path, sandbox_id: str) -> Path:
    return Path(pixie_home) / "egress" / f"{sandbox_id}.jsonl"


def read_audit(path: Path, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
    """The audit entries written between `since` and `until` (epoch seconds; None: open)."""
    entries = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    where: dict[str, int] = {}  # request id -> its place in entries: a later line of a request replaces its first
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        at = entry.get("epoch") if isinstance(entry, dict) else None
        if not isinstance(at, (int, float)):
            continue
        request = entry.get("id")
        if isinstance(request, str) and request in where:
            if where[request] >= 0:  # the request's time stays that of its first line
                first = entries[where[request]]
                entries[where[request]] = {**entry, "epoch": first["epoch"], "time": first.get("time")}
            continue
        included = (since is None or at >= since) and (until is None or at <= until)
        if isinstance(request, str):
            where[request] = len(entries) if included else -1
        if included:
            entries.append(entry)
    return entries


def run_entries(pixie_home: Path, sandbox_id: str | None, since: Any = None) -> list[dict[str, Any]]:
    """What a run's record keeps as `egress`: the sandbox's requests from `since` (the run's
    start: an epoch, an ISO time or a datetime; a continued run shares the sandbox), at most
    MAX_RUN_ENTRIES of them: the allowed ones first (the last of them), then the last refused
    ones, in the order they were made. run_totals counts them all."""
    entries = _run_requests(pixie_home, sandbox_id, since)
    allowed = [i for i, e in enumerate(entries) if e.get("verdict") == ALLOWED][-MAX_RUN_ENTRIES:]
    refused = [i for i, e in enumerate(entries) if e.get("verdict") != ALLOWED]
    kept = set(allowed) | set(refused[len(refused) - (MAX_RUN_ENTRIES - len(allowed)):] if len(allowed) < MAX_RUN_ENTRIES else ())
    return [e for i, e in enumerate(entries) if i in kept]


def run_totals(pixie_home: Path, sandbox_id: str | None, since: Any = None) -> dict[str, int]:
    """How many requests a run made, by verdict: all of them, not only those its record keeps."""
    verdicts = [e.get("verdict") for e in _run_requests(pixie_home, sandbox_id, since)]
    allowed = verdicts.count(ALLOWED)
    return {"requests": len(verdicts), ALLOWED: allowed, REFUSED: len(verdicts) - allowed}


def _run_requests(pixie_home: Path, sandbox_id: str | None, since: Any = None) -> list[dict[str, Any]]:
    if not sandbox_id:
        return []
    if isinstance(since, str):
        with contextlib.suppress(ValueError):
            since = datetime.fromisoformat(since)
    if isinstance(since, datetime):
        since = since.timestamp()
    if not isinstance(since, (int, float)):
        since = None
    return read_audit(audit_path(pixie_home, sandbox_id), since=since)


def _entry(host: str, port: int | None, method: str, verdict: str, reason: str, sent: int = 0, received: int = 0) -> dict[str, Any]:
    now = time.time()
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z",
        "epoch": round(now, 3),
        "host": host[:MAX_AUDIT_HOST_CHARS],
        "port": port,
        "method": method[:20],
        "bytes": sent + received,
        "bytesSent": sent,
        "bytesReceived": received,
        "verdict": verdict,
        "reason": reason[:500],
    }


# --- the proxy -------------------------------------------------------------------------------------
class _Refused(Exception):
    def __init__(self, status: int, reason: str, host: str = "", port: int | None = None, method: str = "") -> None:
        super().__init__(reason)
        self.status, self.reason, self.host, self.port, self.method = status, reason, host, port, method


_STATUS_TEXT = {400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 502: "Bad Gateway"}


def _read_head(conn: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    deadline = time.monotonic() + HEAD_TIMEOUT_S  # for the whole head: a byte at a time does not extend it
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD_BYTES:
            raise _Refused(400, "request head too long")
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Refused(408, f"request head not complete within {HEAD_TIMEOUT_S} s")
        conn.settimeout(left)
        try:
            chunk = conn.recv(RELAY_CHUNK)
        except socket.timeout:
            raise _Refused(408, f"request head not complete within {HEAD_TIMEOUT_S} s") from None
        if not chunk:
            raise _Refused(400, "connection closed before a whole request head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _split_authority(authority: str) -> tuple[str, int | None]:
    try:
        parsed = urllib.parse.urlsplit("//" + authority)
        return parsed.hostname or "", parsed.port
    except ValueError:  # an unclosed "[", a port that is no number
        return "", None


class _ProxyHandler(socketserver.BaseRequestHandler):
    server: "_ProxyServer"

    def handle(self) -> None:
        conn: socket.socket = self.request
        try:
            self._serve(conn)
        except _Refused as refused:
            self.server.audit.write(_entry(refused.host, refused.port, refused.method, REFUSED, refused.reason))
            body = f"pixie egress: {refused.reason}\n".encode("utf-8", "replace")
            header = refused.reason.encode("ascii", "replace").replace(b"\r", b" ").replace(b"\n", b" ")
            with contextlib.suppress(OSError):
                conn.sendall(
                    b"HTTP/1.1 %d %s\r\n%s: refused; %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                    % (refused.status, _STATUS_TEXT[refused.status].encode(), REASON_HEADER.encode(), header, len(body)) + body
                )
        except OSError:
            pass

    def _serve(self, conn: socket.socket) -> None:
        head, rest = _read_head(conn)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise _Refused(400, "not an HTTP request line")
        method, target, version = parts
        if method.upper() == "CONNECT":
            host, port = _split_authority(target)
            if not host or port is None:
                raise _Refused(400, "CONNECT needs HOST:PORT", host or target, port, method)
        else:
            try:
                url = urllib.parse.urlsplit(target)
            except ValueError:  # an unclosed "[": answered and audited like any other refusal
                raise _Refused(400, "not a URL the proxy can read", target, None, method) from None
            host, port = url.hostname or "", None
            with contextlib.suppress(ValueError):
                port = url.port or 80
            if url.scheme.lower() != "http" or not host or port is None:
                raise _Refused(400, "the proxy takes absolute http:// URLs (HTTPS goes through CONNECT)", host, port, method)
        decision = self.server.allow_list.decide(host, port)
        if not decision.allowed:
            raise _Refused(403, decision.reason, host, port, method)
        upstream = self._connect(decision.addresses, port, host, method)
        request = uuid.uuid4().hex
        # Written now, before any answer: a request whose answer never ends is still in the record.
        listed = self.server.audit.write({**_entry(host, port, method, ALLOWED, decision.reason), "id": request})
        with upstream:
            if method.upper() == "CONNECT":
                conn.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                first = rest
            else:
                first = _origin_request(method, url, version, lines[1:]) + rest
            sent, received = _relay(conn, upstream, first)
        if listed:
            self.server.audit.write({**_entry(host, port, method, ALLOWED, decision.reason, sent, received), "id": request}, update=True)

    def _connect(self, addresses: tuple[str, ...], port: int, host: str, method: str) -> socket.socket:
        errors = []
        for address in addresses:  # the checked addresses only: no second lookup
            try:
                return socket.create_connection((address, port), timeout=CONNECT_TIMEOUT_S)
            except OSError as exc:
                errors.append(f"{address}: {exc.strerror or exc}")
        raise _Refused(502, f"allowed, but could not connect ({'; '.join(errors)})", host, port, method)


_HOP_HEADERS = {"proxy-connection", "proxy-authorization", "connection", "keep-alive", "host"}


def _origin_request(method: str, url: urllib.parse.SplitResult, version: str, headers: list[str]) -> bytes:
    """The request as the origin server takes it: its path, Host from the URL, one request per
    connection (so every request the client makes is a new decision)."""
    path = urllib.parse.urlunsplit(("", "", url.path or "/", url.query, ""))
    kept = [h for h in headers if h.split(":", 1)[0].strip().lower() not in _HOP_HEADERS]
    lines = [f"{method} {path} {version}", f"Host: {url.netloc.rpartition('@')[2]}", *kept, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _relay(client: socket.socket, upstream: socket.socket, first: bytes) -> tuple[int, int]:
    """Copies bytes both ways until both sides are done (or idle for IDLE_TIMEOUT_S): (bytes the
    client sent, bytes it received)."""
    counts = {client: 0, upstream: 0}
    if first:
        upstream.sendall(first)
        counts[client] += len(first)
    open_ends = {client: upstream, upstream: client}
    for end in open_ends:
        end.setblocking(True)
        end.settimeout(None)
    with selectors.DefaultSelector() as selector:
        for end in open_ends:
            selector.register(end, selectors.EVENT_READ)
        while selector.get_map():
            ready = selector.select(IDLE_TIMEOUT_S)
            if not ready:
                break
            for key, _ in ready:
                source = key.fileobj
                try:
                    data = source.recv(RELAY_CHUNK)
                except OSError:
                    data = b""
                target = open_ends[source]
                if not data:
                    selector.unregister(source)
                    if source is upstream:  # the answer is complete: nothing more to carry. The client
                        # sees its end once the request is in the audit (the handler closes it then).
                        return counts[client], counts[upstream]
                    with contextlib.suppress(OSError):
                        target.shutdown(socket.SHUT_WR)
                    continue
                counts[source] += len(data)
                try:
                    target.sendall(data)
                except OSError:
                    return counts[client], counts[upstream]
    return counts[client], counts[upstream]


class _ProxyServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Each connection is a thread of pixie's own process, outside the command's process limits:
    at most Limits().processes at once; past that the accept loop waits for one to end (a
    further connection waits in the socket's backlog, its connect blocks)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, path: str, allow_list: AllowList, audit: Audit) -> None:
        from lambdas.logic.sandboxes.isolation import Limits  # isolation imports this module

        self.allow_list = allow_list
        self.audit = audit
        self.slots = threading.BoundedSemaphore(Limits().processes)
        self.closing = threading.Event()
        super().__init__(path, _ProxyHandler)

    def verify_request(self, request, client_address) -> bool:
        while not self.slots.acquire(timeout=1):  # a bounded wait only so that stop() is heard
            if self.closing.is_set():
                return False
        return True

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address) -> None:
        pass  # a client that hung up is no traceback on the user's terminal


class EgressProxy:
    """One proxy: a unix socket in a private folder of its own, served by threads of this process."""

    def __init__(self, rules: Iterable[HostRule], audit: Path) -> None:
        self.rules = tuple(rules)
        self.folder = tempfile.mkdtemp(prefix="pixie-egress-")  # 0700, short enough for a socket path
        self.socket_path = os.path.join(self.folder, "proxy.sock")
        self.server = _ProxyServer(self.socket_path, AllowList(self.rules), Audit(audit))
        self.thread = threading.Thread(target=self.server.serve_forever, name="pixie-egress", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.closing.set()
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.folder, ignore_errors=True)


_proxies: dict[tuple[str, tuple[HostRule, ...]], EgressProxy] = {}
_proxies_lock = threading.Lock()


def proxy_for(sandbox_id: str, rules: tuple[HostRule, ...], audit: Path) -> EgressProxy:
    """The proxy of this sandbox with these rules (started on first use, kept for the process)."""
    with _proxies_lock:
        proxy = _proxies.get((sandbox_id, rules))
        if proxy is None:
            proxy = _proxies[(sandbox_id, rules)] = EgressProxy(rules, audit)
        return proxy


def stop_proxies(sandbox_id: str | None = None) -> None:
    with _proxies_lock:
        keys = [k for k in _proxies if sandbox_id is None or k[0] == sandbox_id]
        stopped = [_proxies.pop(k) for k in keys]
    for proxy in stopped:
        proxy.stop()


atexit.register(stop_proxies)
