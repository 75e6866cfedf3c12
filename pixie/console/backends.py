"""Where the console's runs come from: the warm embedded engine of this process (LocalRuns), or a
deployed stack (AwsRuns). The API (app.py) talks to either through the same few methods."""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Any, Protocol

from lambdas.logic.events import HelloWorldDetail
from pixie.console.channel import RunChannel, replay
from pixie.console.views import run_row, run_view
from statemachine.history import jsonable

log = logging.getLogger("pixie.console")

# The follow-up box needs `continueFrom` in the event; shown only once the event model has it.
CONTINUE_SUPPORTED = "continueFrom" in HelloWorldDetail.model_fields
CHOICE_FIELDS = ("model", "sandbox", "maxIterations", "budgetUsd", "maxTokens", "check", "checkCommand", "approve",
                 "approvalTimeoutSeconds")
KEPT_CHANNELS = 100  # finished runs whose live events (with streamed text) stay in memory
# On stop, how long the console waits for each run to end through its cleanup and be saved (a
# loaded machine is slow; a second Ctrl-C leaves at once).
STOP_WAIT_S = 90


class BadRequest(Exception):
    """The request cannot be carried out as sent; the message says why (HTTP 400)."""


class Conflict(Exception):
    """The run is not in a state the request needs (e.g. stopping one that is not running): 409."""


class TooManyRuns(Exception):
    """As many runs as the console allows are running (HTTP 429)."""


DEFAULT_MAX_ACTIVE_RUNS = 8


def max_active_runs() -> int:
    """PIXIE_CONSOLE_MAX_RUNS (1-100), else 8: each run holds a sandbox and a thread, and 30 at
    once on a laptop is a mistake, not a workload."""
    value = os.environ.get("PIXIE_CONSOLE_MAX_RUNS", "").strip()
    if not value:
        return DEFAULT_MAX_ACTIVE_RUNS
    if not value.isdigit() or not 1 <= int(value) <= 100:
        raise SystemExit(f"pixie: PIXIE_CONSOLE_MAX_RUNS must be a whole number from 1 to 100, not {value!r}")
    return int(value)


class NotReady(Exception):
    """The backend cannot start runs (yet); the message says why (HTTP 503)."""


class Runs(Protocol):
    def open(self) -> "Runs": ...
    def capabilities(self) -> dict[str, Any]: ...
    def start(self, prompt: Any, choices: dict[str, Any], continue_from: str | None) -> str: ...
    def stop(self, run_id: str) -> dict[str, Any]: ...
    def decide(self, run_id: str, approve: bool, reason: str | None, iteration: int | None = None) -> dict[str, Any]: ...
    def rerun_request(self, run_id: str) -> tuple[Any, dict[str, Any], str | None]: ...
    def list_runs(self) -> list[dict[str, Any]]: ...
    def get_run(self, run_id: str) -> dict[str, Any] | None: ...
    def channel(self, run_id: str) -> RunChannel | None: ...
    def close(self) -> None: ...


def run_of(event: Any) -> str | None:
    """The run a step's payload belongs to: its runId, or a status change's execution name."""
    if not isinstance(event, dict):
        return None
    detail = event.get("detail")
    return event.get("runId") or (detail.get("name") if isinstance(detail, dict) else None)


def _newest_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: r.get("startedAt") or "", reverse=True)


# --- local: one warm engine in this process ---------------------------------------------------
class LocalRuns:
    """One long-lived LocalEngine (moto's mocks and the environment patch are process-wide, so one
    per process), warmed in the background; runs overlap on it, each followed by a thread that
    feeds its channel and saves its record when it ends, as `pixie run` does."""

    def __init__(
        self,
        pixie_home: Path,
        default_model: str,
        *,
        template: str = "pixie",
        max_iterations: int = 15,
        poll_s: float = 0.1,
        log_level: str = "ERROR",
    ) -> None:
        self.home = Path(pixie_home)
        self._checkouts: list[Path] = []  # versions opened here, removed when the console stops
        self.default_model = default_model
        self.template = template
        self.max_iterations = max_iterations
        self.poll_s = poll_s
        self.log_level = log_level
        self.engine: Any = None
        self.ready = threading.Event()
        self.startup_error: str | None = None
        self.channels: dict[str, RunChannel] = {}
        self.active: dict[str, str] = {}  # run id -> execution ARN
        self._threads: dict[str, threading.Thread] = {}
        self.journals: dict[str, Any] = {}  # run id -> its RunJournal, while it runs
        self._stop_watchers: dict[str, Any] = {}
        self._rows: dict[Path, tuple[float, int, dict[str, Any]]] = {}
        self._warned: set[Path] = set()
        self.max_active_runs = max_active_runs()
        self._run_slots = threading.BoundedSemaphore(self.max_active_runs)
        self._lock = threading.Lock()
        self._unsubscribe: Any = None

    # lifecycle
    def open(self) -> "LocalRuns":
        threading.Thread(target=self._warm, name="pixie-engine-warmup", daemon=True).start()
        return self

    def _warm(self) -> None:
        from lambdas.logic import progress
        from pixie.local_run import RunOptions
        from statemachine.engine import LocalEngine

        try:
            options = RunOptions(
                model=self.default_model, sandbox="local", max_iterations=self.max_iterations,
                pixie_home=self.home, template=self.template, log_level=self.log_level,
            )
            engine = LocalEngine(options.env(), invoke_wrapper=self._journal_step)
            engine.__enter__()
            self.engine = engine
            self._unsubscribe = progress.subscribe(self._on_progress)
        except Exception as exc:  # noqa: BLE001 - reported on every start request
            self.startup_error = f"the embedded engine did not start: {type(exc).__name__}: {exc}"
            log.exception("engine start failed")
        finally:
            self.ready.set()

    def close(self) -> None:
        """Stops running runs through their cleanup path (saved as `Interrupted`), then the engine."""
        from lambdas.logic.sandboxes.local import kill_running_commands, stop_all_previews
        from pixie.versions import remove_checkout

        if self._unsubscribe:
            self._unsubscribe()
        if self.engine is not None:
            if self.active:
                self.engine.interrupt("the pixie console was stopped")
                kill_running_commands()
            for thread in list(self._threads.values()):
                thread.join(timeout=STOP_WAIT_S)
            self.engine.__exit__(None, None, None)
            self.engine = None
        stop_all_previews()
        for folder in self._checkouts:  # after their previews stopped
            remove_checkout(folder)

    def _journal_step(self, name: str, event: dict, invoke: Any) -> Any:
        """The engine's invoke wrapper: each step of a run started here is saved when it ends, by
        the run's journal, as `pixie run` saves its run (pixie/run_journal.py); so a console
        killed mid-run leaves its runs INTERRUPTED in `pixie list`, and `pixie resume` finishes them."""
        journal = self.journals.get(run_of(event))
        return journal.wrap()(name, event, invoke) if journal is not None else invoke()

    def _on_progress(self, run_id: str, kind: str, data: dict[str, Any]) -> None:
        channel = self.channels.get(run_id)
        if channel is not None:
            channel.progress(kind, jsonable(data))

    # API
    def capabilities(self) -> dict[str, Any]:
        from lambdas.logic.models.prices import PRICES_PER_MILLION
        from pixie.local_run import DEMO_SCRIPT

        models = [self.default_model, f"scripted:{DEMO_SCRIPT}", *PRICES_PER_MILLION]
        return {
            "mode": "local",
            "ready": self.ready.is_set() and self.engine is not None,
            "startupError": self.startup_error,
            "continue": CONTINUE_SUPPORTED,
            "choices": True,
            "defaultModel": self.default_model,
            "models": list(dict.fromkeys(models)),
            "sandboxes": ["local", "e2b"],
            "maxIterations": self.max_iterations,
            "pixieHome": str(self.home),
        }

    def _checked_event(self, prompt: Any, choices: dict[str, Any], continue_from: str | None) -> tuple[dict[str, Any], list[dict]]:
        """The event this run starts with and its parent's saved items, after the checks
        `pixie run` makes (pixie/run_checks.py) and the validation CreateSandbox runs: a request
        the CLI would refuse is refused here with the same one-line message, before anything exists."""
        from lambdas.logic.config import Settings
        from lambdas.logic.errors import InvalidEvent
        from lambdas.logic.events import RUN_CHOICES, parse_prompt, parse_run_choices
        from pixie.local_run import RunOptions
        from pixie.run_checks import RunRefused, check_new_run, continued_model, resolve_model
        from statemachine.engine import hello_world_event

        detail = dict(choices)
        if continue_from is not None:
            detail["continueFrom"] = continue_from
        event = hello_world_event(prompt)
        event["detail"].update(detail)
        try:
            chosen = detail.get("model")
            if not chosen and continue_from is not None:  # a follow-up keeps its parent's model, as in the CLI
                chosen = continued_model(self.home, continue_from)
                if chosen:
                    detail["model"] = chosen
            model = resolve_model(chosen if isinstance(chosen, str) and chosen else self.default_model).spec
            if isinstance(chosen, str):
                event["detail"]["model"] = model  # a scripted model's file, made absolute
            parse_prompt(event, Settings.from_env().max_prompt_chars)
            parse_run_choices(event, RUN_CHOICES)
            options = RunOptions(
                model=model, sandbox=detail.get("sandbox") or "local",
                max_iterations=detail.get("maxIterations") or self.max_iterations, pixie_home=self.home,
                template=self.template, budget_usd=detail.get("budgetUsd"), max_tokens=detail.get("maxTokens"),
                check=detail.get("check"), check_command=detail.get("checkCommand"),
                approve=detail.get("approve"), approval_timeout_s=detail.get("approvalTimeoutSeconds"),
            )
            parent_items = check_new_run(prompt, options, continue_from)
        except (InvalidEvent, RunRefused) as exc:
            raise BadRequest(str(exc)) from None
        return event, parent_items

    def start(self, prompt: Any, choices: dict[str, Any], continue_from: str | None) -> str:
        from pixie.local_run import StopRequestWatcher, start_run

        if continue_from is not None and not CONTINUE_SUPPORTED:
            raise BadRequest("continuing a run is not available in this version of pixie")
        event, parent_items = self._checked_event(prompt, choices, continue_from)
        if not self.ready.wait(timeout=120) or self.engine is None:
            raise NotReady(self.startup_error or "the embedded engine is still starting; try again")
        if not self._run_slots.acquire(blocking=False):
            raise TooManyRuns(
                f"{self.max_active_runs} runs are already running here (PIXIE_CONSOLE_MAX_RUNS); "
                "wait for one to end, or stop one"
            )
        try:
            if continue_from is not None:
                self._load_saved_run(continue_from, parent_items)
            run_id = uuid.uuid4().hex[:16]
            locks = self._hold_locks(run_id)
        except BaseException:
            self._run_slots.release()
            raise
        journal = self._journal(run_id, event)
        channel = RunChannel(run_id)
        with self._lock:
            self.channels[run_id] = channel  # before the start: the first step may emit at once
            self._forget_old_channels()
        try:
            journal.attach(self.engine)  # saved as RUNNING before its first step
            self.journals[run_id] = journal
            arn, _ = start_run(self.engine, event, run_id)
        except Exception:
            self.channels.pop(run_id, None)  # never started: no stream that would never end
            self.journals.pop(run_id, None)
            locks.close()
            self._run_slots.release()
            raise
        self.active[run_id] = arn
        self._stop_watchers[run_id] = StopRequestWatcher(self.engine, arn, run_id, self.home)  # `pixie stop RUN`
        thread = threading.Thread(
            target=self._follow, args=(run_id, arn, channel, journal, locks), name=f"run-{run_id}", daemon=True
        )
        self._threads[run_id] = thread
        thread.start()
        return run_id

    def rerun_request(self, run_id: str) -> tuple[Any, dict[str, Any], str | None]:
        """(prompt, choices, continueFrom) of a saved run, to start it again as a new run."""
        from pixie.run_journal import CannotStart, continued_run, load_state

        try:
            saved = load_state(self.home, run_id)
        except (CannotStart, ValueError, AttributeError) as exc:  # missing, not JSON, not an object
            raise BadRequest(f"run {run_id} cannot be rerun: {exc}") from None
        event, options = saved.get("event"), saved.get("options")
        if not isinstance(event, dict) or not isinstance(event.get("detail"), dict) or not isinstance(options, dict):
            raise BadRequest(f"run {run_id} cannot be rerun: its saved state is not what pixie saves")
        detail = event["detail"]
        chosen = {"model": options.get("model"), "sandbox": options.get("sandbox"), "maxIterations": options.get("maxIterations"),
                  "budgetUsd": options.get("budgetUsd"), "maxTokens": options.get("maxTokens"),
                  "check": options.get("check"), "checkCommand": options.get("checkCommand"),
                  "approve": options.get("approve"), "approvalTimeoutSeconds": options.get("approvalTimeoutSeconds")}
        return detail.get("value"), {k: v for k, v in chosen.items() if v is not None}, continued_run(event)

    def stop(self, run_id: str) -> dict[str, Any]:
        """Stops a run running here as StopExecution does: ABORTED at once, then its cleanup
        (sandbox released, running command ended); saved when it ends, as every run is."""
        from statemachine.engine import ExecutionNotRunning

        arn = self.active.get(run_id)
        if arn is None or self.engine is None:
            raise Conflict(f"run {run_id} is not running in this console")
        try:
            self.engine.stop(arn, cause="stopped from the pixie console")
        except ExecutionNotRunning:
            raise Conflict(f"run {run_id} is not running (stopped already, or it ended)") from None
        thread = self._threads.get(run_id)
        if thread is not None:
            thread.join(STOP_WAIT_S)  # its record saved before the answer
        return self.get_run(run_id) or {"runId": run_id, "status": "ABORTED"}

    def decide(self, run_id: str, approve: bool, reason: str | None, iteration: int | None = None) -> dict[str, Any]:
        """Approves or denies what a run running here waits on, as `pixie approve` / `deny` do
        (pixie/local_run.py: decide); Conflict when it waits on nothing."""
        from pixie.local_run import NothingToDecide, decide

        if run_id not in self.active or self.engine is None:
            raise Conflict(f"run {run_id} is not running in this console")
        try:
            return decide(self.engine, run_id, approve, reason, iteration=iteration)
        except NothingToDecide as exc:
            raise Conflict(str(exc)) from None

    def _hold_locks(self, run_id: str) -> Any:
        """The lock `pixie run` holds on a new run's id (pixie/run_locks.py). A continuation works
        in a folder of its own, forked from its parent's version, so the parent's folder is not
        locked: its parent may be resumed, or continued elsewhere, at the same time."""
        from contextlib import ExitStack

        from pixie.run_journal import CannotStart
        from pixie.run_locks import hold_run

        locks = ExitStack()
        try:
            hold_run(locks, self.home, run_id, [])
        except CannotStart as exc:
            locks.close()
            raise BadRequest(str(exc)) from None
        return locks

    def _forget_old_channels(self) -> None:
        finished = [rid for rid, ch in self.channels.items() if ch.done]
        for rid in finished[: max(0, len(finished) - KEPT_CHANNELS)]:
            self.channels.pop(rid, None)

    def _load_saved_run(self, run_id: str, items: list[dict]) -> None:
        """A run to continue that this engine has not seen (made by `pixie run`, or by an earlier
        console): its saved table items, as `pixie run --continue` loads them."""
        from lambdas.dal.network_state import NetworkState

        if NetworkState(self.engine.env["PIXIE_TABLE"]).find_run(run_id) is not None:
            return
        for item in items:
            self.engine.dynamodb.put_item(TableName=self.engine.env["PIXIE_TABLE"], Item=item)

    def _journal(self, run_id: str, event: dict[str, Any]) -> Any:
        """The run's journal, with the options `pixie resume` runs it again with."""
        from pixie.run_journal import RunJournal, continued_run

        detail = event.get("detail") or {}
        options = {
            "model": detail.get("model") or self.default_model,
            "sandbox": detail.get("sandbox") or "local",
            "maxIterations": detail.get("maxIterations") or self.max_iterations,
            "template": self.template,
            "budgetUsd": detail.get("budgetUsd"),
            "maxTokens": detail.get("maxTokens"),
            "check": detail.get("check"),
            "checkCommand": detail.get("checkCommand"),
        }
        return RunJournal(self.home, run_id, event, options, parent_id=continued_run(event))

    def _follow(self, run_id: str, arn: str, channel: RunChannel, journal: Any, locks: Any) -> None:
        from pixie.local_run import finish_run

        try:
            record = finish_run(self.engine, arn, self.home, on_event=lambda e: channel.history(jsonable(e)), poll_s=self.poll_s)
            journal.close()  # the final record is written: no RUNNING one over it
            journal.save_state(self.engine.table_items())  # the network state as the run ended
            channel.end(record["status"], record.get("error"))
        except Exception as exc:  # noqa: BLE001 - the page must hear that following failed
            log.exception("following run %s failed", run_id)
            channel.end("UNKNOWN", f"the console lost track of the run: {type(exc).__name__}: {exc}")
        finally:
            self._run_slots.release()
            self.journals.pop(run_id, None)
            watcher = self._stop_watchers.pop(run_id, None)
            if watcher is not None:
                watcher.close()
            locks.close()
            self.active.pop(run_id, None)
            self._threads.pop(run_id, None)

    def _live_record(self, run_id: str, arn: str) -> dict[str, Any]:
        from lambdas.dal.network_state import NetworkState
        from pixie.runs import run_record

        return run_record(
            NetworkState(self.engine.env["PIXIE_TABLE"]), run_id, status="RUNNING",
            execution_arn=arn, history=[jsonable(e) for e in self.engine.history(arn)],
        )

    def _saved_rows(self) -> list[dict[str, Any]]:
        from pixie.runs import load_run, runs_dir

        rows = []
        seen: set[Path] = set()
        for path in runs_dir(self.home).glob("*.json"):
            seen.add(path)
            try:
                stat = path.stat()
                cached = self._rows.get(path)
                if cached and cached[:2] == (stat.st_mtime, stat.st_size):
                    rows.append(cached[2])
                    continue
                row = run_row(load_run(self.home, path.stem))
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                if path not in self._warned:  # a file that is not a run record: said once
                    self._warned.add(path)
                    log.warning("skipped %s: %s", path, exc)
                continue
            self._rows[path] = (stat.st_mtime, stat.st_size, row)
            rows.append(row)
        for gone in set(self._rows) - seen:
            self._rows.pop(gone, None)
        return rows

    def list_runs(self) -> list[dict[str, Any]]:
        rows = {row["runId"]: row for row in self._saved_rows()}
        for run_id, arn in list(self.active.items()):
            try:
                rows[run_id] = run_row(self._live_record(run_id, arn))
            except Exception:  # noqa: BLE001 - it just ended: its saved row is read next time
                continue
        return _newest_first(list(rows.values()))

    def diff(self, run_id: str) -> dict[str, Any] | None:
        """What a run changed against its parent's version (or its starting state)."""
        from pixie.versions import VersionNotFound, run_diff

        try:
            return run_diff(self.home, run_id)
        except VersionNotFound:
            return None

    def open_version(self, run_id: str) -> str | None:
        """A preview of exactly the run's version, on its own 127.0.0.1 port (another origin than
        the console's: the page a model wrote never runs with the console's origin)."""
        from lambdas.logic.sandboxes.local import LocalSandbox
        from pixie.versions import VersionNotFound, check_out_version

        try:
            folder = check_out_version(self.home, run_id)
        except VersionNotFound:
            return None
        self._checkouts.append(folder)
        return LocalSandbox(f"version-{run_id}-{folder.name[-8:]}", folder).get_url()

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        from pixie.runs import CorruptRun, load_run

        arn = self.active.get(run_id)
        record = None
        if arn is not None:
            try:
                record = self._live_record(run_id, arn)
            except Exception:  # noqa: BLE001 - ended meanwhile: read it from disk
                record = None
            if record is not None and "egress" not in record:  # what its commands reached so far
                from lambdas.logic.sandboxes import egress

                started = (record.get("history") or [{}])[0].get("timestamp")
                record["egress"] = egress.run_entries(self.home, record.get("sandboxId"), since=started)
                record["egressTotals"] = egress.run_totals(self.home, record.get("sandboxId"), since=started)
        if record is None:
            try:
                record = load_run(self.home, run_id)
            except FileNotFoundError:
                return None
            except CorruptRun as exc:
                raise BadRequest(str(exc)) from None  # the page says which file, no crash
        try:
            view = run_view(record)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a field of the wrong shape
            raise BadRequest(f"run {run_id}'s saved record cannot be shown: {type(exc).__name__}: {exc}") from None
        view["previewUrl"] = self._preview_url(record)
        view["live"] = run_id in self.active
        return view

    def _preview_url(self, record: dict[str, Any]) -> str | None:
        """The preview of a finished local run, served again by this process if needed (a run
        made by `pixie run` stopped serving when that process ended)."""
        sandbox_id = record.get("sandboxId") or ""
        if record.get("status") != "SUCCEEDED" or not sandbox_id.startswith("local-"):
            return record.get("url")
        from lambdas.logic.errors import SandboxNotFound
        from lambdas.logic.sandboxes.local import LocalSandboxProvider

        try:
            return LocalSandboxProvider(self.home).connect(sandbox_id, 0).get_url()
        except SandboxNotFound:
            return None

    def channel(self, run_id: str) -> RunChannel | None:
        from pixie.runs import load_run

        channel = self.channels.get(run_id)
        if channel is not None:
            return channel
        try:
            record = load_run(self.home, run_id)
        except FileNotFoundError:
            return None
        return replay(run_id, record.get("history") or [], record.get("status") or "UNKNOWN", record.get("error"))


# --- a deployed stack -------------------------------------------------------------------------
def aws_console_url(region: str, execution_arn: str) -> str:
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"


class AwsRuns:
    """The stack's executions (ListExecutions, GetExecutionHistory) and its table; runs start with
    PutEvents, as `pixie send` does. Choices stay the stack's (its functions allow none per event)."""

    def __init__(
        self,
        stack: str,
        *,
        sfn: Any = None,
        events: Any = None,
        dynamodb: Any = None,
        cloudformation: Any = None,
        poll_s: float = 2.0,
        start_timeout_s: float = 30.0,
        list_limit: int = 50,
    ) -> None:
        import boto3

        from pixie.aws_runs import stack_outputs

        outputs = stack_outputs(cloudformation, stack, required=("StateMachineArn", "TableName"))
        self.stack = stack
        self.state_machine_arn = outputs["StateMachineArn"]
        self.table = outputs["TableName"]
        self.event_bus = outputs.get("EventBusName") or "default"
        self.sfn = sfn or boto3.client("stepfunctions")
        self.events = events or boto3.client("events")
        self.dynamodb = dynamodb
        self.region = self.sfn.meta.region_name
        self.poll_s = poll_s
        self.start_timeout_s = start_timeout_s
        self.list_limit = list_limit
        self.channels: dict[str, RunChannel] = {}
        self._lock = threading.Lock()

    def open(self) -> "AwsRuns":
        return self

    def close(self) -> None:
        pass

    def _state(self) -> Any:
        from lambdas.dal.network_state import NetworkState

        return NetworkState(self.table, self.dynamodb)

    def capabilities(self) -> dict[str, Any]:
        return {
            "mode": "aws", "ready": True, "startupError": None, "continue": False, "choices": False,
            "stack": self.stack, "stateMachineArn": self.state_machine_arn, "region": self.region,
            "stateMachineConsoleUrl": f"https://{self.region}.console.aws.amazon.com/states/home?region={self.region}#/statemachines/view/{self.state_machine_arn}",
        }

    def start(self, prompt: Any, choices: dict[str, Any], continue_from: str | None) -> str:
        from pixie.aws_runs import send

        if choices or continue_from is not None:
            raise BadRequest(
                "a deployed stack runs with its own settings (cdk context pixie:model, pixie:maxIterations); "
                "send only a prompt"
            )
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadRequest("prompt must be a non-empty string")
        arn = send(prompt, self.events, self.sfn, self.state_machine_arn, timeout_s=self.start_timeout_s,
                   event_bus_name=self.event_bus, poll_s=min(self.poll_s, 1.0))
        return arn.rsplit(":", 1)[-1]

    def rerun_request(self, run_id: str) -> tuple[Any, dict[str, Any], str | None]:
        raise BadRequest("rerun is for local runs; send the prompt again with pixie send")

    def stop(self, run_id: str) -> dict[str, Any]:
        """StopExecution; the stack's status-change rule then runs CleanupSandbox."""
        arn = self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{run_id}"
        try:
            status = self.sfn.describe_execution(executionArn=arn)["status"]
        except self.sfn.exceptions.ExecutionDoesNotExist:
            raise Conflict(f"no execution {run_id} in stack {self.stack}") from None
        if status != "RUNNING":
            raise Conflict(f"run {run_id} is {status}, not running")
        self.sfn.stop_execution(executionArn=arn, error="Stopped", cause="stopped from the pixie console")
        return self.get_run(run_id) or {"runId": run_id, "status": "ABORTED"}

    def decide(self, run_id: str, approve: bool, reason: str | None, iteration: int | None = None) -> dict[str, Any]:
        """SendTaskSuccess / SendTaskFailure with the token the run's wait saved in the table."""
        from pixie.aws_runs import AwsRunsError, decide_aws

        try:
            return decide_aws(run_id, self.table, self.sfn, approve, reason, dynamodb_resource=self.dynamodb, iteration=iteration)
        except AwsRunsError as exc:
            raise Conflict(str(exc)) from None

    def list_runs(self) -> list[dict[str, Any]]:
        page = self.sfn.list_executions(stateMachineArn=self.state_machine_arn, maxResults=self.list_limit)
        state = self._state()
        rows = []
        for execution in page.get("executions", []):
            run_id = execution["name"]
            run = state.find_run(run_id)
            started, stopped = execution.get("startDate"), execution.get("stopDate")
            rows.append({
                "runId": run_id,
                "status": execution["status"],
                "title": run.title if run else None,
                "prompt": (run.prompt if run else "")[:240],
                "model": run.model if run else None,
                "startedAt": started.isoformat() if started else None,
                "durationS": round((stopped - started).total_seconds(), 2) if started and stopped else None,
                "turns": run.iteration if run else 0,
                "tokens": None,  # in the history only: shown on the run's page
                "costUsd": None,
                "error": None,
                "source": "aws",
                "consoleUrl": aws_console_url(self.region, execution["executionArn"]),
            })
        return _newest_first(rows)

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        from pixie.aws_runs import HistoryFollower, execution_arn_for, execution_result
        from pixie.display import lambda_error_message
        from pixie.runs import run_record

        arn = execution_arn_for(self.state_machine_arn, run_id)
        try:
            description = self.sfn.describe_execution(executionArn=arn)
        except Exception as exc:  # noqa: BLE001 - botocore ClientError
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("ExecutionDoesNotExist", "InvalidArn"):
                return None
            raise
        result = execution_result(description)
        history = [jsonable(e) for e in HistoryFollower(self.sfn, arn).new_events()]
        record = run_record(
            self._state(), run_id, status=result["status"], error=result["error"],
            cause=lambda_error_message(result["cause"]), execution_arn=arn, history=history,
        )
        view = run_view(record)
        view.update(previewUrl=record.get("url"), live=result["status"] == "RUNNING",
                    consoleUrl=aws_console_url(self.region, arn))
        return view

    def channel(self, run_id: str) -> RunChannel | None:
        from pixie.aws_runs import execution_arn_for, watch

        with self._lock:
            channel = self.channels.get(run_id)
            if channel is not None:
                return channel
            arn = execution_arn_for(self.state_machine_arn, run_id)
            try:
                self.sfn.describe_execution(executionArn=arn)
            except Exception as exc:  # noqa: BLE001
                if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("ExecutionDoesNotExist", "InvalidArn"):
                    return None
                raise
            channel = self.channels[run_id] = RunChannel(run_id)

        def follow() -> None:
            try:
                result = watch(arn, self.sfn, on_event=lambda e: channel.history(jsonable(e)), poll_s=self.poll_s)
                channel.end(result["status"], result["error"])
            except Exception as exc:  # noqa: BLE001 - the page must hear that following failed
                channel.end("UNKNOWN", f"the console lost track of the execution: {exc}")

        # One follower per execution, however many pages watch it; a finished channel stays for replay.
        threading.Thread(target=follow, name=f"watch-{run_id}", daemon=True).start()
        return channel

