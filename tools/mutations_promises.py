"""Mutants for README promises that had none (issue 25's README-to-mutant check,
tests/test_readme_mutants.py): one per CLI command row and console API row left uncovered."""

from tools.mutations import Mutant

BACKENDS = "pixie/console/backends.py"
CONSOLE_RUNS_LISTED = "tests/test_console_api.py::test_runs_made_by_pixie_run_in_the_same_home_are_listed"

MUTANTS: list[Mutant] = [
    # --- CLI ---------------------------------------------------------------------------------------------
    Mutant("cli-prune-takes-the-newer-runs", "pixie/run_removal.py",
           ["tests/test_run_removal.py::test_prune_takes_the_runs_older_than_the_age_given"],
           find="_started(pixie_home, record) < cutoff", replace="_started(pixie_home, record) > cutoff", count=1,
           promise="CLI: pixie prune --older-than — only runs older than AGE"),
    Mutant("cli-send-continue-drops-continue-from", "pixie/aws_runs.py",
           ["tests/test_continue_resume_aws.py::test_send_continue_puts_continue_from_in_the_event"],
           find='**({"continueFrom": continue_from} if continue_from else {})', replace="**{}", count=1,
           promise="CLI: pixie send --continue — detail.continueFrom in the event"),
    Mutant("cli-watch-loses-the-cause", "pixie/aws_runs.py",
           ["tests/test_cli_aws.py::test_watch_returns_the_error_and_cause_of_a_failed_execution"],
           find='        "cause": description.get("cause"),\n', replace='        "cause": None,\n', count=1,
           promise="CLI: pixie watch — prints its result, error and cause"),
    Mutant("cli-show-aws-ignores-the-execution", "pixie/aws_runs.py",
           ["tests/test_cli_aws.py::test_cli_show_aws_with_the_stack_adds_the_execution"],
           find="    if sfn_client is not None and state_machine_arn:\n", replace="    if False:\n", count=1,
           promise="CLI: pixie show --aws — with the execution's status and history"),
    Mutant("cli-version-without-the-number", "pixie/cli.py", ["tests/test_cli_runs.py::test_version"],
           find='version=f"pixie {__version__}"', replace='version="pixie"', count=1,
           promise="CLI: pixie --version — the version"),
    # --- Console -----------------------------------------------------------------------------------------
    Mutant("console-runs-without-turns", "pixie/console/views.py", [CONSOLE_RUNS_LISTED],
           find='        "turns": record.get("iterations") or len(view["turns"]),\n', replace='        "turns": 0,\n', count=1,
           promise="Console: Runs — with status, title, model, turns, tokens"),
    Mutant("console-runs-oldest-first", BACKENDS, [CONSOLE_RUNS_LISTED],
           find='key=lambda r: r.get("startedAt") or "", reverse=True)', replace='key=lambda r: r.get("startedAt") or "")', count=1,
           promise="Console: GET /api/runs — newest first"),
    Mutant("console-run-costs-nothing", "pixie/console/views.py",
           ["tests/test_console_api.py::test_tokens_and_cost_per_turn_from_the_history"],
           find='            "costUsd": estimate_cost(model, tokens_in, tokens_out, cached, written),',
           replace='            "costUsd": None,', count=1,
           promise="Console: GET /api/runs/RUN_ID — turns with tokens and cost each"),
    Mutant("console-events-ignore-last-event-id", "pixie/console/app.py",
           ["tests/test_console_api.py::test_events_stream_live_then_replay_and_resume"],
           find='resume = request.headers.get("last-event-id") or request.query_params.get("after") or "0"',
           replace='resume = request.query_params.get("after") or "0"', count=1,
           promise="Console: GET /api/runs/RUN_ID/events — Last-Event-ID resumes"),
    Mutant("console-diff-never-found", BACKENDS, [CONSOLE_RUNS_LISTED],
           find="            return run_diff(self.home, run_id)\n", replace="            return None\n", count=1,
           promise="Console: GET /api/runs/RUN_ID/diff — what the run changed"),
    Mutant("console-config-continue-wrong", BACKENDS,
           ["tests/test_console_api.py::test_config_says_what_the_console_offers"],
           find='            "continue": CONTINUE_SUPPORTED,\n', replace='            "continue": not CONTINUE_SUPPORTED,\n', count=1,
           promise="Console: GET /api/config — what this console offers"),
    Mutant("console-aws-takes-choices", BACKENDS,
           ["tests/test_console_aws.py::test_starts_a_run_with_put_events_and_only_a_prompt"],
           find="        if choices or continue_from is not None:\n", replace="        if continue_from is not None:\n", count=1,
           promise="Console: --aws — runs start with PutEvents, a prompt only"),
]
