"""The README against the definition and the code: the durability table against every Retry and
Catch rule of statemachine/agent.asl.json, and the configuration table against the settings the
code reads. Both sides are parsed, so either one changing alone fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import promises
from promises import IN_PROGRESS_ERROR, ROOT, durability_table, retrier_for, retry_promise, task_states

# Ours, and the AWS variables pixie reads itself for Bedrock (botocore reads AWS_DEFAULT_REGION only).
ENV_NAME = re.compile(r"(PIXIE|OPENAI|E2B)_[A-Z0-9_]+|AWS_(REGION|DEFAULT_REGION|ENDPOINT_URL_BEDROCK_RUNTIME)")
CODE_PACKAGES = ("lambdas", "pixie", "statemachine")


# --- durability ---------------------------------------------------------------------------------------
def test_the_durability_table_parses_into_retried_and_permanent_rows():
    rows = durability_table()
    retried = [row for row in rows if row.retried]
    assert retried and all(row.errors and row.attempts and row.interval_s for row in retried), rows
    assert any(not row.retried and "InvalidEvent" in row.errors for row in rows)
    assert any(not row.retried and "MaxIterationsReached" in row.errors for row in rows)


def test_every_outcome_the_workflow_names_is_a_permanent_row_ending_through_cleanup():
    """Each Pass state that names an error (MaxIterationsReached, BudgetExceeded, StuckLoop, ...)
    is in the table as a permanent error, is reached from the definition, and ends in RunFailed
    through CleanupSandbox."""
    states = promises.definition()["States"]
    permanent = {error for row in durability_table() if not row.retried for error in row.errors}
    outcomes = {name: s for name, s in states.items() if s["Type"] == "Pass" and name != "LastTurnCalledTools"}
    assert {"MaxIterationsReached", "BudgetExceeded", "StuckLoop", "CheckFailed"} <= set(outcomes)
    targets = {c["Next"] for s in states.values() for c in s.get("Choices", [])}
    for name, state in outcomes.items():
        error = state.get("Result", state.get("Parameters", {})).get("Error")
        assert error == name and name in permanent, f"{name}: README's durability table must list it"
        assert name in targets and state["Next"] == "CleanupSandbox" and state["ResultPath"] == "$.error"


def test_every_error_class_the_table_names_exists():
    from aws_lambda_powertools.utilities.idempotency import exceptions as idempotency_exceptions

    from lambdas.logic import errors

    for row in durability_table():
        for name in row.errors:
            if name.startswith(("Lambda.", "States.", "Runtime.", "Sandbox.")) or name in promises.definition()["States"]:
                continue  # named by the service, or by the definition's own Pass state
            source = idempotency_exceptions if name == IN_PROGRESS_ERROR else errors
            assert isinstance(getattr(source, name, None), type), f"README names {name}, which the code does not define"


@pytest.mark.parametrize("state_name", sorted(task_states()))
def test_each_step_retries_what_the_table_promises(state_name):
    state = task_states()[state_name]
    expected = promises.errors_state_must_retry(state_name)
    assert any(e.startswith("Lambda.") for e in expected), "the table promises retries of Lambda's own errors"
    for error in sorted(expected):
        promise = retry_promise(error)
        rule = retrier_for(state, error)
        assert rule is not None, f"{state_name} does not retry {error} ({promise.text})"
        where = f"{state_name}'s rule for {error}"
        assert rule["MaxAttempts"] == promise.attempts, f"{where}: MaxAttempts {rule['MaxAttempts']}, README: {promise.text}"
        assert rule["IntervalSeconds"] == promise.interval_s, f"{where}: IntervalSeconds, README: {promise.text}"
        assert rule.get("BackoffRate", 2.0) > 1, f"{where}: the backoff must grow"
        if promise.max_delay_s is not None:
            assert rule.get("MaxDelaySeconds") == promise.max_delay_s, f"{where}: MaxDelaySeconds, README: {promise.text}"
        jitter = rule.get("JitterStrategy", "NONE")
        assert jitter == ("FULL" if promise.full_jitter else "NONE"), f"{where}: JitterStrategy {jitter}, README: {promise.text}"


def test_no_step_retries_anything_the_table_does_not_promise():
    documented = set(promises.retried_errors())
    for state_name, state in task_states().items():
        for rule in state.get("Retry", []):
            if rule["MaxAttempts"] == 0:  # a deliberate "never retry" rule (e.g. out of memory)
                continue
            for error in rule["ErrorEquals"]:
                assert error in documented, f"{state_name} retries {error}, which the durability table does not list"
                promise = retry_promise(error)
                assert rule["MaxAttempts"] == promise.attempts and rule["IntervalSeconds"] == promise.interval_s, (
                    f"{state_name} retries {error} unlike the README: {promise.text}"
                )


def test_every_retried_row_applies_to_some_step():
    expected = set().union(*(promises.errors_state_must_retry(name) for name in task_states()))
    for error in promises.retried_errors():
        assert error in expected, f"README promises retries of {error}, but no step's code can meet it"


def test_permanent_errors_are_never_retried():
    permanent = {error for row in durability_table() if not row.retried for error in row.errors}
    assert {"InvalidEvent", "ModelAuthFailed", "SandboxNotFound"} <= permanent
    for state_name, state in task_states().items():
        for rule in state.get("Retry", []):
            catch_all = {"States.ALL", "States.TaskFailed"} & set(rule["ErrorEquals"])
            assert not catch_all, f"{state_name} retries {catch_all}: that would retry permanent errors too"
            if rule["MaxAttempts"] == 0:  # names errors only to say they are never retried...
                never = {e for row in durability_table() if "MaxAttempts: 0" in row.text for e in row.errors}
                assert set(rule["ErrorEquals"]) <= never, f"{state_name}: a MaxAttempts 0 rule the README does not list"
                continue
            assert not permanent & set(rule["ErrorEquals"]), f"{state_name} retries permanent errors"


def test_invalid_event_fails_the_execution_at_once_with_its_name():
    states = promises.definition()["States"]
    [catch] = [c for c in states["CreateSandbox"]["Catch"] if "InvalidEvent" in c["ErrorEquals"]]
    target = states[catch["Next"]]
    assert target["Type"] == "Fail" and target["Error"] == "InvalidEvent"
    assert states["CreateSandbox"]["Catch"].index(catch) == 0, "it must come before the catch-all"


def test_every_other_failure_goes_through_cleanup_and_keeps_the_original_error():
    states = promises.definition()["States"]
    for state_name, state in task_states().items():
        if state_name == "RunTool":  # inside the Map: RunTools' own Catch handles it
            continue
        catch_all = [c for c in state.get("Catch", []) if c["ErrorEquals"] == ["States.ALL"]]
        assert catch_all, f"{state_name} has no catch-all"
        if state_name == "CleanupSandbox":
            assert catch_all[0]["Next"] == state["Next"] == "RunFailed"
            assert catch_all[0]["ResultPath"] != "$.error", "a cleanup failure must not replace the run's error"
        else:
            assert catch_all[0]["Next"] == "CleanupSandbox" and catch_all[0]["ResultPath"] == "$.error"
    assert states["RunTools"]["Catch"][0]["Next"] == "CleanupSandbox"
    for outcome in ("MaxIterationsReached", "BudgetExceeded", "StuckLoop", "CheckFailed"):
        assert states[outcome]["Next"] == "CleanupSandbox"
    assert states["RunFailed"] == {**states["RunFailed"], "Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}


def test_the_secret_cache_lasts_as_long_as_the_readme_says():
    from lambdas.logic.secrets import SECRET_CACHE_SECONDS

    deploy = promises.readme_section("Deploy to AWS")
    minutes = re.search(r"cached (\d+) minutes", deploy)
    assert minutes, "the Deploy section should say how long secrets are cached"
    assert SECRET_CACHE_SECONDS == int(minutes.group(1)) * 60


# --- configuration ------------------------------------------------------------------------------------
def env_names_in_code() -> set[str]:
    """Every string in the app's code that is exactly an environment variable name of ours."""
    names = set()
    for package in CODE_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.fullmatch(node.value):
                    names.add(node.value)
    return names


def read_by_an_sdk(name: str) -> bool:
    """True when the SDK the variable belongs to reads it itself (e.g. OPENAI_BASE_URL)."""
    import importlib.util

    package = {"OPENAI": "openai", "E2B": "e2b"}.get(name.split("_", 1)[0])
    spec = importlib.util.find_spec(package) if package else None
    if spec is None:
        return False
    folder = Path(spec.origin).parent
    return any(f'"{name}"' in path.read_text(encoding="utf-8", errors="replace") for path in folder.rglob("*.py"))


def test_every_variable_the_code_reads_is_in_the_configuration_table():
    documented = promises.configuration_table()
    undocumented = sorted(env_names_in_code() - set(documented))
    assert not undocumented, f"README's configuration table does not list {undocumented}"


def test_every_variable_in_the_configuration_table_is_read():
    in_code = env_names_in_code()
    for name in promises.configuration_table():
        assert name in in_code or read_by_an_sdk(name), f"README documents {name}, which nothing reads"


def _another_valid_value(name: str) -> str:
    """A value the setting accepts that differs from its default (ranges and choices are checked)."""
    from lambdas.logic.config import NUMERIC_SETTINGS

    if name in NUMERIC_SETTINGS:
        default, _, high = NUMERIC_SETTINGS[name]
        return str(default + 1 if default + 1 <= high else default - 1)
    return {"PIXIE_ISOLATION": "none", "PIXIE_APPROVE": "all"}.get(name, "7")  # a str setting takes any text


def test_documented_defaults_are_the_settings_defaults(monkeypatch):
    from lambdas.logic.config import Settings

    documented = promises.configuration_table()
    for name in documented:
        monkeypatch.delenv(name, raising=False)
    defaults = Settings.from_env()
    checked = 0
    for name, cell in documented.items():
        monkeypatch.setenv(name, _another_valid_value(name))
        changed = [f for f in Settings.__dataclass_fields__ if getattr(Settings.from_env(), f) != getattr(defaults, f)]
        monkeypatch.delenv(name)
        if not changed:
            continue  # not a Settings field (keys, secret names, endpoints)
        [field] = changed
        value = getattr(defaults, field)
        options = promises.backticked(cell)
        if not options:
            continue  # the README says who sets it (the stack, the engine) instead of a default
        rendered = {str(Path(o).expanduser()) if isinstance(value, Path) else o for o in options}
        assert str(value) in rendered, f"{name}: README says {cell}, the code defaults to {value!r}"
        checked += 1
    assert checked >= 8
