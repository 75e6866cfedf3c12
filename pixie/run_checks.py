"""The checks a local run must pass before anything is created, for `pixie run` and the console
alike: the model spec and its key, the sandbox and its key, the prompt and the settings, and
whether the run it continues can be continued. Each failure is one line (RunRefused): the CLI
prints it and exits 2, the console answers 400 with it; no run, sandbox or folder exists yet.

Kept light (no engine, no moto) so that `pixie run` reports a mistake before it loads the engine;
pixie/local_run.py, the one place runs start, calls `check_new_run` for the console."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from lambdas.logic.config import DEFAULT_MODEL
from pixie.demo import DEMO_SCRIPT

PLACEHOLDER_OPENAI_KEY = "pixie-placeholder-key"  # local OpenAI-compatible servers accept any key
MODEL_FORMS = "openai:MODEL (e.g. openai:gpt-4.1), bedrock:MODEL_ID or scripted:FILE"


class RunRefused(Exception):
    """Why a run cannot start, in one line; nothing was created."""


@dataclass(frozen=True)
class ModelChoice:
    spec: str  # what the run uses (a scripted model's file made absolute)
    notices: list[str] = field(default_factory=list)  # for the user, e.g. "running the demo"
    env: dict[str, str] = field(default_factory=dict)  # to add to the run's environment


def resolve_model(spec: str | None, environ: Mapping[str, str] | None = None) -> ModelChoice:
    """The model a run uses for `spec` (None: OpenAI's default with a key, else the offline demo);
    RunRefused for one that cannot work here."""
    environ = os.environ if environ is None else environ
    has_key = bool(environ.get("OPENAI_API_KEY", "").strip())
    base_url = environ.get("OPENAI_BASE_URL", "").strip()
    if spec is None:
        if not has_key and not base_url:
            notice = (
                "No OPENAI_API_KEY set: running the bundled scripted demo (a todo app, whatever the prompt). "
                "It runs the real workflow and tools, but no model generates anything. "
                "Set OPENAI_API_KEY, or pass --model openai:MODEL / scripted:FILE."
            )
            return ModelChoice(f"scripted:{DEMO_SCRIPT}", [notice])
        spec = DEFAULT_MODEL
    provider, _, rest = spec.partition(":")
    if provider == "scripted" and rest:
        path = Path(rest).expanduser().resolve()
        if not path.is_file():
            raise RunRefused(f"script file {rest} does not exist")
        return ModelChoice(f"scripted:{path}")
    if provider == "bedrock" and rest:
        from lambdas.logic.models.bedrock_model import aws_region

        if not aws_region():
            raise RunRefused("bedrock models need an AWS region: set AWS_REGION (or a region in your AWS profile)")
        return ModelChoice(spec)
    if provider == "openai" and rest:
        if has_key:
            return ModelChoice(spec)
        if base_url:
            notice = (
                f"OPENAI_BASE_URL is set and OPENAI_API_KEY is not: using {spec} at {base_url} with a placeholder "
                "key (Ollama, vLLM and LM Studio accept any). Set OPENAI_API_KEY if your server wants a real one."
            )
            return ModelChoice(spec, [notice], {"OPENAI_API_KEY": PLACEHOLDER_OPENAI_KEY})
        raise RunRefused(
            f"--model {spec} needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local OpenAI-compatible server "
            "such as Ollama). Set one, or leave --model out to run the offline demo."
        )
    raise RunRefused(f"unknown --model {spec!r}: use {MODEL_FORMS}")


def check_sandbox(sandbox: str, template: str, environ: Mapping[str, str] | None = None) -> None:
    environ = os.environ if environ is None else environ
    if sandbox == "e2b" and not environ.get("E2B_API_KEY", "").strip():
        raise RunRefused(
            "--sandbox e2b needs E2B_API_KEY (your key from https://e2b.dev/dashboard) and the E2B template "
            f"{template!r}, built once with: E2B_API_KEY=... .venv/bin/python -m infra.e2b_template build "
            "(or leave --sandbox out to use the local sandbox)"
        )


def check_prompt_and_settings(prompt: str, options: Any) -> None:
    """The prompt, the settings the run's environment gives (limits in range), a budget the model
    has prices for, a done-check command within bounds, and every turn of a scripted model's file (`options`: a RunOptions)."""
    from lambdas.logic.budget import check_budget_is_priced
    from lambdas.logic.config import Settings
    from lambdas.logic.errors import PixieError
    from lambdas.logic.events import check_prompt

    try:
        check_command = getattr(options, "check_command", None)
        # The run's own check command is held to PIXIE_CHECK_COMMAND's bounds (length, no NUL).
        chosen = {} if check_command is None else {"PIXIE_CHECK_COMMAND": check_command}
        settings = Settings.from_env({**os.environ, **options.env(), **chosen})
        if check_command is not None and settings.check_command is None:
            raise RunRefused("the check command is empty")
        check_prompt(prompt, settings.max_prompt_chars)
        budget = options.budget_usd if options.budget_usd is not None else settings.budget_usd
        check_budget_is_priced(settings.model, budget)
        _check_approvals(options)
        if settings.model.startswith("scripted:"):
            from lambdas.logic.models.scripted import ScriptedModel

            ScriptedModel(settings.model.partition(":")[2])
    except (PixieError, ValueError) as exc:
        raise RunRefused(str(exc)) from None


def _check_approvals(options: Any) -> None:
    """--approve and --approval-timeout (the console's approve / approvalTimeoutSeconds): ValueError."""
    from lambdas.logic.approvals import check_approval_timeout, check_approve_mode

    if getattr(options, "approve", None) is not None:
        check_approve_mode(options.approve)
    if getattr(options, "approval_timeout_s", None) is not None:
        check_approval_timeout(options.approval_timeout_s)


def check_continuable(pixie_home: Path, parent_id: str) -> list[dict]:
    """The saved items of the run to continue; RunRefused unless it succeeded and was saved."""
    from pixie.run_journal import CannotStart, parent_items

    try:
        return parent_items(pixie_home, parent_id)
    except CannotStart as exc:
        raise RunRefused(str(exc)) from None


def continued_model(pixie_home: Path, parent_id: str) -> str | None:
    """The model a saved run used: a continuation keeps it unless it is given another."""
    from pixie.runs import load_run

    try:
        model = load_run(pixie_home, parent_id).get("model")
    except (FileNotFoundError, ValueError):
        return None
    return model if isinstance(model, str) and model else None


def check_new_run(prompt: str, options: Any, continue_from: str | None = None) -> list[dict]:
    """Every check of a new run whose model is already resolved (`options.model`): its sandbox,
    prompt and settings, and its parent. Returns the parent's saved items (none for a new project)."""
    check_sandbox(options.sandbox, options.template)
    check_prompt_and_settings(prompt, options)
    return check_continuable(options.pixie_home, continue_from) if continue_from else []
