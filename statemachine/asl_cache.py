"""Parse agent.asl.json once, not on every start.

moto's Step Functions parser builds an ANTLR parse tree of the definition and turns it into
evaluation components twice per `pixie run`: when the state machine is created (validation) and
when the execution starts (0.3-0.9 s together, most of it the ANTLR lexer). The components
pickle (about 23 KB for agent.asl.json) and unpickle in a few ms, so this keeps them: in memory
for the process, and beside the engine's own bytecode (`statemachine/__pycache__`, written only
where Python writes bytecode), keyed by the definition, moto's version and Python's. Every use
unpickles a fresh copy: concurrent executions never share components.

`parsing_once()` patches the two places moto's backend parses a definition; a definition not
seen before is parsed as moto would, and one that does not parse is reported by moto's own
validation, unchanged."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import sys
import tempfile
import threading
from contextlib import ExitStack, contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any, Iterator
from unittest import mock

_memory: dict[str, bytes] = {}
_lock = threading.Lock()
CACHE_DIR = Path(importlib.util.cache_from_source(__file__)).parent


def _key(definition: str) -> str:
    salt = f"moto {version('moto')} python {sys.version_info[:3]}\n"
    return hashlib.sha256((salt + definition).encode()).hexdigest()[:32]


def _cache_file(key: str) -> Path:
    return CACHE_DIR / f"asl-{key}.pickle"


def _stored(key: str) -> bytes | None:
    with _lock:
        blob = _memory.get(key)
    if blob is None:
        try:
            blob = _cache_file(key).read_bytes()
        except OSError:
            return None
        with _lock:
            _memory[key] = blob
    return blob


def _store(key: str, program: Any) -> None:
    try:
        blob = pickle.dumps(program)
    except Exception:  # noqa: BLE001 - a moto whose components do not pickle: parse each time
        return
    with _lock:
        _memory[key] = blob
    if sys.dont_write_bytecode:
        return
    try:  # atomically, so a concurrent start never reads half a file
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=CACHE_DIR, prefix=".asl-")
        with os.fdopen(fd, "wb") as out:
            out.write(blob)
        os.replace(temporary, _cache_file(key))
    except OSError:
        pass  # a read-only install: the memory cache still saves the second parse


def parsed_program(definition: str) -> Any:
    """The evaluation components of `definition`: a fresh copy from the cache, or parsed now
    (raising what moto's parser raises)."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    key = _key(definition)
    blob = _stored(key)
    if blob is not None:
        try:
            return pickle.loads(blob)
        except Exception:  # noqa: BLE001 - a stale or damaged file: parse again and replace it
            pass
    program, _tree = AmazonStateLanguageParser.parse(definition)
    _store(key, program)
    return program


@contextmanager
def parsing_once() -> Iterator[None]:
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    validate_as_moto_does = StepFunctionsParserBackend._validate_definition

    def validate(definition: str) -> None:
        try:
            parsed_program(definition)
        except Exception:  # noqa: BLE001 - moto's validation says what is wrong, in its words
            validate_as_moto_does(definition)
            raise

    def entrypoint(worker: ExecutionWorker) -> Any:
        return parsed_program(worker._evaluation_details.state_machine_details.definition)

    with ExitStack() as patches:
        patches.enter_context(mock.patch.object(StepFunctionsParserBackend, "_validate_definition", staticmethod(validate)))
        patches.enter_context(mock.patch.object(ExecutionWorker, "_get_evaluation_entrypoint", entrypoint))
        yield
