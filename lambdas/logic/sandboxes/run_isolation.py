"""The isolation a run's local commands get, decided before the run starts: isolated with
bubblewrap, refused (a real model where no bubblewrap works), or unisolated and announced
(--no-isolation, PIXIE_ISOLATION=none, or a scripted model where isolation is missing).
`pixie run` asks here; `pixie doctor` shows and proves the same choice."""

from __future__ import annotations

import os
from typing import TextIO

from lambdas.logic.errors import IsolationUnavailable
from lambdas.logic.sandboxes.isolation import ISOLATION_BWRAP, ISOLATION_NONE, find_bubblewrap

NO_ISOLATION_WARNING = (
    "pixie: WARNING: isolation is off (--no-isolation): the commands the model writes run as you, "
    "with your files, your network and every process you can reach. Use it only for models and "
    "prompts you trust, or use --sandbox e2b."
)


def network_allowed(flag: bool) -> bool:
    from lambdas.logic.config import env_flag

    return flag or env_flag(os.environ, "PIXIE_ALLOW_NETWORK")


def isolation_for_run(sandbox: str, model: str, no_isolation: bool, allow_network: bool, err: TextIO) -> str | None:
    """The PIXIE_ISOLATION this run uses, announced on `err`; None when commands do not run
    locally. Refuses (SystemExit 2) a model that is not scripted when isolation is missing."""
    if sandbox != "local":
        return None
    if no_isolation or os.environ.get("PIXIE_ISOLATION") == ISOLATION_NONE:
        err.write(NO_ISOLATION_WARNING + "\n")
        return ISOLATION_NONE
    try:
        bwrap = find_bubblewrap(os.environ.get("PIXIE_BWRAP") or None)
    except IsolationUnavailable as exc:
        if model.startswith("scripted:"):
            err.write(f"pixie: no isolation on this machine ({exc}); the scripted model's commands run unisolated, as you.\n")
            return ISOLATION_NONE
        err.write(
            f"pixie: refusing to run {model} on the local sandbox without isolation: {exc}.\n"
            "pixie: use --sandbox e2b (commands run in an E2B cloud sandbox), or --no-isolation to run the "
            "model's commands as you on this machine. `pixie doctor` shows what is missing.\n"
        )
        raise SystemExit(2) from None
    network = "network on (--allow-network)" if network_allowed(allow_network) else "no network (--allow-network to allow)"
    err.write(f"pixie: commands run isolated with {bwrap.describe()}; {network}\n")
    return ISOLATION_BWRAP
