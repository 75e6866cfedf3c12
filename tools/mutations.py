"""The named mutants `make mutants` applies, one at a time (tools/mutants.py). One entry per broken
promise: what it breaks, where, and the tests that must notice. To add one, append a Mutant:

    Mutant("cli-json-ignored", "pixie/cli.py", TESTS_CLI,
           find="if args.json:", replace="if False:", count=1)
    Mutant("asl-no-catch", ASL, TESTS_ASL, edit_json=lambda d: d["States"]["AgentTurn"].pop("Catch"))

`find` must occur exactly `count` times (every occurrence when count is None), so a mutant whose
code moved is reported as NOT APPLIED instead of silently testing nothing. Keep each mutant's tests
to the files that should kill it: the whole run should stay well under 15 minutes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

ASL = "statemachine/agent.asl.json"

# Test selections (pytest arguments). The quick static checks go first: with -x the run stops
# at the first failure.
DOCS = "tests/test_docs_match_code.py"
DURABILITY = "tests/test_promises_durability.py"
CLI = "tests/test_promises_cli.py"
TESTS_ASL = [DOCS, DURABILITY]
TESTS_IDEMPOTENCY = [f"{DURABILITY}::test_a_retry_while_the_first_attempt_runs_is_answered_in_progress_and_nothing_happens_twice"]
CLEANUP_PREVIEW = f"{DURABILITY}::test_cleanup_stops_the_preview_the_run_started_and_marks_the_run_failed_with_the_cause"
TESTS_CLEANUP = [
    CLEANUP_PREVIEW,
    f"{DURABILITY}::test_cleanup_records_a_model_failure_in_the_table",
    "tests/test_end_to_end_e2b.py::test_e2b_sandbox_is_killed_when_the_run_fails",
]


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # relative to the repository root
    tests: list[str]
    find: str = ""
    replace: str = ""
    count: int | None = None
    edit_json: Callable[[dict], None] | None = field(default=None, compare=False)


# --- helpers for editing the ASL ---------------------------------------------------------------------
def task_states(states: dict) -> Iterator[dict]:
    for state in states.values():
        if state["Type"] == "Task":
            yield state
        if "ItemProcessor" in state:
            yield from task_states(state["ItemProcessor"]["States"])


def retry_rules(definition: dict, error: str | None = None) -> Iterator[dict]:
    """Every Retry rule of every Task (that names `error`, when given)."""
    for state in task_states(definition["States"]):
        for rule in state.get("Retry", []):
            if error is None or error in rule["ErrorEquals"]:
                yield rule


def drop_rules(error: str) -> Callable[[dict], None]:
    def edit(definition: dict) -> None:
        for state in task_states(definition["States"]):
            state["Retry"] = [r for r in state.get("Retry", []) if error not in r["ErrorEquals"]]

    return edit


def set_in_rules(error: str, key: str, value) -> Callable[[dict], None]:
    def edit(definition: dict) -> None:
        for rule in retry_rules(definition, error):
            rule[key] = value

    return edit


def remove_jitter(definition: dict) -> None:
    for rule in retry_rules(definition):
        rule.pop("JitterStrategy", None)


def drop_error(error: str) -> Callable[[dict], None]:
    def edit(definition: dict) -> None:
        for rule in retry_rules(definition, error):
            rule["ErrorEquals"].remove(error)

    return edit


def keep_only(error: str) -> Callable[[dict], None]:
    """The rule that names `error` keeps only it (the other errors it listed are no longer retried)."""

    def edit(definition: dict) -> None:
        for rule in retry_rules(definition, error):
            rule["ErrorEquals"] = [error]

    return edit


def retry_invalid_event(definition: dict) -> None:
    definition["States"]["CreateSandbox"]["Retry"][0]["ErrorEquals"].append("InvalidEvent")


MUTANTS: list[Mutant] = [
    # --- exactly-once effects ------------------------------------------------------------------------
    Mutant("idempotency-no-op", "lambdas/handlers/shared.py", TESTS_IDEMPOTENCY,
           find="return guarded(event, context)", replace="return handler(event, context)", count=1),
    # --- the workflow's retry rules (issue 15's list) --------------------------------------------------
    Mutant("asl-sandbox-errors-never-retried", ASL, TESTS_ASL, edit_json=drop_rules("SandboxThrottled")),
    Mutant("asl-no-jitter", ASL, TESTS_ASL, edit_json=remove_jitter),
    Mutant("asl-model-backoff-1s", ASL, TESTS_ASL, edit_json=set_in_rules("ModelThrottled", "IntervalSeconds", 1)),
    Mutant("asl-model-throttled-dropped", ASL, TESTS_ASL, edit_json=drop_error("ModelThrottled")),
    Mutant("asl-in-progress-rule-removed", ASL, TESTS_ASL, edit_json=drop_rules("IdempotencyAlreadyInProgressError")),
    Mutant("asl-lambda-5-attempts", ASL, TESTS_ASL, edit_json=set_in_rules("Lambda.ServiceException", "MaxAttempts", 5)),
    Mutant("asl-lambda-1-attempt", ASL, TESTS_ASL, edit_json=set_in_rules("Lambda.ServiceException", "MaxAttempts", 1)),
    Mutant("asl-lambda-three-errors-dropped", ASL, TESTS_ASL, edit_json=keep_only("Lambda.ServiceException")),
    Mutant("asl-invalid-event-retried", ASL, TESTS_ASL, edit_json=retry_invalid_event),
    # --- cleanup ----------------------------------------------------------------------------------------
    Mutant("cleanup-not-marking-failed", "lambdas/logic/steps/cleanup_sandbox.py", TESTS_CLEANUP,
           find='status="FAILED",', replace="", count=1),
    Mutant("cleanup-not-killing-the-sandbox", "lambdas/logic/steps/cleanup_sandbox.py", TESTS_CLEANUP,
           find="sandbox.kill()", replace="sandbox.id", count=1),
    Mutant("local-kill-not-stopping-the-preview", "lambdas/logic/sandboxes/local.py", [CLEANUP_PREVIEW],
           find='"""Stops the preview; the project directory stays for inspection."""\n        stop_preview(self.id)',
           replace='"""Stops the preview; the project directory stays for inspection."""', count=1),
    # --- the CLI ----------------------------------------------------------------------------------------
    Mutant("cli-interrupt-exits-1", "pixie/cli.py", [f"{CLI}::test_ctrl_c_during_a_run_stops_it_saves_it_and_exits_130"],
           find="stopped and saved (pixie show {run_id})\\n\")\n        return 130",
           replace="stopped and saved (pixie show {run_id})\\n\")\n        return 1", count=1),
    Mutant("cli-openai-key-default-ignored", "pixie/cli.py", [f"{CLI}::test_with_an_openai_key_the_default_model_is_gpt_4_1"],
           find='if os.environ.get("OPENAI_API_KEY"):', replace="if False:", count=1),
    Mutant("cli-template-ignored", "pixie/cli.py", [f"{CLI}::test_e2b_run_with_a_template_and_verbose_logs"],
           find="template=args.template,", replace='template="pixie",', count=1),
    Mutant("cli-verbose-ignored", "pixie/cli.py", [f"{CLI}::test_e2b_run_with_a_template_and_verbose_logs"],
           find='log_level="INFO" if args.verbose else "ERROR",', replace='log_level="ERROR",', count=1),
    Mutant("cli-send-stack-ignored", "pixie/cli.py", [f"{CLI}::test_send_with_stack_runs_agent_asl_json_deployed_on_moto"],
           find='stack_outputs(stack_name=args.stack, required=("StateMachineArn",))',
           replace='stack_outputs(stack_name="PixieStack", required=("StateMachineArn",))', count=1),
    # --- secrets ----------------------------------------------------------------------------------------
    Mutant("secrets-cache-0s", "lambdas/logic/secrets.py", ["tests/test_promises_secrets.py", DOCS],
           find="SECRET_CACHE_SECONDS = 300", replace="SECRET_CACHE_SECONDS = 0", count=1),
]
