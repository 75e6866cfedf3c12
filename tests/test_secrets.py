"""API keys: from the environment locally, from Secrets Manager (by name) when deployed."""

import boto3
import pytest

from lambdas.logic.errors import ConfigurationError
from lambdas.logic.secrets import get_api_key


def test_local_key_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("PIXIE_OPENAI_SECRET_NAME", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "  sk-local  ")
    assert get_api_key("OPENAI_API_KEY", "PIXIE_OPENAI_SECRET_NAME") == "sk-local"


def test_missing_local_key_says_what_to_set(monkeypatch):
    monkeypatch.delenv("PIXIE_OPENAI_SECRET_NAME", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY is not set"):
        get_api_key("OPENAI_API_KEY", "PIXIE_OPENAI_SECRET_NAME")


def test_deployed_key_is_read_from_secrets_manager_by_name(aws, monkeypatch):
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name="PixieStack/e2b-api-key-test", SecretString="e2b_from_secrets_manager")
    monkeypatch.setenv("PIXIE_E2B_SECRET_NAME", "PixieStack/e2b-api-key-test")
    monkeypatch.setenv("E2B_API_KEY", "e2b_from_env_must_be_ignored")
    assert get_api_key("E2B_API_KEY", "PIXIE_E2B_SECRET_NAME") == "e2b_from_secrets_manager"


def test_deployed_secret_without_a_value_is_a_clear_configuration_error(aws, monkeypatch):
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name="PixieStack/openai-api-key-empty")  # created by the stack, never set
    monkeypatch.setenv("PIXIE_OPENAI_SECRET_NAME", "PixieStack/openai-api-key-empty")
    with pytest.raises(ConfigurationError, match="openai-api-key-empty could not be read.*set its value"):
        get_api_key("OPENAI_API_KEY", "PIXIE_OPENAI_SECRET_NAME")
