"""Mutants for the areas where issue 25's audit saw mutants survive: each breaks a promise partly,
and the test named observes it from outside (a header, a typed error, a real run, a command)."""

from tools.mutations import Mutant

CONSOLE_HEADERS = ["tests/test_console_api.py::test_pages_cannot_be_framed_by_other_sites_and_run_no_inline_script"]
OPENAI = "lambdas/logic/models/openai_model.py"

MUTANTS: list[Mutant] = [
    Mutant("console-frameable", "pixie/console/security.py", CONSOLE_HEADERS,
           find="frame-ancestors 'none'; ", replace="", count=1,
           promise="Console: Security — no other site may frame the console"),
    Mutant("console-csp-allows-inline-scripts", "pixie/console/security.py", CONSOLE_HEADERS,
           find="script-src 'self'; ", replace="script-src 'self' 'unsafe-inline'; ", count=1,
           promise="Console: Security — a Content-Security-Policy runs only the console's own scripts"),
    Mutant("openai-408-rejected", OPENAI,
           ["tests/test_openai_model.py::test_request_timeout_408_forever_is_unavailable_not_rejected"],
           find="if status >= 500 or status == 408:", replace="if status >= 500:", count=1,
           promise="Durability: ModelThrottled — OpenAI's 408 is ModelUnavailable"),
    Mutant("openai-read-timeout-1200s", OPENAI,
           ["tests/test_openai_model.py::test_a_server_may_be_silent_for_120_s_between_pieces_by_default"],
           find="        read_timeout_s: float = 120,\n", replace="        read_timeout_s: float = 1200,\n", count=1,
           promise="Durability: ModelThrottled — 120 s without a byte is ModelUnavailable"),
    Mutant("bedrock-unknown-5xx-rejected", "lambdas/logic/models/bedrock_model.py",
           ["tests/test_bedrock_model.py::test_errors_map_to_the_typed_errors_the_state_machine_retries_or_not"],
           find="if name in UNAVAILABLE or (isinstance(status, int) and status >= 500):", replace="if name in UNAVAILABLE:", count=1,
           promise="Durability: ModelThrottled — any Bedrock 5xx is ModelUnavailable"),
    Mutant("terminal-passes-bidi-isolates", "pixie/terminal_text.py",
           ["tests/test_display.py::test_every_bidi_override_isolate_and_mark_is_written_out"],
           find="\\u202a-\\u202e\\u2066-\\u2069]", replace="\\u202a-\\u202e]", count=2,
           promise="CLI: pixie run — control and bidi characters a model wrote arrive escaped"),
    Mutant("cli-sighup-not-handled", "pixie/local_run.py",
           ["tests/test_cli_interrupts.py::test_one_signal_stops_a_run_blocked_on_the_model_within_seconds_and_saves_it"],
           find='("SIGINT", "SIGTERM", "SIGHUP")', replace='("SIGINT", "SIGTERM")', count=1,
           promise="CLI: Stopping a run — SIGHUP as SIGTERM"),
    Mutant("isolation-tmp-unbounded", "lambdas/logic/sandboxes/isolation.py",
           ["tests/test_isolation.py::test_the_private_tmp_is_512_mb"],
           find='argv += [*size, "--tmpfs", "/tmp", ', replace='argv += ["--tmpfs", "/tmp", ', count=1,
           promise="Security model: Files — a private /tmp of 512 MB"),
]

JOURNAL = "tests/test_journal_writes.py"
MUTANTS += [
    Mutant("run-record-written-in-place", "pixie/runs.py",
           [f"{JOURNAL}::test_a_run_record_write_cut_short_leaves_the_previous_record_whole"],
           find='    temporary = path.with_suffix(".json.tmp")\n', replace="    temporary = path\n", count=1,
           promise="CLI: pixie show — a run's record is replaced whole, never half-written"),
    Mutant("state-file-written-in-place", "pixie/run_journal.py",
           [f"{JOURNAL}::test_a_state_write_cut_short_leaves_the_previous_state_whole"],
           find='    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")\n', replace="    temporary = path\n", count=1,
           promise="CLI: pixie resume — from a state file replaced whole, never half-written"),
    Mutant("resume-loses-idempotency-records", "pixie/run_journal.py",
           [f"{JOURNAL}::test_the_saved_state_keeps_only_this_runs_items_and_idempotency_records"],
           find=' or _run_of_record(item) == self.run_id]', replace="]", count=1,
           promise="CLI: pixie resume — completed steps not redone (their idempotency records kept)"),
    Mutant("saved-state-keeps-other-runs-records", "pixie/run_journal.py",
           [f"{JOURNAL}::test_the_saved_state_keeps_only_this_runs_items_and_idempotency_records",
            "tests/test_console_api.py::test_a_runs_saved_state_holds_its_own_idempotency_records_not_other_runs"],
           find=' or _run_of_record(item) == self.run_id]', replace=" or _run_of_record(item) is not None]", count=1,
           promise="CLI: pixie resume — a run's saved state holds its own records, not other console runs'"),
    Mutant("resume-forgets-records-saved-before-keys-named-the-run", "pixie/run_journal.py",
           [f"{JOURNAL}::test_a_state_saved_before_records_named_their_run_still_resumes_with_them"],
           find="[_keyed_to(run_id, _without_wait(item)) for item", replace="[_without_wait(item) for item", count=1,
           promise="CLI: pixie resume — completed steps not redone (their idempotency records kept)"),
]

TTL_TESTS = ["tests/test_promises_durability.py::test_a_retry_while_the_first_attempt_runs_is_answered_in_progress_and_nothing_happens_twice"]
MUTANTS += [
    Mutant("idempotency-records-without-ttl", "lambdas/handlers/shared.py", TTL_TESTS,
           find='        expiry_attr="expiresAt",', replace='        expiry_attr="expiration",', count=1,
           promise="How it works: every item carries expiresAt — the idempotency records too"),
    Mutant("idempotency-records-expire-in-an-hour", "lambdas/handlers/shared.py", TTL_TESTS,
           find="        expires_after_seconds=RUN_TTL_SECONDS,", replace="        expires_after_seconds=3600,", count=1,
           promise="How it works: every item carries expiresAt — the idempotency records live as long as the run"),
]

MUTANTS += [
    Mutant("isolation-pids-limit-tenfold", "lambdas/logic/sandboxes/isolation.py",
           ["tests/test_isolation.py::test_a_fork_bomb_stops_at_the_process_limit"],
           find='[("pids.max", str(limits.processes))]', replace='[("pids.max", str(limits.processes * 10))]', count=1,
           promise="Security model: Limits — 1024 processes per command"),
]

MUTANTS += [
    Mutant("bedrock-broken-stream-rejected", "lambdas/logic/models/bedrock_model.py",
           ["tests/test_bedrock_model.py::test_a_corrupt_stream_is_unavailable_and_retried_not_a_rejected_request"],
           find='raise ModelUnavailable(f"{self.name}: the reply stream broke off',
           replace='raise ModelRequestRejected(f"{self.name}: the reply stream broke off', count=1,
           promise="Durability: ModelThrottled — a broken Bedrock stream is ModelUnavailable"),
]

MUTANTS += [
    # Placed before the private /tmp, as the audit did: a fake HOME under /tmp would hide it.
    Mutant("isolation-home-bound-before-tmp", "lambdas/logic/sandboxes/isolation.py",
           ["tests/test_isolation.py::test_home_and_other_runs_are_absent_and_the_system_is_read_only"],
           find='    argv += [*size, "--tmpfs", "/tmp", ',
           replace='    argv += ["--ro-bind", os.path.expanduser("~"), os.path.expanduser("~")]\n    argv += [*size, "--tmpfs", "/tmp", ',
           count=1, promise="Security model: Files — your home is not there"),
    Mutant("user-process-limit-tenfold", "lambdas/logic/sandboxes/isolation.py",
           ["tests/test_isolation_root.py::test_as_an_ordinary_user_a_fork_bomb_stops_at_the_process_limit"],
           find='_limit(resource.RLIMIT_NPROC, limits.processes)', replace='_limit(resource.RLIMIT_NPROC, limits.processes * 10)', count=1,
           promise="Security model: Limits — 1024 processes per command"),
]
