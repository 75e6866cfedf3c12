"""Boundary mutants (issue 25): each moves a cap by one, drops one member of a list of flags or
masks, or reorders a rule, rather than switching a feature off; the tests named must notice."""

from tools.mutations import ASL, Mutant

ISOLATION = "lambdas/logic/sandboxes/isolation.py"
BOUNDARIES = "tests/test_boundaries.py"
BOUNDS_UNITS = "tests/test_bounds_units.py"

MUTANTS: list[Mutant] = [
    # --- caps moved by one ----------------------------------------------------------------------------
    Mutant("boundary-calls-per-turn-plus-one", "lambdas/logic/steps/agent_turn.py",
           ["tests/test_bounds.py::test_forty_calls_in_one_turn_give_forty_results_and_the_run_succeeds"],
           find="    cap = settings.max_tool_calls\n", replace="    cap = settings.max_tool_calls + 1\n", count=1,
           promise="Bounds: Calls per turn — at most 32 run, the 33rd gets 'not run'"),
    Mutant("boundary-file-size-plus-one", "lambdas/logic/tools/files.py",
           ["tests/test_tools.py::test_oversized_file_content_is_refused_and_nothing_is_written"],
           find="        if size > ctx.max_file_bytes:", replace="        if size > ctx.max_file_bytes + 1:", count=1,
           promise="Bounds: Files — a file one byte over 1 MB is refused"),
    Mutant("boundary-prompt-length-plus-one", "lambdas/logic/events.py",
           [f"{BOUNDS_UNITS}::test_check_prompt_refuses_what_cannot_run"],
           find="    if len(prompt) > max_chars:", replace="    if len(prompt) > max_chars + 1:", count=1,
           promise="Bounds: Prompts — one character over the limit is refused"),
    Mutant("boundary-command-timeout-from-0", "lambdas/logic/config.py",
           [f"{BOUNDS_UNITS}::test_settings_out_of_range_are_clear_errors"],
           find='"PIXIE_COMMAND_TIMEOUT": (120, 1, MAX_COMMAND_TIMEOUT_S),',
           replace='"PIXIE_COMMAND_TIMEOUT": (120, 0, MAX_COMMAND_TIMEOUT_S),', count=1,
           promise="Bounds: Settings — PIXIE_COMMAND_TIMEOUT=0 is an error"),
    Mutant("boundary-iteration-cap-51", "lambdas/logic/limits.py",
           [f"{BOUNDS_UNITS}::test_settings_out_of_range_are_clear_errors"],
           find="MAX_ITERATIONS_CAP = 50 ", replace="MAX_ITERATIONS_CAP = 51 ", count=1,
           promise="Bounds: History — iterations capped at 50, 51 refused"),
    Mutant("boundary-result-paths-one-char-short", "lambdas/logic/steps/get_sandbox_url.py",
           [f"{BOUNDARIES}::test_the_result_lists_paths_up_to_exactly_2000_characters"],
           find="        if size > MAX_RESULT_FILES_JSON_CHARS:", replace="        if size >= MAX_RESULT_FILES_JSON_CHARS:", count=1,
           promise="Bounds: Result — paths up to 2,000 characters listed"),
    Mutant("boundary-result-paths-one-char-over", "lambdas/logic/steps/get_sandbox_url.py",
           [f"{BOUNDARIES}::test_the_result_lists_paths_up_to_exactly_2000_characters"],
           find="        if size > MAX_RESULT_FILES_JSON_CHARS:", replace="        if size > MAX_RESULT_FILES_JSON_CHARS + 1:", count=1,
           promise="Bounds: Result — paths up to 2,000 characters listed"),
    Mutant("boundary-capture-head-plus-one", "lambdas/logic/sandboxes/local.py", [BOUNDARIES],
           find="CAPTURE_HEAD_BYTES = 64_000", replace="CAPTURE_HEAD_BYTES = 64_001", count=1,
           promise="Security model: Limits — output kept to 64 KB head + 64 KB tail"),
    Mutant("boundary-capture-tail-tenfold", "lambdas/logic/sandboxes/local.py", [BOUNDARIES],
           find="CAPTURE_TAIL_BYTES = 64_000", replace="CAPTURE_TAIL_BYTES = 640_000", count=1,
           promise="Security model: Limits — output kept to 64 KB head + 64 KB tail"),
    Mutant("boundary-capture-head-off-by-one", "lambdas/logic/sandboxes/local.py", [BOUNDARIES],
           find="        room = CAPTURE_HEAD_BYTES - len(self.head)", replace="        room = CAPTURE_HEAD_BYTES - 1 - len(self.head)", count=1,
           promise="Security model: Limits — output kept to 64 KB head + 64 KB tail"),
    Mutant("boundary-reply-cap-doubled", "lambdas/logic/steps/agent_turn.py",
           ["tests/test_bounds.py::test_a_reply_over_the_limit_is_not_carried_out_and_the_model_is_told"],
           find="    if size > settings.max_reply_chars:", replace="    if size > 2 * settings.max_reply_chars:", count=1,
           promise="Bounds: Replies — a reply over PIXIE_MAX_REPLY_CHARS is not carried out"),
    # --- one member of a list dropped -----------------------------------------------------------------
    Mutant("boundary-bwrap-without-new-session", ISOLATION,
           ["tests/test_isolation.py::test_the_command_runs_in_a_session_of_its_own"],
           find='"--die-with-parent", "--new-session"]', replace='"--die-with-parent"]', count=1,
           promise="Security model: Processes — a session of its own"),
    Mutant("boundary-shadow-unmasked", ISOLATION,
           ["tests/test_isolation_root.py::test_as_root_a_run_whose_commands_try_to_undo_the_sandbox_gets_nowhere"],
           find='MASKED_FILES = ("/etc/shadow", ', replace="MASKED_FILES = (", count=1,
           promise="Security model: Files — /etc/shadow masked"),
]



# --- a rule reordered --------------------------------------------------------------------------------
def _iteration_limit_before_summary(definition: dict) -> None:
    """Router: the iteration-limit rule (-> MaxIterationsReached) moved before the summary rule, so
    a run that summarizes on its last allowed turn fails instead of succeeding."""
    choices = definition["States"]["Router"]["Choices"]
    limit = next(i for i, c in enumerate(choices) if c.get("Next") == "MaxIterationsReached")
    summary = next(i for i, c in enumerate(choices) if c.get("Variable") == "$.hasSummary")
    choices.insert(summary, choices.pop(limit))


MUTANTS += [
    Mutant("boundary-router-limit-before-summary", ASL,
           ["tests/test_last_turn.py::test_a_last_turn_that_writes_a_file_and_summarizes_runs_its_tools_and_succeeds"],
           edit_json=_iteration_limit_before_summary,
           promise="Bounds: History — a summary on the last allowed turn succeeds"),
]
