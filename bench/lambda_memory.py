"""How much memory each step's Lambda needs, to size it (issue 24: AgentTurn held 1 GB while it
waited on the model, and a function waiting is billed by its memory).

A function's peak is what it holds once loaded (`import_peak_rss_mb`, bench/imports.py: a fresh
interpreter importing the handler and its SDK, as on Lambda) plus the most its biggest
invocation allocates on top. The second part is measured here: a scripted run of the cost
workload on the embedded engine with `tracemalloc` on, and around each invocation the traced
peak minus what was traced when it began. It is an upper bound for the handler: the engine runs
moto's DynamoDB in the same process, so moto's work on the requests a step makes is counted too.
Python objects only (tracemalloc); the import figure covers the interpreter and C extensions."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path
from typing import Any, Callable

from bench.workload import Workload, run_on_engine

HEADROOM = 2.0  # Lambda stops a function at its memory size: twice the measured peak
LAMBDA_MIN_MB = 128


def invocation_peaks(home: Path, iterations: int, pattern: str) -> dict[str, float]:
    """The largest allocation peak (MB) of any one invocation, per function, in one run."""
    peaks: dict[str, float] = {}

    def traced(name: str, event: dict, invoke: Callable[[], Any]) -> Any:
        begun, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        try:
            return invoke()
        finally:
            _, peak = tracemalloc.get_traced_memory()
            peaks[name] = max(peaks.get(name, 0.0), (peak - begun) / 2**20)

    tracemalloc.start()
    try:
        run = run_on_engine(Workload(iterations, 10 * 1024, pattern, home), invoke_wrapper=traced)
    finally:
        tracemalloc.stop()
    if run.status != "SUCCEEDED":
        raise RuntimeError(f"memory run ended {run.status} ({run.error})")
    return {name: round(mb, 1) for name, mb in peaks.items()}


def suggested_mb(import_mb: float, invocation_mb: float) -> int:
    """A Lambda size (MB, a multiple of 64) with HEADROOM over the measured peak."""
    needed = max(LAMBDA_MIN_MB, (import_mb + invocation_mb) * HEADROOM)
    return int(math.ceil(needed / 64) * 64)
