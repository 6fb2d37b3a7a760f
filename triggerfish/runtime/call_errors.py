"""How a failed platform call reaches the handler that made it: the same exception from either runner.

A handler's `context.publish`, `context.send` and key-value calls are carried
out by the platform (in the parent process, or on the platform's loop for the
in-process runner). When one is refused for bad input, the handler gets the
platform's own error class (`InvalidEventError` naming the attribute,
`InvalidNameError`, `InvalidInputError`), so it can catch it precisely; any
store that is full or unreachable is `StoreFullError` or
`StoreUnavailableError` (so an HTTP route whose handler lets it through
answers 507 or 503, as the platform's own endpoints do); any other failure
is an `InvocationError` naming the call. `describe` turns an exception into data that crosses the worker
protocol, `rebuild` turns it back; the in-process runner goes through both
too, so a test on `triggerfish.testing` sees what production raises.

Imported by every worker: it imports nothing but the errors.
"""

from __future__ import annotations

from typing import Any

from triggerfish.errors import (
    EventTooLargeError,
    InvalidEventError,
    InvalidInputError,
    InvalidNameError,
    InvocationError,
    StoreFullError,
    StoreUnavailableError,
)

#: Input errors a handler gets back as themselves (any other InvalidInputError comes back as its base class).
_PLAIN = {"InvalidInputError": InvalidInputError, "InvalidNameError": InvalidNameError}


def describe(exc: BaseException) -> tuple[str, str, dict[str, Any]]:
    """(error type, message, details) of an exception a platform call raised."""
    if isinstance(exc, StoreUnavailableError):  # StoreFullError too
        return type(exc).__name__, str(exc), {"store": True, "retry_after": exc.retry_after}
    if not isinstance(exc, InvalidInputError):
        return type(exc).__name__, str(exc), {}
    details: dict[str, Any] = {"input": True}
    if isinstance(exc, EventTooLargeError):
        details.update(size=exc.size, limit=exc.limit)
    elif isinstance(exc, InvalidEventError):
        details.update(attribute=exc.attribute, rule=exc.rule)
    return type(exc).__name__, str(exc), details


def rebuild(op: str, error_type: str, message: str, details: dict[str, Any]) -> Exception:
    """The exception the handler's call raises, from what `describe` said."""
    if details.get("store"):
        kind = StoreFullError if error_type == "StoreFullError" else StoreUnavailableError
        return kind(message, retry_after=float(details.get("retry_after", 1.0)))
    if not details.get("input"):
        return InvocationError(f"context.call_platform({op!r}) failed: {error_type}: {message}")
    if error_type == "EventTooLargeError" and {"size", "limit"} <= details.keys():
        return EventTooLargeError(int(details["size"]), int(details["limit"]))
    if {"attribute", "rule"} <= details.keys():
        return InvalidEventError(str(details["attribute"]), str(details["rule"]))
    return _PLAIN.get(error_type, InvalidInputError)(message)
