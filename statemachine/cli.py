"""pixie: run the coding agent on the embedded engine, and look at finished runs.

    pixie run [--model openai:MODEL | scripted:FILE] [--sandbox local|e2b] [--max-iterations N]
              [--json] [--no-serve] PROMPT
    pixie show RUN_ID [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from lambdas.logic.config import DEFAULT_MODEL

RESULT_KEYS = ("runId", "status", "url", "title", "summary", "files", "sandboxId", "error", "cause")


def pixie_home() -> Path:
    return Path(os.environ.get("PIXIE_HOME") or Path.home() / ".pixie")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _resolve_model(spec: str | None) -> tuple[str, str | None]:
    """The model spec to use, and a notice for stderr when it is the offline demo."""
    from statemachine.local_run import DEMO_SCRIPT

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
    raise SystemExit(f"pixie: unknown --model {spec!r}: use openai:MODEL or scripted:FILE")


def _print_human(record: dict[str, Any]) -> None:
    out = sys.stdout
    if record["status"] == "SUCCEEDED":
        out.write(f"\n{record.get('title') or 'Done'}\n\nPreview: {record['url']}\n\nFiles:\n")
        for path in sorted(record["files"]):
            out.write(f"  {path}\n")
        out.write(f"\nSummary:\n{record.get('summary')}\n\nRun id: {record['runId']} (pixie show {record['runId']})\n")
    else:
        out.write(f"\nRun {record['runId']} {record['status']}: {record.get('error')}\n{record.get('cause') or ''}\n")
        out.write(f"Inspect it with: pixie show {record['runId']}\n")
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
    from statemachine.display import LiveDisplay
    from statemachine.local_run import RunOptions, run_locally

    model, notice = _resolve_model(args.model)
    if notice:
        sys.stderr.write(f"pixie: {notice}\n")
    options = RunOptions(
        model=model,
        sandbox=args.sandbox,
        max_iterations=args.max_iterations,
        pixie_home=pixie_home(),
        template=args.template,
        log_level="INFO" if args.verbose else "WARNING",
    )
    sys.stderr.write(f"pixie: {model} · {args.sandbox} sandbox · up to {args.max_iterations} turns\n")
    record = run_locally(args.prompt, options, on_event=LiveDisplay(sys.stderr))
    if args.json:
        print(json.dumps({key: record.get(key) for key in RESULT_KEYS}, ensure_ascii=False), flush=True)
    else:
        _print_human(record)
    succeeded = record["status"] == "SUCCEEDED"
    if succeeded and args.sandbox == "local" and not args.no_serve:
        _serve_until_interrupted(record["url"])
    return 0 if succeeded else 1


def _format_message(message: dict[str, Any]) -> str:
    role = message.get("role", "?")
    lines = [f"[{role}{' ' + message['tool_call_id'] if role == 'tool' else ''}]"]
    if message.get("content"):
        lines.append(str(message["content"]))
    for call in message.get("tool_calls") or []:
        lines.append(f"→ {call['function']['name']}({call['function']['arguments'][:500]})  [{call['id']}]")
    return "\n".join(lines)


def cmd_show(args: argparse.Namespace) -> int:
    from statemachine.runs import load_run

    try:
        record = load_run(pixie_home(), args.run_id)
    except FileNotFoundError as exc:
        sys.stderr.write(f"pixie: {exc}\n")
        return 2
    if args.json:
        print(json.dumps(record, ensure_ascii=False, indent=2))
        return 0
    _print_human(record)
    print(f"\nConversation ({len(record['conversation'])} messages):\n")
    for message in record["conversation"]:
        print(_format_message(message) + "\n")
    print("History:")
    from statemachine.display import LiveDisplay

    display = LiveDisplay(sys.stdout)
    for event in record["history"]:
        display(event)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixie", description="A durable coding agent on AWS Step Functions.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the agent on the embedded engine (no AWS account needed)")
    run.add_argument("prompt", help="what to build")
    run.add_argument("--model", help="openai:MODEL (default openai:gpt-4.1 when OPENAI_API_KEY is set) or scripted:FILE")
    run.add_argument("--sandbox", choices=("local", "e2b"), default="local", help="where the code runs (default local)")
    run.add_argument("--template", default="pixie", help="E2B template name (default pixie)")
    run.add_argument("--max-iterations", type=_positive_int, default=15, help="model turns before giving up (default 15)")
    run.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    run.add_argument("--no-serve", action="store_true", help="exit when the run ends instead of serving the preview")
    run.add_argument("--verbose", action="store_true", help="show the handlers' logs")
    run.set_defaults(func=cmd_run)

    show = commands.add_parser("show", help="a finished local run: result, conversation, execution history")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
