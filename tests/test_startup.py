"""What `pixie run` pays for before its first step: no moto service pixie never calls."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIXIE = Path(sys.executable).with_name("pixie")


def imported_modules(args: list[str], home: Path) -> set[str]:
    """The modules a whole `pixie ...` process imported, from Python's own import log."""
    env = {**os.environ, "PIXIE_HOME": str(home), "PYTHONPROFILEIMPORTTIME": "1", "NO_COLOR": "1"}
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run([str(PIXIE), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_pixie_run_never_imports_moto_batch_or_ec2(tmp_path):
    """moto's Step Functions parser pulls in moto.batch and all of moto.ec2 (about a second) for a
    Batch integration agent.asl.json never uses; the engine defers that package."""
    modules = imported_modules(["run", "--no-serve", "Build a todo app"], tmp_path)
    assert "statemachine.engine" in modules  # the run did start the engine
    assert "moto.stepfunctions.parser.models" in modules
    assert not {m for m in modules if m.startswith("moto.ec2")}
    assert "moto.batch.models" not in modules


def test_the_deferred_moto_batch_package_still_loads_when_something_uses_it():
    code = (
        "import sys, statemachine.engine, moto.batch;"
        "assert 'moto.batch.models' not in sys.modules;"
        "assert moto.batch.batch_backends is not None;"
        "from moto.batch.utils import JobStatus; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
