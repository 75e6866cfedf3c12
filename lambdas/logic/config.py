"""Settings read from the environment. Only names and limits live here: secrets never do
(see secrets.py). Every number is checked against its range when read, so a bad value is a clear
error before any run starts, not a command killed at once or a limit silently ignored."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lambdas.logic.approvals import APPROVE_MODES, DEFAULT_APPROVAL_TIMEOUT_S, MAX_APPROVAL_TIMEOUT_S
from lambdas.logic.compaction import DEFAULT_COMPACT_AFTER_TURNS, DEFAULT_COMPACT_MIN_CHARS, Compaction
from lambdas.logic.errors import ConfigurationError
from lambdas.logic.limits import (
    DEFAULT_MAX_CALL_BYTES,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_ITERATIONS,
    DEFAULT_MAX_REPLY_CHARS,
    DEFAULT_MAX_TOOL_CALLS,
    MAX_ITERATIONS_CAP,
    MAX_BUDGET_USD,
    MAX_TOKENS_CAP,
    MAX_TOOL_CALLS_CAP,
    DEFAULT_STUCK_LIMIT,
    DEFAULT_STUCK_WARN_AFTER,
    STUCK_LIMIT_CAP,
    CHECK_LIMIT_CAP,
    DEFAULT_CHECK_LIMIT,
    MAX_CHECK_COMMAND_CHARS,
    check_run_limits,
)

# The EventBridge detail-type that starts a run (the rule, the CLI and the validation agree on it).
DETAIL_TYPE = "test/hello.world"
# The rule's retry policy: EventBridge keeps trying to start the execution for this long (then
# the event goes to the dead-letter queue). The stack sets it; `pixie send` waits as long.
TRIGGER_MAX_EVENT_AGE_S = 2 * 3600
TRIGGER_RETRY_ATTEMPTS = 8
DEFAULT_MODEL = "openai:gpt-4.1"
DEFAULT_TEMPLATE = "pixie"
# RunTool's Lambda timeout is the command timeout + 180 s, at most 900 s (infra/stack.py).
MAX_COMMAND_TIMEOUT_S = 720

# name -> (default, smallest, largest)
NUMERIC_SETTINGS: dict[str, tuple[int, int, int]] = {
    "PIXIE_MAX_ITERATIONS": (DEFAULT_MAX_ITERATIONS, 1, MAX_ITERATIONS_CAP),
    "PIXIE_COMMAND_TIMEOUT": (120, 1, MAX_COMMAND_TIMEOUT_S),
    "PIXIE_SANDBOX_TIMEOUT": (3600, 60, 86_400),  # E2B's own bounds
    # The prompt is stored whole in the run record (one DynamoDB item of at most 400 KB).
    "PIXIE_MAX_PROMPT_CHARS": (20_000, 1, 50_000),
    "PIXIE_MAX_TOOL_OUTPUT_CHARS": (10_000, 200, 100_000),
    "PIXIE_MAX_TOOL_CALLS": (DEFAULT_MAX_TOOL_CALLS, 1, MAX_TOOL_CALLS_CAP),
    "PIXIE_MAX_FILE_BYTES": (DEFAULT_MAX_FILE_BYTES, 1, 10_000_000),
    "PIXIE_MAX_CALL_BYTES": (DEFAULT_MAX_CALL_BYTES, 1, 40_000_000),
    "PIXIE_MAX_REPLY_CHARS": (DEFAULT_MAX_REPLY_CHARS, 10_000, 80_000_000),
    # Local sandbox: the project folder's disk use, and the memory of all of a command's processes.
    "PIXIE_MAX_PROJECT_BYTES": (2 * 1024**3, 1024**2, 1024**4),
    "PIXIE_MAX_COMMAND_MEMORY_MB": (4096, 64, 1024**2),
    # The stuck-loop breaker: identical failing tool calls in a row before the model is told, and
    # before the run ends StuckLoop.
    "PIXIE_STUCK_WARN_AFTER": (DEFAULT_STUCK_WARN_AFTER, 1, STUCK_LIMIT_CAP),
    "PIXIE_STUCK_LIMIT": (DEFAULT_STUCK_LIMIT, 2, STUCK_LIMIT_CAP),
    # The done-check: failed checks of a run's result before it ends CheckFailed.
    "PIXIE_CHECK_LIMIT": (DEFAULT_CHECK_LIMIT, 1, CHECK_LIMIT_CAP),
    # Compaction (lambdas/logic/compaction.py): tool results this many turns old and longer than
    # this many characters are left out of the prompt (never out of the store); 0 turns: off.
    "PIXIE_COMPACT_AFTER_TURNS": (DEFAULT_COMPACT_AFTER_TURNS, 0, MAX_ITERATIONS_CAP),
    "PIXIE_COMPACT_MIN_CHARS": (DEFAULT_COMPACT_MIN_CHARS, 0, 1_000_000),
    # Approvals: how long a run waits for a decision before the calls count as denied.
    "PIXIE_APPROVAL_TIMEOUT": (DEFAULT_APPROVAL_TIMEOUT_S, 1, MAX_APPROVAL_TIMEOUT_S),
}


class InvalidSetting(ConfigurationError, ValueError):
    """A setting outside its range (also a ValueError, as int() would raise)."""


def _int(env: Mapping[str, str], name: str) -> int:
    default, low, high = NUMERIC_SETTINGS[name]
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidSetting(f"{name} must be a whole number from {low} to {high}, got {raw!r}") from None
    if not low <= value <= high:
        raise InvalidSetting(f"{name} must be from {low} to {high}, got {value}")
    return value


def _optional_budget(env: Mapping[str, str], name: str, high: float, whole: bool) -> float | int | None:
    """A budget setting: unset or empty means no bound; otherwise a number above 0 up to `high`."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        value = None
    if value is None or not 0 < value <= high or value != value:
        kind = "a whole number" if whole else "a number of US dollars"
        raise InvalidSetting(f"{name} must be {kind} above 0 and at most {high:,}, got {raw!r}")
    return value


def env_flag(env: Mapping[str, str], name: str) -> bool:
    """A yes/no setting: 1, true, yes or on (any case) is yes; anything else, or unset, no."""
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def env_flag_on(env: Mapping[str, str], name: str) -> bool:
    """A yes/no setting that is on unless it says 0, false, no or off (any case)."""
    return env.get(name, "").strip().lower() not in ("0", "false", "no", "off")


def _check_command(env: Mapping[str, str]) -> str | None:
    raw = (env.get("PIXIE_CHECK_COMMAND") or "").strip()
    if not raw:
        return None
    if len(raw) > MAX_CHECK_COMMAND_CHARS or "\x00" in raw:
        raise InvalidSetting(f"PIXIE_CHECK_COMMAND must be a shell command of at most {MAX_CHECK_COMMAND_CHARS} characters")
    return raw


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name) or choices[0]
    if raw not in choices:
        raise InvalidSetting(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _allow_hosts(env: Mapping[str, str]) -> tuple[str, ...]:
    from lambdas.logic.sandboxes.egress import parse_allow_hosts  # (the sandboxes package imports this module)

    entries = tuple(e.strip() for e in env.get("PIXIE_ALLOW_HOSTS", "").split(",") if e.strip())
    try:
        parse_allow_hosts(entries)
    except ValueError as exc:
        raise InvalidSetting(f"PIXIE_ALLOW_HOSTS: {exc}") from None
    return entries


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
    max_tool_calls: int = DEFAULT_MAX_TOOL_CALLS
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_call_bytes: int = DEFAULT_MAX_CALL_BYTES
    max_reply_chars: int = DEFAULT_MAX_REPLY_CHARS
    # Local sandbox: "bwrap" runs each command under bubblewrap (and refuses to run without it);
    # "none" runs it as you, unisolated. Network inside is off unless allowed.
    isolation: str = "bwrap"
    allow_network: bool = False
    allow_hosts: tuple[str, ...] = ()  # HOST[:PORT] entries and @presets, reached through the egress proxy
    bwrap_path: str | None = None  # a bubblewrap to use instead of looking for one
    max_project_bytes: int = 2 * 1024**3
    max_command_memory_mb: int = 4096
    event_overrides: frozenset[str] = frozenset()  # per-run choices events may make (events.RUN_CHOICES)
    budget_usd: float | None = None  # a run's default budget (None: unbounded)
    max_tokens: int | None = None
    stuck_warn_after: int = DEFAULT_STUCK_WARN_AFTER
    stuck_limit: int = DEFAULT_STUCK_LIMIT
    # The done-check before a summary is accepted (lambdas/logic/done_check.py): on unless turned
    # off; a command of the user's instead of the package.json scripts; failed checks allowed.
    check: bool = True
    check_command: str | None = None
    check_limit: int = DEFAULT_CHECK_LIMIT
    compact_after_turns: int = DEFAULT_COMPACT_AFTER_TURNS
    compact_min_chars: int = DEFAULT_COMPACT_MIN_CHARS
    approve: str = "none"  # which tool calls wait for a person's decision (approvals.APPROVE_MODES)
    approval_timeout_s: int = DEFAULT_APPROVAL_TIMEOUT_S

    @property
    def compaction(self) -> Compaction:
        return Compaction(self.compact_after_turns, self.compact_min_chars)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """From os.environ, or from `env` (the CLI checks a run's settings before it starts)."""
        env = os.environ if env is None else env
        settings = cls(
            table_name=env.get("PIXIE_TABLE", "pixie-runs"),
            model=env.get("PIXIE_MODEL", DEFAULT_MODEL),
            sandbox=env.get("PIXIE_SANDBOX", "e2b"),
            template=env.get("PIXIE_TEMPLATE", DEFAULT_TEMPLATE),
            max_iterations=_int(env, "PIXIE_MAX_ITERATIONS"),
            command_timeout_s=_int(env, "PIXIE_COMMAND_TIMEOUT"),
            sandbox_timeout_s=_int(env, "PIXIE_SANDBOX_TIMEOUT"),
            max_prompt_chars=_int(env, "PIXIE_MAX_PROMPT_CHARS"),
            max_tool_output_chars=_int(env, "PIXIE_MAX_TOOL_OUTPUT_CHARS"),
            # expanduser never raises, even where no home directory can be found (Lambda)
            pixie_home=Path(env.get("PIXIE_HOME") or "~/.pixie").expanduser(),
            max_tool_calls=_int(env, "PIXIE_MAX_TOOL_CALLS"),
            max_file_bytes=_int(env, "PIXIE_MAX_FILE_BYTES"),
            max_call_bytes=_int(env, "PIXIE_MAX_CALL_BYTES"),
            max_reply_chars=_int(env, "PIXIE_MAX_REPLY_CHARS"),
            isolation=_choice(env, "PIXIE_ISOLATION", ("bwrap", "none")),
            # An allow-list wins over PIXIE_ALLOW_NETWORK left in the environment (a resumed run
            # keeps its list): never the whole network, unproxied and unaudited, in its place.
            allow_network=env_flag(env, "PIXIE_ALLOW_NETWORK") and not _allow_hosts(env),
            allow_hosts=_allow_hosts(env),
            bwrap_path=env.get("PIXIE_BWRAP") or None,
            max_project_bytes=_int(env, "PIXIE_MAX_PROJECT_BYTES"),
            max_command_memory_mb=_int(env, "PIXIE_MAX_COMMAND_MEMORY_MB"),
            event_overrides=frozenset(filter(None, env.get("PIXIE_EVENT_OVERRIDES", "").split(","))),
            budget_usd=_optional_budget(env, "PIXIE_BUDGET_USD", MAX_BUDGET_USD, whole=False),
            max_tokens=_optional_budget(env, "PIXIE_MAX_TOKENS", MAX_TOKENS_CAP, whole=True),
            stuck_warn_after=_int(env, "PIXIE_STUCK_WARN_AFTER"),
            stuck_limit=_int(env, "PIXIE_STUCK_LIMIT"),
            check=env_flag_on(env, "PIXIE_CHECK"),
            check_command=_check_command(env),
            check_limit=_int(env, "PIXIE_CHECK_LIMIT"),
            compact_after_turns=_int(env, "PIXIE_COMPACT_AFTER_TURNS"),
            compact_min_chars=_int(env, "PIXIE_COMPACT_MIN_CHARS"),
            approve=_choice(env, "PIXIE_APPROVE", APPROVE_MODES),
            approval_timeout_s=_int(env, "PIXIE_APPROVAL_TIMEOUT"),
        )
        try:
            check_run_limits(settings.max_iterations, settings.max_tool_calls)
        except ValueError as exc:
            raise InvalidSetting(f"PIXIE_MAX_ITERATIONS and PIXIE_MAX_TOOL_CALLS: {exc}") from None
        if settings.max_call_bytes < settings.max_file_bytes:
            raise InvalidSetting("PIXIE_MAX_CALL_BYTES must be at least PIXIE_MAX_FILE_BYTES")
        return settings
