"""The warm console against `pixie run`: the same scripted run, once as a user runs it from the
shell (a new process that imports everything and starts the embedded engine, then runs) and once
through a running `pixie ui` (POST /api/runs, then its event stream until `end`), wall time each."""

from __future__ import annotations

import json
import os
import selectors
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.workload import PROMPT, Workload

PIXIE = Path(sys.executable).parent / "pixie"
REPO_ROOT = Path(__file__).resolve().parent.parent


def _environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env.update(PIXIE_HOME=str(home), PYTHONPATH=str(REPO_ROOT))
    return env


def cli_run_ms(workload: Workload) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [str(PIXIE), "run", "--no-serve", "--json", "--model", f"scripted:{workload.script}", PROMPT],
        capture_output=True, text=True, env=_environment(workload.home), timeout=300, stdin=subprocess.DEVNULL,
    )
    elapsed = (time.perf_counter() - started) * 1000
    if result.returncode != 0 or json.loads(result.stdout)["status"] != "SUCCEEDED":
        raise RuntimeError(f"pixie run failed: {result.stderr[-2000:]}")
    return elapsed


class Console:
    """`pixie ui --no-open --port 0` for the duration of the benchmark."""

    def __init__(self, home: Path) -> None:
        self.proc = subprocess.Popen(
            [str(PIXIE), "ui", "--no-open", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL, env=_environment(home), text=True,
        )
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=60):
            self.close()
            raise RuntimeError("pixie ui printed no URL")
        url = urlsplit(self.proc.stdout.readline().strip())
        token = url.query.removeprefix("token=")
        self.client = httpx.Client(base_url=f"http://{url.netloc}", headers={"Authorization": f"Bearer {token}"}, timeout=120)

    def wait_ready(self, timeout_s: float = 120) -> float:
        """Seconds until the engine is warm (its one-time start)."""
        started = time.perf_counter()
        while not self.client.get("/api/config").json()["ready"]:
            if time.perf_counter() - started > timeout_s:
                raise RuntimeError("the console's engine did not start")
            time.sleep(0.05)
        return time.perf_counter() - started

    def run_ms(self, workload: Workload) -> float:
        started = time.perf_counter()
        response = self.client.post("/api/runs", json={"prompt": PROMPT, "model": f"scripted:{workload.script}"})
        response.raise_for_status()
        run_id = response.json()["runId"]
        status = None
        with self.client.stream("GET", f"/api/runs/{run_id}/events") as events:
            last_event = None
            for line in events.iter_lines():
                if line.startswith("event:"):
                    last_event = line.partition(":")[2].strip()
                elif line.startswith("data:") and last_event == "end":
                    status = json.loads(line.partition(":")[2])["status"]
                    break
        elapsed = (time.perf_counter() - started) * 1000
        if status != "SUCCEEDED":
            raise RuntimeError(f"console run {run_id} ended {status}")
        return elapsed

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def bench_console(home: Path, iterations: int, repeats: int) -> dict[str, Any]:
    """Median wall time of the same scripted run through `pixie run` and through the warm console.
    The console's first run after its engine started is reported apart (it pays the handlers'
    first imports); the runs compared are interleaved so machine drift hits both alike."""
    workload = Workload(iterations, 1024, "alternate", home)
    console = Console(home)
    try:
        warm_up_s = console.wait_ready()
        first_ms = console.run_ms(workload)
        cli_ms, warm_ms = [], []
        for _ in range(repeats):
            cli_ms.append(cli_run_ms(workload))
            warm_ms.append(console.run_ms(workload))
    finally:
        console.close()
    cli, warm = statistics.median(cli_ms), statistics.median(warm_ms)
    return {
        "console_run_ms": round(warm),
        "cli_run_ms": round(cli),
        "console_vs_cli_ratio": round(warm / cli, 3),
        "console_first_run_ms": round(first_ms),
        "console_engine_start_s": round(warm_up_s, 2),
        "console_vs_cli_runs_ms": {"console": [round(x) for x in warm_ms], "cli": [round(x) for x in cli_ms]},
        "console_workload": f"{iterations}-turn scripted run (one tool call per turn), {repeats} runs each",
    }
