"""A stand-in for Amazon Bedrock's ConverseStream endpoint, served over real HTTP on 127.0.0.1.

Tests point a real boto3 `bedrock-runtime` client at it (endpoint_url, or
AWS_ENDPOINT_URL_BEDROCK_RUNTIME for a subprocess), so botocore signs, sends, retries and parses
exactly as against AWS. Replies are `application/vnd.amazon.eventstream` bodies framed per the
AWS event stream spec (prelude, headers, payload, CRC32s; botocore only has the decoder), or
errors the way Bedrock sends them (`x-amzn-ErrorType` header, JSON `message`). It answers queued
replies in order and records every request it receives."""

from __future__ import annotations

import binascii
import json
import struct
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH_PREFIX = "/model/"
PATH_SUFFIX = "/converse-stream"


# --- event stream framing -------------------------------------------------------------------------
def _header(name: str, value: str) -> bytes:
    encoded_name, encoded_value = name.encode(), value.encode()
    # name length (u8), name, value type 7 = string, value length (u16), value
    return struct.pack("!B", len(encoded_name)) + encoded_name + b"\x07" + struct.pack("!H", len(encoded_value)) + encoded_value


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event stream message: total length, headers length, prelude CRC, headers, payload,
    message CRC (CRC32 of everything before it)."""
    header_bytes = b"".join(_header(name, value) for name, value in headers.items())
    total = 12 + len(header_bytes) + len(payload) + 4
    prelude = struct.pack("!II", total, len(header_bytes))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + header_bytes + payload
    return message + struct.pack("!I", binascii.crc32(message) & 0xFFFFFFFF)


def event(event_type: str, payload: dict) -> bytes:
    return frame(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
        json.dumps(payload).encode(),
    )


def exception_event(exception_type: str, message: str) -> bytes:
    """An error in the middle of a stream (e.g. `throttlingException`), as Bedrock sends it."""
    return frame(
        {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"},
        json.dumps({"message": message}).encode(),
    )


# --- replies ----------------------------------------------------------------------------------------
@dataclass
class Stream:
    events: list[bytes]


@dataclass
class Error:
    status: int
    error_type: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


def converse_reply(
    text: str | None = None,
    tool_uses: list[tuple[str, str, str]] | None = None,
    *,
    usage: tuple[int, int] = (10, 5),
    text_chunks: int = 2,
    stop_reason: str | None = None,
    cache: tuple[int, int] | None = None,
) -> Stream:
    """The events of one assistant reply: a text block streamed in pieces, then one toolUse block
    per (id, name, input JSON) with its input in two pieces, then messageStop and metadata."""
    events = [event("messageStart", {"role": "assistant"})]
    position = 0
    if text:
        step = max(1, -(-len(text) // text_chunks))
        # As Bedrock does: a text block has no contentBlockStart, its first delta opens it.
        for start in range(0, len(text), step):
            events.append(
                event("contentBlockDelta", {"contentBlockIndex": position, "delta": {"text": text[start : start + step]}})
            )
        events.append(event("contentBlockStop", {"contentBlockIndex": position}))
        position += 1
    for tool_id, name, arguments in tool_uses or []:
        events.append(
            event(
                "contentBlockStart",
                {"contentBlockIndex": position, "start": {"toolUse": {"toolUseId": tool_id, "name": name}}},
            )
        )
        half = len(arguments) // 2
        for piece in (arguments[:half], arguments[half:]):
            if piece:
                events.append(
                    event("contentBlockDelta", {"contentBlockIndex": position, "delta": {"toolUse": {"input": piece}}})
                )
        events.append(event("contentBlockStop", {"contentBlockIndex": position}))
        position += 1
    events.append(event("messageStop", {"stopReason": stop_reason or ("tool_use" if tool_uses else "end_turn")}))
    events.append(
        event(
            "metadata",
            {
                "usage": {
                    "inputTokens": usage[0], "outputTokens": usage[1], "totalTokens": sum(usage) + sum(cache or ()),
                    # (read, written): Bedrock counts them apart from inputTokens
                    **({"cacheReadInputTokens": cache[0], "cacheWriteInputTokens": cache[1]} if cache else {}),
                },
                "metrics": {"latencyMs": 12},
            },
        )
    )
    return Stream(events)


@dataclass
class Recorded:
    model_id: str
    headers: dict[str, str]  # names lower-cased
    body: dict[str, Any]


class ConverseStub:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._queue: list[Stream | Error] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def reply(self, *replies: Stream | Error) -> None:
        with self._lock:
            self._queue.extend(replies)

    def start(self) -> ConverseStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next(self) -> Stream | Error:
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
        return Error(500, "InternalServerException", "bedrock_stub: no reply left")


def _handler_for(stub: ConverseStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0 (the default): one request per connection, the body ends when the socket closes.
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            path = urllib.parse.unquote(self.path)
            if not (path.startswith(PATH_PREFIX) and path.endswith(PATH_SUFFIX)):
                self._send_error(Error(404, "UnknownOperationException", f"bedrock_stub: no route {path}"))
                return
            with stub._lock:
                stub.requests.append(
                    Recorded(
                        path[len(PATH_PREFIX) : -len(PATH_SUFFIX)],
                        {name.lower(): value for name, value in self.headers.items()},
                        json.loads(raw or b"{}"),
                    )
                )
            reply = stub._next()
            if isinstance(reply, Error):
                self._send_error(reply)
                return
            body = b"".join(reply.events)
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.amazon.eventstream")
            self.send_header("x-amzn-RequestId", "stub-request")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _send_error(self, error: Error) -> None:
            payload = json.dumps({"message": error.message}).encode()
            self.send_response(error.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("x-amzn-ErrorType", f"{error.error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/")
            self.send_header("x-amzn-RequestId", "stub-error-request")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in error.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
            pass

    return Handler
