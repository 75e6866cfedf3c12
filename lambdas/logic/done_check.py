"""The done-check: before a run accepts the model's <task_summary>, its result is checked. The
preview must answer 2xx for `/`, and the project's own check must pass where there is one: the
user's command (--check-command, detail.checkCommand, PIXIE_CHECK_COMMAND), otherwise `npm test`
and `npm run build` when package.json defines those scripts. With approvals on (--approve commands
or all) the package.json scripts are not run: the model wrote them, and a command it wrote runs only
on a person's yes; the user's own check command still runs. A failure goes back to the model as
a message (bounded) with another turn; after PIXIE_CHECK_LIMIT failed checks the run ends
CheckFailed with the output in its cause. Failed checks are counted from the conversation (one
notice per failure, at a fixed key), so a retried or resumed step decides the same."""

from __future__ import annotations

import json
from dataclasses import dataclass

from lambdas.logic.errors import ToolError
from lambdas.logic.limits import MAX_CHECK_CAUSE_JSON_CHARS, MAX_CHECK_OUTPUT_CHARS, fit_json
from lambdas.logic.sandboxes.base import CommandResult, Sandbox
from lambdas.logic.truncate import bound_text

CHECK_FAILED = "CheckFailed"
CHECK_NOTICE = "check"  # the name in notice_message_key(turn, CHECK_NOTICE)
# What `npm init` writes as the test script: a project without tests, not a failing check.
NPM_PLACEHOLDER_TEST = 'echo "Error: no test specified" && exit 1'


@dataclass(frozen=True)
class CheckFailure:
    what: str  # "the preview" or the command
    output: str  # what it said, bounded


SKIPPED_FOR_APPROVALS = (
    "The project's own check (npm test / npm run build from package.json) was skipped: this run's "
    "commands need approval, and those scripts are commands you wrote; only the preview was checked."
)


def model_scripts_skipped(approve: str, configured: str | None) -> bool:
    """Under --approve commands|all, package.json's scripts (written by the model) are not run
    unasked; a check command the user gave is theirs and runs."""
    return approve != "none" and not configured


def project_check_commands(sandbox: Sandbox, sandbox_kind: str, configured: str | None, approve: str = "none") -> list[str]:
    """The commands that check the project: the user's one, or the package.json scripts (none
    when commands need approval: see model_scripts_skipped)."""
    if configured:
        return [configured]
    if model_scripts_skipped(approve, configured):
        return []
    try:
        manifest = json.loads(sandbox.read_file("package.json"))
    except (ToolError, ValueError):
        return []  # no package.json, or one npm could not read either (the preview check still runs)
    scripts = manifest.get("scripts") if isinstance(manifest, dict) else None
    if not isinstance(scripts, dict):
        return []
    commands = []
    test = scripts.get("test")
    if isinstance(test, str) and test.strip() and test.strip() != NPM_PLACEHOLDER_TEST:
        commands.append("npm test")
    # On E2B the dev server serves the project from its own build folder (Next.js: .next), which
    # `npm run build` would overwrite under it; its answer for `/` already says whether it compiles.
    if isinstance(scripts.get("build"), str) and sandbox_kind != "e2b":
        commands.append("npm run build")
    return commands


def _command_output(result: CommandResult, timeout_s: int) -> str:
    if result.timed_out:
        status = f"killed after the {timeout_s}s timeout"
    else:
        status = f"exit code {result.exit_code}"
    text = f"{status}\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    return bound_text(text, MAX_CHECK_OUTPUT_CHARS)


def check_result(
    sandbox: Sandbox, sandbox_kind: str, configured: str | None, timeout_s: int, approve: str = "none"
) -> list[CheckFailure]:
    """Runs every check; the ones that failed (none: the result is accepted)."""
    failures = []
    status, detail = sandbox.preview_status(timeout_s)
    if status is None or not 200 <= status < 300:
        answered = f"answered {status}" if status is not None else "did not answer"
        failures.append(CheckFailure("the preview", bound_text(f"GET / {answered}. {detail}".strip(), MAX_CHECK_OUTPUT_CHARS)))
    for command in project_check_commands(sandbox, sandbox_kind, configured, approve):
        result = sandbox.run_command(command, timeout_s)
        if result.timed_out or result.exit_code != 0:
            failures.append(CheckFailure(f"`{command}`", _command_output(result, timeout_s)))
    return failures


def describe_failures(failures: list[CheckFailure]) -> str:
    return "\n".join(f"- {f.what} failed:\n{f.output}" for f in failures)


def check_notice(failures: list[CheckFailure], failed: int, limit: int, max_chars: int, scripts_skipped: bool = False) -> str:
    """What the model is told when its result failed the check (bounded to a tool result's size)."""
    skipped = f"{SKIPPED_FOR_APPROVALS}\n" if scripts_skipped else ""
    text = (
        f"[pixie] Your <task_summary> was not accepted: the result was checked and it failed "
        f"(failed check {failed} of at most {limit}).\n{skipped}{describe_failures(failures)}\n"
        "Fix the cause, then write a <task_summary> again. "
        f"After {limit} failed checks the run ends CheckFailed."
    )
    return bound_text(text, max_chars)


def check_failed_cause(failures: list[CheckFailure], failed: int, out_of_turns: bool) -> str:
    """CheckFailed's cause: why the run ends, and the last check's output (a state payload: bounded)."""
    why = (
        f"The result failed its done-check {failed} time(s) and no turn is left to fix it"
        if out_of_turns
        else f"The result failed its done-check {failed} times (the limit, PIXIE_CHECK_LIMIT)"
    )
    text = f"{why}. The last check:\n{describe_failures(failures)}"
    return fit_json(text, MAX_CHECK_CAUSE_JSON_CHARS)


def failed_checks(message_keys: list[str]) -> int:
    """Failed checks so far: one notice each in the conversation."""
    return sum(1 for key in message_keys if key.endswith(f"#0user#{CHECK_NOTICE}"))
