"""`pixie ui` as a user starts it, for the console's tests: a real process on a free loopback
port with its own PIXIE_HOME, its URL (and token) read from the first line of its stdout."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

PIXIE = Path(sys.executable).parent / "pixie"
ROOT = Path(__file__).resolve().parents[1]


# The longest the console may take to stop its runs through their cleanup and exit: a loaded
# machine (CI beside a bench) once needed more than 30 s; the wait ends as soon as it exits.
STOP_CEILING_S = 120


class ConsoleProcess:
    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.args = args
        self.env = env or {}
        self.log = home / "console.log"

    def __enter__(self) -> "ConsoleProcess":
        environment = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
        environment.update({"PIXIE_HOME": str(self.home), **self.env})
        self.home.mkdir(parents=True, exist_ok=True)
        self._log = self.log.open("w")
        self.proc = subprocess.Popen(
            [str(PIXIE), "ui", "--no-open", "--port", "0", *self.args],
            stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL, env=environment, text=True, cwd=ROOT,
        )
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=60):
            self.__exit__()
            raise RuntimeError(f"pixie ui printed no URL within 60 s: {self.log.read_text()}")
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.__exit__()
            raise RuntimeError(f"pixie ui did not start: {self.url!r} {self.log.read_text()}")
        parts = urlsplit(self.url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.netloc
        self.token = parts.query.removeprefix("token=")
        # A fresh connection per request: reusing one the server is closing as it sits idle
        # (uvicorn's 5 s keep-alive) gets "Server disconnected without sending a response", which
        # httpx does not retry; a loaded machine makes that race likely (a POST once lost so).
        self.client = httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {self.token}"}, timeout=30,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # as Ctrl-C: runs still going are stopped and saved
            try:
                self.proc.wait(timeout=STOP_CEILING_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "client"):
            self.client.close()
        self._log.close()

    def start_run(self, prompt: str, **fields: Any) -> str:
        response = self.client.post("/api/runs", json={"prompt": prompt, **fields})
        assert response.status_code == 201, response.text
        return response.json()["runId"]

    def wait_for(self, run_id: str, timeout_s: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            response = self.client.get(f"/api/runs/{run_id}")
            if response.status_code == 200 and response.json()["status"] != "RUNNING":
                return response.json()
            time.sleep(0.2)
        raise AssertionError(f"run {run_id} did not end within {timeout_s} s")
