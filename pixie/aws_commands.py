"""The `pixie` commands against a deployed stack: send, watch, show --aws, resume --aws, and the
AWS errors said in one line. The AWS calls themselves live in pixie/aws_runs.py."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from pixie.cli import _print_human, pixie_command

AWS_POLL_S = 2.0  # seconds between Step Functions polls in send/watch


def _aws_session(args: argparse.Namespace) -> None:
    """--profile and --region for the default boto3 session every AWS client here is made from."""
    import boto3

    profile = getattr(args, "profile", None) or None
    region = getattr(args, "region", None) or os.environ.get("AWS_REGION") or None
    if profile is None and region is None:
        return  # the usual configuration: keep the default session (and whatever hooks it carries)
    boto3.setup_default_session(profile_name=profile, region_name=region)


def _explain_aws_error(exc: BaseException) -> str:
    from botocore.exceptions import NoCredentialsError, NoRegionError, PartialCredentialsError, ProfileNotFound

    causes = [exc]
    while causes[-1].__cause__ is not None and len(causes) < 5:
        causes.append(causes[-1].__cause__)
    for cause in causes:
        if isinstance(cause, NoRegionError):
            return "no AWS region: pass --region REGION (e.g. --region us-east-1), or set AWS_REGION or a profile with a region"
        if isinstance(cause, (NoCredentialsError, PartialCredentialsError)):
            return ("no AWS credentials found: run `aws configure` (or `aws sso login`), pass --profile NAME, "
                    "or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        if isinstance(cause, ProfileNotFound):
            return f"{cause}: check --profile / AWS_PROFILE against ~/.aws/config"
        code = getattr(cause, "response", {}).get("Error", {}).get("Code", "") if hasattr(cause, "response") else ""
        if code in ("ExpiredToken", "ExpiredTokenException", "UnrecognizedClientException", "InvalidClientTokenId"):
            return f"AWS rejected the credentials ({code}): refresh them (`aws sso login`) or pass --profile NAME"
    return " ".join(str(exc).split())


def aws_call(args: argparse.Namespace, function: Any) -> Any:
    """Runs function() in the session --profile/--region select, turning configuration and AWS
    errors into one line on stderr (None)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from pixie.aws_runs import AwsRunsError

    try:
        _aws_session(args)
        return function()
    except (AwsRunsError, ClientError, BotoCoreError) as exc:
        sys.stderr.write(f"pixie: {_explain_aws_error(exc)}\n")
        return None


def show_aws_record(args: argparse.Namespace) -> dict[str, Any]:
    from pixie.aws_runs import aws_client, show_aws, stack_outputs

    outputs = stack_outputs(stack_name=args.stack, required=("TableName",))
    sfn = aws_client("stepfunctions") if outputs.get("StateMachineArn") else None
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


def _watch_and_report(args: argparse.Namespace, execution_arn: str, as_json: bool) -> int:
    from pixie.aws_runs import aws_client, watch
    from pixie.display import LiveDisplay

    def follow() -> dict[str, Any]:
        display = LiveDisplay(sys.stderr)
        try:
            return watch(execution_arn, aws_client("stepfunctions"), on_event=display, poll_s=AWS_POLL_S)
        finally:
            display.close()

    try:
        result = aws_call(args, follow)
    except KeyboardInterrupt:
        sys.stderr.write(f"\npixie: stopped watching; the execution goes on: {pixie_command()} watch {execution_arn}\n")
        return 130
    if result is None:
        return 2
    duplicate_of = result["output"].get("duplicateOf") if isinstance(result["output"], dict) else None
    if duplicate_of:  # EventBridge delivered the event twice and this execution ended as DuplicateEvent
        original = result["executionArn"].rsplit(":", 1)[0] + ":" + duplicate_of
        sys.stderr.write(f"pixie: {result['runId']} was a repeated delivery of the event; following its run {duplicate_of}\n")
        return _watch_and_report(args, original, as_json)
    record = _aws_result_record(result)
    if as_json:
        print(json.dumps(record, ensure_ascii=True), flush=True)
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

    execution_arn = aws_call(args, start)
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
    return _watch_and_report(args, execution_arn, args.json)


def resume_aws(args: argparse.Namespace) -> int:
    def redrive_run() -> str:
        from pixie.aws_runs import aws_client, redrive, stack_outputs

        outputs = stack_outputs(stack_name=args.stack, required=("StateMachineArn",))
        return redrive(args.run_id, aws_client("stepfunctions"), outputs["StateMachineArn"], poll_s=min(AWS_POLL_S, 1.0))

    execution_arn = aws_call(args, redrive_run)
    if execution_arn is None:
        return 2
    sys.stderr.write(f"pixie: redriving {execution_arn}\n")
    return _watch_and_report(args, execution_arn, args.json)


def stop_aws(args: argparse.Namespace) -> int:
    """StopExecution of a deployed run; the stack's status-change rule then runs CleanupSandbox."""

    def stop_run() -> str:
        from pixie.aws_runs import aws_client, stack_outputs

        outputs = stack_outputs(stack_name=args.stack, required=("StateMachineArn",))
        arn = outputs["StateMachineArn"].replace(":stateMachine:", ":execution:") + f":{args.run_id}"
        sfn = aws_client("stepfunctions")
        sfn.stop_execution(executionArn=arn, error="Stopped", cause="stopped with pixie stop")
        return sfn.describe_execution(executionArn=arn)["status"]

    status = aws_call(args, stop_run)
    if status is None:
        return 2
    print(json.dumps({"runId": args.run_id, "status": status}) if args.json else f"Run {args.run_id}: {status}", flush=True)
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    return _watch_and_report(args, args.execution_arn, args.json)


def decide_aws(args: argparse.Namespace, approve: bool, reason: str | None) -> int:
    """`pixie approve|deny RUN --aws`: SendTaskSuccess / SendTaskFailure for the deployed run's wait."""

    def decide() -> dict[str, Any]:
        from pixie.aws_runs import aws_client, decide_aws as decide_run, stack_outputs

        outputs = stack_outputs(stack_name=args.stack, required=("TableName",))
        return decide_run(args.run_id, outputs["TableName"], aws_client("stepfunctions"), approve, reason,
                          iteration=getattr(args, "turn", None))

    result = aws_call(args, decide)
    if result is None:
        return 2
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        print(f"Run {args.run_id}: {result['calls']} tool call(s) {result['decision']}.", flush=True)
    return 0
