"""`pixie ui`: binds the console's socket, prints its URL with this start's token, opens the
browser, and serves until Ctrl-C; the runs backend is closed on the way out (local runs still
going are stopped through their cleanup path and saved)."""

from __future__ import annotations

import signal
import socket
import sys
import threading
import webbrowser
from typing import Any, TextIO

import uvicorn

from pixie.console.app import create_app
from pixie.console.backends import Runs
from pixie.console.security import LOOPBACK_NAMES, allowed_hosts, new_token


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
    return sock


MAX_HEADER_BYTES = 1024 * 1024


class _Server(uvicorn.Server):
    """SIGTERM (`kill`) and SIGHUP (the terminal closed) stop the console as Ctrl-C does: its runs
    end through their cleanup and are saved. uvicorn re-raises the signal it shut down for once it
    has; a re-raised SIGTERM would kill the process before the runs are saved, so each counts as
    the SIGINT that Python turns into KeyboardInterrupt."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(signal.SIGINT, frame)


def serve(runs: Runs, host: str = "127.0.0.1", port: int = 8765, open_browser: bool = True, out: TextIO = sys.stdout) -> None:
    try:
        sock = bind(host, port)
    except OSError as exc:
        sys.stderr.write(f"pixie: cannot listen on {host}:{port} ({exc.strerror}); pass --port N (0 picks a free port)\n")
        raise SystemExit(2) from None  # a usage error, as the CLI's are
    port = sock.getsockname()[1]
    token = new_token()
    shown_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    url = f"http://{shown_host}:{port}/?token={token}"
    app = create_app(runs, token, allowed_hosts(host, port), cookie_name=f"pixie_console_{port}")
    # The first line of stdout is the URL alone, for scripts; the rest goes to stderr.
    out.write(url + "\n")
    out.flush()
    if shown_host.lower() not in LOOPBACK_NAMES:
        sys.stderr.write(f"pixie: listening on {host}, beyond this machine: anyone with the URL can start runs\n")
    sys.stderr.write("pixie console: open the URL above; Ctrl-C stops it\n")
    sys.stderr.flush()
    config = uvicorn.Config(
        app, log_level="warning", timeout_graceful_shutdown=2, lifespan="off", access_log=False,
        # Headers up to 1 MB: the browser sends the console every cookie of its host, whatever
        # the port, and a page served from 127.0.0.1 (a preview in its own tab) can set some
        # 700 KB of them; past h11's 16 KB default every request got 400, locking the user out.
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )
    server = _Server(config)
    runs.open()  # a local engine warms up in the background; start requests wait for it
    if hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, server.handle_exit)
    try:
        if open_browser:
            webbrowser.open(url)
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn shut down gracefully, then re-raised the Ctrl-C it caught
    finally:
        sys.stderr.write("pixie console: stopping (runs still going are stopped and saved)\n")
        runs.close()
        sock.close()
