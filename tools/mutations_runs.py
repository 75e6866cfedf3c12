"""Mutants for the CLI and console run lifecycle (issue 19)."""

from tools.mutations import Mutant

PROMPT_INPUT = ["tests/test_cli_prompt_input.py"]

MUTANTS: list[Mutant] = [
    Mutant("cli-dash-is-the-prompt", "pixie/cli.py", PROMPT_INPUT,
           find='    if args.prompt == "-":', replace='    if args.prompt == "--never--":', count=1,
           promise="CLI: pixie run — `-` reads the prompt from standard input"),
    Mutant("cli-show-json-passes-bidi", "pixie/cli.py", PROMPT_INPUT,
           find="        print(json.dumps(record, ensure_ascii=True, indent=2))", replace="        print(json.dumps(record, ensure_ascii=False, indent=2))",
           count=1, promise="CLI: pixie show — --json escapes control and bidi characters"),
]

CONSOLE_LIFECYCLE = ["tests/test_console_lifecycle.py"]
MUTANTS += [
    Mutant("console-run-saved-only-at-its-end", "pixie/console/backends.py",
           [f"{CONSOLE_LIFECYCLE[0]}::test_a_console_killed_mid_command_leaves_its_run_interrupted_and_resume_finishes_it"],
           find="        return journal.wrap()(name, event, invoke) if journal is not None else invoke()",
           replace="        return invoke()", count=1,
           promise="Console: Warm engine — a console run is saved after every step"),
    Mutant("console-sigterm-kills-before-saving", "pixie/console/server.py", CONSOLE_LIFECYCLE,
           find="        super().handle_exit(signal.SIGINT, frame)", replace="        super().handle_exit(sig, frame)", count=1,
           promise="Console: Warm engine — SIGTERM and SIGHUP stop it as Ctrl-C does"),
    Mutant("console-skips-the-cli-checks", "pixie/console/backends.py",
           [f"{CONSOLE_LIFECYCLE[0]}::test_the_api_refuses_what_pixie_run_refuses_and_creates_nothing"],
           find="            parent_items = check_new_run(prompt, options, continue_from)",
           replace="            parent_items = []", count=1,
           promise="Console: Warm engine — refuses what pixie run refuses"),
]

STOP_TESTS = ["tests/test_cli_stop.py"]
MUTANTS += [
    Mutant("stop-waits-for-the-step-in-flight", "statemachine/engine.py", ["tests/test_local_redrive.py"],
           find="        if stopped is not None:  # StopExecution: ABORTED at once, whatever step was in flight",
           replace="        if False:", count=1,
           promise="Durability: what no Catch sees — a stopped run is ABORTED at once"),
    Mutant("stop-leaves-the-command-running", "lambdas/logic/sandboxes/local.py", STOP_TESTS,
           find="        stop_preview(self.id)\n        kill_running_commands(self.id)\n", replace="        stop_preview(self.id)\n",
           count=1, promise="CLI: pixie stop — ends the run's command"),
    Mutant("pixie-stop-request-ignored", "pixie/local_run.py", STOP_TESTS,
           find="            if self.path.exists():", replace="            if False:", count=1,
           promise="CLI: pixie stop — stops a run in another process"),
]
MUTANTS += [
    Mutant("follow-up-takes-the-default-model", "pixie/cli.py",
           ["tests/test_continue_resume.py::test_a_follow_up_keeps_its_parents_model_unless_told_otherwise"],
           find="        spec = continued_model(pixie_home(), continue_from)", replace="        pass", count=1,
           promise="CLI: pixie run --continue — keeps its parent's model"),
]
MUTANTS += [
    Mutant("preview-frame-without-its-origin", "pixie/console/static/run.js",
           ["tests/test_console_browser.py::test_a_localstorage_app_works_in_the_preview_frame_which_cannot_use_the_console"],
           find='${ownOrigin ? "" : " allow-same-origin"}', replace="", count=1,
           promise="Console: Security — apps using localStorage work in the preview"),
]
ROBUST = "tests/test_console_lifecycle.py"
MUTANTS += [
    Mutant("console-body-read-whole", "pixie/console/app.py",
           [f"{ROBUST}::test_a_body_over_the_limit_is_refused_before_it_is_read_whole"],
           find="    body = await bounded_body(request)\n    if body is None:",
           replace="    body = await request.body()\n    body = None if len(body) > MAX_BODY_BYTES else body\n    if body is None:", count=1,
           promise="Console: Security — bodies over the limit refused, never read whole"),
    Mutant("console-runs-uncapped", "pixie/console/backends.py",
           [f"{ROBUST}::test_past_the_cap_on_running_runs_a_start_is_refused_with_429"],
           find="        if not self._run_slots.acquire(blocking=False):",
           replace="        if not self._run_slots.acquire(blocking=False) and False:", count=1,
           promise="Console: Security — a cap on active runs"),
    Mutant("console-cookie-parser-drops-all", "pixie/console/security.py",
           [f"{ROBUST}::test_another_apps_cookie_on_the_same_host_does_not_lock_the_console_out"],
           find='        from_cookies = cookie_values(headers.get("cookie", ""), self.cookie_name)',
           replace='        from_cookies = [] if "{" in headers.get("cookie", "") else cookie_values(headers.get("cookie", ""), self.cookie_name)',
           count=1, promise="Console: Security — other apps' cookies are ignored"),
    Mutant("corrupt-run-file-crashes-list", "pixie/runs.py",
           [f"{ROBUST}::test_a_file_that_is_not_a_run_record_is_skipped_with_one_warning_never_a_crash"],
           find="        except (OSError, ValueError, TypeError, AttributeError, KeyError) as exc:",
           replace="        except OSError as exc:", count=1,
           promise="CLI: pixie list — a corrupt run file is skipped, never a crash"),
]
REMOVAL = "tests/test_run_removal.py"
MUTANTS += [
    Mutant("rm-leaves-the-version", "pixie/run_removal.py",
           [f"{REMOVAL}::test_rm_deletes_a_run_and_what_it_left_but_not_what_its_follow_up_needs"],
           find='            store.forget(run_id, record.get("projectId") or run_id)', replace="            pass", count=1,
           promise="CLI: pixie rm — deletes what a run left"),
    Mutant("rm-of-a-running-run", "pixie/run_removal.py", [f"{REMOVAL}::test_a_running_run_is_not_removed"],
           find="    if running:", replace="    if False:", count=1, promise="CLI: pixie rm — a running run is never removed"),
    Mutant("cli-port-unchecked", "pixie/cli.py",
           ["tests/test_cli_prompt_input.py::test_bad_numbers_and_ports_are_one_line_with_exit_2"],
           find='    ui.add_argument("--port", type=_port,', replace='    ui.add_argument("--port", type=int,', count=1,
           promise="CLI: pixie ui — an invalid port is one line, exit 2"),
]
MUTANTS += [
    Mutant("console-rerun-drops-the-settings", "pixie/console/backends.py",
           ["tests/test_console_lifecycle.py::test_rerun_starts_a_new_run_with_the_same_prompt_model_and_settings"],
           find='        return detail.get("value"), {k: v for k, v in chosen.items() if v is not None}, continued_run(event)',
           replace='        return detail.get("value"), {}, continued_run(event)', count=1,
           promise='Console: POST /api/runs {"rerunOf": RUN_ID} — keeps the prompt, model and settings'),
]
ATTACKS = "tests/test_console_attacks.py"
MUTANTS += [
    Mutant("rm-trusts-the-sandbox-id", "pixie/run_removal.py", [f"{ATTACKS}::test_rm_never_deletes_outside_pixie_home"],
           find="        folder = project_folder(pixie_home, record)", replace='        folder = Path(pixie_home) / "sandboxes" / str(record.get("sandboxId"))',
           count=1, promise="CLI: pixie rm — deletes only under PIXIE_HOME"),
    Mutant("console-stop-race-answers-500", "pixie/console/backends.py",
           [f"{ATTACKS}::test_stopping_a_console_run_twice_at_once_never_answers_500"],
           find="        except ExecutionNotRunning:\n            raise Conflict(", replace="        except ZeroDivisionError:\n            raise Conflict(",
           count=1, promise="Console: POST /api/runs/RUN_ID/stop — two stops at once"),
    Mutant("console-header-limit-default", "pixie/console/server.py",
           [f"{ATTACKS}::test_a_preview_cannot_lock_the_user_out_of_the_console"],
           find="        h11_max_incomplete_event_size=MAX_HEADER_BYTES,\n", replace="", count=1,
           promise="Console: Security — a preview cannot lock the user out"),
]
MUTANTS += [
    Mutant("console-follow-up-takes-the-default-model", "pixie/console/backends.py",
           [f"{ATTACKS}::test_a_console_follow_up_without_a_model_keeps_its_parents_model"],
           find="                chosen = continued_model(self.home, continue_from)", replace="                chosen = None", count=1,
           promise='Console: POST /api/runs {"prompt", ..., "continueFrom"?} — a follow-up keeps its parent\'s model'),
    Mutant("rm-crashes-on-a-corrupt-record", "pixie/run_removal.py",
           [f"{ATTACKS}::test_corrupt_run_files_give_one_line_never_a_traceback"],
           find="    records = {run_id: _record_or_stub(pixie_home, run_id)", replace="    records = {run_id: load_run(pixie_home, run_id)",
           count=1, promise="CLI: pixie list — a corrupt run file is skipped, never a crash"),
]
