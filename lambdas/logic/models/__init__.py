"""Model specs: "openai:<model>" (OpenAI or any OpenAI-compatible server via OPENAI_BASE_URL),
"bedrock:<model or inference profile id>" (Amazon Bedrock's Converse API, with IAM)
or "scripted:<path to a script file>"."""

from __future__ import annotations

from lambdas.logic.errors import ConfigurationError
from lambdas.logic.models.base import ChatModel


def model_from_spec(spec: str) -> ChatModel:
    provider, _, name = spec.partition(":")
    if provider == "openai" and name:
        from lambdas.logic.models.openai_model import OpenAIChatModel  # imports the SDK only when used

        return OpenAIChatModel(name)
    if provider == "bedrock" and name:
        from lambdas.logic.models.bedrock_model import BedrockChatModel  # creates its client only when used

        return BedrockChatModel(name)
    if provider == "scripted" and name:
        from lambdas.logic.models.scripted import ScriptedModel

        return ScriptedModel(name)
    raise ConfigurationError(f"unknown model {spec!r}: use openai:<model>, bedrock:<model id> or scripted:<file>")
