"""The same invocation cases against both runners: worker processes (what `triggerfish dev` and `serve` run)
and the in-process runner of `triggerfish.testing`, each inside the one `Platform`.

A test written against `triggerfish.testing` thus checks what production does: results and errors in
Lambda's shape, timeouts, context attributes, `context.publish` routed by rules (and refused when the bus
could not read it back), `context.send` to a queue trigger, key-value calls, retries and dead letters.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.runtime.apps import contract
from triggerfish.errors import HandlerError
from triggerfish.retry import RetryPolicy
from triggerfish.server.platform import Platform
from triggerfish.testing import TestPlatform

pytestmark = pytest.mark.asyncio(loop_scope="module")

APP_FILE = Path(contract.__file__)


class Harness(abc.ABC):
    platform: Platform

    @abc.abstractmethod
    async def settle(self, done: Callable[[], Awaitable[bool]]) -> None:
        """Let the platform work until `done()` holds (or fail the test)."""


class InProcess(Harness):
    def __init__(self, test_platform: TestPlatform) -> None:
        self.test_platform = test_platform
        self.platform = test_platform.platform

    async def settle(self, done: Callable[[], Awaitable[bool]]) -> None:
        await self.test_platform.drain()
        assert await done()


class Processes(Harness):
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    async def settle(self, done: Callable[[], Awaitable[bool]]) -> None:
        deadline = time.monotonic() + 30
        while not await done():
            assert time.monotonic() < deadline, "the platform did not get there within 30 s"
            await asyncio.sleep(0.02)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["in-process", "processes"])
async def harness(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    no_backoff = RetryPolicy(base=0.0, ceiling=0.0)
    if request.param == "in-process":
        async with TestPlatform(contract.app) as test_platform:
            yield InProcess(test_platform)
        return
    platform = Platform(str(APP_FILE), data_dir=tmp_path_factory.mktemp("runner-contract"), retry_policy=no_backoff)
    await platform.start()
    try:
        yield Processes(platform)
    finally:
        await platform.stop(drain=False)


async def records_of(harness: Harness, function: str, status: str | None = None) -> list[Any]:
    return await harness.platform.current.invoker.records.query(function=function, status=status)


async def test_a_result_comes_back_as_json_with_lambdas_context(harness: Harness) -> None:
    answer = await harness.platform.invoke("echo", {"n": [1, 2.5, "é", None, True]})
    assert answer["event"] == {"n": [1, 2.5, "é", None, True]}
    # The Lambda name, which the ARN names too.
    assert answer["function"] == "contract-echo"
    assert answer["arn"] == "arn:aws:lambda:local:000000000000:function:contract-echo:1"


async def test_a_raised_error_is_lambdas_error_document(harness: Harness) -> None:
    with pytest.raises(HandlerError) as raised:
        await harness.platform.invoke("fails", {"x": 1})
    assert raised.value.error["errorType"] == "ValueError"
    assert raised.value.error["errorMessage"] == "no good: {'x': 1}"
    assert "fails" in str(raised.value.error["stackTrace"])


async def test_a_result_that_is_not_json_is_a_marshal_error(harness: Harness) -> None:
    with pytest.raises(HandlerError) as raised:
        await harness.platform.invoke("unserialisable", {})
    assert raised.value.error["errorType"] == "Runtime.MarshalError"


async def test_a_handler_past_its_timeout_is_stopped_and_recorded(harness: Harness) -> None:
    with pytest.raises(HandlerError, match=r"Task timed out after 0\.50 seconds"):
        await harness.platform.invoke("sleeps", {})

    async def recorded() -> bool:
        return len(await records_of(harness, "sleeps", "timed_out")) == 1

    await harness.settle(recorded)


async def test_publish_routes_through_rules_to_a_queue_trigger_and_key_value_calls(harness: Harness) -> None:
    answer = await harness.platform.invoke("announces", {"n": 7})
    kv = harness.platform.store.kv

    async def logged() -> bool:
        return await kv.get("log", "7") is not None

    await harness.settle(logged)
    [event] = [r for r in await harness.platform.store.log.read("bus.news") if answer["id"].encode() in r.data]
    assert b'"hopcount":1' in event.data  # one hop from the invocation that published it


async def test_a_publish_the_bus_could_not_read_back_fails_the_handler_and_stores_nothing(harness: Harness) -> None:
    before = await harness.platform.store.log.last_offset("bus.news")
    with pytest.raises(HandlerError) as raised:
        await harness.platform.invoke("announces_badly", {})
    assert raised.value.error["errorType"] == "InvalidEventError"
    assert "big" in str(raised.value.error["errorMessage"])
    assert await harness.platform.store.log.last_offset("bus.news") == before


async def test_async_failures_retry_then_land_in_the_dead_letter_queue(harness: Harness) -> None:
    flaky = await harness.platform.invoke_async("flaky", {"k": 1})
    gives_up = await harness.platform.invoke_async("gives_up", {"k": 2})
    queues = harness.platform.store.queues

    async def dead_lettered() -> bool:
        return (await queues.stats("dlq.flaky")).depth == 1 and (await queues.stats("dlq.gives_up")).depth == 1

    await harness.settle(dead_lettered)
    assert [r.attempt for r in await records_of(harness, "flaky") if r.request_id == flaky] == [1, 2, 3]
    assert [r.attempt for r in await records_of(harness, "gives_up") if r.request_id == gives_up] == [1]
