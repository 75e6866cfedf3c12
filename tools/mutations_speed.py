"""Mutants for start-up and the bench (issue 24)."""

from tools.mutations import Mutant

STARTUP = "tests/test_startup.py"
BENCH = "tests/test_bench.py"
PROMPT = "tests/test_prompt_tokens.py"
CACHING = "How it works"

MUTANTS: list[Mutant] = [
    Mutant("engine-loads-moto-ec2", "statemachine/engine.py", [STARTUP],
           find="\ndefer_moto_batch()  #", replace="\npass  #", count=1,
           promise="Performance: no moto.ec2 at start-up"),
    Mutant("bench-asks-past-the-cap", "bench/workload.py", [f"{BENCH}::test_every_workload_the_full_bench_uses_is_within_pixies_limits"],
           find="max_iterations=min(self.iterations + 5, MAX_ITERATIONS_CAP)", replace="max_iterations=self.iterations + 5",
           count=1, promise="Performance: make bench runs"),
    Mutant("prompt-prefix-changes-every-turn", "lambdas/logic/steps/agent_turn.py", [PROMPT],
           find='prompt = [{"role": "system", "content": system_prompt(sandbox_kind)}',
           replace='prompt = [{"role": "system", "content": f"{system_prompt(sandbox_kind)} (turn {turn})"}', count=1,
           promise=f"{CACHING}: each prompt begins with the previous one"),
    Mutant("openai-cached-tokens-ignored", "lambdas/logic/models/openai_model.py",
           ["tests/test_openai_model.py::test_cached_prompt_tokens_are_read_from_the_usage"],
           find='cached_input_tokens=int(getattr(details, "cached_tokens", 0) or 0),', replace="cached_input_tokens=0,",
           count=1, promise=f"{CACHING}: OpenAI's cached tokens are read"),
    Mutant("bedrock-no-cache-points", "lambdas/logic/models/bedrock_model.py", ["tests/test_bedrock_model.py"],
           find="system, conversation = with_cache_points(system, conversation)", replace="pass", count=1,
           promise=f"{CACHING}: Bedrock cachePoint blocks"),
    Mutant("cached-tokens-priced-as-input", "lambdas/logic/models/prices.py", ["tests/test_bedrock_model.py", "tests/test_console_api.py"],
           find="cached * price.cache_read", replace="cached * price.input", count=1,
           promise=f"{CACHING}: cached tokens priced at their own rate"),
    Mutant("compaction-never-elides-old-results", "lambdas/logic/compaction.py", [PROMPT],
           find="old = message_turn(key) <= cutoff and", replace="old = False and", count=1,
           promise=f"{CACHING}: old large tool results left out of the prompt"),
    Mutant("compaction-rewrites-the-store", "lambdas/logic/compaction.py", [PROMPT],
           find='message = {**message, "content": note}', replace='message.update(content=note)', count=1,
           promise=f"{CACHING}: never in the store"),
    Mutant("compaction-line-moves-every-turn", "lambdas/logic/compaction.py", [PROMPT],
           find="return max(1, self.after_turns)", replace="return 1", count=1,
           promise=f"{CACHING}: the cached prefix changes once per step"),
    Mutant("a-botocore-session-per-step", "lambdas/handlers/shared.py",
           [f"{STARTUP}::test_a_run_builds_no_botocore_session_per_step"],
           find="        boto3_client=dynamodb_client(),\n", replace="", count=1,
           promise="Performance: no botocore session per step"),
    Mutant("engine-steered-by-the-shells-aws-settings", "statemachine/engine.py",
           ["tests/test_cli_local.py::test_a_local_run_is_not_steered_by_aws_settings_in_the_shell"],
           find="        _forget_aws_settings_meant_for_other_work()  #", replace="        pass  #", count=1,
           promise="How it works: AWS settings your shell holds for other work do not reach the engine"),
    Mutant("start-button-live-before-its-handler", "pixie/console/static/index.html",
           ["tests/test_console_browser.py::test_the_start_button_waits_for_the_page_script"],
           find='<button id="start" type="submit" disabled>', replace='<button id="start" type="submit">', count=1,
           promise="Testing: browser tests wait for the page to be ready"),
    Mutant("suite-leaves-sigint-ignored-for-its-children", "tests/conftest.py",
           ["tests/test_cli_interrupts.py::test_ctrl_c_still_stops_pixie_when_the_suite_was_started_with_sigint_ignored"],
           find="    signal.signal(signal.SIGINT, signal.default_int_handler)", replace="    pass", count=1,
           promise="Testing: children stopped in a way that works when SIGINT is ignored"),
    Mutant("network-state-queries-share-boto3s-condition-builder", "lambdas/dal/network_state.py",
           ["tests/test_network_state.py::test_one_network_state_answers_queries_from_many_threads_at_once"],
           find='"KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",\n            "ExpressionAttributeValues": {":pk": _pk(run_id), ":prefix": prefix},',
           replace='"KeyConditionExpression": __import__("boto3.dynamodb.conditions").dynamodb.conditions.Key("pk").eq(_pk(run_id))'
                   ' & __import__("boto3.dynamodb.conditions").dynamodb.conditions.Key("sk").begins_with(prefix),',
           count=1, promise="Console: Warm engine — several runs at once: one network state answers many threads"),
    Mutant("asl-parsed-on-every-start", "statemachine/asl_cache.py",
           [f"{STARTUP}::test_the_definition_is_parsed_once_and_then_comes_from_the_cache"],
           find="    blob = _stored(key)\n", replace="    blob = None\n", count=1,
           promise="Performance: the definition parsed once"),
    Mutant("history-timestamps-left-as-text", "statemachine/engine.py",
           [f"{STARTUP}::test_the_engine_reads_the_history_as_get_execution_history_returns_it"],
           find='stamp = datetime.fromisoformat(stamp.replace("Z", "+00:00"))', replace="pass", count=1,
           promise="Performance: history read from the backend, as the API returns it"),
]

MUTANTS += [
    # Powertools' default provider builds the X-Ray recorder and its botocore client even with
    # tracing off: about 0.4 s of every `pixie run`.
    Mutant("xray-recorder-built-with-tracing-off", "lambdas/handlers/tracing.py", [STARTUP],
           find="return NoTracing() if tracing_is_off() else None", replace="return None", count=1,
           promise="Performance: no X-Ray recorder where tracing is off"),
]
