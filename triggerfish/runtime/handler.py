"""The handler contract: call a user's handler once and turn whatever happens into a result.

A handler is `def handler(event, context)`, `async def handler(event, context)`,
or either with the event alone. `run_handler` calls it, awaits it if it
returned an awaitable, and encodes the return value as JSON. It never
raises for anything the handler does, SystemExit and KeyboardInterrupt
included: the worker that calls it must live on to report the failure.

Failures come back in the shape AWS Lambda's Python runtime uses, so tools
that read Lambda errors read these: `errorType` (the exception's class
name), `errorMessage` (`str(exc)`), `requestId` and `stackTrace` (one string
per frame, `traceback.format_list` style, starting at the handler's frame).

This sits on the warm-invoke hot path, so the success path does no
signature inspection (cached per handler) and no traceback work.
"""

from __future__ import annotations

import asyncio
import decimal
import inspect
import itertools
import threading
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from triggerfish.errors import NonRetryable, Retry
from triggerfish.names import MARSHAL_ERROR

T = TypeVar("T")

#: Longest errorMessage kept, in characters; a longer one is cut and marked.
MAX_ERROR_MESSAGE = 64 * 1024
#: Most stack frames kept: the first and last half of this many (a RecursionError has ~1000).
MAX_STACK_FRAMES = 100

_HERE = str(Path(__file__).resolve())
_ASYNCIO_DIR = str(Path(asyncio.__file__).resolve().parent)
# Return types JSON-encoded without asking whether they are awaitable (the common case, kept fast).
_PLAIN_TYPES = frozenset({dict, list, str, int, float, bool, type(None), tuple})
# datetimes and dataclasses go to _default, which refuses them as Lambda's runtime does, rather than
# being encoded silently: a handler that works here must not fail only on Lambda.
_DUMPS_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS

# handler -> whether it takes (event, context) rather than (event). Bounded: bound methods are
# hashable but new objects on every attribute access, and would otherwise pile up.
_TAKES_CONTEXT: dict[Any, bool] = {}
_CACHE_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class HandlerResult:
    """How one call of a handler went.

    `result_json` is the return value as JSON bytes when `ok`; `error` is the
    Lambda-shaped error document otherwise. `retryable` is False when the
    handler raised NonRetryable; `retry_delay` is set when it raised
    `Retry(delay=...)`.
    """

    ok: bool
    result_json: bytes | None
    error: dict[str, Any] | None
    retryable: bool = True
    retry_delay: float | None = None


def run_handler(
    handler: Callable[..., Any],
    event: Any,
    context: Any,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
) -> HandlerResult:
    """Call `handler` with `(event, context)` or `(event)` and report the outcome; never raises.

    An awaitable result (an `async def` handler, or a `functools.partial` of
    one) runs to completion on `loop` when given (a worker keeps one loop for
    its life, so clients cached in globals stay bound to it), else on a fresh
    loop that is closed afterwards. Called from inside a running loop, the
    awaitable runs on a fresh loop in a helper thread instead, because a
    running loop cannot be re-entered.
    """
    try:
        takes_context = _TAKES_CONTEXT.get(handler)
    except TypeError:  # an unhashable callable object: inspect it every time
        takes_context = None
    if takes_context is None:
        takes_context = _remember(handler)
    try:
        value = handler(event, context) if takes_context else handler(event)
        if type(value) not in _PLAIN_TYPES and inspect.isawaitable(value):
            value = _run_awaitable(value, loop)
    except Retry as exc:
        return HandlerResult(False, None, _error_for(exc, context), retryable=True, retry_delay=exc.delay)
    except NonRetryable as exc:
        return HandlerResult(False, None, _error_for(exc, context), retryable=False)
    except BaseException as exc:
        # BaseException on purpose: SystemExit, KeyboardInterrupt and CancelledError raised by user
        # code are the handler's failure, not a reason for the worker to die without reporting it.
        return HandlerResult(False, None, _error_for(exc, context))
    try:
        return HandlerResult(True, orjson.dumps(value, default=_default, option=_DUMPS_OPTIONS), None)
    except Exception as exc:
        error = {
            "errorType": MARSHAL_ERROR,
            "errorMessage": f"Unable to marshal response: {_describe_marshal_failure(exc)}",
            "stackTrace": [],
        }
        _add_request_id(error, context)
        return HandlerResult(False, None, error)


def lambda_error(exc: BaseException) -> dict[str, Any]:
    """The error document Lambda's Python runtime returns for `exc`: errorType, errorMessage, stackTrace.

    Never raises, even for an exception whose `__str__` does. The stack
    trace leaves out the frames of Triggerfish and asyncio that called the
    handler, so it starts where Lambda's would: in the handler.
    """
    try:
        error_type = type(exc).__name__
        message = _message(exc)
        # Only the leading frames are the runtime's: asyncio frames deeper down belong to the handler's story.
        frames = list(itertools.dropwhile(_is_runtime_frame, traceback.extract_tb(exc.__traceback__)))
        if len(frames) > MAX_STACK_FRAMES:
            half = MAX_STACK_FRAMES // 2
            omitted = len(frames) - 2 * half
            stack = [
                *traceback.format_list(frames[:half]),
                f"  ... {omitted} frames omitted ...\n",
                *traceback.format_list(frames[-half:]),
            ]
        else:
            stack = traceback.format_list(frames)
        return {"errorType": error_type, "errorMessage": message, "stackTrace": stack}
    except Exception:
        return {"errorType": "Exception", "errorMessage": "<the exception could not be described>", "stackTrace": []}


def _is_runtime_frame(frame: traceback.FrameSummary) -> bool:
    return frame.filename == _HERE or frame.filename.startswith(_ASYNCIO_DIR)


def takes_context(handler: Callable[..., Any]) -> bool:
    """Whether `handler` is called as `handler(event, context)` (True) or `handler(event)` (False).

    A handler that cannot be inspected (some builtins) gets both arguments, as on Lambda.
    """
    try:
        parameters = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = 0
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


def signature_problem(handler: object) -> str | None:
    """Why `handler` cannot be called as `handler(event)` or `handler(event, context)`, or None if it can."""
    if not callable(handler):
        return f"the handler is not callable (it is a {type(handler).__name__})"
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return None  # cannot tell; let the call decide
    try:
        signature.bind(None, None)
        return None
    except TypeError:
        pass
    try:
        signature.bind(None)
        return None
    except TypeError:
        return f"the handler's signature {signature} cannot take (event) or (event, context)"


def _remember(handler: Callable[..., Any]) -> bool:
    answer = takes_context(handler)
    try:
        if len(_TAKES_CONTEXT) >= _CACHE_LIMIT:
            _TAKES_CONTEXT.clear()
        _TAKES_CONTEXT[handler] = answer
    except TypeError:
        pass
    return answer


def _run_awaitable(awaitable: Awaitable[T], loop: asyncio.AbstractEventLoop | None) -> T:
    if loop is not None and not loop.is_closed() and not loop.is_running():
        return loop.run_until_complete(awaitable)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_as_coroutine(awaitable))
    return _run_in_thread(awaitable)


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _run_in_thread(awaitable: Awaitable[T]) -> T:
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((True, asyncio.run(_as_coroutine(awaitable))))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=target, name="triggerfish-async-handler", daemon=True)
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def _error_for(exc: BaseException, context: Any) -> dict[str, Any]:
    error = lambda_error(exc)
    if isinstance(exc, SystemExit):
        error["errorMessage"] = (
            f"the handler called sys.exit({exc.code!r}); a handler returns a value or raises an exception"
        )
    _add_request_id(error, context)
    return error


def _add_request_id(error: dict[str, Any], context: Any) -> None:
    request_id = getattr(context, "aws_request_id", None)
    if isinstance(request_id, str):
        error["requestId"] = request_id


def _message(exc: BaseException) -> str:
    try:
        message = str(exc)
    except Exception:
        message = f"<unprintable {type(exc).__name__} object>"
    if len(message) > MAX_ERROR_MESSAGE:
        message = message[:MAX_ERROR_MESSAGE] + f"... ({len(message) - MAX_ERROR_MESSAGE} characters cut)"
    return message


def _default(value: Any) -> Any:
    # Lambda's runtime encodes Decimal (DynamoDB returns them) as a number; so do we.
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _describe_marshal_failure(exc: Exception) -> str:
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, TypeError) and "is not JSON serializable" in str(cause):
        return str(cause)
    return str(exc)
