"""The console can start runs, so every request must come from the person who started it:
- a random token per start, required on every request: `?token=` on any URL (the printed URL,
  a deep link) sets it as an HttpOnly SameSite=Strict cookie and redirects to the clean URL;
  scripts may send `Authorization: Bearer TOKEN` instead;
- the Host header must name the console itself (DNS rebinding), and an Origin header, when there
  is one, must be the console's own origin (cross-site requests, sandboxed frames' `null`);
- no CORS headers at all, and a Content-Security-Policy that runs only the console's own scripts.
A plain ASGI middleware, so it guards static files and server-sent events alike."""

from __future__ import annotations

import hmac
import secrets
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import parse_qsl, urlencode

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    # The preview is another origin (its own port, or E2B's https host), framed and sandboxed.
    "frame-src http://127.0.0.1:* http://localhost:* https:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)


def cookie_values(header: str, name: str) -> list[str]:
    """Every value of cookie `name` in a Cookie header. Split by hand: other apps on 127.0.0.1
    share the host's cookies, and one the standard library's parser rejects (say
    `prefs={"theme":"dark"}`) made it drop every cookie, the console's too."""
    values = []
    for pair in header.split(";"):
        key, equals, value = pair.strip().partition("=")
        if equals and key.strip() == name:
            values.append(value.strip().strip('"'))
    return values


def new_token() -> str:
    return secrets.token_urlsafe(24)


LOOPBACK_NAMES = {"127.0.0.1", "localhost", "[::1]"}


def allowed_hosts(host: str, port: int) -> set[str]:
    """The Host headers that name this console: host:port, and every loopback name on a
    loopback bind."""
    name = f"[{host}]" if ":" in host and not host.startswith("[") else host.lower()
    names = {name} | (LOOPBACK_NAMES if name in LOOPBACK_NAMES else set())
    return {f"{n}:{port}" for n in names}


class ConsoleGuard:
    def __init__(self, app: ASGIApp, token: str, hosts: Iterable[str], cookie_name: str) -> None:
        self.app = app
        self.token = token
        self.hosts = {h.lower() for h in hosts}
        self.origins = {f"http://{h}" for h in self.hosts}
        self.cookie_name = cookie_name

    def _matches(self, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(candidate.encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] == "websocket":  # the console has none
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if headers.get("host", "").lower() not in self.hosts:
            await _plain(send, 403, "pixie console: this Host is not the console's (DNS rebinding guard)")
            return
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in self.origins:
            await _plain(send, 403, "pixie console: cross-origin requests are refused")
            return
        if headers.get("sec-fetch-site") == "cross-site":
            await _plain(send, 403, "pixie console: cross-site requests are refused")
            return

        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        from_query = next((value for key, value in query if key == "token"), None)
        from_cookies = cookie_values(headers.get("cookie", ""), self.cookie_name)
        bearer = headers.get("authorization", "")
        from_header = bearer[7:] if bearer.lower().startswith("bearer ") else None

        if self._matches(from_query):
            set_cookie = (
                f"{self.cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict"
            ).encode("latin-1")
            if scope["method"] == "GET" and not scope["path"].startswith("/api/"):
                rest = urlencode([(k, v) for k, v in query if k != "token"])
                location = scope["path"] + (f"?{rest}" if rest else "")
                await _respond(send, 303, b"", [(b"location", location.encode("latin-1")), (b"set-cookie", set_cookie)])
                return
            await self.app(scope, receive, _adding_headers(send, [(b"set-cookie", set_cookie)]))
            return
        if not (any(self._matches(value) for value in from_cookies) or self._matches(from_header)):
            await _plain(send, 401, "pixie console: open the URL that `pixie ui` printed (it carries the access token)")
            return
        await self.app(scope, receive, _adding_headers(send, []))


_SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


def _adding_headers(send: Callable, extra: list[tuple[bytes, bytes]]) -> Callable:
    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            added = [h for h in _SECURITY_HEADERS if h[0] not in present] + extra
            message = {**message, "headers": [*message.get("headers", []), *added]}
        await send(message)

    return wrapped


async def _respond(send: Callable, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await _adding_headers(send, headers)(
        {"type": "http.response.start", "status": status, "headers": [(b"content-length", str(len(body)).encode())]}
    )
    await send({"type": "http.response.body", "body": body})


async def _plain(send: Callable, status: int, text: str) -> None:
    await _respond(send, status, (text + "\n").encode(), [(b"content-type", b"text/plain; charset=utf-8")])
