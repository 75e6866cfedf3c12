"""What `pixie run` pays for before its first step: no moto service pixie never calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIXIE = Path(sys.executable).with_name("pixie")


def imported_modules(args: list[str], home: Path) -> set[str]:
    """The modules a whole `pixie ...` process imported, from Python's own import log."""
    env = {**os.environ, "PIXIE_HOME": str(home), "PYTHONPROFILEIMPORTTIME": "1", "NO_COLOR": "1"}
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run([str(PIXIE), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_pixie_run_never_imports_moto_batch_or_ec2(tmp_path):
    """moto's Step Functions parser pulls in moto.batch and all of moto.ec2 (about a second) for a
    Batch integration agent.asl.json never uses; the engine defers that package."""
    modules = imported_modules(["run", "--no-serve", "Build a todo app"], tmp_path)
    assert "statemachine.engine" in modules  # the run did start the engine
    assert "moto.stepfunctions.parser.models" in modules
    assert not {m for m in modules if m.startswith("moto.ec2")}
    assert "moto.batch.models" not in modules
    # Tracing is off locally: no X-Ray recorder, whose botocore client cost about 0.4 s.
    assert "aws_xray_sdk.core" not in modules


def test_the_deferred_moto_batch_package_still_loads_when_something_uses_it():
    code = (
        "import sys, statemachine.engine, moto.batch;"
        "assert 'moto.batch.models' not in sys.modules;"
        "assert moto.batch.batch_backends is not None;"
        "from moto.batch.utils import JobStatus; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_the_engine_reads_the_history_as_get_execution_history_returns_it(tmp_path):
    """History comes from moto's backend in memory (botocore's round trip cost about a second a
    run); it must be what the API returns, event for event."""
    from pixie.local_run import DEMO_SCRIPT, RunOptions
    from statemachine.engine import LocalEngine, hello_world_event
    from statemachine.history import jsonable

    options = RunOptions(model=f"scripted:{DEMO_SCRIPT}", pixie_home=tmp_path)
    with LocalEngine(options.env()) as engine:
        execution = engine.run(hello_world_event("Build a todo app"))
        through_the_api = engine.sfn.get_execution_history(executionArn=execution.arn, maxResults=1000)["events"]
        assert execution.status == "SUCCEEDED"
        assert execution.history == jsonable(through_the_api)
        assert all(event["timestamp"].tzinfo is not None for event in engine.history(execution.arn))


def test_the_definition_is_parsed_once_and_then_comes_from_the_cache(tmp_path, monkeypatch):
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    from pixie.local_run import DEMO_SCRIPT, RunOptions
    from statemachine import asl_cache
    from statemachine.engine import LocalEngine, hello_world_event

    monkeypatch.setattr(asl_cache, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(asl_cache, "_memory", {})
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    parses = []
    real_parse = AmazonStateLanguageParser.parse
    monkeypatch.setattr(AmazonStateLanguageParser, "parse", staticmethod(lambda d: parses.append(1) or real_parse(d)))
    options = RunOptions(model=f"scripted:{DEMO_SCRIPT}", pixie_home=tmp_path)

    def one_run() -> str:
        with LocalEngine(options.env()) as engine:
            return engine.run(hello_world_event("Build a todo app")).status

    assert one_run() == "SUCCEEDED" and len(parses) == 1  # validation parsed it; the execution reused it
    monkeypatch.setattr(asl_cache, "_memory", {})  # a new process: only the file beside the bytecode is left
    assert one_run() == "SUCCEEDED" and len(parses) == 1
    assert len(list((tmp_path / "cache").glob("asl-*.pickle"))) == 1


def test_a_definition_that_does_not_parse_is_still_refused_as_moto_refuses_it():
    import boto3
    from botocore.exceptions import ClientError
    from moto import mock_aws

    from statemachine.asl_cache import parsing_once

    def refusal(*patches) -> str:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            for patch in patches:
                patch.__enter__()
            try:
                sfn = boto3.client("stepfunctions", region_name="us-east-1")
                sfn.create_state_machine(name="bad", definition='{"StartAt": "Nowhere", "States": {', roleArn="arn:aws:iam::123456789012:role/r")
            except ClientError as error:
                return str(error)
            finally:
                for patch in patches:
                    patch.__exit__(None, None, None)
        return "accepted"

    assert "ASLParserException" in refusal(parsing_once()) and refusal(parsing_once()) == refusal()


def test_the_engine_describes_an_execution_as_describe_execution_does(tmp_path):
    from pixie.local_run import DEMO_SCRIPT, RunOptions
    from statemachine.engine import LocalEngine, hello_world_event

    options = RunOptions(model=f"scripted:{DEMO_SCRIPT}", pixie_home=tmp_path)
    with LocalEngine(options.env()) as engine:
        execution = engine.run(hello_world_event("Build a todo app"))
        mine, theirs = engine.describe(execution.arn), engine.sfn.describe_execution(executionArn=execution.arn)
        assert execution.status == "SUCCEEDED" and execution.output == json.loads(theirs["output"])
        for key in ("status", "name", "executionArn"):
            assert mine[key] == theirs[key], key
        assert json.loads(mine["output"]) == json.loads(theirs["output"])  # the same JSON, spaced otherwise


def _tracer_in_a_fresh_interpreter(**env: str) -> dict:
    code = (
        "import json, sys, lambdas.handlers.shared as s;"
        "print(json.dumps({'provider': type(s.tracer.provider).__name__, 'disabled': bool(s.tracer.disabled),"
        " 'xray': 'aws_xray_sdk.core' in sys.modules}))"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("LAMBDA_TASK_ROOT", "POWERTOOLS_TRACE_DISABLED")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_handlers_trace_with_x_ray_on_lambda_and_load_no_x_ray_where_tracing_is_off(tmp_path):
    on_lambda = _tracer_in_a_fresh_interpreter(LAMBDA_TASK_ROOT=str(tmp_path), AWS_DEFAULT_REGION="us-east-1")
    assert on_lambda == {"provider": "AsyncAWSXRayRecorder", "disabled": False, "xray": True}
    switched_off = _tracer_in_a_fresh_interpreter(LAMBDA_TASK_ROOT=str(tmp_path), POWERTOOLS_TRACE_DISABLED="true")
    assert switched_off == {"provider": "NoTracing", "disabled": True, "xray": False}
    assert _tracer_in_a_fresh_interpreter() == {"provider": "NoTracing", "disabled": True, "xray": False}


def test_a_run_builds_no_botocore_session_per_step(tmp_path, monkeypatch):
    """Each new botocore session loads its data files again (about 0.15 s of CPU). Powertools'
    idempotency store builds one per store unless handed a client; five steps did so per run.
    The steps share the default session's clients instead."""
    import botocore.session

    from pixie.local_run import DEMO_SCRIPT, RunOptions
    from statemachine.engine import LocalEngine, hello_world_event

    made = []
    real_init = botocore.session.Session.__init__

    def counting_init(self, *args, **kwargs):
        made.append(1)
        real_init(self, *args, **kwargs)

    options = RunOptions(model=f"scripted:{DEMO_SCRIPT}", pixie_home=tmp_path)
    with LocalEngine(options.env()) as engine:
        monkeypatch.setattr(botocore.session.Session, "__init__", counting_init)
        execution = engine.run(hello_world_event("Build a todo app"))
    assert execution.status == "SUCCEEDED", execution.cause
    assert sum(e["type"] == "TaskSucceeded" for e in execution.history) >= 5  # the steps did run
    assert made == [], f"{len(made)} botocore sessions built while the run's steps ran"
