"""pixie: run the coding agent on the embedded engine, and look at finished runs.

    pixie run [--model openai:MODEL | scripted:FILE] [--sandbox local|e2b] [--max-iterations N]
              [--json] [--no-serve] [--allow-network] [--no-isolation] PROMPT
    pixie run --continue RUN_ID [same options] PROMPT
    pixie resume RUN_ID [--json] [--no-serve]
    pixie show RUN_ID [--json]
    pixie doctor                 how local commands are isolated here, checked

and against a deployed stack (boto3; region and credentials from the usual AWS configuration):

    pixie send [--continue RUN_ID] PROMPT [--stack NAME] [--no-watch] [--json]
    pixie resume RUN_ID --aws [--stack NAME] [--json]
    pixie watch EXECUTION_ARN [--json]
    pixie show RUN_ID --aws [--stack NAME] [--json]

and a local web console for both:

    pixie ui [--port N] [--host 127.0.0.1] [--no-open] [--aws [--stack NAME]]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from lambdas.logic.config import DEFAULT_MODEL, TRIGGER_MAX_EVENT_AGE_S
from lambdas.logic.limits import MAX_ITERATIONS_CAP

AWS_POLL_S = 2.0  # seconds between Step Functions polls in send/watch
SEND_TIMEOUT_S = TRIGGER_MAX_EVENT_AGE_S + 60  # as long as the rule retries (= pixie.aws_runs.DEFAULT_SEND_TIMEOUT_S)
RESULT_KEYS = ("runId", "status", "url", "title", "summary", "files", "sandboxId", "error", "cause")


def pixie_home() -> Path:
    return Path(os.environ.get("PIXIE_HOME") or Path.home() / ".pixie")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _max_iterations(text: str) -> int:
    from lambdas.logic.limits import check_max_iterations

    try:
        return check_max_iterations(int(text) if text.strip().lstrip("-").isdigit() else text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _door_check(prompt: str, options: Any) -> str | None:
    """Why this run cannot start (bad prompt, setting or script), before anything is created."""
    from lambdas.logic.config import Settings
    from lambdas.logic.errors import PixieError
    from lambdas.logic.events import check_prompt

    try:
        settings = Settings.from_env({**os.environ, **options.env()})
        check_prompt(prompt, settings.max_prompt_chars)
        if settings.model.startswith("scripted:"):
            from lambdas.logic.models.scripted import ScriptedModel

            ScriptedModel(settings.model.partition(":")[2])  # checks every turn of the script
    except (PixieError, ValueError) as exc:
        return str(exc)
    return None


def _fault_rate(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError("must be at least 0 and below 1")
    return value


def _resolve_model(spec: str | None) -> tuple[str, str | None]:
    """The model spec to use, and a notice for stderr when it is the offline demo."""
    from pixie.local_run import DEMO_SCRIPT

    if spec is None:
        if os.environ.get("OPENAI_API_KEY"):
            return DEFAULT_MODEL, None
        notice = (
            "No OPENAI_API_KEY set: running the bundled scripted demo (a todo app, whatever the prompt). "
            "It runs the real workflow and tools, but no model generates anything. "
            "Set OPENAI_API_KEY, or pass --model openai:MODEL / scripted:FILE."
        )
        return f"scripted:{DEMO_SCRIPT}", notice
    provider, _, rest = spec.partition(":")
    if provider == "scripted" and rest:
        path = Path(rest).expanduser().resolve()
        if not path.is_file():
            raise SystemExit(f"pixie: script file {rest} does not exist")
        return f"scripted:{path}", None
    if provider == "openai" and rest:
        return spec, None
    if provider == "bedrock" and rest:
        from lambdas.logic.models.bedrock_model import aws_region

        if not aws_region():
            sys.stderr.write("pixie: bedrock models need an AWS region: set AWS_REGION (or a region in your AWS profile)\n")
            raise SystemExit(2)
        return spec, None
    raise SystemExit(f"pixie: unknown --model {spec!r}: use openai:MODEL, bedrock:MODEL_ID or scripted:FILE")


def _print_human(record: dict[str, Any], show_flags: str = "") -> None:
    out = sys.stdout
    show = f"pixie show {record['runId']}{show_flags}"
    if record["status"] == "SUCCEEDED":
        out.write(f"\n{record.get('title') or 'Done'}\n\nPreview: {record['url']}\n\nFiles:\n")
        for path in sorted(record["files"] or []):
            out.write(f"  {path}\n")
        out.write(f"\nSummary:\n{record.get('summary')}\n\nRun id: {record['runId']} ({show})\n")
    else:
        error = f": {record['error']}" if record.get("error") else ""
        out.write(f"\nRun {record['runId']} {record['status']}{error}\n{record.get('cause') or ''}\n")
        out.write(f"Inspect it with: {show}\n")
        if record["status"] == "INTERRUPTED":  # saved as running, its process gone
            out.write(f"Finish it with: pixie resume {record['runId']}\n")
    out.flush()


def _serve_until_interrupted(url: str) -> None:
    from lambdas.logic.sandboxes.local import stop_all_previews

    sys.stderr.write(f"Serving the preview at {url}. Press Ctrl-C to stop.\n")
    sys.stderr.flush()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_all_previews()


def cmd_run(args: argparse.Namespace) -> int:
    from pixie.display import LiveDisplay
    from pixie.local_run import RunInterrupted, RunOptions, continue_locally, run_locally
    from pixie.run_journal import CannotStart

    from pixie.doctor import isolation_for_run, network_allowed

    model, notice = _resolve_model(args.model)
    if notice:
        sys.stderr.write(f"pixie: {notice}\n")
    isolation = isolation_for_run(args.sandbox, model, args.no_isolation, args.allow_network, sys.stderr)
    options = RunOptions(
        isolation=isolation,
        allow_network=network_allowed(args.allow_network),
        model=model,
        sandbox=args.sandbox,
        max_iterations=args.max_iterations,
        pixie_home=pixie_home(),
        template=args.template,
        log_level="INFO" if args.verbose else "ERROR",
    )
    problem = _door_check(args.prompt, options)
    if problem:
        sys.stderr.write(f"pixie: {problem}\n")
        return 2
    sys.stderr.write(f"pixie: {model} · {args.sandbox} sandbox · up to {args.max_iterations} turns\n")
    faults = None
    if args.inject_faults:
        from statemachine.engine import FaultInjector

        faults = FaultInjector(args.inject_faults, args.fault_seed)
        sys.stderr.write(f"pixie: injecting faults into {args.inject_faults:.0%} of invocations (seed {args.fault_seed})\n")
    try:
        if args.continue_from:
            record = continue_locally(
                args.continue_from, args.prompt, options, on_event=LiveDisplay(sys.stderr), invoke_wrapper=faults
            )
        else:
            record = run_locally(args.prompt, options, on_event=LiveDisplay(sys.stderr), invoke_wrapper=faults)
    except CannotStart as exc:
        sys.stderr.write(f"pixie: {exc}\n")
        return 2
    except RunInterrupted as interrupted:
        return _interrupted(interrupted)
    if faults:
        sys.stderr.write(f"pixie: {len(faults.injected)} faults injected\n")
    return _report_local(record, args.json, serve=args.sandbox == "local" and not args.no_serve)


def _interrupted(interrupted: Any) -> int:
    run_id = interrupted.record["runId"]
    sys.stderr.write(f"\npixie: interrupted; run {run_id} stopped and saved (pixie show {run_id}, pixie resume {run_id})\n")
    return 130


def _report_local(record: dict[str, Any], as_json: bool, serve: bool) -> int:
    """Prints a finished local run (run, resume); serves the preview of a success if asked."""
    if as_json:
        print(json.dumps({key: record.get(key) for key in RESULT_KEYS}, ensure_ascii=False), flush=True)
    else:
        _print_human(record)
    succeeded = record["status"] == "SUCCEEDED"
    if succeeded and serve:
        _serve_until_interrupted(record["url"])
    return 0 if succeeded else 1


def cmd_doctor(args: argparse.Namespace) -> int:
    from pixie.doctor import doctor

    return doctor(args.allow_network)


def cmd_resume(args: argparse.Namespace) -> int:
    """Finishes a run that did not: locally from its saved state, on AWS with RedriveExecution."""
    if args.aws:
        return _resume_aws(args)
    from pixie.display import LiveDisplay
    from pixie.local_run import RunInterrupted, resume_locally
    from pixie.run_journal import CannotStart

    sys.stderr.write(f"pixie: resuming run {args.run_id}\n")
    try:
        record = resume_locally(
            args.run_id, pixie_home(), log_level="INFO" if args.verbose else "ERROR", on_event=LiveDisplay(sys.stderr)
        )
    except CannotStart as exc:
        sys.stderr.write(f"pixie: {exc}\n")
        return 2
    except RunInterrupted as interrupted:
        return _interrupted(interrupted)
    local_sandbox = str(record.get("sandboxId") or "").startswith("local-")
    return _report_local(record, args.json, serve=local_sandbox and not args.no_serve)


def _format_message(message: dict[str, Any]) -> str:
    role = message.get("role", "?")
    lines = [f"[{role}{' ' + message['tool_call_id'] if role == 'tool' else ''}]"]
    if message.get("content"):
        lines.append(str(message["content"]))
    for call in message.get("tool_calls") or []:
        lines.append(f"→ {call['function']['name']}({call['function']['arguments'][:500]})  [{call['id']}]")
    return "\n".join(lines)


def cmd_show(args: argparse.Namespace) -> int:
    from pixie.runs import load_run

    if args.aws:
        record = _aws_call(lambda: _show_aws_record(args))
        if record is None:
            return 2
    else:
        try:
            record = load_run(pixie_home(), args.run_id)
        except FileNotFoundError as exc:
            sys.stderr.write(f"pixie: {exc}\n")
            return 2
    if args.json:
        print(json.dumps(record, ensure_ascii=False, indent=2))
        return 0
    _print_human(record, " --aws" if args.aws else "")
    if record.get("parentRunId"):  # a run in a chain: where it came from
        print(f"\nContinues run {record['parentRunId']} (project {record.get('projectId')})")
    print(f"\nConversation ({len(record['conversation'])} messages):\n")
    for message in record["conversation"]:
        print(_format_message(message) + "\n")
    print("History:")
    from pixie.display import LiveDisplay

    display = LiveDisplay(sys.stdout)
    for event in record["history"]:
        display(event)
    return 0


# --- against a deployed stack ---------------------------------------------------------------------
def _aws_call(function: Any) -> Any:
    """Runs function(), turning configuration and AWS errors into one line on stderr (None)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from pixie.aws_runs import AwsRunsError

    try:
        return function()
    except (AwsRunsError, ClientError, BotoCoreError) as exc:
        sys.stderr.write(f"pixie: {exc}\n")
        return None


def _show_aws_record(args: argparse.Namespace) -> dict[str, Any]:
    import boto3

    from pixie.aws_runs import show_aws, stack_outputs

    outputs = stack_outputs(stack_name=args.stack, required=("TableName",))
    sfn = boto3.client("stepfunctions") if outputs.get("StateMachineArn") else None
    return show_aws(args.run_id, outputs["TableName"], sfn_client=sfn, state_machine_arn=outputs.get("StateMachineArn"))


def _aws_result_record(result: dict[str, Any]) -> dict[str, Any]:
    """A finished execution as `pixie run` reports a run (sandboxId lives in the table)."""
    from pixie.display import lambda_error_message

    output = result["output"] if isinstance(result["output"], dict) else {}
    return {
        "runId": result["runId"],
        "status": result["status"],
        "url": output.get("url"),
        "title": output.get("title"),
        "summary": output.get("summary"),
        "files": output.get("files") or [],
        "sandboxId": None,
        "error": result["error"],
        "cause": lambda_error_message(result["cause"]),
        "executionArn": result["executionArn"],
    }


def _watch_and_report(execution_arn: str, as_json: bool) -> int:
    from pixie.aws_runs import aws_client, watch
    from pixie.display import LiveDisplay

    def follow() -> dict[str, Any]:
        return watch(execution_arn, aws_client("stepfunctions"), on_event=LiveDisplay(sys.stderr), poll_s=AWS_POLL_S)

    try:
        result = _aws_call(follow)
    except KeyboardInterrupt:
        sys.stderr.write(f"\npixie: stopped watching; the execution goes on: pixie watch {execution_arn}\n")
        return 130
    if result is None:
        return 2
    duplicate_of = result["output"].get("duplicateOf") if isinstance(result["output"], dict) else None
    if duplicate_of:  # EventBridge delivered the event twice and this execution ended as DuplicateEvent
        original = result["executionArn"].rsplit(":", 1)[0] + ":" + duplicate_of
        sys.stderr.write(f"pixie: {result['runId']} was a repeated delivery of the event; following its run {duplicate_of}\n")
        return _watch_and_report(original, as_json)
    record = _aws_result_record(result)
    if as_json:
        print(json.dumps(record, ensure_ascii=False), flush=True)
    else:
        _print_human(record, " --aws")
    return 0 if record["status"] == "SUCCEEDED" else 1


def cmd_send(args: argparse.Namespace) -> int:
    def start() -> str:
        from pixie.aws_runs import aws_client, send, stack_outputs

        outputs = stack_outputs(stack_name=args.stack, required=("StateMachineArn",))
        dead_letter_queue_url = outputs.get("DeadLetterQueueUrl")
        return send(
            args.prompt,
            aws_client("events"),
            aws_client("stepfunctions"),
            outputs["StateMachineArn"],
            timeout_s=args.timeout,
            event_bus_name=outputs.get("EventBusName") or "default",
            poll_s=min(AWS_POLL_S, 1.0),
            sqs_client=aws_client("sqs") if dead_letter_queue_url else None,
            dead_letter_queue_url=dead_letter_queue_url,
            notice=lambda message: sys.stderr.write(f"pixie: {message}\n"),
            continue_from=args.continue_from,
            table=outputs.get("TableName"),
        )

    execution_arn = _aws_call(start)
    if execution_arn is None:
        return 2
    sys.stderr.write(f"pixie: started {execution_arn}\n")
    sys.stderr.flush()
    if args.no_watch:
        if args.json:
            run_id = execution_arn.rsplit(":", 1)[-1]
            print(json.dumps({"executionArn": execution_arn, "runId": run_id, "status": "RUNNING"}), flush=True)
        else:
            print(execution_arn, flush=True)
        return 0
    return _watch_and_report(execution_arn, args.json)


def _resume_aws(args: argparse.Namespace) -> int:
    def redrive_run() -> str:
        import boto3

        from pixie.aws_runs import redrive, stack_outputs

        outputs = stack_outputs(stack_name=args.stack, required=("StateMachineArn",))
        return redrive(args.run_id, boto3.client("stepfunctions"), outputs["StateMachineArn"], poll_s=min(AWS_POLL_S, 1.0))

    execution_arn = _aws_call(redrive_run)
    if execution_arn is None:
        return 2
    sys.stderr.write(f"pixie: redriving {execution_arn}\n")
    return _watch_and_report(execution_arn, args.json)


def cmd_watch(args: argparse.Namespace) -> int:
    return _watch_and_report(args.execution_arn, args.json)


def cmd_ui(args: argparse.Namespace) -> int:
    from pixie.console.server import serve

    if args.aws:
        from pixie.console.backends import AwsRuns

        runs = _aws_call(lambda: AwsRuns(args.stack))
        if runs is None:
            return 2
    else:
        from pixie.console.backends import LocalRuns

        model, notice = _resolve_model(args.model)
        if notice:
            sys.stderr.write(f"pixie: {notice} (each run may pick another model)\n")
        runs = LocalRuns(pixie_home(), model, template=args.template)
    serve(runs, host=args.host, port=args.port, open_browser=not args.no_open)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixie", description="A durable coding agent on AWS Step Functions.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the agent on the embedded engine (no AWS account needed)")
    run.add_argument("prompt", help="what to build")
    run.add_argument("--model", help="openai:MODEL (default openai:gpt-4.1 when OPENAI_API_KEY is set) or scripted:FILE")
    run.add_argument("--sandbox", choices=("local", "e2b"), default="local", help="where the code runs (default local)")
    run.add_argument("--template", default="pixie", help="E2B template name (default pixie)")
    run.add_argument("--max-iterations", type=_max_iterations, default=15, help=f"model turns before giving up (default 15, at most {MAX_ITERATIONS_CAP})")
    run.add_argument("--continue", dest="continue_from", metavar="RUN_ID",
                     help="continue the project of a run that succeeded: its sandbox, files and conversation")
    run.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    run.add_argument("--no-serve", action="store_true", help="exit when the run ends instead of serving the preview")
    run.add_argument("--inject-faults", type=_fault_rate, default=0.0, metavar="RATE",
                     help="make each Lambda invocation fail with this probability (0 to <1), to test durability")
    run.add_argument("--fault-seed", type=int, default=None, metavar="N", help="seed for --inject-faults (replayable)")
    run.add_argument("--verbose", action="store_true", help="show the handlers' logs")
    run.add_argument("--allow-network", action="store_true",
                     help="let the local sandbox's commands use the network (off by default; PIXIE_ALLOW_NETWORK=1)")
    run.add_argument("--no-isolation", action="store_true",
                     help="run the local sandbox's commands unisolated, as you (warned on every run)")
    run.set_defaults(func=cmd_run)

    doctor = commands.add_parser("doctor", help="show how local commands are isolated here, and check that it works")
    doctor.add_argument("--allow-network", action="store_true", help="check with network allowed, as --allow-network runs")
    doctor.set_defaults(func=cmd_doctor)

    show = commands.add_parser("show", help="a finished run: result, conversation, execution history")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true")
    show.add_argument("--aws", action="store_true", help="read the run from the deployed stack's table")
    show.add_argument("--stack", default="PixieStack", help="stack whose outputs name the table (default PixieStack)")
    show.set_defaults(func=cmd_show)

    send = commands.add_parser("send", help="start a run on the deployed stack: put a test/hello.world event")
    send.add_argument("prompt", help="what to build")
    send.add_argument("--stack", default="PixieStack", help="stack whose outputs name the state machine (default PixieStack)")
    send.add_argument("--continue", dest="continue_from", metavar="RUN_ID",
                      help="continue the project of a deployed run that succeeded")
    send.add_argument("--no-watch", action="store_true", help="print the execution ARN and exit")
    send.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    send.add_argument(
        "--timeout",
        type=_positive_int,
        default=SEND_TIMEOUT_S,
        help=f"seconds to wait for the execution to start (default {SEND_TIMEOUT_S}: as long as the rule retries; "
        "it stops early when the event lands in the dead-letter queue)",
    )
    send.set_defaults(func=cmd_send)

    resume = commands.add_parser("resume", help="finish a run that did not: killed, interrupted or failed")
    resume.add_argument("run_id")
    resume.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    resume.add_argument("--no-serve", action="store_true", help="exit when the run ends instead of serving the preview")
    resume.add_argument("--verbose", action="store_true", help="show the handlers' logs")
    resume.add_argument("--aws", action="store_true", help="redrive the deployed run's execution (RedriveExecution)")
    resume.add_argument("--stack", default="PixieStack", help="stack whose outputs name the state machine (default PixieStack)")
    resume.set_defaults(func=cmd_resume)

    watch = commands.add_parser("watch", help="follow an execution on AWS and print its result")
    watch.add_argument("execution_arn")
    watch.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    watch.set_defaults(func=cmd_watch)

    ui = commands.add_parser("ui", help="a local web console: start, watch and inspect runs")
    ui.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765; 0 picks a free one)")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    ui.add_argument("--no-open", action="store_true", help="do not open a browser")
    ui.add_argument("--model", help="default model of runs started here (as for pixie run)")
    ui.add_argument("--template", default="pixie", help="E2B template name for runs with the e2b sandbox")
    ui.add_argument("--aws", action="store_true", help="the deployed stack's runs instead of local ones")
    ui.add_argument("--stack", default="PixieStack", help="with --aws: the stack (default PixieStack)")
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
