"""One run on the embedded engine, from event to saved record. Used by `pixie run`, the tests
and the benchmarks."""

from __future__ import annotations

import os
import signal
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lambdas.dal.network_state import NetworkState
from lambdas.logic.sandboxes import egress
from lambdas.logic.sandboxes.local import kill_running_commands
from pixie.display import lambda_error_message
from statemachine.engine import Execution, ExecutionNotRunning, InvokeWrapper, LocalEngine, hello_world_event, new_run_id
from statemachine.history import jsonable
from pixie.demo import DEMO_SCRIPT  # noqa: F401 - re-exported (tests, bench)
from pixie.run_journal import RunJournal, continued_run, parent_items, resumable_state
from pixie.run_locks import hold_run
from pixie.runs import run_record, save_run
from pixie.versions import save_run_version


@dataclass(frozen=True)
class RunOptions:
    model: str
    sandbox: str = "local"
    max_iterations: int = 15
    pixie_home: Path = Path.home() / ".pixie"
    template: str = "pixie"
    log_level: str = "WARNING"
    extra_env: tuple[tuple[str, str], ...] = ()
    # Local sandbox isolation ("bwrap" or "none") and network; None keeps what the environment says.
    isolation: str | None = None
    allow_network: bool | None = None
    allow_hosts: tuple[str, ...] = ()  # HOST[:PORT] entries reached through the egress proxy (PIXIE_ALLOW_HOSTS)
    # The run's budget (None: the environment's PIXIE_BUDGET_USD / PIXIE_MAX_TOKENS, else unbounded).
    budget_usd: float | None = None
    max_tokens: int | None = None
    # The done-check (None: the environment's PIXIE_CHECK, on by default; False: --no-check), and
    # a command of the user's it runs instead of the project's npm scripts (--check-command).
    check: bool | None = None
    check_command: str | None = None
    # Approvals: which tool calls wait for a person ("commands", "all"; None: the environment's
    # PIXIE_APPROVE, else none), and how long (None: PIXIE_APPROVAL_TIMEOUT, else 24 h).
    approve: str | None = None
    approval_timeout_s: int | None = None

    def env(self) -> dict[str, str]:
        isolation = {} if self.isolation is None else {"PIXIE_ISOLATION": self.isolation}
        if self.allow_network is not None:
            isolation["PIXIE_ALLOW_NETWORK"] = "1" if self.allow_network else "0"
        if self.allow_hosts:
            isolation["PIXIE_ALLOW_HOSTS"] = ",".join(self.allow_hosts)
        return {
            **isolation,
            "PIXIE_MODEL": self.model,
            "PIXIE_SANDBOX": self.sandbox,
            "PIXIE_MAX_ITERATIONS": str(self.max_iterations),
            "PIXIE_HOME": str(self.pixie_home),
            "PIXIE_TEMPLATE": self.template,
            "POWERTOOLS_LOG_LEVEL": self.log_level,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            **dict(self.extra_env),
        }

    def saved(self) -> dict[str, Any]:
        """What `pixie resume` needs to run it again the same way."""
        return {
            "model": self.model,
            "sandbox": self.sandbox,
            "maxIterations": self.max_iterations,
            "template": self.template,
            "budgetUsd": self.budget_usd,
            "maxTokens": self.max_tokens,
            "check": self.check,
            "checkCommand": self.check_command,
            "approve": self.approve,
            "approvalTimeoutSeconds": self.approval_timeout_s,
            "allowHosts": list(self.effective_allow_hosts()),
        }

    def effective_allow_hosts(self) -> tuple[str, ...]:
        """The allow-list the run's sandbox gets: --allow-host's, else PIXIE_ALLOW_HOSTS's."""
        if self.allow_hosts:
            return self.allow_hosts
        listed = {**os.environ, **dict(self.extra_env)}.get("PIXIE_ALLOW_HOSTS", "")
        return tuple(entry.strip() for entry in listed.split(",") if entry.strip())

    def event_choices(self) -> dict[str, Any]:
        """The per-run choices these options put in the event's detail (several runs may share an engine)."""
        choices = {"budgetUsd": self.budget_usd, "maxTokens": self.max_tokens, "check": self.check,
                   "checkCommand": self.check_command,
                   "approve": self.approve, "approvalTimeoutSeconds": self.approval_timeout_s}
        return {name: value for name, value in choices.items() if value is not None}


def execution_record(execution: Execution, state: NetworkState) -> dict[str, Any]:
    """The run record of a finished local execution."""
    return run_record(
        state,
        execution.run_id,
        status=execution.status,
        error=execution.error,
        cause=lambda_error_message(execution.cause),
        execution_arn=execution.arn,
        history=execution.history,
    )


def start_run(engine: LocalEngine, event_or_prompt: Any, run_id: str | None = None, **choices: Any) -> tuple[str, str]:
    """Starts one run on a running engine: (execution ARN, run id). `choices` (model, sandbox,
    maxIterations, ...) go into the event's detail, since several runs may share the engine."""
    event = event_or_prompt if isinstance(event_or_prompt, dict) else hello_world_event(event_or_prompt)
    if choices:
        event = {**event, "detail": {**event["detail"], **choices}}
    return engine.start(event, run_id)


def finish_run(
    engine: LocalEngine,
    arn: str,
    pixie_home: Path,
    on_event: Callable[[dict], None] | None = None,
    poll_s: float = 0.05,
) -> dict[str, Any]:
    """Waits for the run to end, then saves its record and returns it: how every local run ends,
    in `pixie run` and in the console alike."""
    execution = engine.wait(arn, on_event, poll_s=poll_s)
    record = execution_record(execution, NetworkState(engine.env["PIXIE_TABLE"]))
    started = execution.history[0].get("timestamp") if execution.history else None
    record["egress"] = egress.run_entries(pixie_home, record.get("sandboxId"), since=started)  # what its commands reached
    record["egressTotals"] = egress.run_totals(pixie_home, record.get("sandboxId"), since=started)  # all, not only those kept
    save_run(pixie_home, record)
    save_run_version(pixie_home, record, complete=True)
    return record


STOP_REQUESTS = "stop-requests"  # under $PIXIE_HOME: `pixie stop RUN` leaves a file named after the run
STOP_POLL_S = 0.2
STOPPED_BY_REQUEST = "stopped with pixie stop"


def stop_request_path(pixie_home: Path, run_id: str) -> Path:
    return Path(pixie_home) / STOP_REQUESTS / run_id


def request_stop(pixie_home: Path, run_id: str) -> None:
    """Asks the process running `run_id` (a `pixie run`, or the console running it) to stop it."""
    path = stop_request_path(pixie_home, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


DECISION_REQUESTS = "approval-requests"  # under $PIXIE_HOME: `pixie approve`/`deny` leave <run>.<uuid>.json here
DECISION_WAIT_S = 120  # how long `pixie approve` waits for the running process to answer


class NothingToDecide(Exception):
    """The run is not waiting for a decision (never was, or it was decided or timed out)."""


def decide(engine: LocalEngine, run_id: str, approve: bool, reason: str | None = None,
           iteration: int | None = None) -> dict[str, Any]:
    """Approves or denies the calls a run running on `engine` waits on: SendTaskSuccess with
    {"approved": true}, or SendTaskFailure with ApprovalDenied and the reason as its cause, as
    `pixie approve --aws` does on AWS. The one way a local decision is made (the CLI through a
    request file, the console directly). NothingToDecide when nothing waits, or when `iteration`
    (the turn whose calls the person was shown) is no longer the turn that waits."""
    from botocore.exceptions import ClientError

    from lambdas.logic.approvals import APPROVAL_DENIED, MAX_REASON_CHARS

    state = NetworkState(engine.env["PIXIE_TABLE"])
    run = state.find_run(run_id)
    pending = run.pending_approval if run else None
    if not pending or not pending.get("taskToken"):
        raise NothingToDecide(f"run {run_id} is not waiting for approval")
    check_decided_turn(run_id, pending, iteration)
    token = pending["taskToken"]
    try:
        if approve:
            engine.send_task_success(token, {"approved": True})
        else:
            engine.send_task_failure(token, APPROVAL_DENIED, (reason or "").strip()[:MAX_REASON_CHARS] or "no reason given")
    except ClientError as exc:  # TaskTimedOut: the wait ended meanwhile (timed out, or decided)
        raise NothingToDecide(f"run {run_id} is no longer waiting for approval ({exc.response['Error']['Code']})") from None
    state.clear_pending_approval(run_id, int(pending.get("iteration", 0)))  # not offered twice
    return {"runId": run_id, "decision": "approved" if approve else "denied", "calls": len(pending.get("calls") or [])}


def check_decided_turn(run_id: str, pending: dict[str, Any], iteration: int | None) -> None:
    """A decision names the turn whose calls were shown: one for a turn that no longer waits (it
    was decided elsewhere, and the next turn's different calls wait now) is refused."""
    waiting = pending.get("iteration")
    if iteration is not None and waiting != iteration:
        raise NothingToDecide(f"run {run_id} no longer waits on turn {iteration}'s calls (turn {waiting}'s calls wait now: "
                              f"look at them with `pixie show {run_id} --json`, then decide again)")


def decision_requests_dir(pixie_home: Path) -> Path:
    return Path(pixie_home) / DECISION_REQUESTS


def request_decision(pixie_home: Path, run_id: str, approve: bool, reason: str | None = None,
                     wait_s: float = DECISION_WAIT_S, iteration: int | None = None) -> dict[str, Any]:
    """Asks the process running `run_id` (a `pixie run`, or the console) to approve or deny what
    it waits on, and waits for its answer: the result of `decide`. NothingToDecide when nothing
    waits; TimeoutError when the process does not answer."""
    import json
    import os
    import time
    import uuid

    folder = decision_requests_dir(pixie_home)
    folder.mkdir(parents=True, exist_ok=True)
    request_id = uuid.uuid4().hex
    path = folder / f"{run_id}.{request_id}.json"  # one file per decision: none replaces another
    answer = path.with_name(f"{run_id}.{request_id}.answer")
    temporary = path.with_name(f".{run_id}.{request_id}.tmp")
    temporary.write_text(json.dumps({"id": request_id, "approve": approve, "reason": reason, "iteration": iteration}),
                         encoding="utf-8")
    os.replace(temporary, path)
    deadline = time.monotonic() + wait_s
    while not answer.exists():
        if time.monotonic() > deadline:
            path.unlink(missing_ok=True)
            raise TimeoutError(f"the process running {run_id} did not answer within {wait_s:.0f} s")
        time.sleep(0.05)
    result = json.loads(answer.read_text(encoding="utf-8"))
    answer.unlink(missing_ok=True)
    if "error" in result:
        raise NothingToDecide(result["error"])
    return result


class StopRequestWatcher:
    """While a run runs here, watches for `pixie stop RUN` from another shell and stops the run
    as StopExecution does (ABORTED, cleaned up, saved; `pixie resume` carries it on), and for
    `pixie approve`/`deny RUN`, which it decides (`decide`). The same for a `pixie run` and for
    a console run, which share one engine with others."""

    def __init__(self, engine: LocalEngine, arn: str, run_id: str, pixie_home: Path) -> None:
        self.path = stop_request_path(pixie_home, run_id)
        self.path.unlink(missing_ok=True)  # an old request is not for this start
        self.decisions = decision_requests_dir(pixie_home)
        for old in self.decisions.glob(f"{run_id}.*.json"):  # an old request is not for this start
            old.unlink(missing_ok=True)
        self._engine, self._arn, self._run_id = engine, arn, run_id
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"stop-watch-{run_id}", daemon=True)
        self._thread.start()

    def _answer_decision(self, path: Path) -> None:
        import json
        import os

        try:
            request = json.loads(path.read_text(encoding="utf-8"))
            path.unlink(missing_ok=True)
            request_id = str(request["id"])
            if not request_id.isalnum():
                return
            iteration = request.get("iteration")
            answer: dict[str, Any] = decide(self._engine, self._run_id, request.get("approve") is True, request.get("reason"),
                                            iteration=iteration if isinstance(iteration, int) else None)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return  # half-written or not ours: the asker times out and says so
        except NothingToDecide as exc:
            answer = {"error": str(exc)}
        target = path.with_name(f"{self._run_id}.{request_id}.answer")
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_text(json.dumps(answer), encoding="utf-8")
        os.replace(temporary, target)

    def _watch(self) -> None:
        while not self._done.wait(STOP_POLL_S):
            for request in sorted(self.decisions.glob(f"{self._run_id}.*.json")):  # each decision its answer
                self._answer_decision(request)
            if self.path.exists():
                self.path.unlink(missing_ok=True)
                try:
                    self._engine.stop(self._arn, cause=STOPPED_BY_REQUEST)
                except ExecutionNotRunning:
                    pass  # it ended meanwhile
                return

    def close(self) -> None:
        self._done.set()


INTERRUPT_REASON = "pixie was interrupted ({signal})"
PARTIAL_READ_S = 2.0  # on a forced exit, how long to try to read what the run left


class ForcedExit(BaseException):
    """A second interrupt: stop waiting for the cleanup (BaseException: nothing swallows it)."""


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP during a local run. The first one stops the run: the model
    request or command in flight is cancelled, the execution ends through CleanupSandbox and the
    run is saved. A second one stops waiting for that (ForcedExit). Use as a context manager in
    the main thread; `notify` hears what to tell the user."""

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))

    def __init__(self, notify: Callable[[str], None]) -> None:
        self.notify = notify
        self.reason: str | None = None  # set by the first signal
        self.count = 0
        self._engine: LocalEngine | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def attach(self, engine: "LocalEngine") -> None:
        self._engine = engine
        if self.reason:
            self._stop_engine()

    def _handle(self, signum: int, _frame: Any) -> None:
        self.count += 1
        if self.count == 2:
            self._tell("stopping now; saving what there is")
            raise ForcedExit()
        if self.count > 2:
            return  # already leaving
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        self.reason = INTERRUPT_REASON.format(signal=name)
        self._tell("stopping… (again to force)")
        if self._engine is not None:
            self._stop_engine()

    def _tell(self, text: str) -> None:
        try:
            self.notify(text)
        except Exception:  # noqa: BLE001 - e.g. the signal came in the middle of a write to stderr
            pass

    def _stop_engine(self) -> None:
        self._engine.interrupt(self.reason)
        kill_running_commands()


def _partial_record(engine: LocalEngine, arn: str, run_id: str, reason: str) -> dict[str, Any]:
    """What a run stopped by force left, read within PARTIAL_READ_S (a step thread stuck inside
    moto could hold its locks): the network state and history so far, or only the id."""
    found: dict[str, Any] = {}

    def read() -> None:
        found["history"] = [jsonable(e) for e in engine.history(arn)]
        found["record"] = run_record(
            NetworkState(engine.env["PIXIE_TABLE"]), run_id, status="ABORTED", error="Interrupted",
            cause=f"{reason}; forced to exit before the run's cleanup finished", execution_arn=arn,
            history=found["history"],
        )

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(PARTIAL_READ_S)
    return found.get("record") or {
        **run_record(_NoState(), run_id, status="ABORTED", error="Interrupted", execution_arn=arn),
        "cause": f"{reason}; forced to exit before anything could be read",
    }


class _NoState:
    def find_run(self, run_id: str) -> None:
        return None


def run_locally(
    event_or_prompt: Any,
    options: RunOptions,
    on_event: Callable[[dict], None] | None = None,
    invoke_wrapper: InvokeWrapper | None = None,
    retry_delay_scale: float = 1.0,
    run_id: str | None = None,
    saved_items: list[dict] = (),
    stop: StopSignals | None = None,
) -> dict[str, Any]:
    """One run to its end. Interrupted (Ctrl-C without `stop`, or a first signal with it), the
    running command is killed, the model request cancelled, the execution fails with
    `Interrupted` through its cleanup path, the run is saved all the same, and RunInterrupted
    goes on to the caller. A second signal (ForcedExit) saves what there is at once.
    The run is also saved after every step (pixie/run_journal.py); the table starts with
    `saved_items` (an earlier run's, to continue or resume it)."""
    event = event_or_prompt if isinstance(event_or_prompt, dict) else hello_world_event(event_or_prompt)
    if options.event_choices():
        event = {**event, "detail": {**event["detail"], **options.event_choices()}}
    run_id = run_id or new_run_id()
    with ExitStack() as locks:
        hold_run(locks, options.pixie_home, run_id, list(saved_items))  # refused before anything starts
        return _run_held(event, options, on_event, invoke_wrapper, retry_delay_scale, run_id, saved_items, stop)


def _run_held(event, options, on_event, invoke_wrapper, retry_delay_scale, run_id, saved_items, stop) -> dict[str, Any]:
    journal = RunJournal(options.pixie_home, run_id, event, options.saved(), parent_id=continued_run(event))
    interrupted = False
    with LocalEngine(
        options.env(), invoke_wrapper=journal.wrap(invoke_wrapper), retry_delay_scale=retry_delay_scale
    ) as engine:
        if stop is not None and stop.reason:  # stopped while the engine was starting: no run at all
            raise RunInterrupted(None)
        journal.attach(engine, saved_items)
        arn, _ = start_run(engine, event, run_id)
        if stop is not None:
            stop.attach(engine)
        watcher = StopRequestWatcher(engine, arn, run_id, options.pixie_home)
        try:
            try:
                record = finish_run(engine, arn, options.pixie_home, on_event)
            except KeyboardInterrupt:
                interrupted = True
                engine.interrupt(INTERRUPT_REASON.format(signal="Ctrl-C"))
                kill_running_commands()
                record = finish_run(engine, arn, options.pixie_home)
        except ForcedExit:
            journal.close()
            record = _partial_record(engine, arn, run_id, (stop.reason if stop else None) or "pixie was interrupted")
            save_run(options.pixie_home, record)
            save_run_version(options.pixie_home, record, complete=False)
            raise RunInterrupted(record, forced=True) from None
        finally:
            watcher.close()
    if interrupted or (stop is not None and stop.reason):
        raise RunInterrupted(record)
    return record


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by the user; carries the saved record (None when it never started)."""

    def __init__(self, record: dict[str, Any] | None, forced: bool = False) -> None:
        super().__init__(record["runId"] if record else "")
        self.record = record
        self.forced = forced


def continue_locally(parent_id: str, prompt: str, options: RunOptions, **run_kwargs: Any) -> dict[str, Any]:
    """A new run that continues the project of a saved run that succeeded (its sandbox, files and
    conversation); CannotStart when there is no such run."""
    items = parent_items(options.pixie_home, parent_id)
    return run_locally(hello_world_event(prompt, continue_from=parent_id), options, saved_items=items, **run_kwargs)


def _saved_allow_hosts(settings: dict[str, Any]) -> dict[str, Any]:
    """The run's own allow-list for its resumption, whatever PIXIE_ALLOW_HOSTS says now (a run
    saved before it was kept: the environment's, as before)."""
    hosts = settings.get("allowHosts")
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        return {}
    return {"allow_hosts": tuple(hosts), "extra_env": (("PIXIE_ALLOW_HOSTS", ",".join(hosts)),)}


def resume_locally(
    run_id: str,
    pixie_home: Path,
    log_level: str = "WARNING",
    budget_usd: float | None = None,
    max_tokens: int | None = None,
    **run_kwargs: Any,
) -> dict[str, Any]:
    """Finishes a run that did not (killed, interrupted, failed): same run id, same event and
    options; completed steps return their saved results; CannotStart when it cannot be resumed.
    A new budget (`budget_usd`, `max_tokens`) replaces the run's: a BudgetExceeded run goes on."""
    saved = resumable_state(pixie_home, run_id)
    settings = saved["options"]
    options = RunOptions(
        model=settings["model"],
        sandbox=settings["sandbox"],
        max_iterations=int(settings["maxIterations"]),
        pixie_home=Path(pixie_home),
        template=settings["template"],
        log_level=log_level,
        budget_usd=budget_usd if budget_usd is not None else settings.get("budgetUsd"),
        max_tokens=max_tokens if max_tokens is not None else settings.get("maxTokens"),
        check=settings.get("check"),
        check_command=settings.get("checkCommand"),
        approve=settings.get("approve"),
        approval_timeout_s=settings.get("approvalTimeoutSeconds"),
        **_saved_allow_hosts(settings),
    )
    return run_locally(saved["event"], options, run_id=run_id, saved_items=saved["items"], **run_kwargs)
