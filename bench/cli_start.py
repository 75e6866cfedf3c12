"""How soon `pixie run` shows a sign of life: from starting the process to its first state line
on stderr (`✓ CreateSandbox`), measured after one full run so bytecode caches exist, next to a
plain interpreter's start (`python -c pass`) as the floor. Each timed run is killed once the line
appears (its scratch PIXIE_HOME goes away with the bench)."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

PIXIE = Path(sys.executable).parent / "pixie"
# A finished-step line of pixie/display.py, Unicode or ASCII marks.
STATE_LINE = re.compile(r"^\s*(✓|✗|↻|\+|x|~) [A-Z][A-Za-z]+")
PROMPT = "Build a todo app"


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return {**env, "PIXIE_HOME": str(home)}  # no key: the bundled demo, no network


def first_state_ms(home: Path, timeout_s: float = 120) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(PIXIE), "run", "--no-serve", PROMPT], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True, env=_env(home),
    )
    try:
        for line in process.stderr:
            if STATE_LINE.match(line):
                return (time.perf_counter() - started) * 1000
            if time.perf_counter() - started > timeout_s:
                break
        raise RuntimeError(f"pixie run printed no state line (exit {process.poll()})")
    finally:
        process.kill()
        process.wait()


def python_start_ms() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return (time.perf_counter() - started) * 1000


def measure(home: Path, repeats: int = 3) -> dict:
    subprocess.run([str(PIXIE), "run", "--no-serve", PROMPT], env=_env(home), capture_output=True, check=True,
                   stdin=subprocess.DEVNULL, timeout=300)  # the first run: caches warm
    cli = [first_state_ms(home) for _ in range(repeats)]
    plain = [python_start_ms() for _ in range(max(repeats, 5))]
    return {
        "cli_first_state_ms": round(statistics.median(cli)),
        "python_start_ms": round(statistics.median(plain)),
        "cli_first_state_runs_ms": [round(x) for x in cli],
    }
