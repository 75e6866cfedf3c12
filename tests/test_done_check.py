"""The done-check (issue 22): a <task_summary> is accepted only once the result passes its check
(the preview answers 2xx for `/`, the project's own check passes). A failure goes back to the
model with another turn; after the limit the run ends CheckFailed with the output in its cause."""

from __future__ import annotations

import json

from conftest import write_script_file
from lambdas.logic.done_check import (
    NPM_PLACEHOLDER_TEST,
    SKIPPED_FOR_APPROVALS,
    CheckFailure,
    check_notice,
    project_check_commands,
)
from lambdas.logic.errors import ToolError
from lambdas.logic.sandboxes.local import stop_all_previews
from pixie.local_run import RunOptions, run_locally

PAGE = "<!doctype html><title>Counter</title><h1>Counter</h1>"


def terminal(command):
    return {"name": "terminal", "arguments": {"command": command}}


def write(files):
    return {"name": "createOrUpdateFiles", "arguments": {"files": [{"path": p, "content": c} for p, c in files.items()]}}


def summary(text="done"):
    return {"content": f"<task_summary>{text}</task_summary>"}


def run(tmp_path, turns, max_iterations=15, **options):
    script = write_script_file(tmp_path / "s.json", turns)
    env = options.pop("env", {})
    run_options = RunOptions(model=f"scripted:{script}", pixie_home=tmp_path / "home", max_iterations=max_iterations,
                             extra_env=tuple(env.items()), **options)
    try:
        return run_locally("Build a counter", run_options)
    finally:
        stop_all_previews()


def states_entered(record):
    return [e["stateEnteredEventDetails"]["name"] for e in record["history"] if "stateEnteredEventDetails" in e]


def pixie_notices(record):
    return [m["content"] for m in record["conversation"] if m["role"] == "user" and "[pixie]" in str(m["content"])]


# The template's index.html is removed in the same reply that summarizes: the model claims it is
# done before it has written the page.
SUMMARIZES_BEFORE_WRITING = [
    {"content": "<task_summary>A counter</task_summary>", "tool_calls": [terminal("rm index.html")]},
    {"content": None, "tool_calls": [write({"index.html": PAGE})]},
    summary("A counter, for real"),
]


def test_a_summary_before_the_page_exists_is_told_the_preview_failed_and_the_run_succeeds_in_3_turns(tmp_path):
    record = run(tmp_path, SUMMARIZES_BEFORE_WRITING)

    assert record["status"] == "SUCCEEDED", record["cause"]
    assert record["iterations"] == 3
    assert record["summary"] == "A counter, for real"
    (notice,) = pixie_notices(record)
    assert "not accepted" in notice and "the preview failed" in notice and "GET / answered 404" in notice
    assert states_entered(record).count("CheckResult") == 2
    assert states_entered(record)[-3:] == ["CheckVerdict", "GetSandboxUrl", "Done"]


def test_with_no_check_the_same_model_ends_after_turn_1(tmp_path):
    record = run(tmp_path, SUMMARIZES_BEFORE_WRITING, check=False)

    assert record["status"] == "SUCCEEDED", record["cause"]
    assert record["iterations"] == 1 and record["summary"] == "A counter"
    assert not pixie_notices(record)


FAILING_TEST = json.dumps({"name": "app", "scripts": {"test": "node -e \"console.log('2 tests failed'); process.exit(1)\""}})


def test_a_failing_npm_test_ends_check_failed_after_the_limit_with_its_output(tmp_path):
    turns = [{"content": "<task_summary>Done</task_summary>", "tool_calls": [write({"package.json": FAILING_TEST})]}]
    turns += [summary(f"Done, try {n}") for n in range(2, 8)]
    record = run(tmp_path, turns)

    assert record["status"] == "FAILED" and record["error"] == "CheckFailed", record["cause"]
    assert "3 times" in record["cause"] and "`npm test` failed" in record["cause"] and "2 tests failed" in record["cause"]
    assert record["iterations"] == 3  # three summaries, three checks, no fourth model call
    notices = pixie_notices(record)
    assert len(notices) == 2 and "exit code 1" in notices[0] and "2 tests failed" in notices[0]
    assert states_entered(record)[-3:] == ["CheckFailed", "CleanupSandbox", "RunFailed"]


def test_a_configured_check_command_and_limit(tmp_path):
    record = run(tmp_path, [summary()] * 4, check_command="echo checking; false", env={"PIXIE_CHECK_LIMIT": "2"})

    assert record["error"] == "CheckFailed" and "2 times" in record["cause"] and "checking" in record["cause"]
    assert record["iterations"] == 2


def test_the_check_output_in_the_cause_is_bounded(tmp_path):
    """Each failure's output is bounded, and so is the cause they make together (a state payload)."""
    noisy = json.dumps({"scripts": {"test": "yes test | head -c 100000; exit 1", "build": "yes build | head -c 100000; exit 1"}})
    turns = [{"content": "<task_summary>Done</task_summary>", "tool_calls": [write({"package.json": noisy})]}]
    record = run(tmp_path, turns, env={"PIXIE_CHECK_LIMIT": "1"})

    assert record["error"] == "CheckFailed" and "characters omitted" in record["cause"]
    assert "`npm test` failed" in record["cause"]  # two failures, each up to 3,000 characters
    assert len(json.dumps(record["cause"])) <= 4_000


def test_a_check_that_fails_on_the_last_allowed_turn_ends_the_run(tmp_path):
    record = run(tmp_path, [summary()] * 3, max_iterations=1, check_command="false")

    assert record["error"] == "CheckFailed" and "no turn is left" in record["cause"]
    assert record["iterations"] == 1


class FakeSandbox:
    def __init__(self, package_json=None):
        self.package_json = package_json

    def read_file(self, path):
        if self.package_json is None:
            raise ToolError("package.json does not exist")
        return self.package_json


def test_the_project_check_follows_package_json():
    scripts = lambda **s: json.dumps({"scripts": s})  # noqa: E731
    assert project_check_commands(FakeSandbox(), "local", None) == []
    assert project_check_commands(FakeSandbox("{not json"), "local", None) == []
    assert project_check_commands(FakeSandbox(scripts(test="jest", build="vite build")), "local", None) == ["npm test", "npm run build"]
    assert project_check_commands(FakeSandbox(scripts(test=NPM_PLACEHOLDER_TEST)), "local", None) == []
    # On E2B the dev server builds from the folder `npm run build` would overwrite.
    assert project_check_commands(FakeSandbox(scripts(test="jest", build="next build")), "e2b", None) == ["npm test"]
    assert project_check_commands(FakeSandbox(scripts(test="jest")), "local", "make check") == ["make check"]


def test_with_approvals_on_the_model_written_scripts_are_not_run_but_the_users_command_is():
    # package.json is a file the model writes; its scripts are commands it chose. Under
    # --approve commands|all those run only on a person's yes, so the done-check leaves them out.
    both = FakeSandbox(json.dumps({"scripts": {"test": "touch pwned", "build": "touch pwned"}}))
    for approve in ("commands", "all"):
        assert project_check_commands(both, "local", None, approve) == []
        assert project_check_commands(both, "local", "make check", approve) == ["make check"]
    assert project_check_commands(both, "local", None, "none") == ["npm test", "npm run build"]
    failure = [CheckFailure("the preview", "GET / answered 404.")]
    assert SKIPPED_FOR_APPROVALS in check_notice(failure, 1, 3, 10_000, scripts_skipped=True)
    assert SKIPPED_FOR_APPROVALS not in check_notice(failure, 1, 3, 10_000)


def test_pixie_run_no_check_and_check_command_from_the_cli(tmp_path):
    from test_cli_local import pixie

    script = write_script_file(tmp_path / "claims.json", SUMMARIZES_BEFORE_WRITING[:1])
    result = pixie("run", "--no-serve", "--json", "--no-check", "--model", f"scripted:{script}", "Claim it", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "SUCCEEDED"

    result = pixie("run", "--no-serve", "--json", "--check-command", "echo the check said no; exit 4",
                   "--model", f"scripted:{script}", "Claim it", home=tmp_path, env={"PIXIE_CHECK_LIMIT": "1"})
    assert result.returncode == 1
    output = json.loads(result.stdout)
    assert output["error"] == "CheckFailed" and "the check said no" in output["cause"] and "exit code 4" in output["cause"]
    assert "CheckResult" in result.stderr and "failed" in result.stderr  # the live view shows the verdict

    refused = pixie("run", "--check-command", " ", "--model", f"scripted:{script}", "Claim it", home=tmp_path)
    assert refused.returncode == 2 and "--check-command" in refused.stderr
