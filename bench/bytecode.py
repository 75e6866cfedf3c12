"""Cold imports on CPython 3.13 (Lambda's version) from a copy of the Lambda bundle, without and
with the bytecode infra/bundling.py compiles into it.

Lambda's /var/task is read-only, so a bundle without .pyc files compiles every module from source
on every cold start (and cannot cache the result). This benchmark builds an x86-64 twin of the
bundle here (the same locked versions as infra/lambda-requirements.txt, wheels for this machine,
plus boto3 as the runtime provides it, already compiled), then, in a fresh python3.13 per
measurement with PYTHONDONTWRITEBYTECODE=1 (as a read-only task root):
- `no_bytecode`: the tree as pip left it with --no-compile, as the bundle was before;
- `bytecode`: after `compileall --invalidation-mode unchecked-hash`, as the bundle is now.
Timed: importing the handler module plus the SDK adapter its first call loads (bench/imports.py's
probe). Needs the package index and a CPython 3.13; reports why not otherwise."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from bench.asset import PIP_CACHE
from bench.imports import _PROBE, HANDLERS
from infra.lambda_deps import PYTHON_VERSION, bytecode_python, compile_command, locked_pins

REPO_ROOT = Path(__file__).resolve().parent.parent
TWIN_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux2014_x86_64")


def _pip(python: str, target: Path, requirements: list[str], no_deps: bool) -> None:
    command = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
               "--only-binary=:all:", "--implementation", "cp", "--python-version", PYTHON_VERSION,
               "--no-compile", "--target", str(target)]
    for platform in TWIN_PLATFORMS:
        command += ["--platform", platform]
    if no_deps:
        command.append("--no-deps")
    env = {**os.environ, "PIP_CACHE_DIR": str(PIP_CACHE)}
    out = subprocess.run([*command, *requirements], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError((out.stderr.strip().splitlines() or ["pip failed"])[-1])


def _probe(python: str, twin: Path, runtime: Path, modules: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXIE_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(
        PYTHONPATH=f"{twin}{os.pathsep}{runtime}",  # /var/task before the runtime's boto3, as on Lambda
        PYTHONDONTWRITEBYTECODE="1",  # /var/task is read-only
        PYTHONNOUSERSITE="1",
        LAMBDA_TASK_ROOT=str(twin),
    )
    out = subprocess.run([python, "-c", _PROBE, "", *modules], cwd=twin, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"importing {modules} on {python} failed:\n{out.stderr[-1500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(repeats: int = 3, handlers: dict[str, str] | None = None) -> dict:
    handlers = HANDLERS if handlers is None else handlers
    python = bytecode_python()
    if python is None:
        return {"cold_import_313_ms": None, "cold_import_313_error": f"no CPython {PYTHON_VERSION} found"}
    pins = [f"{name}=={pinned}" for name, (pinned, _) in sorted(locked_pins().items())]
    with tempfile.TemporaryDirectory(prefix="pixie-bench-bytecode-") as scratch:
        twin, runtime = Path(scratch) / "task", Path(scratch) / "runtime"
        try:
            _pip(python, twin, pins, no_deps=True)
            _pip(python, runtime, [f"boto3=={version('boto3')}"], no_deps=False)
        except RuntimeError as exc:
            return {"cold_import_313_ms": None, "cold_import_313_error": f"pip could not build the twin: {exc}"}
        shutil.copytree(REPO_ROOT / "lambdas", twin / "lambdas", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        subprocess.run(compile_command(python, runtime), check=True, capture_output=True)  # the runtime's own
        wall: dict[str, dict[str, float]] = {}
        cpu: dict[str, dict[str, float]] = {}
        for variant in ("no_bytecode", "bytecode"):
            if variant == "bytecode":
                subprocess.run(compile_command(python, twin), check=True, capture_output=True)
            wall[variant], cpu[variant] = {}, {}
            for handler, first in handlers.items():
                probes = [_probe(python, twin, runtime, [f"lambdas.handlers.{handler}", first]) for _ in range(repeats)]
                wall[variant][handler] = round(statistics.median(p["ms"] for p in probes), 1)
                cpu[variant][handler] = round(statistics.median(p["cpuMs"] for p in probes), 1)
    return {
        # CPU time is what compiling costs, and what a busy machine distorts least; wall time as seen.
        "cold_import_313_cpu_ms": cpu,
        "cold_import_313_ms": wall,
        "cold_import_313_measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cold_import_313_python": subprocess.run([python, "-V"], capture_output=True, text=True).stdout.strip(),
        "cold_import_313_note": "x86-64 twin of the bundle (same versions), fresh interpreter, read-only task root "
        f"emulated with PYTHONDONTWRITEBYTECODE; median of {repeats}; cpu = the process's CPU time during the imports",
    }
