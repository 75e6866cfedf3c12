"""pixie: run the coding agent on the embedded engine, and look at finished runs.

    pixie run [--model openai:MODEL | bedrock:MODEL_ID | scripted:FILE] [--sandbox local|e2b]
              [--max-iterations N] [--budget-usd USD] [--max-tokens N]
              [--no-check | --check-command COMMAND] [--approve commands|all] [--approval-timeout 24h]
              [--json] [--no-serve] [--allow-network] [--allow-host HOST[:PORT]] [--no-isolation] PROMPT
    pixie run --continue RUN_ID [same options] PROMPT
    pixie resume RUN_ID [--budget-usd USD] [--max-tokens N] [--json] [--no-serve]
    pixie list [--limit N] [--json]
    pixie show RUN_ID [--json]          (a unique prefix of the id is enough, here and in open)
    pixie open RUN_ID                   serve exactly that run's version
    pixie diff RUN_ID [--against RUN_ID] [--stat] [--json]
    pixie restore RUN_ID                that version becomes the project's newest (a new one)
    pixie stop RUN_ID [--aws]           stop a run another pixie process (or the console) runs
    pixie approve RUN_ID [--aws]        run the tool calls a run (--approve) waits on
    pixie deny RUN_ID [--reason TEXT] [--aws]   ... or not: the model is told, with the reason
    pixie doctor                 how local commands are isolated here, checked

and against a deployed stack (boto3; region and credentials from --region/--profile or the usual
AWS configuration):

    pixie send [--continue RUN_ID] PROMPT [--stack NAME] [--no-watch] [--json]
    pixie resume RUN_ID --aws [--stack NAME] [--json]
    pixie watch EXECUTION_ARN [--json]
    pixie show RUN_ID --aws [--stack NAME] [--json]

and a local web console for both:

    pixie ui [--port N] [--host 127.0.0.1] [--no-open] [--aws [--stack NAME]]

Usage errors exit 2, before anything is created."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from lambdas.logic.config import TRIGGER_MAX_EVENT_AGE_S

SEND_TIMEOUT_S = TRIGGER_MAX_EVENT_AGE_S + 60  # as long as the rule retries (= pixie.aws_runs.DEFAULT_SEND_TIMEOUT_S)
from lambdas.logic.limits import MAX_ITERATIONS_CAP
from pixie import __version__
from pixie.run_checks import RunRefused, check_prompt_and_settings, check_sandbox, continued_model, resolve_model
from pixie.terminal_text import visible

RESULT_KEYS = ("runId", "status", "url", "title", "summary", "files", "sandboxId", "error", "cause")


class UsageError(Exception):
    """A mistake in how pixie was called: said in one line, exit code 2, nothing created."""


def pixie_command() -> str:
    """How to call pixie again, for the hints it prints: `pixie` when that is what the shell
    finds, else the path it was started by (e.g. `.venv/bin/pixie`)."""
    invoked = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if invoked is None or invoked.name != "pixie":
        return ".venv/bin/pixie"
    on_path = shutil.which("pixie")
    try:
        if on_path and Path(on_path).resolve() == invoked.resolve():
            return "pixie"
        absolute = invoked.resolve()
        relative = os.path.relpath(absolute, Path.cwd())
    except (OSError, ValueError):
        return str(invoked)
    return relative if not relative.startswith("..") else str(absolute)


def _message(exc: BaseException) -> str:
    """An exception's own message (a KeyError's str() would add quotes around it)."""
    return str(exc.args[0]) if exc.args else str(exc)


def pixie_home() -> Path:
    return Path(os.environ.get("PIXIE_HOME") or Path.home() / ".pixie")


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(text)


def _port(text: str) -> int:
    if not text.strip().isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535 (0: any free port), not {text!r}")
    return int(text)


def _max_iterations(text: str) -> int:
    from lambdas.logic.limits import check_max_iterations

    try:
        return check_max_iterations(int(text) if text.strip().lstrip("-").isdigit() else text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _check_command(text: str) -> str:
    from lambdas.logic.limits import MAX_CHECK_COMMAND_CHARS

    if not text.strip() or len(text) > MAX_CHECK_COMMAND_CHARS or "\x00" in text:
        raise argparse.ArgumentTypeError(f"must be a shell command of 1 to {MAX_CHECK_COMMAND_CHARS} characters")
    return text


def _budget_usd(text: str) -> float:
    from lambdas.logic.limits import MAX_BUDGET_USD

    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= MAX_BUDGET_USD:
        raise argparse.ArgumentTypeError(f"must be a number of US dollars above 0 and at most {MAX_BUDGET_USD:,}")
    return value


def _max_tokens(text: str) -> int:
    from lambdas.logic.limits import MAX_TOKENS_CAP

    value = _positive_int(text)
    if value > MAX_TOKENS_CAP:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_TOKENS_CAP:,}")
    return value


def _approval_timeout(text: str) -> int:
    """Seconds, or a number with s, m, h or d (24h); Step Functions' own range."""
    from lambdas.logic.approvals import MAX_APPROVAL_TIMEOUT_S

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    if not number.isdigit() or not 1 <= int(number) * units[unit] <= MAX_APPROVAL_TIMEOUT_S:
        raise argparse.ArgumentTypeError(
            f"must be a time from 1 s to 365 d: seconds, or a number with s, m, h or d (e.g. 90, 30m, 24h), not {text!r}")
    return int(number) * units[unit]


def _fault_rate(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError("must be at least 0 and below 1")
    return value


def _print_human(record: dict[str, Any], show_flags: str = "", serving: bool = False) -> None:
    """A run's result for people. Everything the model or a tool wrote is shown escaped."""
    from pixie.runs import project_folder

    out = sys.stdout
    show = f"{pixie_command()} show {record['runId']}{show_flags}"
    folder = None if show_flags else project_folder(_pixie_home(), record)
    if record["status"] == "SUCCEEDED":
        out.write(f"\n{visible(record.get('title') or 'Done', one_line=True)}\n\nPreview: {visible(record['url'], one_line=True)}")
        if folder and not serving:  # the preview server ended with the run that started it
            out.write(f"  (not served now: {pixie_command()} open {record['runId']})")
        out.write("\n")
        if folder:
            out.write(f"Project: {folder}\n")
        out.write("\nFiles:\n")
        for path in sorted(record["files"] or []):
            out.write(f"  {visible(path, one_line=True)}\n")
        out.write(f"\nSummary:\n{visible(record.get('summary'))}\n\nRun id: {record['runId']} ({show})\n")
    else:
        error = f": {visible(record['error'], one_line=True)}" if record.get("error") else ""
        out.write(f"\nRun {record['runId']} {record['status']}{error}\n{visible(record.get('cause') or '')}\n")
        if folder:
            out.write(f"Project: {folder}\n")
        out.write(f"Inspect it with: {show}\n")
        if record["status"] == "INTERRUPTED":  # saved as running, its process gone
            out.write(f"Finish it with: pixie resume {record['runId']}\n")
    out.flush()


def _pixie_home() -> Path:
    return pixie_home()


def _serve_until_interrupted(url: str, folder: Path | None = None) -> None:
    from lambdas.logic.sandboxes.local import stop_all_previews

    where = f" (files in {folder})" if folder else ""
    sys.stderr.write(f"Serving the preview at {url}{where}. Press Ctrl-C to stop.\n")
    sys.stderr.flush()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_all_previews()


def _read_prompt(args: argparse.Namespace) -> str:
    """The prompt from the command line, `-` (standard input) or --prompt-file: one of them."""
    if args.prompt_file is not None:
        if args.prompt is not None:
            raise UsageError("give the prompt either as an argument or with --prompt-file, not both")
        try:
            return Path(args.prompt_file).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the prompt file {args.prompt_file}: {getattr(exc, 'strerror', None) or exc}") from None
    if args.prompt is None:
        raise UsageError("no prompt: give it as an argument, - to read it from standard input, or --prompt-file FILE")
    if args.prompt == "-":
        try:
            return sys.stdin.buffer.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"the prompt on standard input is not UTF-8 text ({exc.reason})") from None
    return args.prompt


def cmd_run(args: argparse.Namespace) -> int:
    args.prompt = _read_prompt(args)
    continue_from = _saved_run_id(args.continue_from) if args.continue_from else None
    spec = args.model
    if spec is None and continue_from:
        spec = continued_model(pixie_home(), continue_from)  # a follow-up keeps its parent's model
    choice = resolve_model(spec)  # mistakes first: before the engine loads (pixie/run_checks.py)
    model, notices, model_env = choice.spec, list(choice.notices), choice.env
    check_sandbox(args.sandbox, args.template)
    if continue_from and args.sandbox == "local":
        from lambdas.logic.versions import VersionStore

        if not VersionStore(pixie_home()).has(continue_from):
            notices.append(
                f"run {continue_from} has no kept version (pruned, or made before versions were kept): continuing "
                "from the files its file tool wrote; what its commands wrote is not carried over"
            )

    from lambdas.logic.sandboxes.run_isolation import isolation_for_run, network_allowed

    listed = bool(args.allow_host) or bool(os.environ.get("PIXIE_ALLOW_HOSTS", "").strip())
    check_allow_hosts(args.allow_host, args.sandbox, listed and network_allowed(args.allow_network))

    isolation = isolation_for_run(args.sandbox, model, args.no_isolation, args.allow_network, sys.stderr)
    options = _run_options(args, model, model_env, isolation, network_allowed(args.allow_network))
    check_prompt_and_settings(args.prompt, options)

    def start(display: Any, stop: Any, faults: Any) -> dict[str, Any]:
        from pixie.local_run import continue_locally, run_locally

        if continue_from:
            return continue_locally(
                continue_from, args.prompt, options, on_event=display, invoke_wrapper=faults, stop=stop
            )
        return run_locally(args.prompt, options, on_event=display, invoke_wrapper=faults, stop=stop)

    intro = [*notices, f"{visible(model, one_line=True)} · {args.sandbox} sandbox · up to {args.max_iterations} turns"]
    if args.approve:
        how = "asked here" if _asks_inline() else f"decide with {pixie_command()} approve / deny RUN"
        intro.append(f"{'terminal' if args.approve == 'commands' else 'all'} tool calls wait for your approval ({how})")
    return _run_live(start, intro, args, serve=args.sandbox == "local" and not args.no_serve)


def _asks_inline() -> bool:
    """`pixie run --approve` asks on the terminal when it has one to ask on."""
    try:
        return sys.stdin.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def check_allow_hosts(entries: list[str] | None, sandbox: str, whole_network: bool = False) -> None:
    """`--allow-host` mistakes (an unknown @preset, a bad port, an E2B sandbox, which pixie's
    proxy does not stand in front of) in one line, before anything starts."""
    if whole_network and sandbox == "local":  # PIXIE_ALLOW_NETWORK=1 left in a profile must not silently drop the list
        raise UsageError("--allow-host (or PIXIE_ALLOW_HOSTS) with --allow-network or PIXIE_ALLOW_NETWORK=1: the whole "
                         "network would win over the list (no proxy, no audit); give one or the other")
    if entries:
        from lambdas.logic.sandboxes.egress import parse_allow_hosts

        if sandbox != "local":
            raise UsageError("--allow-host applies to the local sandbox: an E2B sandbox's network is E2B's, "
                             "neither filtered nor recorded by pixie")

        try:
            parse_allow_hosts(entries)
        except ValueError as exc:
            raise UsageError(f"--allow-host: {exc}") from None


def _run_options(args: argparse.Namespace, model: str, model_env: dict[str, str], isolation: Any, network: bool) -> Any:
    from pixie.local_run import RunOptions

    return RunOptions(
        isolation=isolation,
        allow_network=network,
        allow_hosts=tuple(args.allow_host or ()),
        model=model,
        sandbox=args.sandbox,
        max_iterations=args.max_iterations,
        pixie_home=pixie_home(),
        template=args.template,
        log_level="INFO" if args.verbose else "ERROR",
        extra_env=tuple(model_env.items()),
        budget_usd=args.budget_usd,
        max_tokens=args.max_tokens,
        check=False if args.no_check else None,
        check_command=args.check_command,
        approve=args.approve,
        approval_timeout_s=args.approval_timeout,
    )


def _saved_run_id(prefix: str) -> str:
    """The full id of a saved local run named by a unique prefix; UsageError otherwise."""
    from pixie.runs import RunNotFound, resolve_run_id

    try:
        return resolve_run_id(pixie_home(), prefix)
    except RunNotFound as exc:
        raise UsageError(_message(exc)) from None


def _run_live(start: Any, intro: list[str], args: argparse.Namespace, serve: bool | None) -> int:
    """Runs `start(display, stop, faults)` with the live view, the stop signals and fault
    injection, then reports the run as `pixie run` does. `serve` None: serve a local sandbox's
    preview unless --no-serve (resume learns the sandbox kind from the record)."""
    import logging

    from lambdas.logic import progress
    from pixie.display import LiveDisplay
    from pixie.terminal_text import VisibleLogText

    logging.getLogger("pixie").addFilter(VisibleLogText())  # the handlers' Powertools logger
    display = LiveDisplay(sys.stderr)
    for line in intro:
        display.notice(f"pixie: {line}")
    display.waiting("starting the engine")  # loading moto's interpreter takes a few seconds: show it
    try:
        from pixie.local_run import ForcedExit, RunInterrupted, StopSignals
        from pixie.run_journal import CannotStart
        from statemachine.engine import FaultInjector
    except KeyboardInterrupt:
        display.close()
        raise
    faults = None
    if getattr(args, "inject_faults", 0):
        faults = FaultInjector(args.inject_faults, args.fault_seed)
        display.notice(f"pixie: injecting faults into {args.inject_faults:.0%} of invocations (seed {args.fault_seed})")
    stop_listening = progress.subscribe(display.on_progress)
    if getattr(args, "approve", None) and _asks_inline():
        from pixie.approval_prompt import InlineApprovals

        stop_asking = InlineApprovals(display, pixie_home()).listen()
        previous_stop_listening = stop_listening

        def stop_listening() -> None:
            stop_asking()
            previous_stop_listening()
    try:
        with StopSignals(lambda text: display.notice(f"pixie: {text}")) as stop:
            record = start(display, stop, faults)
    except CannotStart as exc:
        stop_listening()
        display.close()
        raise UsageError(str(exc)) from None
    except (RunInterrupted, ForcedExit) as interrupted:
        stop_listening()
        display.close()
        return _report_interrupted(getattr(interrupted, "record", None), getattr(interrupted, "forced", True), args.json)
    finally:
        stop_listening()
        display.close()
    if faults:
        sys.stderr.write(f"pixie: {len(faults.injected)} faults injected\n")
    if serve is None:
        serve = str(record.get("sandboxId") or "").startswith("local-") and not args.no_serve
    return _report_local(record, args.json, serve=serve)


def _report_local(record: dict[str, Any], as_json: bool, serve: bool) -> int:
    """Prints a finished local run (run, resume); serves the preview of a success if asked."""
    if as_json:
        # ASCII: model text may hold C1 controls or bidi overrides that a terminal would obey.
        print(json.dumps({key: record.get(key) for key in RESULT_KEYS}, ensure_ascii=True), flush=True)
    else:
        _print_human(record, serving=serve)
    succeeded = record["status"] == "SUCCEEDED"
    if succeeded and serve:
        from pixie.runs import project_folder

        _serve_until_interrupted(record["url"], project_folder(pixie_home(), record))
    return 0 if succeeded else 1


def _report_interrupted(record: dict[str, Any] | None, forced: bool, as_json: bool) -> int:
    """After Ctrl-C, SIGTERM or SIGHUP: say what was saved; exit code 130 (128 + SIGINT)."""
    if record is None:
        sys.stderr.write("\npixie: interrupted before the run started; nothing was created\n")
    else:
        run_id = record["runId"]
        how = "stopped by force; saved what there was" if forced else "stopped and saved"
        command = pixie_command()
        sys.stderr.write(f"\npixie: interrupted; run {run_id} {how} ({command} show {run_id}, {command} resume {run_id})\n")
        if as_json:
            # ASCII: model text may hold C1 controls or bidi overrides that a terminal would obey.
            print(json.dumps({key: record.get(key) for key in RESULT_KEYS}, ensure_ascii=True), flush=True)
    sys.stderr.flush()
    return 130


def cmd_doctor(args: argparse.Namespace) -> int:
    from pixie.doctor import doctor

    return doctor(args.allow_network)


def cmd_resume(args: argparse.Namespace) -> int:
    """Finishes a run that did not: locally from its saved state, on AWS with RedriveExecution."""
    if args.aws:
        if args.budget_usd is not None or args.max_tokens is not None:
            # A redrive restarts the execution where it failed (RunFailed, after the cleanup), so it
            # cannot take a new budget: the deployed run's budget is the stack's pixie:budgetUsd.
            raise UsageError("--budget-usd and --max-tokens apply to local runs; a deployed run is redriven as it was")
        return _resume_aws(args)
    run_id = _saved_run_id(args.run_id)

    def start(display: Any, stop: Any, faults: Any) -> dict[str, Any]:
        from pixie.local_run import resume_locally

        return resume_locally(
            run_id, pixie_home(), log_level="INFO" if args.verbose else "ERROR", on_event=display, stop=stop,
            budget_usd=args.budget_usd, max_tokens=args.max_tokens,
        )

    return _run_live(start, [f"resuming run {run_id}"], args, serve=None)


def _format_message(message: dict[str, Any]) -> str:
    role = visible(message.get("role", "?"), one_line=True)
    call_id = visible(message.get("tool_call_id"), one_line=True) if role == "tool" else ""
    lines = [f"[{role}{' ' + call_id if call_id else ''}]"]
    if message.get("content"):
        lines.append(visible(message["content"]))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        name = visible(function.get("name"), one_line=True)
        arguments = visible(str(function.get("arguments") or "")[:500], one_line=True)
        lines.append(f"→ {name}({arguments})  [{visible(call.get('id'), one_line=True)}]")
    return "\n".join(lines)


def _money(value: float | None) -> str:
    if value is None:
        return "unknown (model not in the price table)"
    return f"${value:.4f}" if value < 1 else f"${value:.2f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _started(iso: str | None) -> str:
    if not iso:
        return "—"
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if moment.tzinfo is not None:
        moment = moment.astimezone()  # local time for people
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _print_header(summary: dict[str, Any]) -> None:
    model = visible(summary.get("model") or "—", one_line=True)
    tokens = f"{summary['inputTokens']:,} in / {summary['outputTokens']:,} out"
    if summary.get("cachedInputTokens"):
        tokens = f"{summary['inputTokens']:,} in ({summary['cachedInputTokens']:,} cached) / {summary['outputTokens']:,} out"
    lines = [
        f"Run {summary['runId']}  {summary.get('status')}",
        f"  started   {_started(summary.get('startedAt'))}   duration {_duration(summary.get('durationS'))}",
        f"  model     {model}   turns {summary.get('turns')}",
        f"  tokens    {tokens}   estimated cost {_money(summary.get('estimatedCostUsd'))}",
    ]
    budget = [f"{_money(summary['budgetUsd'])}" if summary.get("budgetUsd") is not None else "",
              f"{summary['maxTokens']:,} tokens" if summary.get("maxTokens") is not None else ""]
    if any(budget):
        lines.append(f"  budget    {' and '.join(b for b in budget if b)} (spent {_money(summary.get('estimatedCostUsd'))})")
    if summary.get("projectFolder"):
        lines.append(f"  project   {summary['projectFolder']}")
    print("\n".join(lines))


def cmd_show(args: argparse.Namespace) -> int:
    from pixie.runs import CorruptRun, RunNotFound, load_run_by_prefix, run_summary

    if args.aws:
        record = _aws_call(args, lambda: _show_aws_record(args))
        if record is None:
            return 2
    else:
        try:
            record = load_run_by_prefix(pixie_home(), args.run_id)
        except (RunNotFound, FileNotFoundError, CorruptRun) as exc:
            raise UsageError(_message(exc)) from None
    if args.json:
        print(json.dumps(record, ensure_ascii=True, indent=2))
        return 0
    _print_header(run_summary(record, None if args.aws else pixie_home()))
    _print_human(record, " --aws" if args.aws else "")
    if record.get("parentRunId"):  # a run in a chain: where it came from
        print(f"\nContinues run {record['parentRunId']} (project {record.get('projectId')})")
    from pixie.egress_view import egress_lines

    for line in egress_lines(record, deployed=args.aws):
        print(("\n" if line.startswith("Egress") else "") + line)
    print(f"\nConversation ({len(record['conversation'])} messages):\n")
    for message in record["conversation"]:
        print(_format_message(message) + "\n")
    print("History:")
    from pixie.display import LiveDisplay

    display = LiveDisplay(sys.stdout, live=False)
    for event in record["history"]:
        display(event)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from pixie.runs import list_runs

    skipped: list[str] = []
    runs = list_runs(pixie_home(), args.limit, skipped)
    if skipped:  # one line, whatever the number
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        sys.stderr.write(f"pixie: skipped {skipped[0]}{more}\n")
    if args.json:
        print(json.dumps(runs, ensure_ascii=True, indent=2))
        return 0
    if not runs:
        print(f"No saved runs in {pixie_home() / 'runs'} yet. Start one with: {pixie_command()} run \"Build a todo app\"")
        return 0
    from pixie.versions import project_tree

    rows = [("ID", "STATUS", "STARTED", "TIME", "MODEL", "TURNS", "TOKENS IN/OUT", "COST", "TITLE")]
    for depth, run in project_tree(runs):  # each project's runs as a tree: parent, then its children
        title = run.get("title") or (run.get("prompt") or "").strip()
        title = visible(title, one_line=True)
        cost = run.get("estimatedCostUsd")
        model = (run.get("model") or "—").replace(str(Path(__file__).parent / "demo") + "/", "")
        if model.startswith("scripted:"):
            model = "scripted:" + Path(model.split(":", 1)[1]).name
        if run.get("restoredFrom"):
            title = f"(restore of {run['restoredFrom'][:12]}) {title}"
        rows.append((
            ("  " * (depth - 1) + "└ " if depth else "") + run["runId"][:12],
            str(run.get("status")),
            _started(run.get("startedAt"))[:16],
            _duration(run.get("durationS")),
            visible(model, one_line=True)[:24],
            str(run.get("turns")),
            f"{run['inputTokens']:,}/{run['outputTokens']:,}",
            "—" if cost is None else f"${cost:.3f}",
            title[:48] + ("…" if len(title) > 48 else ""),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    return 0


def cmd_open(args: argparse.Namespace) -> int:
    """Serves exactly the run's version (a fresh copy of its kept files), not whatever its folder
    holds now; a run from before versions were kept is served from its folder."""
    from lambdas.logic.sandboxes.local import LocalSandbox
    from pixie.runs import RunNotFound, load_run_by_prefix, project_folder
    from pixie.versions import VersionNotFound, check_out_version, remove_checkout

    try:
        record = load_run_by_prefix(pixie_home(), args.run_id)
    except (RunNotFound, FileNotFoundError) as exc:
        raise UsageError(_message(exc)) from None
    folder = project_folder(pixie_home(), record)
    try:
        served = check_out_version(pixie_home(), record["runId"])
    except VersionNotFound as exc:
        served = None
        if folder is None or not folder.is_dir():
            where = f" (its sandbox was {record.get('sandboxId')}; preview: {record.get('url')})" if record.get("sandboxId") else ""
            raise UsageError(f"run {record['runId']} has no kept version and no local project to serve{where}: {exc}") from None
    try:
        sandbox = LocalSandbox(f"version-{record['runId']}", served or folder)
        url = sandbox.get_url()
        print(f"Run {record['runId']} {record.get('status')}: {visible(record.get('title') or record.get('prompt') or '', one_line=True)[:80]}")
        print(f"Preview: {url}")
        print(f"Version: {record['runId']}" + ("" if served else " (no kept version: serving its folder as it is now)"))
        if folder:
            print(f"Project: {folder}", flush=True)
        _serve_until_interrupted(url)
    finally:
        if served is not None:
            remove_checkout(served)
    return 0


def _versioned_run_id(prefix: str) -> str:
    run_id = _saved_run_id(prefix)
    from pixie.versions import VersionStore

    if not VersionStore(pixie_home()).has(run_id):
        raise UsageError(f"no version of run {run_id} is kept (made before versions were kept, or pruned)")
    return run_id


def cmd_diff(args: argparse.Namespace) -> int:
    """What a run changed: against its parent's version, its starting state, or --against."""
    from pixie.versions import VersionNotFound, run_diff

    run_id = _versioned_run_id(args.run_id)
    against = _versioned_run_id(args.against) if args.against else None
    try:
        diff = run_diff(pixie_home(), run_id, against)
    except VersionNotFound as exc:
        raise UsageError(f"{exc}; compare with another run: --against RUN_ID") from None
    if args.json:
        print(json.dumps(diff, ensure_ascii=True, indent=2))
        return 0
    base = f"run {diff['against']}" if diff["against"] else "the starting template"
    sys.stderr.write(f"pixie: run {run_id} against {base}: {len(diff['files'])} files changed\n")
    if args.stat:
        width = max([len(visible(change["path"], one_line=True)) for change in diff["files"]] + [1])
        for change in diff["files"]:
            path = visible(change["path"], one_line=True)
            if change["patch"] is None:
                print(f" {path.ljust(width)} | {change['note']} ({change['oldSize'] or 0} -> {change['newSize'] or 0} bytes)")
            else:
                count = change["additions"] + change["deletions"]
                print(f" {path.ljust(width)} | {count} {'+' * min(change['additions'], 40)}{'-' * min(change['deletions'], 40)}")
        added = sum(c["additions"] for c in diff["files"])
        removed = sum(c["deletions"] for c in diff["files"])
        print(f" {len(diff['files'])} files changed, {added} insertions(+), {removed} deletions(-)")
        return 0
    for change in diff["files"]:
        if change["patch"] is None:
            print(f"{change['status']} {visible(change['path'], one_line=True)}: {change['note']} "
                  f"({change['oldSize'] or 0} -> {change['newSize'] or 0} bytes)")
        else:
            sys.stdout.write(visible(change["patch"]))  # a file's text is the model's: shown, never obeyed
    sys.stdout.flush()
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Makes a run's version the project's newest: a new version, nothing overwritten."""
    from pixie.versions import VersionNotFound, restore_run

    run_id = _versioned_run_id(args.run_id)
    try:
        record = restore_run(pixie_home(), run_id)
    except (VersionNotFound, FileNotFoundError) as exc:
        raise UsageError(_message(exc)) from None
    if args.json:
        print(json.dumps({key: record.get(key) for key in (*RESULT_KEYS, "parentRunId", "restoredFrom")}, ensure_ascii=True), flush=True)
        return 0
    command = pixie_command()
    print(f"Restored run {run_id}'s version as run {record['runId']} (on top of {record['parentRunId']}).")
    print(f"Open it: {command} open {record['runId']}   Build on it: {command} run --continue {record['runId']} \"...\"")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    """Deletes saved local runs and what they left (record, state, version, folder)."""
    from pixie.run_removal import CannotRemove, remove_runs

    run_ids = [_saved_run_id(prefix) for prefix in args.run_ids]
    try:
        removed = remove_runs(pixie_home(), list(dict.fromkeys(run_ids)))
    except CannotRemove as exc:
        raise UsageError(str(exc)) from None
    for run_id in removed:
        print(f"removed {run_id}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """Deletes the saved local runs older than --older-than (not running ones)."""
    from pixie.run_removal import parse_age, remove_runs, runs_older_than

    try:
        age = parse_age(args.older_than)
    except ValueError as exc:
        raise UsageError(f"--older-than {exc}") from None
    old = runs_older_than(pixie_home(), age)
    if args.dry_run:
        for run_id in old:
            print(f"would remove {run_id}")
        return 0
    removed = remove_runs(pixie_home(), old) if old else []
    print(f"removed {len(removed)} run(s) older than {args.older_than}")
    return 0


STOP_WAIT_S = 120  # how long `pixie stop` waits for the run to end before saying it was asked


def cmd_stop(args: argparse.Namespace) -> int:
    """Stops a run that another pixie process (a `pixie run`, or the console) is running: ABORTED
    through its cleanup, saved; `pixie resume` carries it on. --aws: StopExecution."""
    if args.aws:
        from pixie.aws_commands import stop_aws

        return stop_aws(args)
    from pixie.local_run import request_stop
    from pixie.runs import load_run, with_live_status

    run_id = _saved_run_id(args.run_id)
    home = pixie_home()
    status = with_live_status(load_run(home, run_id)).get("status")
    if status != "RUNNING":
        raise UsageError(f"run {run_id} is not running (it is {status})")
    request_stop(home, run_id)
    deadline = time.monotonic() + STOP_WAIT_S
    while (status := with_live_status(load_run(home, run_id)).get("status")) == "RUNNING":
        if time.monotonic() > deadline:
            sys.stderr.write(f"pixie: asked run {run_id} to stop; it has not ended yet\n")
            return 1
        time.sleep(0.1)
    if args.json:
        print(json.dumps({"runId": run_id, "status": status}), flush=True)
    else:
        print(f"Run {run_id}: {status}. Carry it on with: {pixie_command()} resume {run_id}")
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    """`pixie approve RUN` / `pixie deny RUN [--reason TEXT]`: decides the tool calls a run
    waits on (--approve). Locally through the process running it (pixie/local_run.py: decide);
    --aws: SendTaskSuccess / SendTaskFailure with the token saved in the run's table."""
    approve = args.command == "approve"
    reason = getattr(args, "reason", None)
    if args.aws:
        from pixie.aws_commands import decide_aws

        return decide_aws(args, approve, reason)
    from pixie.local_run import NothingToDecide, request_decision
    from pixie.runs import load_run

    run_id = _saved_run_id(args.run_id)
    record = load_run(pixie_home(), run_id)
    if record.get("status") != "RUNNING" or not record.get("pendingApproval"):
        status = record.get("status")
        raise UsageError(f"run {run_id} is not waiting for approval (it is {status}{'' if status != 'RUNNING' else ', running its turn'})")
    try:
        result = request_decision(pixie_home(), run_id, approve, reason, iteration=args.turn)
    except NothingToDecide as exc:
        raise UsageError(str(exc)) from None
    except TimeoutError as exc:
        sys.stderr.write(f"pixie: {exc}\n")
        return 1
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        print(f"Run {run_id}: {result['calls']} tool call(s) {result['decision']}.", flush=True)
    return 0


# --- against a deployed stack: pixie/aws_commands.py ------------------------------------------------
def cmd_send(args: argparse.Namespace) -> int:
    from pixie.aws_commands import cmd_send as send

    return send(args)


def cmd_watch(args: argparse.Namespace) -> int:
    from pixie.aws_commands import cmd_watch as watch

    return watch(args)


def _resume_aws(args: argparse.Namespace) -> int:
    from pixie.aws_commands import resume_aws

    return resume_aws(args)


def _aws_call(args: argparse.Namespace, function: Any) -> Any:
    from pixie.aws_commands import aws_call

    return aws_call(args, function)


def _show_aws_record(args: argparse.Namespace) -> dict[str, Any]:
    from pixie.aws_commands import show_aws_record

    return show_aws_record(args)


def cmd_ui(args: argparse.Namespace) -> int:
    from pixie.console.server import serve

    if args.aws:
        from pixie.console.backends import AwsRuns

        runs = _aws_call(args, lambda: AwsRuns(args.stack))
        if runs is None:
            return 2
    else:
        from pixie.console.backends import LocalRuns

        choice = resolve_model(args.model)
        for notice in choice.notices:
            sys.stderr.write(f"pixie: {notice} (each run may pick another model)\n")
        model = choice.spec
        os.environ.update(choice.env)  # e.g. the placeholder key for a local OpenAI-compatible server
        runs = LocalRuns(pixie_home(), model, template=args.template)
    serve(runs, host=args.host, port=args.port, open_browser=not args.no_open)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixie", description="A durable coding agent on AWS Step Functions.")
    parser.add_argument("--version", action="version", version=f"pixie {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the agent on the embedded engine (no AWS account needed)")
    run.add_argument("prompt", nargs="?", help="what to build (at most 20,000 characters; - reads it from standard input)")
    run.add_argument("--prompt-file", metavar="FILE", help="read the prompt from FILE (UTF-8) instead")
    run.add_argument("--model", help="openai:MODEL (default openai:gpt-4.1 when OPENAI_API_KEY is set), bedrock:MODEL_ID or scripted:FILE")
    run.add_argument("--sandbox", choices=("local", "e2b"), default="local", help="where the code runs (default local)")
    run.add_argument("--template", default="pixie", help="E2B template name (default pixie)")
    run.add_argument("--max-iterations", type=_max_iterations, default=15, help=f"model turns before giving up (default 15, at most {MAX_ITERATIONS_CAP})")
    run.add_argument("--continue", dest="continue_from", metavar="RUN_ID",
                     help="continue the project of a run that succeeded: its sandbox, files and conversation")
    _budget_options(run, "the run ends BudgetExceeded")
    run.add_argument("--no-check", action="store_true",
                     help="accept the model's <task_summary> without the done-check (the preview answers 2xx for /, "
                          "npm test / npm run build pass); PIXIE_CHECK=0")
    run.add_argument("--check-command", type=_check_command, metavar="COMMAND",
                     help="the done-check runs this shell command in the sandbox instead of the project's npm scripts "
                          "(PIXIE_CHECK_COMMAND); the run ends CheckFailed after PIXIE_CHECK_LIMIT (3) failed checks")
    run.add_argument("--approve", choices=("commands", "all"),
                     help="wait for your approval before running terminal calls (commands) or every tool call (all): "
                          "asked here on a terminal, else pixie approve / deny RUN")
    run.add_argument("--approval-timeout", type=_approval_timeout, metavar="TIME",
                     help="how long a run waits for a decision before the calls count as denied (default 24h)")
    run.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    run.add_argument("--no-serve", action="store_true", help="exit when the run ends instead of serving the preview")
    run.add_argument("--inject-faults", type=_fault_rate, default=0.0, metavar="RATE",
                     help="make each Lambda invocation fail with this probability (0 to <1), to test durability")
    run.add_argument("--fault-seed", type=int, default=None, metavar="N", help="seed for --inject-faults (replayable)")
    run.add_argument("--verbose", action="store_true", help="show the handlers' logs")
    run.add_argument("--allow-network", action="store_true",
                     help="let the local sandbox's commands use the network (off by default; PIXIE_ALLOW_NETWORK=1)")
    run.add_argument("--allow-host", action="append", metavar="HOST[:PORT]",
                     help="let the local sandbox's commands reach this host (and port) through pixie's egress proxy; "
                          "repeatable, or comma-separated (PIXIE_ALLOW_HOSTS)")
    run.add_argument("--no-isolation", action="store_true",
                     help="run the local sandbox's commands unisolated, as you (warned on every run)")
    run.set_defaults(func=cmd_run)

    doctor = commands.add_parser("doctor", help="show how local commands are isolated here, and check that it works")
    doctor.add_argument("--allow-network", action="store_true", help="check with network allowed, as --allow-network runs")
    doctor.set_defaults(func=cmd_doctor)

    show = commands.add_parser("show", help="a finished run: result, conversation, execution history")
    show.add_argument("run_id", help="the run id, or a unique prefix of it (local runs)")
    show.add_argument("--json", action="store_true")
    show.add_argument("--aws", action="store_true", help="read the run from the deployed stack's table")
    show.add_argument("--stack", default="PixieStack", help="stack whose outputs name the table (default PixieStack)")
    _aws_options(show)
    show.set_defaults(func=cmd_show)

    listing = commands.add_parser("list", help="recent local runs, newest first")
    listing.add_argument("--limit", type=_positive_int, default=20, help="how many runs (default 20)")
    listing.add_argument("--json", action="store_true", help="print the runs as a JSON array")
    listing.set_defaults(func=cmd_list)

    reopen = commands.add_parser("open", help="serve exactly a local run's version of the project")
    reopen.add_argument("run_id", help="the run id, or a unique prefix of it")
    reopen.set_defaults(func=cmd_open)

    diff = commands.add_parser("diff", help="what a local run changed: against its parent, or its starting state")
    diff.add_argument("run_id", help="the run id, or a unique prefix of it")
    diff.add_argument("--against", metavar="RUN_ID", help="compare with this run's version instead")
    diff.add_argument("--stat", action="store_true", help="one line per file: how many lines added and removed")
    diff.add_argument("--json", action="store_true", help="the changes as JSON, with each text file's unified diff")
    diff.set_defaults(func=cmd_diff)

    restore = commands.add_parser("restore", help="make a local run's version the project's newest (a new version)")
    restore.add_argument("run_id", help="the run id, or a unique prefix of it")
    restore.add_argument("--json", action="store_true", help="print the new run as one JSON object")
    restore.set_defaults(func=cmd_restore)

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
    _aws_options(send)
    send.set_defaults(func=cmd_send)

    resume = commands.add_parser("resume", help="finish a run that did not: killed, interrupted or failed")
    resume.add_argument("run_id")
    _budget_options(resume, "a new budget for the rest of the run (a BudgetExceeded run goes on); local runs")
    resume.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    resume.add_argument("--no-serve", action="store_true", help="exit when the run ends instead of serving the preview")
    resume.add_argument("--verbose", action="store_true", help="show the handlers' logs")
    resume.add_argument("--aws", action="store_true", help="redrive the deployed run's execution (RedriveExecution)")
    resume.add_argument("--stack", default="PixieStack", help="stack whose outputs name the state machine (default PixieStack)")
    _aws_options(resume)
    resume.set_defaults(func=cmd_resume)

    stop = commands.add_parser(
        "stop", help="stop a run running in another pixie process (or the console): ABORTED, cleaned up, saved",
        description="Stops a run that `pixie run` or `pixie ui` is running, as StopExecution does: it ends ABORTED, "
                    "its sandbox released and its command ended, and it is saved. `pixie resume RUN` carries it on.",
        epilog="example: pixie stop 3f2a   (a unique prefix of the run id is enough)",
    )
    stop.add_argument("run_id", help="the run id, or a unique prefix of it")
    stop.add_argument("--json", action="store_true", help="print {runId, status} as one JSON object")
    stop.add_argument("--aws", action="store_true", help="stop the deployed run's execution (StopExecution)")
    stop.add_argument("--stack", default="PixieStack", help="stack whose outputs name the state machine (default PixieStack)")
    _aws_options(stop)
    stop.set_defaults(func=cmd_stop)

    for verb, what in (("approve", "run the tool calls a run waits on (pixie run --approve)"),
                       ("deny", "refuse the tool calls a run waits on: not run, and the model is told why")):
        decide = commands.add_parser(verb, help=what)
        decide.add_argument("run_id", help="the run id, or a unique prefix of it")
        if verb == "deny":
            decide.add_argument("--reason", metavar="TEXT", help="why, for the model (it sees this in each call's result)")
        decide.add_argument("--turn", type=int, metavar="N", help="the turn whose calls you looked at (pendingApproval's "
                            "iteration): refused if another turn waits now")
        decide.add_argument("--json", action="store_true", help="print {runId, decision, calls} as one JSON object")
        decide.add_argument("--aws", action="store_true", help="a deployed run: SendTaskSuccess / SendTaskFailure")
        decide.add_argument("--stack", default="PixieStack", help="stack whose outputs name the table (default PixieStack)")
        _aws_options(decide)
        decide.set_defaults(func=cmd_decide)

    rm = commands.add_parser("rm", help="delete saved local runs: record, saved state, version and project folder")
    rm.add_argument("run_ids", nargs="+", metavar="RUN_ID", help="run ids, or unique prefixes of them")
    rm.set_defaults(func=cmd_rm)

    prune = commands.add_parser("prune", help="delete the saved local runs older than a given age")
    prune.add_argument("--older-than", required=True, metavar="AGE", help="7d, 12h or 30m")
    prune.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    prune.set_defaults(func=cmd_prune)

    watch = commands.add_parser("watch", help="follow an execution on AWS and print its result")
    watch.add_argument("execution_arn")
    watch.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    _aws_options(watch)
    watch.set_defaults(func=cmd_watch)

    ui = commands.add_parser("ui", help="a local web console: start, watch and inspect runs")
    ui.add_argument("--port", type=_port, default=8765, help="port to listen on (default 8765; 0 picks a free one)")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    ui.add_argument("--no-open", action="store_true", help="do not open a browser")
    ui.add_argument("--model", help="default model of runs started here (as for pixie run)")
    ui.add_argument("--template", default="pixie", help="E2B template name for runs with the e2b sandbox")
    ui.add_argument("--aws", action="store_true", help="the deployed stack's runs instead of local ones")
    ui.add_argument("--stack", default="PixieStack", help="with --aws: the stack (default PixieStack)")
    _aws_options(ui)
    ui.set_defaults(func=cmd_ui)
    _describe(commands)
    return parser


# One example per command, shown under its --help.
EXAMPLES = {
    "run": 'pixie run "Build a todo app"\n  echo "Build a counter" | pixie run -\n  pixie run --continue 3f2a "Add dark mode"',
    "doctor": "pixie doctor",
    "show": "pixie show 3f2a --json",
    "list": "pixie list --limit 10",
    "open": "pixie open 3f2a",
    "diff": "pixie diff 3f2a --stat\n  pixie diff 3f2a --against 9c1e",
    "restore": "pixie restore 3f2a",
    "send": 'pixie send "Build a todo app" --stack PixieStack',
    "resume": "pixie resume 3f2a\n  pixie resume 3f2a --budget-usd 2\n  pixie resume RUN_ID --aws",
    "stop": "pixie stop 3f2a",
    "approve": "pixie approve 3f2a",
    "deny": 'pixie deny 3f2a --reason "use npm ci, not npm install"',
    "rm": "pixie rm 3f2a 9c1e",
    "prune": "pixie prune --older-than 7d --dry-run",
    "watch": "pixie watch arn:aws:states:us-east-1:123456789012:execution:PixieAgent:RUN_ID",
    "ui": "pixie ui\n  pixie ui --no-open --port 0\n  pixie ui --aws --stack PixieStack",
}


def _describe(commands: Any) -> None:
    """Every subcommand's --help starts with what it does and ends with an example."""
    helps = {action.dest: action.help for action in commands._choices_actions}
    for name, command in commands.choices.items():
        command.description = command.description or (helps.get(name) or "").capitalize() + "."
        if not command.epilog:
            command.epilog = f"example:\n  {EXAMPLES[name]}"
            command.formatter_class = argparse.RawDescriptionHelpFormatter


def _budget_options(command: argparse.ArgumentParser, what: str) -> None:
    command.add_argument("--budget-usd", type=_budget_usd, metavar="USD",
                         help=f"model spend in US dollars (list prices) at which {what}; checked before each model call")
    command.add_argument("--max-tokens", type=_max_tokens, metavar="N",
                         help="model tokens (input + output) at which the same happens")


def _aws_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION or the profile's)")
    command.add_argument("--profile", help="AWS profile from ~/.aws/config (default: AWS_PROFILE or default)")


def main(argv: list[str] | None = None) -> int:
    code = _main(argv)
    if argv is None:
        # The console script: leave now. Tearing down the embedded engine's objects at interpreter
        # exit takes seconds, and a thread abandoned in a cancelled request must not hold us.
        import logging

        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    return code


def _main(argv: list[str] | None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a character the terminal cannot print: an escape, not a crash
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):
            pass
    # Powertools' warnings (e.g. "No application metrics to publish") are for Lambda logs.
    warnings.filterwarnings("ignore", module=r"aws_lambda_powertools(\..*)?$")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, RunRefused) as exc:
        sys.stderr.write(f"pixie: {exc}\n")
        return 2
    except KeyboardInterrupt:  # outside a run (starting up, serving): no traceback, ever
        sys.stderr.write("\npixie: interrupted\n")
        return 130
    except BrokenPipeError:  # `pixie show X | head`: the reader has gone, and that is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
