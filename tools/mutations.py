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
    # The README promise this mutant breaks, as "Section: label" (e.g. "Security model: no
    # capabilities"), so a check can tell which promises have a mutant.
    promise: str = ""


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
    """InvalidEvent added to CreateSandbox's first rule that really retries (MaxAttempts > 0)."""
    rule = next(r for r in definition["States"]["CreateSandbox"]["Retry"] if r.get("MaxAttempts", 3) > 0)
    rule["ErrorEquals"].append("InvalidEvent")


MUTANTS: list[Mutant] = [
    # --- exactly-once effects ------------------------------------------------------------------------
    Mutant("idempotency-no-op", "lambdas/handlers/shared.py", TESTS_IDEMPOTENCY,
           find="return guarded(event, context)", replace="return handler(event, context)", count=1, promise="Durability: IdempotencyAlreadyInProgressError — effects happen exactly once"),
    # --- the workflow's retry rules (issue 15's list) --------------------------------------------------
    Mutant("asl-sandbox-errors-never-retried", ASL, TESTS_ASL, edit_json=drop_rules("SandboxThrottled"), promise="Durability: SandboxThrottled"),
    Mutant("asl-no-jitter", ASL, TESTS_ASL, edit_json=remove_jitter, promise="Durability: ModelThrottled — full jitter"),
    Mutant("asl-model-backoff-1s", ASL, TESTS_ASL, edit_json=set_in_rules("ModelThrottled", "IntervalSeconds", 1), promise="Durability: ModelThrottled — backoff from 5 s"),
    Mutant("asl-model-throttled-dropped", ASL, TESTS_ASL, edit_json=drop_error("ModelThrottled"), promise="Durability: ModelThrottled"),
    Mutant("asl-in-progress-rule-removed", ASL, TESTS_ASL, edit_json=drop_rules("IdempotencyAlreadyInProgressError"), promise="Durability: IdempotencyAlreadyInProgressError"),
    Mutant("asl-lambda-5-attempts", ASL, TESTS_ASL, edit_json=set_in_rules("Lambda.ServiceException", "MaxAttempts", 5), promise="Durability: Lambda.ServiceException — retried 10×"),
    Mutant("asl-lambda-1-attempt", ASL, TESTS_ASL, edit_json=set_in_rules("Lambda.ServiceException", "MaxAttempts", 1), promise="Durability: Lambda.ServiceException — retried 10×"),
    Mutant("asl-lambda-three-errors-dropped", ASL, TESTS_ASL, edit_json=keep_only("Lambda.ServiceException"), promise="Durability: Lambda.ServiceException — and the three other Lambda errors"),
    Mutant("asl-invalid-event-retried", ASL, TESTS_ASL, edit_json=retry_invalid_event, promise="Durability: InvalidEvent"),
    # --- cleanup ----------------------------------------------------------------------------------------
    Mutant("cleanup-not-marking-failed", "lambdas/logic/steps/cleanup_sandbox.py", TESTS_CLEANUP,
           find="        status=status,\n", replace="", count=1, promise="Durability: anything else — CleanupSandbox marks the run FAILED"),
    Mutant("cleanup-not-killing-the-sandbox", "lambdas/logic/steps/cleanup_sandbox.py", TESTS_CLEANUP,
           find="sandbox.kill()", replace="sandbox.id", count=1, promise="Durability: anything else — CleanupSandbox kills the E2B sandbox"),
    Mutant("local-kill-not-stopping-the-preview", "lambdas/logic/sandboxes/local.py", [CLEANUP_PREVIEW],
           find="        stop_preview(self.id)\n        kill_running_commands(self.id)", replace="        kill_running_commands(self.id)", count=1, promise="Durability: anything else — CleanupSandbox stops the local preview"),
    # --- the CLI ----------------------------------------------------------------------------------------
    Mutant("cli-interrupt-exits-1", "pixie/cli.py", [f"{CLI}::test_ctrl_c_during_a_run_stops_it_saves_it_and_exits_130"],
           find="    sys.stderr.flush()\n    return 130", replace="    sys.stderr.flush()\n    return 1", count=1, promise="CLI: Stopping a run — exit code 130"),
    Mutant("cli-openai-key-default-ignored", "pixie/run_checks.py", [f"{CLI}::test_with_an_openai_key_the_default_model_is_gpt_4_1"],
           find="if not has_key and not base_url:", replace="if True:", count=1, promise="CLI: pixie run — gpt-4.1 by default with OPENAI_API_KEY"),
    Mutant("cli-template-ignored", "pixie/cli.py", [f"{CLI}::test_e2b_run_with_a_template_and_verbose_logs"],
           find="template=args.template,", replace='template="pixie",', count=1, promise="CLI: pixie run — --template"),
    Mutant("cli-verbose-ignored", "pixie/cli.py", [f"{CLI}::test_e2b_run_with_a_template_and_verbose_logs"],
           find='log_level="INFO" if args.verbose else "ERROR",\n        extra_env', replace='log_level="ERROR",\n        extra_env', count=1, promise="CLI: pixie run — --verbose"),
    Mutant("cli-send-stack-ignored", "pixie/aws_commands.py", [f"{CLI}::test_send_with_stack_runs_agent_asl_json_deployed_on_moto"],
           find='stack_outputs(stack_name=args.stack, required=("StateMachineArn",))\n        dead_letter_queue_url',
           replace='stack_outputs(stack_name="PixieStack", required=("StateMachineArn",))\n        dead_letter_queue_url', count=1, promise="CLI: pixie send — --stack"),
    # --- secrets ----------------------------------------------------------------------------------------
    Mutant("secrets-cache-0s", "lambdas/logic/secrets.py", ["tests/test_promises_secrets.py", DOCS],
           find="SECRET_CACHE_SECONDS = 300", replace="SECRET_CACHE_SECONDS = 0", count=1, promise="Deploy: secrets cached 5 minutes"),
    # --- this round's promises: one mutant each (issues 8-14) -----------------------------------------
    Mutant("bounds-model-ids-kept-when-shared", "lambdas/logic/tool_calls.py",
           ["tests/test_bounds.py::test_calls_with_shared_empty_null_and_huge_ids_all_run_and_get_one_result_each",
            "tests/test_bounds.py::test_duplicate_and_missing_ids_over_http_give_the_model_a_valid_next_request"],
           find="and call_id not in taken:", replace=":", count=1, promise="Bounds: Call identity"),
    Mutant("bounds-no-iteration-cap", "lambdas/logic/limits.py",
           ["tests/test_bounds.py::test_an_iteration_count_above_the_cap_exits_2_naming_the_cap"],
           find="MAX_ITERATIONS_CAP = 50", replace="MAX_ITERATIONS_CAP = 100_000", count=1, promise="Bounds: History — iterations capped at 50"),
    Mutant("bounds-summary-not-cut", "lambdas/logic/summary.py",
           ["tests/test_bounds.py::test_a_hundred_thousand_character_summary_is_cut_to_four_thousand"],
           find="return fit_json(summary, MAX_SUMMARY_JSON_CHARS, SUMMARY_CUT_NOTE)", replace="return summary", count=1, promise="Bounds: Result — the summary cut to 4,000 characters"),
    Mutant("isolation-network-shared", "lambdas/logic/sandboxes/isolation.py",
           ["tests/test_isolation.py::test_no_network_by_default_and_allow_network_gives_it_back"],
           find="    if policy.allow_network:\n        argv.append(\"--share-net\")",
           replace="    argv.append(\"--share-net\")", count=1, promise="Security model: Network — none by default"),
    Mutant("terminal-escapes-passed-through", "pixie/terminal_text.py",
           ["tests/test_cli_runs.py::test_no_raw_escape_sequence_from_the_model_reaches_the_terminal"],
           find="    return (_UNSAFE_ONE_LINE if one_line else _UNSAFE).sub(_escape, str(text))",
           replace="    return str(text)", count=1, promise="CLI: pixie run — no raw escape sequence from the model reaches the terminal"),
    Mutant("continue-files-not-restored", "lambdas/logic/continuation.py",
           ["tests/test_continue_resume.py::test_continue_without_a_kept_version_restores_the_files_from_the_table"],
           find="            restore_files(sandbox, files)", replace="            pass", count=1, promise="CLI: pixie run --continue — its files restored into a new sandbox"),
    Mutant("duplicate-event-starts-a-run", "lambdas/logic/steps/create_sandbox.py",
           ["tests/test_run_endings.py::test_a_repeated_delivery_of_one_event_creates_no_second_sandbox"],
           find="    if owner != run_id:", replace="    if False:", count=1, promise="How it works: one run per event"),
    Mutant("parts-never-expire", "lambdas/dal/network_state.py",
           ["tests/test_run_endings.py::test_every_item_a_run_writes_carries_expires_at"],
           find='attribute: piece, "expiresAt": expiry}', replace="attribute: piece}", count=1,
           promise="How it works: every item carries expiresAt — PART# items included"),
    Mutant("bedrock-throttling-not-retried", "lambdas/logic/models/bedrock_model.py",
           ["tests/test_bedrock_model.py::test_throttled_past_the_sdk_retries_is_model_throttled"],
           find='return ModelThrottled(f"{self.name}: throttled after retries: {detail}")',
           replace='return ModelRequestRejected(f"{self.name}: throttled after retries: {detail}")', count=1, promise="Durability: ModelThrottled — Bedrock throttling after the SDK's retries"),
    Mutant("console-token-not-checked", "pixie/console/security.py",
           ["tests/test_console_api.py::test_requests_without_the_token_are_refused"],
           find="return bool(candidate) and hmac.compare_digest(candidate.encode(), self.token.encode())",
           replace="return True", count=1, promise="Console: Security — the token required on every request"),
]

# Each area of work keeps its mutants in a module of its own, tools/mutations_<area>.py, defining
# `MUTANTS: list[Mutant]`; they are collected here so `make mutants` runs them all.
def _area_mutants() -> list[Mutant]:
    import importlib
    import pkgutil
    from pathlib import Path

    found: list[Mutant] = []
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        if info.name.startswith("mutations_"):
            found += importlib.import_module(f"tools.{info.name}").MUTANTS
    return found


MUTANTS += _area_mutants()
