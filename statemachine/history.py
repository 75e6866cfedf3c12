"""Execution history events as plain JSON. A light module (no moto), so the AWS client can use it
without loading the embedded engine."""

from __future__ import annotations

import json
from typing import Any


def jsonable(value: Any) -> Any:
    """History events as plain JSON (timestamps as ISO strings)."""
    return json.loads(json.dumps(value, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)))
