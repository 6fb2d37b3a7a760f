"""The handler contract: how run_handler calls a handler and shapes its result or its failure."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import functools
import json
import sys
import threading
import time
import weakref
from typing import Any

import orjson
import pytest

from triggerfish.errors import NonRetryable, Retry
from triggerfish.names import MARSHAL_ERROR
from triggerfish.runtime.context import Context
from triggerfish.runtime.handler import MAX_STACK_FRAMES, lambda_error, run_handler, signature_problem, takes_context


def make_context(request_id: str = "req-1") -> Context:
    return Context(request_id=request_id, function_name="orders", deadline=time.time() + 3, app_name="shop")


def result(outcome: Any) -> Any:
    assert outcome.ok, outcome.error
    assert outcome.error is None
    return orjson.loads(outcome.result_json)


# --- the forms a handler takes --------------------------------------------------------------


def test_sync_handler_gets_event_and_context() -> None:
    def handler(event: Any, context: Any) -> Any:
        return {"got": event, "request": context.aws_request_id}

    assert result(run_handler(handler, {"n": 1}, make_context())) == {"got": {"n": 1}, "request": "req-1"}


def test_one_argument_handler_gets_the_event_only() -> None:
    def handler(event: Any) -> Any:
        return event["n"] * 2

    assert result(run_handler(handler, {"n": 21}, make_context())) == 42


def test_handler_with_defaults_and_varargs_gets_the_context() -> None:
    def with_default(event: Any, context: Any = None) -> Any:
        return context is not None

    def with_varargs(*args: Any) -> Any:
        return len(args)

    assert result(run_handler(with_default, {}, make_context())) is True
    assert result(run_handler(with_varargs, {}, make_context())) == 2


def test_partial_and_callable_object_handlers() -> None:
    def configured(prefix: str, event: str, context: Any) -> str:
        return prefix + event

    class Handler:
        def __init__(self) -> None:
            self.calls = 0

        def __call__(self, event: Any) -> int:
            self.calls += 1
            return self.calls

    assert result(run_handler(functools.partial(configured, "id-"), "7", make_context())) == "id-7"
    instance = Handler()
    assert [result(run_handler(instance, None, make_context())) for _ in range(2)] == [1, 2]


def test_unhashable_callable_object_still_runs() -> None:
    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __eq__(self, other: object) -> bool:
            return False

        def __call__(self, event: Any, context: Any) -> str:
            return "ran"

    assert result(run_handler(Unhashable(), None, make_context())) == "ran"


def test_async_handler_runs_on_the_given_loop_and_keeps_it_usable() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def handler(event: Any, context: Any) -> Any:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return event

    loop = asyncio.new_event_loop()
    try:
        assert result(run_handler(handler, 1, make_context(), loop=loop)) == 1
        assert result(run_handler(handler, 2, make_context(), loop=loop)) == 2
        assert loops == [loop, loop]
        assert not loop.is_closed()
    finally:
        loop.close()


def test_async_handler_without_a_loop_gets_a_fresh_one_and_its_tasks_are_cancelled() -> None:
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cancelled.set()

    async def handler(event: Any) -> str:
        asyncio.get_running_loop().create_task(forever())
        await asyncio.sleep(0)
        return "done"

    assert result(run_handler(handler, None, make_context())) == "done"
    assert cancelled.is_set(), "a task left behind by the handler must not outlive its loop"


async def test_async_handler_called_from_inside_a_running_loop() -> None:
    async def handler(event: Any, context: Any) -> Any:
        await asyncio.sleep(0.001)
        return event + 1

    running = asyncio.get_running_loop()
    assert result(run_handler(handler, 1, make_context())) == 2
    assert result(run_handler(handler, 2, make_context(), loop=running)) == 3


def test_partial_of_an_async_function_is_awaited() -> None:
    async def handler(scale: int, event: Any, context: Any) -> Any:
        return event * scale

    assert result(run_handler(functools.partial(handler, 3), 5, make_context())) == 15


def test_lambda_handler_from_aws_examples_runs_unchanged() -> None:
    # The shape of AWS's own Python examples: API Gateway proxy in, proxy response out.
    def lambda_handler(event: Any, context: Any) -> Any:
        body = json.loads(event["body"])
        print("Lambda Request ID:", context.aws_request_id)
        print("Lambda time remaining in MS:", context.get_remaining_time_in_millis())
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"message": f"Hello {body['name']}", "function": context.function_name}),
        }

    event = {"httpMethod": "POST", "path": "/hello", "body": json.dumps({"name": "Ada"})}
    response = result(run_handler(lambda_handler, event, make_context()))
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"message": "Hello Ada", "function": "orders"}


# --- failures in Lambda's shape --------------------------------------------------------------


class OrderNotFound(Exception):
    pass


def test_exception_becomes_lambda_error_document() -> None:
    def handler(event: Any, context: Any) -> Any:
        raise OrderNotFound(f"no order {event['id']}")

    outcome = run_handler(handler, {"id": "o-9"}, make_context("req-err"))
    assert not outcome.ok
    assert outcome.result_json is None
    assert outcome.retryable is True
    assert outcome.retry_delay is None
    error = outcome.error
    assert error is not None
    assert error["errorType"] == "OrderNotFound"
    assert error["errorMessage"] == "no order o-9"
    assert error["requestId"] == "req-err"
    assert isinstance(error["stackTrace"], list)
    assert all(isinstance(line, str) for line in error["stackTrace"])
    # Lambda's trace starts in the handler: none of the runtime's frames come first.
    assert error["stackTrace"][0].startswith(f'  File "{__file__}"')
    assert "in handler" in error["stackTrace"][0]
    assert "raise OrderNotFound" in error["stackTrace"][0]
    assert "triggerfish/runtime/handler.py" not in "".join(error["stackTrace"])
    orjson.dumps(error)  # the document travels as JSON


def test_async_failure_trace_has_no_asyncio_frames() -> None:
    async def handler(event: Any) -> Any:
        await asyncio.sleep(0)
        raise KeyError("missing")

    error = run_handler(handler, {}, make_context()).error
    assert error is not None
    assert error["errorType"] == "KeyError"
    assert error["errorMessage"] == "'missing'"
    assert "asyncio" not in "".join(error["stackTrace"])
    assert "in handler" in error["stackTrace"][0]


def test_asyncio_frames_inside_the_handler_are_kept() -> None:
    async def handler(event: Any) -> Any:
        await asyncio.wait_for(asyncio.sleep(1), timeout=0.001)

    error = run_handler(handler, {}, make_context()).error
    assert error is not None
    assert error["errorType"] == "TimeoutError"
    assert "in handler" in error["stackTrace"][0]
    assert any("asyncio" in line for line in error["stackTrace"][1:]), "wait_for's own frames are the handler's story"


def test_unicode_messages_survive() -> None:
    def handler(event: Any) -> Any:
        raise ValueError("commande introuvable: «naïve» ✓ 注文 \U0001f41f")

    error = run_handler(handler, {}, make_context()).error
    assert error is not None
    assert error["errorMessage"] == "commande introuvable: «naïve» ✓ 注文 \U0001f41f"
    assert orjson.loads(orjson.dumps(error))["errorMessage"] == error["errorMessage"]


def test_exception_whose_str_raises_is_still_reported() -> None:
    class Hostile(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    def handler(event: Any) -> Any:
        raise Hostile()

    error = run_handler(handler, {}, make_context()).error
    assert error is not None
    assert error["errorType"] == "Hostile"
    assert "unprintable" in error["errorMessage"]


def test_deep_recursion_trace_is_trimmed() -> None:
    def handler(event: Any) -> Any:
        return handler(event)

    error = run_handler(handler, {}, make_context()).error
    assert error is not None
    assert error["errorType"] == "RecursionError"
    assert len(error["stackTrace"]) <= MAX_STACK_FRAMES + 1
    assert any("frames omitted" in line for line in error["stackTrace"])


def test_retry_and_non_retryable_steer_delivery() -> None:
    def again(event: Any) -> Any:
        raise Retry("busy", delay=5)

    def never(event: Any) -> Any:
        raise NonRetryable("bad order")

    retry = run_handler(again, {}, make_context())
    assert (retry.ok, retry.retryable, retry.retry_delay) == (False, True, 5)
    assert retry.error is not None
    assert retry.error["errorType"] == "Retry"
    stop = run_handler(never, {}, make_context())
    assert (stop.ok, stop.retryable, stop.retry_delay) == (False, False, None)
    assert stop.error is not None
    assert (stop.error["errorType"], stop.error["errorMessage"]) == ("NonRetryable", "bad order")


@pytest.mark.parametrize(
    ("raised", "error_type"),
    [(SystemExit(3), "SystemExit"), (KeyboardInterrupt(), "KeyboardInterrupt"), (GeneratorExit(), "GeneratorExit")],
)
def test_base_exceptions_become_errors_not_exits(raised: BaseException, error_type: str) -> None:
    def handler(event: Any) -> Any:
        raise raised

    outcome = run_handler(handler, {}, make_context())
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error["errorType"] == error_type


def test_sys_exit_message_says_what_to_do() -> None:
    def handler(event: Any) -> Any:
        sys.exit(2)

    error = run_handler(handler, {}, make_context()).error
    assert error is not None
    assert "sys.exit(2)" in error["errorMessage"]


def test_async_handler_raising_keyboard_interrupt_on_given_loop() -> None:
    async def handler(event: Any) -> Any:
        raise KeyboardInterrupt

    loop = asyncio.new_event_loop()
    try:
        outcome = run_handler(handler, {}, make_context(), loop=loop)
        assert outcome.error is not None
        assert outcome.error["errorType"] == "KeyboardInterrupt"
        assert result(run_handler(lambda e: "still alive", {}, make_context(), loop=loop)) == "still alive"

        async def after(event: Any) -> Any:
            await asyncio.sleep(0.001)
            return "loop still works"

        assert result(run_handler(after, {}, make_context(), loop=loop)) == "loop still works"
    finally:
        loop.close()


# --- the return value ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "named"),
    [({1, 2}, "set"), (datetime.datetime(2026, 1, 1), "datetime"), (object(), "object"), (2**70, "64-bit")],
)
def test_unserialisable_result_is_a_marshal_error(value: Any, named: str) -> None:
    outcome = run_handler(lambda event: {"value": value}, {}, make_context("req-m"))
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error["errorType"] == MARSHAL_ERROR
    assert outcome.error["errorMessage"].startswith("Unable to marshal response: ")
    assert named in outcome.error["errorMessage"]
    assert outcome.error["requestId"] == "req-m"


def test_decimal_and_none_results_encode_as_lambda_does() -> None:
    assert result(run_handler(lambda e: {"price": decimal.Decimal("9.5")}, {}, make_context())) == {"price": 9.5}
    assert run_handler(lambda e: None, {}, make_context()).result_json == b"null"
    assert result(run_handler(lambda e: ("a", 1), {}, make_context())) == ["a", 1]


def test_failures_leave_nothing_behind() -> None:
    class Payload:
        pass

    def handler(event: Any) -> Any:
        raise ValueError("boom")

    event = Payload()
    alive = weakref.ref(event)
    outcome = run_handler(handler, event, make_context())
    assert not outcome.ok
    assert sys.exc_info() == (None, None, None)
    del event
    assert alive() is None, "the failed call must not keep the event (or its frames) alive"
    assert result(run_handler(lambda e: e, 1, make_context())) == 1


# --- signatures --------------------------------------------------------------------------------


def test_takes_context_reads_the_signature() -> None:
    def two(event: Any, context: Any) -> None: ...

    def one(event: Any) -> None: ...

    def keyword_only(event: Any, *, context: Any = None) -> None: ...

    assert takes_context(two)
    assert not takes_context(one)
    assert not takes_context(keyword_only)
    assert takes_context(print)  # uninspectable builtins get both, as on Lambda


def test_signature_problem_names_what_is_wrong() -> None:
    def none() -> None: ...

    def three(a: Any, b: Any, c: Any) -> None: ...

    def fine(event: Any, context: Any) -> None: ...

    assert "(event) or (event, context)" in (signature_problem(none) or "")
    assert "(event) or (event, context)" in (signature_problem(three) or "")
    assert "not callable" in (signature_problem(42) or "")
    assert signature_problem(fine) is None


def test_lambda_error_never_raises_and_is_json() -> None:
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError as exc:
        error = lambda_error(exc)
    assert error["errorType"] == "ZeroDivisionError"
    assert error["errorMessage"] == "division by zero"
    assert len(error["stackTrace"]) == 1
    assert set(error) == {"errorType", "errorMessage", "stackTrace"}
    # an exception that was never raised has no traceback
    assert lambda_error(ValueError("x"))["stackTrace"] == []
