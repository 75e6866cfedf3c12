"""Hard limits pixie keeps whatever a model sends or a user configures, and the arithmetic behind
them. A model reply is untrusted input: everything it can make bigger is bounded here before it
reaches a state payload (Step Functions: 256 KiB, and no Catch for States.DataLimitExceeded), a
DynamoDB item (400 KB) or an execution's history (25,000 events, then the execution fails with
nothing to catch it)."""

from __future__ import annotations

import json
import re

# --- the history: no execution may reach 25,000 events -----------------------------------------
HISTORY_EVENT_LIMIT = 25_000
# Counted on the engine with AWS's event types (tests/test_bounds.py checks these against runs):
# start, CreateSandbox, IsDuplicateEvent, the end: success 16, failure through cleanup 18, and 23 for
# a success whose last turn summarized beside tool calls (a closing AgentTurn and Router after them).
# The done-check's events are counted per check below.
HISTORY_EVENTS_FIXED = 23
HISTORY_EVENTS_PER_TURN = 11  # AgentTurn, Router, and the Map's own start and end when tools run
HISTORY_EVENTS_PER_CALL = 7  # one Map iteration with its RunTool task
HISTORY_EVENTS_PER_RETRY = 3  # a failed attempt: scheduled, started, failed
HISTORY_EVENTS_PER_CHECK = 7  # the done-check: CheckResult's task and the CheckVerdict choice
# A turn that waits for approval (--approve): AwaitApproval entered, scheduled, started, submitted,
# succeeded / failed (denied) / timed out, exited. Counted in the worst case: any run may use it.
HISTORY_EVENTS_PER_APPROVAL = 6
# The retry budget the worst case allows for: every task of a run retried this many times. (A
# task's policies permit up to 20 retries; a run that unlucky for every step does not happen.)
RETRIES_PER_TASK = 2

MAX_ITERATIONS_CAP = 50  # the most model turns any run may have (CLI, env, CDK context, event)
DEFAULT_MAX_ITERATIONS = 15
DEFAULT_MAX_TOOL_CALLS = 32  # tool calls run per turn; later calls get a "not run" error result
MAX_TOOL_CALLS_CAP = 64
# A run's budget (--budget-usd, --max-tokens, detail.budgetUsd/maxTokens, PIXIE_BUDGET_USD/PIXIE_MAX_TOKENS).
MAX_BUDGET_USD = 10_000
MAX_TOKENS_CAP = 1_000_000_000
# The stuck-loop breaker: the same failing tool call (name and arguments) this many times in a row
# and the model is told so; this many and the run ends StuckLoop (never more than the cap).
DEFAULT_STUCK_WARN_AFTER = 3
DEFAULT_STUCK_LIMIT = 5
STUCK_LIMIT_CAP = 5
# The done-check: a run ends CheckFailed after this many failed checks of its result.
DEFAULT_CHECK_LIMIT = 3
CHECK_LIMIT_CAP = 5
MAX_CHECK_COMMAND_CHARS = 1_000  # --check-command, detail.checkCommand
MAX_CHECK_OUTPUT_CHARS = 3_000  # of each failed check's output, in the model's message
MAX_CHECK_CAUSE_JSON_CHARS = 4_000  # CheckFailed's cause, a state payload


def worst_case_history_events(max_iterations: int, max_tool_calls: int, retries_per_task: int = RETRIES_PER_TASK) -> int:
    """Events of the longest possible run: every turn used, every turn with the most tool calls
    that are run, every task retried `retries_per_task` times, ending through cleanup."""
    # CreateSandbox, a closing AgentTurn, GetSandboxUrl/Cleanup, ..., per turn AgentTurn,
    # AwaitApproval and the calls, and every done-check (each failed one gives a turn back, so a
    # run has at most CHECK_LIMIT_CAP of them).
    tasks = 4 + max_iterations * (2 + max_tool_calls) + CHECK_LIMIT_CAP
    return (
        HISTORY_EVENTS_FIXED
        + HISTORY_EVENTS_PER_CHECK * CHECK_LIMIT_CAP
        + max_iterations * (HISTORY_EVENTS_PER_TURN + HISTORY_EVENTS_PER_APPROVAL + HISTORY_EVENTS_PER_CALL * max_tool_calls)
        + HISTORY_EVENTS_PER_RETRY * retries_per_task * tasks
    )


def check_max_iterations(value: int) -> int:
    """`value` if it is an allowed number of turns; ValueError naming the cap otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ITERATIONS_CAP:
        raise ValueError(
            f"max iterations must be between 1 and {MAX_ITERATIONS_CAP} (pixie's cap, so that no execution "
            f"reaches Step Functions' {HISTORY_EVENT_LIMIT:,}-event history limit); got {value!r}"
        )
    return value


def check_run_limits(max_iterations: int, max_tool_calls: int) -> None:
    """ValueError when the two together could reach the history limit."""
    check_max_iterations(max_iterations)
    events = worst_case_history_events(max_iterations, max_tool_calls)
    if events >= HISTORY_EVENT_LIMIT:
        raise ValueError(
            f"{max_iterations} turns with up to {max_tool_calls} tool calls each could take {events:,} history "
            f"events, over Step Functions' {HISTORY_EVENT_LIMIT:,}: lower the iterations or PIXIE_MAX_TOOL_CALLS"
        )


# --- what a tool call may carry ----------------------------------------------------------------
MAX_TOOL_NAME_CHARS = 64  # OpenAI's own limit for function names: anything longer is no tool of ours
MAX_TOOL_CALL_ID_CHARS = 64
DEFAULT_MAX_FILE_BYTES = 1_000_000  # one file's content (UTF-8)
DEFAULT_MAX_CALL_BYTES = 4_000_000  # all files of one createOrUpdateFiles call
# A reply longer than this (as stored, JSON) is not carried out: the model is told to send less.
DEFAULT_MAX_REPLY_CHARS = 8_000_000
MAX_PATH_BYTES = 1_000  # a path must fit a DynamoDB sort key (1,024 bytes) with its prefix

# --- the run's result --------------------------------------------------------------------------
MAX_SUMMARY_JSON_CHARS = 4_000  # the summary as JSON text (so at most 4,000 characters)
MAX_TITLE_CHARS = 80
MAX_RESULT_FILES = 500  # paths listed in the result (fileCount has the total)
MAX_RESULT_FILES_JSON_CHARS = 2_000  # and no more than this much of them, so the result stays < 8 KB
STATE_PAYLOAD_TARGET_BYTES = 8_192  # what every state input and output stays under


def json_size(value: object) -> int:
    """Bytes `value` takes in a state payload (JSON, non-ASCII escaped as Lambda returns it)."""
    return len(json.dumps(value))


def fit_json(text: str, max_json_chars: int, note: str = "\n[… cut: {omitted} characters omitted]") -> str:
    """`text`, or its head with `note` when its JSON form is longer than `max_json_chars`.
    Lone surrogates (which no UTF-8 store accepts) become U+FFFD."""
    text = replace_lone_surrogates(text)
    if json_size(text) <= max_json_chars:
        return text
    low, high = 0, min(len(text), max_json_chars)  # JSON is never shorter than the text
    while low < high:  # the longest head that fits together with its note
        mid = (low + high + 1) // 2
        if json_size(text[:mid] + note.format(omitted=len(text) - mid)) <= max_json_chars:
            low = mid
        else:
            high = mid - 1
    return text[:low] + note.format(omitted=len(text) - low)


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_lone_surrogates(text: str) -> str:
    """`text` as every UTF-8 store and API accepts it: each lone surrogate becomes U+FFFD."""
    return _SURROGATE.sub("\ufffd", text) if _has_surrogates(text) else text


def has_lone_surrogates(text: str) -> bool:
    """True for text that is not valid Unicode (e.g. argv bytes that were not UTF-8)."""
    return _has_surrogates(text)
