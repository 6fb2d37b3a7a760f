"""StorePlatform: handlers' publish/send/kv calls on a real store, and the loop guard."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from triggerfish.app import App
from triggerfish.errors import InvalidEventError, InvalidInputError, InvalidNameError
from triggerfish.loop_guard import MAX_HOPS
from triggerfish.names import LOOP_STOPPED_STREAM
from triggerfish.retry import RetryPolicy
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.runtime.platform_calls import StorePlatform
from triggerfish.runtime.types import PlatformCall, PlatformOp
from triggerfish.store import ABSENT, Store, open_store


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/s.db"
    store = await open_store(url)
    yield store
    await store.close()


def call(op: PlatformOp, args: dict[str, Any], hop_count: int = 0) -> PlatformCall:
    return PlatformCall(op=op, args=args, function="fn", request_id="req-1", hop_count=hop_count)


def event(**changes: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": "e1", "source": "/shop", "type": "order.placed", **changes}


async def test_publish_appends_the_event_to_the_bus_stream(store: Store) -> None:
    platform = StorePlatform(store)
    answer = await platform(call("publish", {"bus": "orders", "event": event(hopcount=1, data={"id": 3})}))
    assert answer["id"] == "e1"
    [record] = await store.log.read("bus.orders")
    assert orjson.loads(record.data)["data"] == {"id": 3}


@pytest.mark.parametrize(
    ("changes", "attribute"),
    [
        ({"big": 2**40}, "big"),  # CloudEvents integers are 32-bit: the bus could not read it back
        ({"Bad-Name": "x"}, "Bad-Name"),
        ({"time": "yesterday"}, "time"),
        ({"source": ""}, "source"),
        ({"specversion": "0.3"}, "specversion"),
    ],
)
async def test_a_publish_the_bus_could_not_read_back_fails_the_call_and_stores_nothing(
    store: Store, changes: dict[str, Any], attribute: str
) -> None:
    platform = StorePlatform(store)
    with pytest.raises(InvalidEventError) as raised:
        await platform(call("publish", {"bus": "orders", "event": event(**changes)}))
    assert raised.value.attribute == attribute
    assert await store.log.read("bus.orders") == []


async def test_send_keeps_the_hop_count_and_trace_in_attributes(store: Store) -> None:
    platform = StorePlatform(store)
    answer = await platform(
        call(
            "send", {"queue": "jobs", "body": "hello", "hop_count": 2, "traceparent": "00-x", "attributes": {"a": "b"}}
        )
    )
    [message] = await store.queues.receive("jobs")
    assert message.message_id == answer["message_id"]
    assert message.body == b"hello"
    assert message.attributes == {"a": "b", "triggerfish.hopcount": "2", "triggerfish.traceparent": "00-x"}


async def test_send_carries_binary_bodies_as_base64(store: Store) -> None:
    await StorePlatform(store)(call("send", {"queue": "jobs", "body_base64": base64.b64encode(b"\x00\xff").decode()}))
    [message] = await store.queues.receive("jobs")
    assert message.body == b"\x00\xff"


async def test_kv_compare_and_set_round_trip(store: Store) -> None:
    platform = StorePlatform(store)
    put = await platform(call("kv_put", {"namespace": "locks", "key": "k", "value": "v1", "if_version": ABSENT}))
    assert put is not None
    again = await platform(call("kv_put", {"namespace": "locks", "key": "k", "value": "v2", "if_version": ABSENT}))
    assert again is None
    got = await platform(call("kv_get", {"namespace": "locks", "key": "k"}))
    assert (got["value"], got["version"]) == ("v1", put["version"])
    assert (
        await platform(call("kv_delete", {"namespace": "locks", "key": "k", "if_version": put["version"] + 99}))
        is False
    )
    assert await platform(call("kv_delete", {"namespace": "locks", "key": "k", "if_version": put["version"]})) is True
    assert await platform(call("kv_get", {"namespace": "locks", "key": "k"})) is None


@pytest.mark.parametrize("namespace", ["invocations", "triggerfish.state", "platform"])
async def test_handlers_cannot_touch_the_platforms_own_records(store: Store, namespace: str) -> None:
    with pytest.raises(InvalidInputError, match="belongs to the platform"):
        await StorePlatform(store)(call("kv_get", {"namespace": namespace, "key": "r/x"}))


@pytest.mark.parametrize(
    ("op", "args", "error", "match"),
    [
        ("publish", {"bus": "b", "event": "text"}, InvalidEventError, "as an object"),
        ("publish", {"bus": "b", "event": event(id="")}, InvalidEventError, "'id'"),
        ("publish", {"bus": "b", "event": event(specversion="0.3")}, InvalidEventError, "specversion"),
        ("publish", {"bus": "", "event": event()}, InvalidInputError, "'bus'"),
        ("publish", {"bus": "b", "event": event(hopcount=-2)}, InvalidEventError, "hopcount"),
        ("send", {"queue": "q"}, InvalidInputError, "'body'"),
        ("send", {"queue": "q", "body": 5}, InvalidInputError, "must be text"),
        ("send", {"queue": "q", "body_base64": "%%%"}, InvalidInputError, "not valid base64"),
        ("send", {"queue": "q", "body": "x", "attributes": []}, InvalidInputError, "attributes"),
        ("send", {"queue": "bad name!", "body": "x"}, InvalidNameError, "invalid queue name"),
        ("kv_put", {"namespace": "n", "key": "k"}, InvalidInputError, "'value'"),
        ("kv_put", {"namespace": "n", "key": "k", "value": "v", "if_version": "1"}, InvalidInputError, "if_version"),
        ("kv_get", {"namespace": "n", "key": ""}, InvalidInputError, "'key'"),
    ],
)
async def test_bad_calls_get_precise_errors_and_store_nothing(
    store: Store, op: PlatformOp, args: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        await StorePlatform(store)(call(op, args))
    assert await store.log.streams() == []
    assert await store.queues.queues() == [] or (await store.queues.stats("q")).depth == 0


async def test_the_loop_guard_stops_emissions_past_the_hop_limit_and_logs_them(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    platform = StorePlatform(store)
    at_limit = await platform(call("publish", {"bus": "b", "event": event(hopcount=MAX_HOPS)}, hop_count=MAX_HOPS - 1))
    assert "stopped" not in at_limit
    with caplog.at_level(logging.WARNING, logger="triggerfish.loopguard"):
        over = await platform(call("publish", {"bus": "b", "event": event(hopcount=MAX_HOPS + 1)}, hop_count=MAX_HOPS))
        sent = await platform(call("send", {"queue": "q", "body": "x", "hop_count": 40}, hop_count=39))
    assert over["stopped"] == sent["stopped"] == "RecursiveInvocationDetected"
    assert len(await store.log.read("bus.b")) == 1
    assert (await store.queues.stats("q")).depth == 0
    assert "function 'fn' (request req-1) at hop count 17" in caplog.text
    stopped = [orjson.loads(r.data) for r in await store.log.read(LOOP_STOPPED_STREAM)]
    assert [(s["op"], s["target"], s["hop_count"]) for s in stopped] == [("publish", "b", 17), ("send", "q", 40)]


async def test_a_handler_cannot_lower_its_hop_count_to_escape(store: Store) -> None:
    answer = await StorePlatform(store)(call("publish", {"bus": "b", "event": event(hopcount=0)}, hop_count=MAX_HOPS))
    assert answer["stopped"] == "RecursiveInvocationDetected"


async def test_a_function_that_triggers_itself_is_stopped_after_16_hops(store: Store) -> None:
    app = App("loop")
    seen: list[int] = []

    @app.function
    def again(event: Any, context: Any) -> None:
        seen.append(context.hop_count)
        context.send("loop", "again")

    platform = StorePlatform(store)
    invoker = Invoker(InProcessRunner(app.functions, platform=platform), store, retry_policy=RetryPolicy(0, ceiling=0))
    await invoker.invoke("again", {})
    # Play the queue consumer: each message invokes the function again with its hop count.
    while messages := await store.queues.receive("loop"):
        for message in messages:
            await invoker.invoke("again", {}, hop_count=int(message.attributes["triggerfish.hopcount"]))
            await store.queues.ack("loop", message.receipt)
    assert seen == list(range(MAX_HOPS + 1))
    assert len(await store.log.read(LOOP_STOPPED_STREAM)) == 1


def test_max_hops_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="max_hops"):
        StorePlatform(None, max_hops=0)  # type: ignore[arg-type]
