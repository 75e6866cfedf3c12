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
