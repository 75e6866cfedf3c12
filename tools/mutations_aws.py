"""Mutants for the deployed stack under AWS's documented semantics (issue 21)."""

from tools.mutations import ASL, Mutant, drop_rules, set_in_rules

LAST_TURN = ["tests/test_last_turn.py"]


def _drop_summary_pending(definition: dict) -> None:
    router = definition["States"]["Router"]
    router["Choices"] = [c for c in router["Choices"] if c.get("Variable") != "$.summaryPending"]


def _limit_before_summary_pending(definition: dict) -> None:
    choices = definition["States"]["Router"]["Choices"]
    pending = next(c for c in choices if c.get("Variable") == "$.summaryPending")
    limit = next(c for c in choices if c.get("Next") == "MaxIterationsReached")
    choices.remove(pending)
    choices.insert(choices.index(limit) + 1, pending)


MUTANTS: list[Mutant] = [
    Mutant("asl-last-turn-summary-with-tools-fails", ASL, LAST_TURN, edit_json=_drop_summary_pending,
           promise="How it works: Steps — a reply that calls tools and writes its summary gets its tools run, then the run ends"),
    Mutant("asl-iteration-limit-before-summary-pending", ASL, LAST_TURN, edit_json=_limit_before_summary_pending,
           promise="How it works: Steps — a reply that calls tools and writes its summary ends the run, on the last allowed turn too"),
]

INFRA_NAMES = ["tests/test_infra.py::test_every_task_handles_lambda_errors_by_the_names_step_functions_reports",
               "tests/test_docs_match_code.py"]


def _unknown_named_the_old_way(definition: dict) -> None:
    from tools.mutations import retry_rules

    for rule in retry_rules(definition, "Lambda.Unknown"):
        rule["ErrorEquals"] = ["Sandbox.Timedout"]


MUTANTS += [
    Mutant("asl-unknown-under-an-old-name", ASL, INFRA_NAMES, edit_json=_unknown_named_the_old_way,
           promise="Durability: Lambda.Unknown"),
    Mutant("asl-throttling-retried-for-a-minute", ASL, INFRA_NAMES,
           edit_json=set_in_rules("Lambda.TooManyRequestsException", "MaxAttempts", 6),
           promise="Durability: Lambda.TooManyRequestsException — a burst queues"),
]

PRODUCTION = ["tests/test_infra_production.py"]
BUS = ["tests/test_infra.py::test_rule_matches_hello_world_on_pixies_own_bus_which_only_this_account_may_send_to"]
MUTANTS += [
    Mutant("stack-no-run-timeout", "infra/stack.py", PRODUCTION,
           find='        document["TimeoutSeconds"] = settings.run_timeout_minutes * 60\n',
           replace='        document.pop("TimeoutSeconds", None)\n', count=1, promise="Deploy: run timeout"),
    Mutant("stack-rule-on-the-default-bus", "infra/stack.py", BUS,
           find="            event_bus=self.bus,\n", replace="", count=1, promise="Deploy: who may start runs"),
    Mutant("stack-retain-forgets-the-secrets", "infra/stack.py", PRODUCTION,
           find="(dynamodb.CfnTable, secretsmanager.CfnSecret, logs.CfnLogGroup)",
           replace="(dynamodb.CfnTable, logs.CfnLogGroup)", count=1, promise="Deploy: retain"),
    Mutant("stack-logs-everything", "infra/stack.py", PRODUCTION,
           find='    log_level: str = "ERROR"', replace='    log_level: str = "ALL"', count=1, promise="Deploy: logs at ERROR"),
]

REDRIVE = ["tests/test_steps_and_handlers.py::test_a_redriven_run_whose_sandbox_the_cleanup_released_gets_it_back_with_its_files"]
MUTANTS += [
    Mutant("redrive-after-cleanup-finds-no-sandbox", "lambdas/logic/steps/run_tool.py", REDRIVE,
           find="        sandbox = live_sandbox(run, settings, state)",
           replace="        from lambdas.logic.sandboxes import sandbox_provider\n        sandbox = sandbox_provider(run.sandbox_kind, settings).connect(run.sandbox_id, settings.sandbox_timeout_s)",
           count=1, promise="CLI: pixie resume --aws — finishes after the cleanup released the sandbox"),
]

MUTANTS += [
    Mutant("secret-throttling-fails-the-run", "lambdas/logic/secrets.py",
           ["tests/test_promises_secrets.py::test_a_passing_secrets_manager_error_is_retried_and_a_lasting_one_is_not"],
           find="            if attempt + 1 == SECRET_READ_ATTEMPTS or not _transient(exc.__cause__):",
           replace="            if True:", count=1, promise="Deploy: transient secret reads retried"),
]

MUTANTS += [
    Mutant("fault-alarm-counts-user-outcomes", "lambdas/logic/steps/cleanup_sandbox.py",
           ["tests/test_observability.py::test_only_faults_count_as_run_faults_for_the_alarm"],
           find="    return error_name not in USER_OUTCOMES", replace="    return True", count=1,
           promise="Deploy: the failed-runs alarm on faults only"),
    Mutant("dashboard-tool-calls-by-service-only", "infra/stack.py",
           ["tests/test_infra.py::test_the_tool_call_widget_queries_the_dimensions_the_metric_is_published_with"],
           find='TOOL_CALL_DIMENSIONS = ("service", "tool", "outcome")', replace='TOOL_CALL_DIMENSIONS = ("service",)',
           count=1, promise="Deploy: dashboard"),
    Mutant("dead-letter-alarm-never-renotifies", "infra/stack.py",
           ["tests/test_infra.py::test_alarms_watch_dead_letters_run_faults_timeouts_throttles_and_errors"],
           find="queue.metric_number_of_messages_sent(period=ALARM_PERIOD", replace="queue.metric_approximate_number_of_messages_visible(period=ALARM_PERIOD",
           count=1, promise="Deploy: alarms"),
]

MUTANTS += [
    Mutant("asl-throttling-not-retried", ASL,
           ["tests/test_bench.py::test_a_burst_past_reserved_concurrency_queues_and_every_run_succeeds"],
           edit_json=drop_rules("Lambda.TooManyRequestsException"),
           promise="Durability: Lambda.TooManyRequestsException — a burst queues"),
]

REDRIVE = ["tests/test_local_redrive.py"]
MUTANTS += [
    # A redrive that starts over runs CreateSandbox again and asks the model for turns it answered.
    Mutant("local-redrive-starts-over", "statemachine/engine.py", REDRIVE,
           find='definition["StartAt"] = state_name', replace="pass", count=1,
           promise="CLI: pixie resume --aws — RedriveExecution reruns only the unsuccessful step, the model not asked again"),
    # The execution's first input, not the unsuccessful state's own, handed to the restarted state.
    Mutant("local-redrive-with-the-execution-input", "statemachine/engine.py", REDRIVE,
           find="name=name, input=state_input)", replace='name=name, input=self.describe(arn)["input"])', count=1,
           promise="CLI: pixie resume --aws — RedriveExecution reruns the unsuccessful step with its own input"),
]
MUTANTS += [
    Mutant("local-redrive-of-a-redriven-execution", "statemachine/engine.py",
           ["tests/test_local_redrive.py::test_an_execution_already_redriven_is_not_redriven_again_by_its_first_arn"],
           find="        arn = self._latest(arn)  # AWS keeps one execution", replace="        pass  # AWS keeps one execution", count=1,
           promise="CLI: pixie resume --aws — RedriveExecution only of a failed, timed-out or aborted execution, not one already redriven"),
]
