"""Typed errors. A handler lets these escape: Lambda reports the class name as the error type,
and that name is what the state machine's Retry/Catch rules match (statemachine/agent.asl.json)."""


class PixieError(Exception):
    """Base class for errors the workflow knows by name."""


# --- permanent: retrying cannot help -------------------------------------------------------
class InvalidEvent(PixieError):
    """The triggering event has no usable prompt."""


class RunNotFound(PixieError):
    """A step was invoked for a run the state store does not know."""


class ModelAuthFailed(PixieError):
    """The model provider rejected the API key."""


class ModelRequestRejected(PixieError):
    """The model provider rejected the request itself (400-class, not auth, not rate limit)."""


class ScriptExhausted(PixieError):
    """A scripted model was asked for more turns than its script holds."""


class InvalidScript(PixieError):
    """A scripted model file is missing or malformed."""


class SandboxAuthFailed(PixieError):
    """The sandbox provider rejected the API key."""


class SandboxNotFound(PixieError):
    """The run's sandbox no longer exists (expired or killed)."""


class IsolationUnavailable(PixieError):
    """Local commands must run isolated and this machine cannot isolate them (no working bwrap)."""


class Interrupted(PixieError):
    """The user stopped the run (Ctrl-C, SIGTERM): the step gave up its work in flight."""


class ApprovalDenied(PixieError):
    """A person denied the tool calls a run waited on (--approve). Never raised in Python: it is
    the error `pixie deny` sends with SendTaskFailure, which AwaitApproval's Catch matches."""


class ConfigurationError(PixieError):
    """pixie is configured inconsistently (unknown model provider, missing secret, ...)."""


# --- transient: retried with backoff by the state machine ----------------------------------
class ModelThrottled(PixieError):
    """The model provider answered 429 after the SDK's own retries."""


class ModelUnavailable(PixieError):
    """The model provider timed out or answered 5xx after the SDK's own retries."""


class SandboxThrottled(PixieError):
    """The sandbox provider rate-limited us."""


class SandboxUnavailable(PixieError):
    """The sandbox provider timed out or failed transiently."""


class ToolError(Exception):
    """A tool call that cannot be carried out. Never escapes a step: its message becomes the
    call's tool result, so the model can correct itself and the run goes on."""


def describe_validation_error(error, subject: str) -> str:
    """A pydantic ValidationError as one readable line: `field.path: message; ...`, with
    `subject` naming the whole input when the error is about the input itself."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or subject}: {e['msg']}" for e in error.errors())
