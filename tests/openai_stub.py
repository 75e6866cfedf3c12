"""A stand-in for the OpenAI Chat Completions endpoint, served over real HTTP on 127.0.0.1.

The openai SDK 3.x talks through httpx2, which respx cannot intercept, so tests point the
client's base_url at this server instead. It answers queued canned responses in order (then a
fallback, if set) and records every request it receives.

A request with `"stream": true` gets a 200 chat completion as Server-Sent Events, the way OpenAI
streams it: the text in pieces, each tool call's id and name first and its arguments in pieces,
then (with stream_options.include_usage) a last chunk with the usage and no choices, then
`data: [DONE]`. A canned list of dicts is sent as those SSE chunks verbatim."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Canned:
    status: int
    body: dict | str | list
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # sleep before answering, to provoke client timeouts
    chunk_delay_s: float = 0.0  # sleep between streamed chunks
    hang: bool = False  # never answer (until the stub stops)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased (HTTP header names are case-insensitive)
    body: dict


class OpenAIStub:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._queue: list[Canned] = []
        self._fallback: Canned | None = None
        self._lock = threading.Lock()  # handler threads and the test thread share the queue
        self._stopping = threading.Event()  # wakes handlers that hang
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True  # quick stop()
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def reply(
        self,
        status: int,
        body: dict | str | list,
        headers: dict[str, str] | None = None,
        delay_s: float = 0.0,
        chunk_delay_s: float = 0.0,
    ) -> None:
        """Queue one response."""
        with self._lock:
            self._queue.append(Canned(status, body, headers or {}, delay_s, chunk_delay_s))

    def hang(self) -> None:
        """Every request from now on is read and never answered (a server that stalls)."""
        with self._lock:
            self._fallback = Canned(200, {}, hang=True)

    def always(self, status: int, body: dict | str, headers: dict[str, str] | None = None) -> None:
        """The response for every request once the queue is empty."""
        with self._lock:
            self._fallback = Canned(status, body, headers or {})

    def start(self) -> OpenAIStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next(self) -> Canned:
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
            if self._fallback:
                return self._fallback
        return Canned(500, {"error": {"message": "openai_stub: no canned response left"}})


def _handler_for(stub: OpenAIStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0 (the default): one request per connection, so stop() never waits on keep-alives.
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {name.lower(): value for name, value in self.headers.items()}
            with stub._lock:
                stub.requests.append(Recorded("POST", self.path, headers, json.loads(raw or b"{}")))
            if self.path != "/v1/chat/completions":
                self._send(Canned(404, {"error": {"message": f"openai_stub: no route {self.path}"}}))
                return
            body = stub.requests[-1].body
            canned = stub._next()
            if canned.hang:
                stub._stopping.wait()
                return
            if canned.status == 200 and body.get("stream") and isinstance(canned.body, (dict, list)):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                self._send_stream(canned, include_usage)
                return
            self._send(canned)

        def _send_stream(self, canned: Canned, include_usage: bool) -> None:
            if canned.delay_s:
                time.sleep(canned.delay_s)
            chunks = canned.body if isinstance(canned.body, list) else stream_chunks(canned.body, include_usage)
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                for name, value in canned.headers.items():
                    self.send_header(name, value)
                self.end_headers()  # HTTP/1.0: the body ends when the connection closes
                for chunk in chunks:
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    if canned.chunk_delay_s:
                        time.sleep(canned.chunk_delay_s)
                self.wfile.write(b"data: [DONE]\n\n")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _send(self, canned: Canned) -> None:
            if canned.delay_s:
                time.sleep(canned.delay_s)
            data = canned.body if isinstance(canned.body, str) else json.dumps(canned.body)
            payload = data.encode()
            try:
                self.send_response(canned.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in canned.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests); nothing to answer

        def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
            pass

    return Handler


def chat_completion(
    content: str | None = None,
    tool_calls: list[tuple[str, str, str]] | None = None,
    *,
    model: str = "gpt-4.1",
    usage: tuple[int, int] | None = (10, 5),
    cached_tokens: int | None = None,
) -> dict:
    """A Chat Completions response body. tool_calls are (id, name, raw arguments) triples;
    cached_tokens, when given, is reported in usage.prompt_tokens_details as OpenAI does."""
    message: dict = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in tool_calls
        ]
    body: dict = {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_calls else "stop",
                "logprobs": None,
            }
        ],
    }
    if usage is not None:
        body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
        if cached_tokens is not None:
            body["usage"]["prompt_tokens_details"] = {"cached_tokens": cached_tokens, "audio_tokens": 0}
    return body


def error_body(message: str, type_: str = "invalid_request_error", code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _split(text: str, pieces: int = 3) -> list[str]:
    size = max(1, -(-len(text) // pieces))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def stream_chunks(completion: dict, include_usage: bool = True) -> list[dict]:
    """A chat completion body (as chat_completion() makes it) as the chunks OpenAI streams."""
    base = {"id": completion.get("id", "chatcmpl-stub"), "object": "chat.completion.chunk",
            "created": completion.get("created", 0), "model": completion.get("model", "gpt-4.1")}

    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

    chunks: list[dict] = []
    if not completion.get("choices"):
        chunks.append({**base, "choices": []})
    for choice in completion.get("choices") or []:
        message = choice["message"]
        chunks.append(chunk({"role": "assistant", "content": ""}))
        if message.get("content"):
            chunks.extend(chunk({"content": piece}) for piece in _split(message["content"]))
        if message.get("refusal"):
            chunks.append(chunk({"refusal": message["refusal"]}))
        for index, call in enumerate(message.get("tool_calls") or []):
            first = {"index": index, "type": "function", "function": {"name": call["function"]["name"], "arguments": ""}}
            if "id" in call:  # some servers send calls without an id
                first["id"] = call["id"]
            chunks.append(chunk({"tool_calls": [first]}))
            for piece in _split(call["function"]["arguments"]):
                chunks.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
        chunks.append(chunk({}, choice.get("finish_reason") or "stop"))
    if include_usage and completion.get("usage"):
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks
