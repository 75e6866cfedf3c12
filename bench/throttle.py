"""A burst of runs against reserved concurrency (`python -m bench --only throttle`): 30 runs start
at once on one embedded engine whose functions each allow 10 concurrent invocations, as Lambda's
reserved concurrency does. Past the limit an invocation fails with
Lambda.TooManyRequestsException; the definition's retry rule for it (16 tries, full jitter, up to
180 s) must queue the burst so that every run succeeds. Retry waits are scaled down
(retry_delay_scale) so the burst takes seconds, not minutes; the rule's shape is unchanged."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.workload import Workload
from lambdas.logic.sandboxes.local import stop_all_previews
from statemachine.engine import LocalEngine, hello_world_event

RUNS = 30
LIMIT = 10
RETRY_DELAY_SCALE = 0.05  # 2 s .. 180 s waits become 0.1 s .. 9 s


def bench_throttle(home: Path, runs: int = RUNS, limit: int = LIMIT) -> dict[str, Any]:
    workload = Workload(3, 1024, "alternate", home)  # a write, a command, a summary
    started = time.perf_counter()
    try:
        with LocalEngine(workload.options().env(), retry_delay_scale=RETRY_DELAY_SCALE, concurrency_limit=limit) as engine:
            arns = [engine.start(hello_world_event(f"Burst run {i}"))[0] for i in range(runs)]
            endings = [engine.wait(arn) for arn in arns]
            failures = sorted({f"{e.error}: {(e.cause or '')[:120]}" for e in endings if e.status != "SUCCEEDED"})
            throttled = engine.throttled
    finally:
        stop_all_previews()
    retried = sum(
        1 for ending in endings for event in ending.history
        if event.get("type") == "TaskFailed" and (event.get("taskFailedEventDetails") or {}).get("error") == "Lambda.TooManyRequestsException"
    )
    return {
        "throttle": {
            "runs": runs,
            "limit": limit,
            "succeeded": sum(1 for ending in endings if ending.status == "SUCCEEDED"),
            "statuses": sorted({ending.status for ending in endings}),
            "failures": failures,
            "throttledInvocations": throttled,
            "retriedTasks": retried,
            "retryDelayScale": RETRY_DELAY_SCALE,
            "seconds": round(time.perf_counter() - started, 1),
        }
    }
