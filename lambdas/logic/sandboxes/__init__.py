"""Sandbox kinds: "local" (a directory on this machine) or "e2b" (an E2B cloud sandbox)."""

from __future__ import annotations

from lambdas.logic.config import Settings
from lambdas.logic.errors import ConfigurationError
from lambdas.logic.sandboxes.base import SandboxProvider


def sandbox_provider(kind: str, settings: Settings) -> SandboxProvider:
    if kind == "local":
        from lambdas.logic.sandboxes.isolation import policy_from_settings
        from lambdas.logic.sandboxes.local import LocalSandboxProvider

        return LocalSandboxProvider(settings.pixie_home, policy_from_settings(settings))
    if kind == "e2b":
        from lambdas.logic.sandboxes.e2b_sandbox import E2BSandboxProvider  # imports the SDK only when used

        return E2BSandboxProvider()
    raise ConfigurationError(f"unknown sandbox kind {kind!r}: use local or e2b")
