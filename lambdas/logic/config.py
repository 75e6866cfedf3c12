"""Settings read from the environment. Only names and limits live here: secrets never do
(see secrets.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# The EventBridge detail-type that starts a run (the rule, the CLI and the validation agree on it).
DETAIL_TYPE = "test/hello.world"
# The rule's retry policy: EventBridge keeps trying to start the execution for this long (then
# the event goes to the dead-letter queue). The stack sets it; `pixie send` waits as long.
TRIGGER_MAX_EVENT_AGE_S = 2 * 3600
TRIGGER_RETRY_ATTEMPTS = 8
DEFAULT_MODEL = "openai:gpt-4.1"
DEFAULT_TEMPLATE = "pixie"


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    table_name: str
    model: str  # "openai:<model>" or "scripted:<path>"
    sandbox: str  # "local" or "e2b"
    template: str  # E2B template name
    max_iterations: int
    command_timeout_s: int
    sandbox_timeout_s: int
    max_prompt_chars: int
    max_tool_output_chars: int
    pixie_home: Path

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            table_name=os.environ.get("PIXIE_TABLE", "pixie-runs"),
            model=os.environ.get("PIXIE_MODEL", DEFAULT_MODEL),
            sandbox=os.environ.get("PIXIE_SANDBOX", "e2b"),
            template=os.environ.get("PIXIE_TEMPLATE", DEFAULT_TEMPLATE),
            max_iterations=_int("PIXIE_MAX_ITERATIONS", 15),
            command_timeout_s=_int("PIXIE_COMMAND_TIMEOUT", 120),
            sandbox_timeout_s=_int("PIXIE_SANDBOX_TIMEOUT", 3600),
            max_prompt_chars=_int("PIXIE_MAX_PROMPT_CHARS", 20_000),
            max_tool_output_chars=_int("PIXIE_MAX_TOOL_OUTPUT_CHARS", 10_000),
            # expanduser never raises, even where no home directory can be found (Lambda)
            pixie_home=Path(os.environ.get("PIXIE_HOME") or "~/.pixie").expanduser(),
        )
