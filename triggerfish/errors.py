"""Every error Triggerfish raises, in one tree.

One root (`TriggerfishError`), one branch per layer, so callers can catch as
broadly or as narrowly as they need. Errors caused by bad input also derive
from `ValueError`, so code that already guards against bad values keeps
working. Messages say what was wrong, where, and how to fix it.

Two exceptions are not failures of Triggerfish but requests from a handler:
`Retry` and `NonRetryable` steer how an invocation is delivered again.
"""

from __future__ import annotations


class TriggerfishError(Exception):
    """The root of every error Triggerfish raises."""


# --- bad input -------------------------------------------------------------------------------


class InvalidInputError(TriggerfishError, ValueError):
    """Input from outside (an event, a pattern, a JSON document) was rejected."""


class InvalidJSONError(InvalidInputError):
    """A JSON document could not be accepted: malformed, too deep, duplicate keys, ...

    `line` and `column` (from 1) say where a syntax error is, when it is one.
    """

    def __init__(self, message: str, *, where: str = "", line: int | None = None, column: int | None = None) -> None:
        self.where = where
        self.line = line
        self.column = column
        super().__init__(f"{where}: {message}" if where else message)


class InvalidEventError(InvalidInputError):
    """An event broke a rule of the CloudEvents specification or of the platform.

    `attribute` names the attribute (`id`, `source`, `ce-type`, ...) and
    `rule` says what it broke.
    """

    def __init__(self, attribute: str, rule: str) -> None:
        self.attribute = attribute
        self.rule = rule
        super().__init__(f"invalid event attribute {attribute!r}: {rule}")


class EventTooLargeError(InvalidEventError):
    """An event is larger than the configured limit (256 KiB by default)."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            "event",
            f"is {size} bytes, over the limit of {limit} bytes; send a reference to the payload instead",
        )


class InvalidPatternError(InvalidInputError):
    """An event pattern was rejected; the message gives the reason and where it is."""

    def __init__(self, reason: str, *, path: str = "") -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"invalid event pattern at {path}: {reason}" if path else f"invalid event pattern: {reason}")


# --- the store -------------------------------------------------------------------------------


class StoreError(TriggerfishError):
    """The durable store failed or was misused."""


class StoreClosedError(StoreError):
    """An operation was attempted on a store that is closed."""


class UnknownStoreURLError(StoreError, ValueError):
    """A store URL names a scheme Triggerfish does not know, or a backend whose extra is missing."""


class InvalidNameError(StoreError, InvalidInputError):
    """A bus, queue, namespace or key name is empty, too long or uses characters that are not allowed."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached or cannot write just now (connection lost, database restarting).

    Nothing of the failed operation was acknowledged. HTTP endpoints answer 503 with a
    `Retry-After` of `retry_after` seconds; the caller may try again.
    """

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreFullError(StoreUnavailableError):
    """The store's disk (or database) is full: the write was refused and nothing was acknowledged.

    HTTP endpoints answer 507 Insufficient Storage.
    """


class AtomicConflictError(StoreError):
    """A condition of `Store.atomic` did not hold, so none of its operations was written.

    `index` is the position of the operation whose condition failed, `reason` what failed
    (an `if_version` that did not match, a claim another consumer re-claimed).
    """

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"atomic write refused at operation {index}: {reason}; nothing of it was written")
        self.index = index
        self.reason = reason


class SchemaVersionError(StoreError):
    """The store's schema is newer than this Triggerfish knows, or older and not migrated.

    `triggerfish store migrate` brings an older schema up to date.
    """


# --- apps and functions ----------------------------------------------------------------------


class DeclarationError(TriggerfishError, ValueError):
    """A function or trigger was declared wrongly; the message names the function and the fix."""


class ScheduleNotFoundError(TriggerfishError, LookupError):
    """No schedule of that name is declared; the message lists the ones that are."""


class AppLoadError(TriggerfishError):
    """An app could not be imported; `details` carries the traceback text."""

    def __init__(self, message: str, *, details: str = "") -> None:
        self.details = details
        super().__init__(message)


# --- deploys ---------------------------------------------------------------------------------


class DeployError(TriggerfishError):
    """A deploy failed and changed nothing.

    `phase` names the step that failed ("pack", "upload", "unpack", "install",
    "import", "switch"); `details` carries what the user needs to fix it: pip's
    output, or the import traceback.
    """

    def __init__(self, message: str, *, phase: str, details: str = "") -> None:
        self.phase = phase
        self.details = details
        super().__init__(message)


class DeployInProgressError(DeployError):
    """Another deploy (or alias change) of the same app is running, on this node or another; try again after it."""


class BundleError(DeployError, ValueError):
    """An app bundle could not be packed, or an uploaded one was refused; `path` names the file or member."""

    def __init__(self, message: str, *, phase: str, path: str = "") -> None:
        self.path = path
        super().__init__(message, phase=phase)


class RequirementsError(DeployError, ValueError):
    """An app's requirements.txt says something the server does not install; nothing was installed.

    `problems` lists `(line, reason)` for every refused line, in order (phase "install").
    """

    def __init__(self, message: str, *, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        super().__init__(message, phase="install")


# --- API keys --------------------------------------------------------------------------------


class KeyNotFoundError(TriggerfishError, LookupError):
    """No API key has that id or prefix; the control API answers 404 `KeyNotFound`."""


# --- invocations -----------------------------------------------------------------------------


class InvocationError(TriggerfishError):
    """An invocation did not complete normally."""


class FunctionNotFoundError(InvocationError, LookupError):
    """No function of that name is declared."""


class ThrottledError(InvocationError):
    """The function is at its concurrency limit and no slot freed up in time.

    The gateway maps this to HTTP 429 with `Retry-After`.
    """

    def __init__(self, function: str, waited: float) -> None:
        self.function = function
        self.waited = waited
        super().__init__(f"function {function!r} is at its concurrency limit; no slot freed within {waited:g} s")


class HandlerError(InvocationError):
    """The handler raised, timed out, ran out of memory or its worker died.

    `error` is the Lambda-shaped error document: `errorType`, `errorMessage`,
    `stackTrace`.
    """

    def __init__(self, error: dict[str, object]) -> None:
        self.error = error
        super().__init__(f"{error.get('errorType', 'Error')}: {error.get('errorMessage', '')}")

    @property
    def error_type(self) -> str:
        return str(self.error.get("errorType", "Error"))


# --- steering delivery from inside a handler -------------------------------------------------


class Retry(Exception):
    """Raise inside a handler to ask for another attempt, optionally after `delay` seconds.

    It still counts as an attempt, so an invocation cannot retry forever.
    """

    def __init__(self, message: str = "retry requested", *, delay: float | None = None) -> None:
        self.delay = delay
        super().__init__(message)


class NonRetryable(Exception):
    """Raise inside a handler to fail at once, with no further attempts.

    The invocation goes straight to its failure destination or dead-letter queue.
    """


# --- the process runtime ---------------------------------------------------------------------


class ProtocolError(InvocationError):
    """A frame between the parent, a zygote and a worker was malformed, unknown or too large."""


class WorkerStartError(InvocationError):
    """A worker process could not be started (fork failed, or it died before it was ready)."""


# --- isolation ---------------------------------------------------------------------------------


class IsolationError(TriggerfishError):
    """An app's code cannot be boxed as asked: bubblewrap is missing or refused, or a uid cannot be given."""


# --- secrets -----------------------------------------------------------------------------------


class SecretsError(TriggerfishError):
    """A secret could not be stored or read. The message names the app and the secret, never its value."""


class SecretNotSetError(SecretsError, LookupError):
    """A secret is not set: the app never set it, or it was removed. The control API answers 404 `SecretNotFound`."""

    def __init__(self, message: str, *, app: str, name: str) -> None:
        super().__init__(message)
        self.app = app
        self.name = name


class SecretsKeyError(SecretsError):
    """The server's secrets key cannot do what was asked: it is missing, malformed, not the key the store's
    secrets are sealed with, or a sealed value does not open under it (changed in the store, or moved)."""
