"""The console's HTTP surface (Starlette): the pages, the JSON API they use (scripts may use it
too, with `Authorization: Bearer TOKEN`), and each run's server-sent events.

    POST /api/runs {"prompt", "model"?, "sandbox"?, "maxIterations"?, "budgetUsd"?, "maxTokens"?, "check"?, "checkCommand"?, "approve"?,
                    "approvalTimeoutSeconds"?, "continueFrom"?} -> {"runId"}
    GET  /api/runs                 newest first
    GET  /api/runs/{id}            the record (as `pixie show --json`) plus tokens and cost per turn
    GET  /api/runs/{id}/events     SSE: history, progress, end (Last-Event-ID / ?after= resumes)
    GET  /api/config               what this console can do (mode, choices, continue)
    GET  /api/graph                the state machine drawn from agent.asl.json
    GET  /api/runs/{id}/diff       what the run changed against its parent (local runs' versions)
    POST /api/runs/{id}/open-version -> {"url"}: a preview server of exactly that run's version
    POST /api/runs/{id}/approve    run the tool calls the run waits on (--approve)
    POST /api/runs/{id}/deny {"reason"?, "iteration"?}  do not run them; the model is told, with the reason
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pixie.console.backends import CHOICE_FIELDS, BadRequest, Conflict, NotReady, Runs, TooManyRuns
from pixie.console.graph import graph_from_file
from pixie.console.security import ConsoleGuard
from statemachine.engine import ASL_PATH

STATIC = Path(__file__).parent / "static"
RUN_ID = re.compile(r"[A-Za-z0-9_.-]{1,80}")
MAX_BODY_BYTES = 256 * 1024
START_FIELDS = {"prompt", "continueFrom", "rerunOf", *CHOICE_FIELDS}


async def bounded_body(request: Request) -> bytes | None:
    """The body, or None once it is over MAX_BODY_BYTES: refused from its Content-Length, else
    while it streams in; never read whole first (a 800 MB body was, before the 413)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def json_body(request: Request, empty: Any) -> Any:
    """The request's JSON body (`empty` when there is none), or the error Response to send:
    413 past MAX_BODY_BYTES, 400 when it is not JSON."""
    body = await bounded_body(request)
    if body is None:
        return _error(413, f"the request body is over {MAX_BODY_BYTES} bytes")
    if not body:
        return empty
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        return _error(400, f"the body is not JSON: {exc}")


def create_app(runs: Runs, token: str, hosts: set[str], cookie_name: str = "pixie_console") -> Any:
    """The ASGI app: the routes behind the token/Host/Origin guard."""
    graph = graph_from_file(ASL_PATH)

    def config(request: Request) -> JSONResponse:
        return JSONResponse(runs.capabilities())

    def state_machine_graph(request: Request) -> JSONResponse:
        return JSONResponse(graph)

    async def start_run(request: Request) -> Response:
        payload = await json_body(request, empty=None)
        if isinstance(payload, Response):
            return payload
        if not isinstance(payload, dict):
            return _error(400, 'send a JSON object: {"prompt": "..."}')
        unknown = sorted(set(payload) - START_FIELDS)
        if unknown:
            return _error(400, f"unknown field {unknown[0]!r}; known: {', '.join(sorted(START_FIELDS))}")
        choices = {k: payload[k] for k in CHOICE_FIELDS if payload.get(k) not in (None, "")}
        continue_from = payload.get("continueFrom") or None
        if continue_from is not None and not (isinstance(continue_from, str) and RUN_ID.fullmatch(continue_from)):
            return _error(400, "continueFrom must be a run id")
        prompt = payload.get("prompt")
        rerun_of = payload.get("rerunOf")
        if rerun_of is not None:  # the same prompt, model and settings as that run, as a new run
            if not (isinstance(rerun_of, str) and RUN_ID.fullmatch(rerun_of)):
                return _error(400, "rerunOf must be a run id")
            if set(payload) - {"rerunOf"}:
                return _error(400, "rerunOf takes the run's own prompt and settings: send it alone")
            try:
                prompt, choices, continue_from = await run_in_threadpool(runs.rerun_request, rerun_of)
            except BadRequest as exc:
                return _error(400, str(exc))
        try:
            run_id = await run_in_threadpool(runs.start, prompt, choices, continue_from)
        except BadRequest as exc:
            return _error(400, str(exc))
        except NotReady as exc:
            return _error(503, str(exc))
        except TooManyRuns as exc:
            return _error(429, str(exc))
        return JSONResponse({"runId": run_id}, status_code=201)

    async def stop_run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        if not RUN_ID.fullmatch(run_id):
            return _error(404, f"no run {run_id!r}")
        try:
            record = await run_in_threadpool(runs.stop, run_id)
        except Conflict as exc:
            return _error(409, str(exc))
        return JSONResponse(record)

    def decide(approve: bool):
        async def handler(request: Request) -> Response:
            run_id = request.path_params["run_id"]
            if not RUN_ID.fullmatch(run_id):
                return _error(404, f"no run {run_id!r}")
            payload = await json_body(request, empty={})
            if isinstance(payload, Response):
                return payload
            reason = payload.get("reason") if isinstance(payload, dict) else None
            iteration = payload.get("iteration") if isinstance(payload, dict) else None
            if (not isinstance(payload, dict) or set(payload) - {"reason", "iteration"} or not isinstance(reason, (str, type(None)))
                    or not (iteration is None or (isinstance(iteration, int) and not isinstance(iteration, bool)))):
                return _error(400, 'send nothing, or {"reason": "why not", "iteration": TURN}')
            try:
                result = await run_in_threadpool(runs.decide, run_id, approve, reason if not approve else None, iteration)
            except Conflict as exc:
                return _error(409, str(exc))
            return JSONResponse(result)

        return handler

    def list_runs(request: Request) -> JSONResponse:
        return JSONResponse({"runs": runs.list_runs()})

    def get_run(request: Request) -> JSONResponse:
        run_id = request.path_params["run_id"]
        try:
            record = runs.get_run(run_id) if RUN_ID.fullmatch(run_id) else None
        except BadRequest as exc:
            return _error(422, str(exc))
        if record is None:
            return _error(404, f"no run {run_id!r}")
        return JSONResponse(record)

    async def run_diff(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        diff = getattr(runs, "diff", None)
        found = await run_in_threadpool(diff, run_id) if diff and RUN_ID.fullmatch(run_id) else None
        return JSONResponse(found) if found is not None else _error(404, f"no kept version of run {run_id!r}")

    async def open_version(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        opener = getattr(runs, "open_version", None)
        url = await run_in_threadpool(opener, run_id) if opener and RUN_ID.fullmatch(run_id) else None
        return JSONResponse({"url": url}) if url else _error(404, f"no kept version of run {run_id!r}")

    async def run_events(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        channel = await run_in_threadpool(runs.channel, run_id) if RUN_ID.fullmatch(run_id) else None
        if channel is None:
            return _error(404, f"no run {run_id!r}")
        resume = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
        after = int(resume) if resume.isdigit() else 0

        async def events():
            async for item in channel.stream(after):
                yield {"event": item["type"], "id": str(item["seq"]), "data": json.dumps(item["data"], ensure_ascii=False)}

        return EventSourceResponse(events(), ping=10, send_timeout=30)

    def page(name: str):
        def handler(request: Request) -> Response:
            return FileResponse(STATIC / name, media_type="text/html")

        return handler

    def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    routes = [
        Route("/", page("index.html")),
        Route("/favicon.ico", no_icon),
        Route("/runs/{run_id}", page("run.html")),
        Route("/api/config", config),
        Route("/api/graph", state_machine_graph),
        Route("/api/runs", list_runs, methods=["GET"]),
        Route("/api/runs", start_run, methods=["POST"]),
        Route("/api/runs/{run_id}", get_run),
        Route("/api/runs/{run_id}/events", run_events),
        Route("/api/runs/{run_id}/diff", run_diff),
        Route("/api/runs/{run_id}/open-version", open_version, methods=["POST"]),
        Route("/api/runs/{run_id}/stop", stop_run, methods=["POST"]),
        Route("/api/runs/{run_id}/approve", decide(True), methods=["POST"]),
        Route("/api/runs/{run_id}/deny", decide(False), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes)
    return ConsoleGuard(app, token, hosts, cookie_name)
