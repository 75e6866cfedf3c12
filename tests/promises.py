"""What the README promises, read from the README itself, and what the code and the workflow
definition say, read from their files. Tests compare the two, so a promise broken in either place
fails a test, and a change made in both places at once (a new retry budget) keeps them green.

Nothing here hard-codes a retry count or a delay: the numbers come from the README's durability
table. Which step must retry which error class is derived from the code: a step that calls a model
must retry the model adapters' transient errors, a step that uses a sandbox the sandbox adapters'
ones, an idempotent handler the in-progress error, and every step Lambda's own errors."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ASL = ROOT / "statemachine" / "agent.asl.json"
LOGIC = ROOT / "lambdas" / "logic"

# The error Powertools raises for a duplicate of an invocation that is still running.
IN_PROGRESS_ERROR = "IdempotencyAlreadyInProgressError"


# --- the README -----------------------------------------------------------------------------------
def readme_section(title: str, text: str | None = None) -> str:
    """The text under the Markdown heading `title` (any level), up to the next heading of the same
    or a higher level."""
    text = README.read_text(encoding="utf-8") if text is None else text
    match = re.search(rf"^(#+) {re.escape(title)}\s*$", text, re.MULTILINE)
    if not match:
        raise AssertionError(f"README has no section {title!r}")
    level = len(match.group(1))
    rest = text[match.end():]
    # A `#` line inside fenced code (a shell comment) is no heading: track fences as CommonMark does.
    fence, kept = None, []
    for line in rest.splitlines(keepends=True):
        if fence is None and re.match(rf"^#{{1,{level}}} ", line):
            break
        opening = re.match(r"^\s{0,3}(`{3,}|~{3,})", line)
        if fence is None:
            fence = opening.group(1) if opening else None
        elif opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence) and not line[opening.end():].strip():
            fence = None
        kept.append(line)
    return "".join(kept)


def markdown_table(section: str) -> list[list[str]]:
    """The rows (cells stripped, header and separator left out) of the first table in `section`."""
    rows: list[list[str]] = []
    for line in section.splitlines():
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        rows.append(cells)
    if len(rows) < 3:
        raise AssertionError("no Markdown table found")
    return rows[2:]


def backticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


@dataclass(frozen=True)
class RetryPromise:
    """One row of the durability table."""

    errors: tuple[str, ...]
    retried: bool
    attempts: int | None = None  # "retried N×": retries after the first attempt
    interval_s: float | None = None  # "backoff from X s"
    max_delay_s: float | None = None  # "(max Y s)", when stated
    full_jitter: bool = False  # "full jitter"
    text: str = ""


def durability_table(text: str | None = None) -> list[RetryPromise]:
    promises = []
    for first, handling, *_ in markdown_table(readme_section("Durability", text)):
        errors = tuple(name for name in backticked(first) if re.fullmatch(r"[A-Za-z][\w.]*", name))
        retried = re.search(r"retried (\d+)\s*×", handling)
        if not retried:
            promises.append(RetryPromise(errors, retried=False, text=handling))
            continue
        interval = re.search(r"from (\d+(?:\.\d+)?) ?s\b", handling)
        max_delay = re.search(r"max (\d+(?:\.\d+)?) ?s\b", handling)
        promises.append(
            RetryPromise(
                errors,
                retried=True,
                attempts=int(retried.group(1)),
                interval_s=float(interval.group(1)) if interval else None,
                max_delay_s=float(max_delay.group(1)) if max_delay else None,
                full_jitter="full jitter" in handling,
                text=handling,
            )
        )
    return promises


def retry_promise(error: str) -> RetryPromise:
    """The durability table's row for `error` (which must be a retried one)."""
    rows = [row for row in durability_table() if row.retried and error in row.errors]
    if len(rows) != 1:
        raise AssertionError(f"the README's durability table should name {error} in exactly one retried row")
    return rows[0]


def retried_errors() -> list[str]:
    return [error for row in durability_table() if row.retried for error in row.errors]


def configuration_table(text: str | None = None) -> dict[str, str]:
    """variable -> its default cell, from the README's configuration table."""
    table: dict[str, str] = {}
    for name_cell, default, *_ in markdown_table(readme_section("Configuration", text)):
        for name in backticked(name_cell):
            table[name] = default
    return table


# --- the workflow definition ------------------------------------------------------------------------
@cache
def _definition_text() -> str:
    return ASL.read_text(encoding="utf-8")


def definition() -> dict:
    return json.loads(_definition_text())


def task_states(states: dict | None = None) -> dict[str, dict]:
    """Every Task state by name, including those inside a Map's ItemProcessor."""
    states = definition()["States"] if states is None else states
    found: dict[str, dict] = {}
    for name, state in states.items():
        if state["Type"] == "Task":
            found[name] = state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            found.update(task_states(processor["States"]))
    return found


def retrier_for(state: dict, error: str) -> dict | None:
    """The first Retry rule of `state` that matches `error` by name (as Step Functions picks it)."""
    for rule in state.get("Retry", []):
        if error in rule["ErrorEquals"] or "States.ALL" in rule["ErrorEquals"]:
            return rule
    return None


def function_variable(state: dict) -> str:
    """`CreateSandboxFunctionArn` for a task whose FunctionName is `${CreateSandboxFunctionArn}`."""
    return re.fullmatch(r"\$\{(\w+)\}", state["Parameters"]["FunctionName"]).group(1)


# --- what the code says each step does ----------------------------------------------------------------
def _names_used(package: Path) -> set[str]:
    return {m for path in package.rglob("*.py") for m in re.findall(r"\b([A-Z]\w+)\(", path.read_text(encoding="utf-8"))}


@cache
def step_sources(state_name: str) -> tuple[str, str]:
    """(handler source, step logic source) of the Task state `state_name`."""
    from statemachine.engine import FUNCTIONS

    _, module = FUNCTIONS[function_variable(task_states()[state_name])]
    handler = (ROOT / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8")
    step_module = re.search(r"from (lambdas\.logic\.steps\.\w+) import", handler).group(1)
    logic = (ROOT / (step_module.replace(".", "/") + ".py")).read_text(encoding="utf-8")
    return handler, logic


def errors_state_must_retry(state_name: str) -> set[str]:
    """The README's retried error classes this step can meet, going by what its code uses."""
    handler, logic = step_sources(state_name)
    model_errors = _names_used(LOGIC / "models")
    sandbox_errors = _names_used(LOGIC / "sandboxes")
    expected = set()
    for error in retried_errors():
        if error.startswith("Lambda."):
            expected.add(error)  # every step is a Lambda invocation
        elif error == IN_PROGRESS_ERROR:
            if "@idempotent_step(" in handler:
                expected.add(error)
        elif error in model_errors and "model_from_spec(" in logic:
            expected.add(error)
        elif error in sandbox_errors and "sandbox_provider(" in logic:
            expected.add(error)
        elif error not in model_errors | sandbox_errors:
            # An error the code above cannot place (e.g. one Step Functions names itself): the
            # steps whose rules name it must still retry it as the README says.
            state = task_states()[state_name]
            if any(error in rule["ErrorEquals"] for rule in state.get("Retry", [])):
                expected.add(error)
    return expected


def expected_waits(promise: RetryPromise, rule: dict) -> list[float]:
    """The wait before each retry the README promises: from its interval, doubling as the rule's
    BackoffRate says ("exponential"), capped at the README's maximum when it states one."""
    rate = rule.get("BackoffRate", 2.0)
    cap = promise.max_delay_s if promise.max_delay_s is not None else rule.get("MaxDelaySeconds", float("inf"))
    return [min(promise.interval_s * rate**k, cap) for k in range(promise.attempts)]
