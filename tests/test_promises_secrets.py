"""Deployed functions read keys from Secrets Manager, cached as long as the README says: a new
value is picked up only once the cache has expired."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters import base

import promises
from lambdas.logic.secrets import get_api_key


def readme_cache_seconds() -> int:
    minutes = re.search(r"cached (\d+) minutes", promises.readme_section("Deploy to AWS"))
    assert minutes, "the Deploy section should say how long secrets are cached"
    return int(minutes.group(1)) * 60


@pytest.fixture
def clock(monkeypatch):
    """Powertools' cache clock, moved forward at will."""

    class Clock(datetime):
        offset = timedelta(0)

        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + cls.offset

    monkeypatch.setattr(base, "datetime", Clock)
    parameters.clear_caches()
    yield Clock
    parameters.clear_caches()


def test_a_deployed_key_is_cached_for_the_promised_time_then_read_again(aws, monkeypatch, clock):
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name="PixieStack/openai-api-key", SecretString="sk-first")
    monkeypatch.setenv("PIXIE_OPENAI_SECRET_NAME", "PixieStack/openai-api-key")
    assert get_api_key("OPENAI_API_KEY", "PIXIE_OPENAI_SECRET_NAME") == "sk-first"

    secrets.put_secret_value(SecretId="PixieStack/openai-api-key", SecretString="sk-rotated")
    cache_s = readme_cache_seconds()
    clock.offset = timedelta(seconds=cache_s - 5)
    assert get_api_key("OPENAI_API_KEY", "PIXIE_OPENAI_SECRET_NAME") == "sk-first"  # from the cache
    clock.offset = timedelta(seconds=cache_s + 5)
    assert get_api_key("OPENAI_API_KEY", "PIXIE_OPENAI_SECRET_NAME") == "sk-rotated"


def test_a_passing_secrets_manager_error_is_retried_and_a_lasting_one_is_not(aws, monkeypatch, clock):
    """Throttling or a 5xx from Secrets Manager must not fail a run: it is read again. A secret
    with no value stays a ConfigurationError at once."""
    from botocore.exceptions import ClientError

    from lambdas.logic import secrets as secrets_module
    from lambdas.logic.errors import ConfigurationError

    boto3.client("secretsmanager").create_secret(Name="PixieStack/e2b-api-key", SecretString="e2b-key")
    monkeypatch.setenv("PIXIE_E2B_SECRET_NAME", "PixieStack/e2b-api-key")
    real = parameters.get_secret
    failures = {"left": 2}
    waits: list[float] = []

    def flaky(name, **kwargs):
        if failures["left"]:
            failures["left"] -= 1
            error = ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "GetSecretValue")
            raise parameters.exceptions.GetParameterError("throttled") from error
        return real(name, **kwargs)

    monkeypatch.setattr(parameters, "get_secret", flaky)
    monkeypatch.setattr(secrets_module.time, "sleep", waits.append)
    assert get_api_key("E2B_API_KEY", "PIXIE_E2B_SECRET_NAME") == "e2b-key"
    assert waits == [0.5, 1.0]

    boto3.client("secretsmanager").create_secret(Name="PixieStack/empty")  # no value: lasting
    monkeypatch.setenv("PIXIE_E2B_SECRET_NAME", "PixieStack/empty")
    waits.clear()
    with pytest.raises(ConfigurationError, match="could not be read"):
        get_api_key("E2B_API_KEY", "PIXIE_E2B_SECRET_NAME")
    assert waits == []
