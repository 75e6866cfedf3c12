"""The tracer's provider: AWS X-Ray on Lambda, nothing where tracing is off.

Powertools builds the X-Ray SDK's recorder even when tracing is disabled, and the recorder makes
a botocore X-Ray client (its service model parsed: about 0.4 s of every `pixie run`, which never
traces). Where Powertools would disable tracing anyway, a provider that does nothing is handed
to it instead; on Lambda with tracing on, the default X-Ray provider is used, as before."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

from lambdas.logic.config import env_flag

def tracing_is_off() -> bool:
    """Powertools' own rule: off when POWERTOOLS_TRACE_DISABLED says so, or outside Lambda
    (no LAMBDA_TASK_ROOT: the CLI, the console, tests)."""
    return env_flag(os.environ, "POWERTOOLS_TRACE_DISABLED") or not os.getenv("LAMBDA_TASK_ROOT")


class _NoSegment(BaseSegment):
    def close(self, end_time: int | None = None) -> None:
        pass

    def add_subsegment(self, subsegment: Any) -> None:
        pass

    def remove_subsegment(self, subsegment: Any) -> None:
        pass

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        pass


class NoTracing(BaseProvider):
    """A provider that records nothing and loads nothing."""

    @contextmanager
    def in_subsegment(self, name=None, **kwargs):
        yield _NoSegment()

    @asynccontextmanager
    async def in_subsegment_async(self, name=None, **kwargs):
        yield _NoSegment()

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def patch(self, modules: Any) -> None:
        pass

    def patch_all(self) -> None:
        pass


def tracer_provider() -> BaseProvider | None:
    """What to hand Powertools' Tracer: None means its default, the X-Ray SDK."""
    return NoTracing() if tracing_is_off() else None
