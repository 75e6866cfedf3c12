"""pixie, the app around the workflow: the CLI, the console, run records and the AWS client.

Imports run one way: pixie (app) → statemachine (the ASL and the engine that runs it) →
lambdas.handlers → lambdas.logic → lambdas.dal, never back."""

__version__ = "0.2.0"
