"""One run on the embedded engine, from event to saved record. Used by `pixie run`, the tests
and the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lambdas.dal.network_state import NetworkState
from lambdas.logic.sandboxes.local import kill_running_commands
from pixie.display import lambda_error_message
from statemachine.engine import Execution, InvokeWrapper, LocalEngine, hello_world_event, new_run_id
from pixie.run_journal import RunJournal, continued_run, parent_items, resumable_state
from pixie.runs import run_record, save_run

DEMO_SCRIPT = Path(__file__).parent / "demo" / "todo_app.json"


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

    def env(self) -> dict[str, str]:
        isolation = {} if self.isolation is None else {"PIXIE_ISOLATION": self.isolation}
        if self.allow_network is not None:
            isolation["PIXIE_ALLOW_NETWORK"] = "1" if self.allow_network else "0"
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
        return {"model": self.model, "sandbox": self.sandbox, "maxIterations": self.max_iterations, "template": self.template}


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
    save_run(pixie_home, record)
    return record


def run_locally(
    event_or_prompt: Any,
    options: RunOptions,
    on_event: Callable[[dict], None] | None = None,
    invoke_wrapper: InvokeWrapper | None = None,
    retry_delay_scale: float = 1.0,
    run_id: str | None = None,
    saved_items: list[dict] = (),
) -> dict[str, Any]:
    """One run to its end. On Ctrl-C the running command is killed, the execution fails with
    `Interrupted` through its cleanup path, the run is saved all the same, and the interrupt goes
    on to the caller. The run is also saved after every step (pixie/run_journal.py); the table
    starts with `saved_items` (an earlier run's, to continue or resume it)."""
    event = event_or_prompt if isinstance(event_or_prompt, dict) else hello_world_event(event_or_prompt)
    run_id = run_id or new_run_id()
    journal = RunJournal(options.pixie_home, run_id, event, options.saved(), parent_id=continued_run(event))
    with LocalEngine(
        options.env(), invoke_wrapper=journal.wrap(invoke_wrapper), retry_delay_scale=retry_delay_scale
    ) as engine:
        journal.attach(engine, saved_items)
        arn, _ = start_run(engine, event, run_id)
        try:
            return finish_run(engine, arn, options.pixie_home, on_event)
        except KeyboardInterrupt:
            engine.interrupt("pixie was interrupted (Ctrl-C)")
            kill_running_commands()
            raise RunInterrupted(finish_run(engine, arn, options.pixie_home)) from None


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; carries the saved record."""

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__(record["runId"])
        self.record = record


def continue_locally(parent_id: str, prompt: str, options: RunOptions, **run_kwargs: Any) -> dict[str, Any]:
    """A new run that continues the project of a saved run that succeeded (its sandbox, files and
    conversation); CannotStart when there is no such run."""
    items = parent_items(options.pixie_home, parent_id)
    return run_locally(hello_world_event(prompt, continue_from=parent_id), options, saved_items=items, **run_kwargs)


def resume_locally(run_id: str, pixie_home: Path, log_level: str = "WARNING", **run_kwargs: Any) -> dict[str, Any]:
    """Finishes a run that did not (killed, interrupted, failed): same run id, same event and
    options; completed steps return their saved results; CannotStart when it cannot be resumed."""
    saved = resumable_state(pixie_home, run_id)
    settings = saved["options"]
    options = RunOptions(
        model=settings["model"],
        sandbox=settings["sandbox"],
        max_iterations=int(settings["maxIterations"]),
        pixie_home=Path(pixie_home),
        template=settings["template"],
        log_level=log_level,
    )
    return run_locally(saved["event"], options, run_id=run_id, saved_items=saved["items"], **run_kwargs)
