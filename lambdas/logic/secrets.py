"""API keys. Deployed, a function gets only the *name* of a Secrets Manager secret in its
environment and reads the value at run time through Powertools Parameters (cached); locally the
key comes from the usual environment variable. A key is never logged, stored or returned."""

from __future__ import annotations

import os
import time
from typing import Callable

from lambdas.logic.errors import ConfigurationError

SECRET_CACHE_SECONDS = 300
# A read that fails for a passing reason (Secrets Manager throttling or a 5xx, a dropped
# connection) is tried again within the step; only a lasting one (no value set, no access) becomes
# ConfigurationError, which no retrier matches. Waits: 0.5 s, 1 s, 2 s.
SECRET_READ_ATTEMPTS = 4
SECRET_RETRY_BASE_S = 0.5
TRANSIENT_SECRET_ERRORS = frozenset({
    "ThrottlingException", "TooManyRequestsException", "InternalServiceError", "InternalServiceErrorException",
    "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException",
})


def _transient(cause: BaseException | None) -> bool:
    from botocore.exceptions import ClientError, ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

    if isinstance(cause, ClientError):
        return cause.response.get("Error", {}).get("Code") in TRANSIENT_SECRET_ERRORS
    return isinstance(cause, (ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError))


def _read_secret(secret_name: str, sleep: Callable[[float], None] | None = None):
    from aws_lambda_powertools.utilities import parameters  # only deployed functions need it

    for attempt in range(SECRET_READ_ATTEMPTS):
        try:
            return parameters.get_secret(secret_name, max_age=SECRET_CACHE_SECONDS)
        except parameters.exceptions.GetParameterError as exc:
            if attempt + 1 == SECRET_READ_ATTEMPTS or not _transient(exc.__cause__):
                raise
            (sleep or time.sleep)(SECRET_RETRY_BASE_S * 2**attempt)
    raise AssertionError("unreachable")


def get_api_key(env_var: str, secret_name_var: str) -> str:
    """The key for one provider, e.g. get_api_key("OPENAI_API_KEY", "PIXIE_OPENAI_SECRET_NAME")."""
    secret_name = os.environ.get(secret_name_var)
    if secret_name:
        from aws_lambda_powertools.utilities import parameters

        try:
            value = _read_secret(secret_name)
        except parameters.exceptions.GetParameterError as exc:
            # Most often: the secret exists but has no value yet. Permanent until someone sets it.
            reason = type(exc.__cause__).__name__ if exc.__cause__ else "GetParameterError"
            raise ConfigurationError(
                f"secret {secret_name} could not be read ({reason}): set its value (see README, Deploy)"
            ) from None
        if isinstance(value, bytes):
            value = value.decode()
        if not value:
            raise ConfigurationError(f"secret {secret_name} is empty: set it (see README, Deploy)")
        return str(value).strip()
    value = os.environ.get(env_var, "").strip()
    if not value:
        raise ConfigurationError(f"{env_var} is not set (or set {secret_name_var} to a Secrets Manager secret name)")
    return value
