"""Keep moto's unused service models out of the engine's start-up.

moto's Step Functions parser imports every service integration it could run, and its Batch
integration needs one enum, `moto.batch.utils.JobStatus`. Importing it runs `moto/batch/__init__.py`,
which loads `moto.batch.models` and through it all of `moto.ec2` (instance types, AMIs): about a
second of every `pixie run`, for a service agent.asl.json never calls.

`defer_moto_batch()` registers `moto.batch` as its real package (same path, so `moto.batch.utils`
imports normally) whose `__init__` runs only when something asks the package itself for a name,
e.g. a test that mocks AWS Batch. Call it before anything imports moto's Step Functions parser."""

from __future__ import annotations

import importlib.util
import sys

DEFERRED_PACKAGE = "moto.batch"


def defer_moto_batch() -> None:
    if DEFERRED_PACKAGE in sys.modules:
        return  # already imported for real (or already deferred): nothing to save
    spec = importlib.util.find_spec(DEFERRED_PACKAGE)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return  # a moto without the package: the parser will say what it lacks
    package = importlib.util.module_from_spec(spec)

    def load_on_first_use(name: str):
        if name.startswith("__"):
            raise AttributeError(name)  # import machinery probing dunders must not trigger a load
        del package.__getattr__
        spec.loader.exec_module(package)
        return getattr(package, name)

    package.__getattr__ = load_on_first_use
    sys.modules[DEFERRED_PACKAGE] = package
    parent, _, child = DEFERRED_PACKAGE.rpartition(".")
    setattr(sys.modules[parent], child, package)  # as the import system would, for `moto.batch.x`
