"""Bedrock model ids and inference profile ids, without the SDK (the price table and the CDK
stack read them too).

A cross-region (system-defined) inference profile id is a geography before a model id:
`us.anthropic.claude-sonnet-4-5-20250929-v1:0` routes `anthropic.claude-sonnet-4-5-20250929-v1:0`
to regions of that geography; `global.` anywhere."""

from __future__ import annotations

import re

PROFILE_PREFIXES = ("us-gov.", "us.", "eu.", "apac.", "jp.", "au.", "ca.", "global.")

# What a model id or system inference profile id looks like (not an ARN).
MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9.-]*(:[a-z0-9-]+)*$", re.IGNORECASE)


def split_profile(model_id: str) -> tuple[str | None, str]:
    """(geography prefix without its dot, or None; the foundation model id)."""
    for prefix in PROFILE_PREFIXES:
        if model_id.startswith(prefix):
            return prefix[:-1], model_id[len(prefix) :]
    return None, model_id
