"""What the four handlers share: one Logger and the network-state store, made once per
execution environment (Lambda reuses them across warm invocations)."""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import threading
from functools import cache
from typing import Any, Callable

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent,
)

from lambdas.dal.network_state import RUN_TTL_SECONDS, NetworkState
from lambdas.handlers.tracing import tracer_provider
from lambdas.logic.config import Settings

class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record is logged, not when the handler was made
    (the CLI and test runners redirect it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


# stderr keeps stdout clean for the CLI's --json; Lambda sends both to CloudWatch.
logger = Logger(service="pixie", logger_handler=_StderrHandler())
# X-Ray traces and CloudWatch EMF metrics when deployed; the CLI disables both locally.
tracer = Tracer(service="pixie", provider=tracer_provider())
metrics = Metrics(namespace="Pixie", service="pixie")


@cache
def settings() -> Settings:
    return Settings.from_env()


# boto3's default session is not thread-safe, and the local engine runs steps in threads: the
# steps' own clients and resources are made from it one at a time (clients are thread-safe once
# made). moto's and the console's clients are made elsewhere, outside this lock.
_default_session_lock = threading.Lock()


@cache
def network_state() -> NetworkState:
    with _default_session_lock:
        return NetworkState(settings().table_name)


@cache
def dynamodb_client() -> Any:
    """One client from the default session for every step's idempotency store: Powertools'
    default builds a new botocore session per store, about 0.15 s of CPU each (five per local
    run; once per cold start deployed)."""
    with _default_session_lock:
        return boto3.client("dynamodb")


@cache
def idempotency_store(step: str) -> DynamoDBPersistenceLayer:
    """Idempotency records share the run table, under their own partition per step."""
    return DynamoDBPersistenceLayer(
        boto3_client=dynamodb_client(),
        table_name=settings().table_name,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value=f"IDEMPOTENCY#{step}",
        expiry_attr="expiresAt",  # the table's TTL attribute
    )


_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def idempotency_key_prefix(step: str, event: Any) -> str:
    """`pixie.<Step>.<runId>`, before the key's hash (which covers the run id too): a record says
    which run it belongs to, so the local journal saves only its own run's records where several
    runs share one table (the console)."""
    run_id = event.get("runId") if isinstance(event, dict) else None
    return f"pixie.{step}.{run_id}" if isinstance(run_id, str) and _RUN_ID.fullmatch(run_id) else f"pixie.{step}"


def idempotent_step(step: str, key_jmespath: str) -> Callable:
    """Exactly-once effects for a step (Powertools Idempotency): a retry of an invocation that
    completed, e.g. one whose response was lost, returns the saved result without redoing
    the work. The key is the part of the input that names the unit of work."""
    config = IdempotencyConfig(
        event_key_jmespath=key_jmespath,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=RUN_TTL_SECONDS,
    )

    def decorate(handler: Callable[[dict, Any], dict]) -> Callable[[dict, Any], dict]:
        @functools.wraps(handler)
        def wrapper(event: dict, context: Any) -> dict:
            # Built per call so the store is created lazily, inside whatever AWS (or moto) is current.
            guarded = idempotent(
                handler, persistence_store=idempotency_store(step), config=config,
                key_prefix=idempotency_key_prefix(step, event),
            )
            return guarded(event, context)

        return wrapper

    return decorate


def reset() -> None:
    """Forget cached settings and clients, and re-read the log level (the embedded engine calls
    this per run, since one process may run many)."""
    logger.setLevel(os.environ.get("POWERTOOLS_LOG_LEVEL", "INFO"))
    metrics.clear_metrics()  # with metrics disabled (locally) they are never flushed
    settings.cache_clear()
    network_state.cache_clear()
    idempotency_store.cache_clear()
    dynamodb_client.cache_clear()
