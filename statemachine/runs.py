"""Finished local runs, saved under $PIXIE_HOME/runs/<runId>.json: the result, the
conversation, the files and the execution history, success or not."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

_RUN_ID = re.compile(r"[A-Za-z0-9_.-]{1,80}")


def runs_dir(pixie_home: Path) -> Path:
    return Path(pixie_home) / "runs"


def save_run(pixie_home: Path, record: dict[str, Any]) -> Path:
    directory = runs_dir(pixie_home)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record['runId']}.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, path)  # never a half-written run
    return path


def load_run(pixie_home: Path, run_id: str) -> dict[str, Any]:
    if not _RUN_ID.fullmatch(run_id):
        raise FileNotFoundError(f"{run_id!r} is not a run id")
    path = runs_dir(pixie_home) / f"{run_id}.json"
    if not path.exists():
        raise FileNotFoundError(f"no saved run {run_id} in {runs_dir(pixie_home)}")
    return json.loads(path.read_text(encoding="utf-8"))
