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
