"""What the four handlers share: one Logger and the network-state store, made once per
execution environment (Lambda reuses them across warm invocations)."""

from __future__ import annotations

import logging
import sys
from functools import cache

from aws_lambda_powertools import Logger

from lambdas.dal.network_state import NetworkState
from lambdas.logic.config import Settings

# stderr keeps stdout clean for the CLI's --json; Lambda sends both to CloudWatch.
logger = Logger(service="pixie", logger_handler=logging.StreamHandler(sys.stderr))


@cache
def settings() -> Settings:
    return Settings.from_env()


@cache
def network_state() -> NetworkState:
    return NetworkState(settings().table_name)


def reset() -> None:
    """Forget cached settings and clients (the embedded engine calls this per run)."""
    settings.cache_clear()
    network_state.cache_clear()
