"""Cold imports, a proxy for Lambda cold starts: each measurement runs in a fresh interpreter.

- total (`cold_import_ms`): import the handler module plus the SDK adapter its first call loads
  (AgentTurn: the OpenAI model adapter; the sandbox steps: the E2B sandbox adapter), timed inside
  the fresh interpreter with perf_counter (interpreter start-up itself is not counted).
- SDKs (`sdk_import_ms`): the bare SDK packages, one per fresh interpreter.
- own (`own_import_ms`): in a fresh interpreter, first import every third-party module the total
  measurement loaded (found from that run's sys.modules: everything outside the standard library
  and outside `lambdas`), then time the same imports. What is left is pixie's own modules plus
  any standard-library module only pixie needs. Counted as CPU time of the importing process:
  a few tens of milliseconds of wall time on this shared 2-core machine is mostly waiting for a
  core (29–86 ms wall for the same import in one day's runs; the CPU time moved by a few ms), and a
  cold start on Lambda is CPU-bound. The wall time is kept too (`own_import_wall_ms`).
- `import_peak_rss_mb`: the fresh interpreter's peak resident memory after the total imports:
  what a function holds before its first event (bench/lambda_memory.py adds what a turn needs).
- `sdk_isolation`: whether `openai` / `e2b` are in sys.modules after the total imports.

The fresh interpreters get LAMBDA_TASK_ROOT, as on Lambda, so Powertools' Tracer initializes as it
does there (X-Ray SDK loaded and patched at import).

One untimed import of each set runs first so bytecode caches exist, as in the Lambda bundle, which
carries CPython 3.13 bytecode (bench/bytecode.py measures the difference it makes)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# handler module -> the module its first invocation imports for the SDK it uses
HANDLERS: dict[str, str] = {
    "create_sandbox": "lambdas.logic.sandboxes.e2b_sandbox",
    "agent_turn": "lambdas.logic.models.openai_model",
    "run_tool": "lambdas.logic.sandboxes.e2b_sandbox",
    "get_sandbox_url": "lambdas.logic.sandboxes.e2b_sandbox",
    "cleanup_sandbox": "lambdas.logic.sandboxes.e2b_sandbox",
}
SDKS = ("openai", "e2b", "aws_lambda_powertools", "boto3")  # boto3: reference (the runtime ships it)
EXPECTED_SDK = {name: ("openai" if "models" in first_use else "e2b") for name, first_use in HANDLERS.items()}

# Runs in the fresh interpreter. Only `sys` and `time` are imported before the clock starts.
_PROBE = r"""
import sys, time
preload_file, modules = sys.argv[1], sys.argv[2:]
if preload_file:
    for name in open(preload_file).read().split():
        try:
            __import__(name)
        except BaseException:
            pass
before = set(sys.modules)
start, cpu_start = time.perf_counter(), time.process_time()
for name in modules:
    __import__(name)
ms = (time.perf_counter() - start) * 1000
cpu_ms = (time.process_time() - cpu_start) * 1000
loaded = [m for m in sys.modules if m not in before]
third_party = [
    m for m in loaded
    if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] not in ("lambdas", "__main__")
]
import json, resource
max_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: kilobytes
print(json.dumps({"ms": ms, "cpuMs": cpu_ms, "maxRssKb": max_rss_kb, "thirdParty": third_party, "openai": "openai" in sys.modules, "e2b": "e2b" in sys.modules}))
"""


def _probe(modules: list[str], preload: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXIE_", "PYTHON"))}
    # As on Lambda: Powertools' Tracer is active only where LAMBDA_TASK_ROOT is set, and then loads
    # and patches the X-Ray SDK at import; without it the import would be lighter than on Lambda.
    env["LAMBDA_TASK_ROOT"] = str(REPO_ROOT)
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(preload or ""), *modules],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"importing {modules} failed in a fresh interpreter:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def measure(repeats: int = 5, handlers: dict[str, str] | None = None, sdks: tuple[str, ...] = SDKS) -> dict:
    handlers = HANDLERS if handlers is None else handlers
    result: dict = {"import_peak_rss_mb": {}, "cold_import_ms": {}, "own_import_ms": {}, "own_import_wall_ms": {}, "sdk_import_ms": {}, "sdk_isolation": {}}
    with tempfile.TemporaryDirectory(prefix="pixie-bench-imports-") as scratch:
        for handler, first_use in handlers.items():
            modules = [f"lambdas.handlers.{handler}", first_use]
            warm = _probe(modules)  # untimed: bytecode caches, and the third-party module list
            preload = Path(scratch) / f"{handler}.txt"
            preload.write_text("\n".join(warm["thirdParty"]))
            totals, owns, own_walls = [], [], []
            for _ in range(repeats):
                total = _probe(modules)
                totals.append(total["ms"])
                own = _probe(modules, preload)
                owns.append(own["cpuMs"])
                own_walls.append(own["ms"])
            result["cold_import_ms"][handler] = _median(totals)
            # What the function holds once loaded, before its first event (the floor of its memory).
            result["import_peak_rss_mb"][handler] = round(total["maxRssKb"] / 1024, 1)
            result["own_import_ms"][handler] = _median(owns)
            result["own_import_wall_ms"][handler] = _median(own_walls)
            result["sdk_isolation"][handler] = {"openai": total["openai"], "e2b": total["e2b"]}
        for sdk in sdks:
            _probe([sdk])
            result["sdk_import_ms"][sdk] = _median([_probe([sdk])["ms"] for _ in range(repeats)])
    return result


def isolation_ok(handler: str, seen: dict[str, bool]) -> bool:
    """The handler loads the SDK it uses and never the other one."""
    other = "e2b" if EXPECTED_SDK[handler] == "openai" else "openai"
    return seen[EXPECTED_SDK[handler]] and not seen[other]
