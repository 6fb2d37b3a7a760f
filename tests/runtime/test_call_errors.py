"""A refused platform call reaches the handler as the same exception from either runner."""

from __future__ import annotations

import pytest

from triggerfish.errors import (
    EventTooLargeError,
    InvalidEventError,
    InvalidInputError,
    InvalidJSONError,
    InvalidNameError,
    InvocationError,
    StoreClosedError,
    StoreFullError,
    StoreUnavailableError,
)
from triggerfish.runtime.call_errors import describe, rebuild


@pytest.mark.parametrize(
    "raised",
    [
        InvalidEventError("big", "must be a 32-bit integer"),
        EventTooLargeError(300_000, 262_144),
        InvalidNameError("invalid queue name ''"),
        InvalidInputError("send: 'queue' must be a non-empty string"),
    ],
)
def test_bad_input_comes_back_as_itself(raised: Exception) -> None:
    again = rebuild("publish", *describe(raised))
    assert type(again) is type(raised)
    assert str(again) == str(raised)
    if isinstance(raised, InvalidEventError):
        assert isinstance(again, InvalidEventError)
        assert (again.attribute, again.rule) == (raised.attribute, raised.rule)


def test_other_input_errors_come_back_as_their_base_class() -> None:
    again = rebuild("kv_put", *describe(InvalidJSONError("duplicate key 'a'", where="value")))
    assert type(again) is InvalidInputError
    assert str(again) == "value: duplicate key 'a'"


@pytest.mark.parametrize(
    "raised", [StoreUnavailableError("PostgreSQL is unreachable", retry_after=2.0), StoreFullError("disk full")]
)
def test_a_store_that_cannot_write_comes_back_as_itself(raised: StoreUnavailableError) -> None:
    # So that an HTTP route whose handler lets it through answers 503 or 507, as the platform's endpoints do.
    again = rebuild("send", *describe(raised))
    assert type(again) is type(raised)
    assert isinstance(again, StoreUnavailableError)
    assert (str(again), again.retry_after) == (str(raised), raised.retry_after)


def test_anything_else_is_an_invocation_error_naming_the_call() -> None:
    again = rebuild("send", *describe(StoreClosedError("the store is closed")))
    assert isinstance(again, InvocationError)
    assert str(again) == "context.call_platform('send') failed: StoreClosedError: the store is closed"
