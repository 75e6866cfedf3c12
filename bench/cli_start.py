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
    # PYTHONDONTWRITEBYTECODE off, as in a user's shell: "after one full run" means bytecode
    # (and the parsed definition beside it) are cached. bench/bytecode.py measures the read-only case.
    dropped = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    return {**env, "PIXIE_HOME": str(home)}  # no key: the bundled demo, no network


def _cpu_ms(pid: int) -> float | None:
    """User + system CPU the process has used so far (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def first_state_ms(home: Path, timeout_s: float = 120) -> tuple[float, float | None]:
    """(wall ms, CPU ms) from starting `pixie run` to its first state line."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(PIXIE), "run", "--no-serve", PROMPT], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True, env=_env(home),
    )
    try:
        for line in process.stderr:
            if STATE_LINE.match(line):
                return (time.perf_counter() - started) * 1000, _cpu_ms(process.pid)
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


def demo_wall_ms(home: Path) -> float:
    """A whole `pixie run --no-serve` of the bundled demo, from process start to exit."""
    started = time.perf_counter()
    subprocess.run([str(PIXIE), "run", "--no-serve", PROMPT], env=_env(home), capture_output=True, check=True,
                   stdin=subprocess.DEVNULL, timeout=300)
    return (time.perf_counter() - started) * 1000


MOTO_PARSER_IMPORT = "import moto.stepfunctions.parser.models"
# `pixie` leaves with os._exit (no interpreter teardown); the same import, leaving the same way.
MOTO_PARSER_IMPORT_NO_TEARDOWN = MOTO_PARSER_IMPORT + "; import os; os._exit(0)"


def moto_parser_import_ms(home: Path, code: str = MOTO_PARSER_IMPORT) -> float:
    """What a bare import of moto's Step Functions parser costs in a fresh interpreter (the
    floor `pixie run` is compared with: it cannot run the definition without it)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=_env(home), check=True, timeout=300)
    return (time.perf_counter() - started) * 1000


def measure(home: Path, repeats: int = 3) -> dict:
    demo_wall_ms(home)  # the first runs: caches warm
    moto_parser_import_ms(home)
    # Interleaved, so a change in the machine's load hits both alike.
    triples = [
        (demo_wall_ms(home), moto_parser_import_ms(home), moto_parser_import_ms(home, MOTO_PARSER_IMPORT_NO_TEARDOWN))
        for _ in range(repeats)
    ]
    pairs = [(wall, bare) for wall, bare, _ in triples]
    demo = statistics.median(wall for wall, _ in pairs)
    parser = statistics.median(bare for _, bare in pairs)
    parser_no_teardown = statistics.median(quick for _, _, quick in triples)
    measured = [first_state_ms(home) for _ in range(repeats)]
    cli = [wall for wall, _ in measured]
    cpu = [used for _, used in measured if used is not None]
    plain = [python_start_ms() for _ in range(max(repeats, 5))]
    return {
        "cli_demo_wall_ms": round(demo),
        "moto_parser_import_ms": round(parser),
        "cli_demo_vs_moto_parser_import": round(demo / parser, 2),
        "moto_parser_import_no_teardown_ms": round(parser_no_teardown),
        "cli_demo_vs_moto_parser_import_no_teardown": round(demo / parser_no_teardown, 2),
        "cli_demo_runs_ms": [round(wall) for wall, _ in pairs],
        "moto_parser_import_runs_ms": [round(bare) for _, bare in pairs],
        "cli_first_state_ms": round(statistics.median(cli)),
        # CPU time says more than wall time on a shared machine (the wall time includes waiting).
        "cli_first_state_cpu_ms": round(statistics.median(cpu)) if cpu else None,
        "python_start_ms": round(statistics.median(plain)),
        "cli_first_state_runs_ms": [round(x) for x in cli],
        "load_average_1m": round(os.getloadavg()[0], 1),
    }
