"""The sync path and the enqueueing half of the async path, on the memory and SQLite stores."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from triggerfish.app import App
from triggerfish.errors import (
    DeclarationError,
    FunctionNotFoundError,
    HandlerError,
    InvalidInputError,
    NonRetryable,
    ThrottledError,
)
from triggerfish.runtime import invocation_message
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invocation_message import RawJSON
from triggerfish.runtime.invoke import Invoker, new_request_id, new_request_ids
from triggerfish.store import Message, Store, open_store

app = App("shop")
gate = threading.Event()


@app.function
def quote(event: dict[str, Any], context: Any) -> dict[str, Any]:
    print("quoting", event["items"])
    return {"total": event["items"] * 10}


@app.function
def broken(event: Any) -> None:
    raise KeyError("sku")


@app.function
def refuses(event: Any) -> None:
    raise NonRetryable("bad order")


@app.function(concurrency=1, memory_mb=1024, timeout=5)
def slow(event: Any) -> str:
    gate.wait(5)
    return "done"


@app.function(timeout=0.2)
def sleepy(event: Any) -> None:
    threading.Event().wait(1.0)


def _deep(levels: int) -> Any:
    event: Any = 1
    for _ in range(levels):
        event = [event]
    return event


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/s.db"
    store = await open_store(url)
    yield store
    await store.close()


@pytest.fixture
def invoker(store: Store) -> Invoker:
    return Invoker(InProcessRunner(app.functions), store)


async def test_invoke_returns_the_result_and_records_the_invocation(invoker: Invoker) -> None:
    assert await invoker.invoke("quote", {"items": 3}, request_id="req-1") == {"total": 30}
    record = await invoker.records.get("req-1")
    assert record is not None
    assert (record.function, record.status, record.trigger, record.attempt) == ("quote", "succeeded", "direct", 1)
    assert "quoting 3" in record.output
    assert record.billed_duration_ms >= 1
    assert record.gb_seconds == pytest.approx(record.billed_duration_ms / 1000 * 128 / 1024)
    assert record.cold_start is True


async def test_a_failing_handler_raises_handler_error_with_the_lambda_error(invoker: Invoker) -> None:
    with pytest.raises(HandlerError) as caught:
        await invoker.invoke("broken", {}, request_id="req-2")
    assert caught.value.error["errorType"] == "KeyError"
    assert "sku" in str(caught.value.error["errorMessage"])
    assert caught.value.error["stackTrace"]
    record = await invoker.records.get("req-2")
    assert record is not None
    assert record.status == "failed"
    assert record.error is not None
    assert record.error["errorType"] == "KeyError"


async def test_a_timeout_is_recorded_as_timed_out(invoker: Invoker) -> None:
    with pytest.raises(HandlerError):
        await invoker.invoke("sleepy", {}, request_id="req-t")
    record = await invoker.records.get("req-t")
    assert record is not None
    assert record.status == "timed_out"


async def test_non_retryable_still_fails_a_sync_call(invoker: Invoker) -> None:
    with pytest.raises(HandlerError, match="bad order"):
        await invoker.invoke("refuses", {})


async def test_unknown_function_names_the_declared_ones(invoker: Invoker) -> None:
    with pytest.raises(FunctionNotFoundError, match=r"quot'.*broken, quote, refuses, sleepy, slow"):
        await invoker.invoke("quot", {})
    with pytest.raises(FunctionNotFoundError):
        await invoker.invoke_async("quot", {})


async def test_at_the_concurrency_limit_the_caller_waits_then_is_throttled(invoker: Invoker) -> None:
    gate.clear()
    first = asyncio.create_task(invoker.invoke("slow", {}))
    await asyncio.sleep(0.05)
    started = asyncio.get_running_loop().time()
    with pytest.raises(ThrottledError) as caught:
        await invoker.invoke("slow", {}, wait=0.2, request_id="req-throttled")
    assert asyncio.get_running_loop().time() - started >= 0.19
    assert caught.value.function == "slow"
    gate.set()
    assert await first == "done"
    record = await invoker.records.get("req-throttled")
    assert record is not None
    assert record.status == "throttled"
    assert record.billed_duration_ms == 0


async def test_invoke_async_stores_the_invocation_durably_before_returning(invoker: Invoker, store: Store) -> None:
    request_id = await invoker.invoke_async(
        "quote", {"items": 1}, traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01", hop_count=3
    )
    [message] = await store.queues.receive("fn.quote")
    # The body is the event's JSON; the invocation's envelope is one attribute.
    assert orjson.loads(message.body) == {"items": 1}
    envelope = orjson.loads(message.attributes["triggerfish.invocation"])
    assert envelope["request_id"] == request_id
    assert (envelope["trigger"], envelope["hop_count"], envelope["attempts"]) == ("async", 3, [])
    assert envelope["traceparent"].startswith("00-aaaa")


async def test_what_an_invocation_consumed_travels_in_its_envelope(invoker: Invoker, store: Store) -> None:
    consumed = {"cloudevents.event_id": "e-1", "cloudevents.event_type": "OrderPlaced"}
    queue, message, request_id = invoker.message("quote", {"items": 1}, trigger="event", consumed=consumed)
    _, plain, _ = invoker.message("quote", {"items": 2}, trigger="async")
    await store.queues.send_many(queue, [message, plain])
    first, second = await store.queues.receive(queue, max_messages=2)
    assert (invocation_message.decode(first).request_id, invocation_message.decode(first).consumed) == (
        request_id,
        consumed,
    )
    assert invocation_message.decode(second).consumed is None  # its queuer said nothing: the record reads the event
    # A malformed one is not an invocation (the dispatcher poisons it, naming why).
    envelope = orjson.loads(first.attributes[invocation_message.ENVELOPE_ATTRIBUTE])
    envelope["consumed"] = {"cloudevents.event_id": 7}
    attributes = {invocation_message.ENVELOPE_ATTRIBUTE: orjson.dumps(envelope).decode()}
    await store.queues.send(queue, first.body, attributes=attributes)
    [malformed] = await store.queues.receive(queue)
    with pytest.raises(TypeError, match="consumed must be an object of strings"):
        invocation_message.decode(malformed)


async def test_one_events_messages_to_several_functions_are_what_message_makes_of_each(invoker: Invoker) -> None:
    # The bus's fan-out builds an event's invocations of several functions at once: the same checks, the same
    # bytes as `message` for each (encode of the invocation each decodes to), an unknown function's error in
    # its place, and distinct request ids.
    consumed = {"cloudevents.event_id": "e-1", "cloudevents.event_type": "OrderPlaced"}
    event = b'{"id":"e-1","data":{"items":3}}'
    options: dict[str, Any] = {"trigger": "event", "traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01", "hop_count": 2}
    built = invoker.messages(["quote", "nope", "broken"], RawJSON(event), consumed=consumed, **options)
    first, unknown, second = built
    assert isinstance(unknown, FunctionNotFoundError)
    assert "the app declares: broken" in str(unknown)
    with pytest.raises(FunctionNotFoundError, match=str(unknown).split(";")[0]):
        invoker.message("nope", RawJSON(event), consumed=consumed, **options)
    assert isinstance(first, tuple)
    assert isinstance(second, tuple)
    invocations = []
    for (queue, message), function in ((first, "quote"), (second, "broken")):
        assert queue == f"fn.{function}"
        received = Message(queue, "m", "r", message.body, message.attributes, None, None, 1, 0.0, 0.0, 0.0)
        invocation = invocation_message.decode(received)
        invocations.append(invocation)
        assert message == invocation_message.encode(invocation)
        _, alone, _ = invoker.message(
            function, RawJSON(event), request_id=invocation.request_id, consumed=consumed, **options
        )
        alone_envelope = orjson.loads(alone.attributes[invocation_message.ENVELOPE_ATTRIBUTE])
        envelope = orjson.loads(message.attributes[invocation_message.ENVELOPE_ATTRIBUTE])
        assert envelope == {**alone_envelope, "enqueued_at": envelope["enqueued_at"]}
        assert list(envelope) == list(alone_envelope)
        assert (invocation.event, invocation.function, invocation.consumed) == (event, function, consumed)
    assert invocations[0].request_id != invocations[1].request_id
    assert invocations[0].enqueued_at == invocations[1].enqueued_at
    # Over the store's limit: each function's place says so, as `message` raises it.
    big = RawJSON(b'"' + b"x" * invoker.store.queues.max_record_bytes + b'"')
    [over] = invoker.messages(["quote"], big, **options)
    assert isinstance(over, InvalidInputError)
    assert "over the store's limit" in str(over)
    with pytest.raises(InvalidInputError, match="hop_count"):
        invoker.messages(["quote"], RawJSON(event), trigger="event", hop_count=-1)


async def test_invocations_queued_by_an_earlier_version_still_run(invoker: Invoker, store: Store) -> None:
    legacy: dict[str, Any] = {
        "request_id": "r-legacy",
        "function": "quote",
        "event": {"items": 2},
        "trigger": "async",
        "traceparent": None,
        "hop_count": 0,
        "enqueued_at": store.queues.clock(),
        "attempts": [],
    }
    await store.queues.send("fn.quote", orjson.dumps(legacy))
    await invoker.start()
    try:
        async with asyncio.timeout(10):
            await invoker.drain()
    finally:
        await invoker.stop()
    [record] = await invoker.records.query(function="quote")
    assert (record.request_id, record.status) == ("r-legacy", "succeeded")


@pytest.mark.parametrize(
    "event",
    [object(), {"when": {1, 2}}, {"bytes": b"\x00"}, float("nan"), [1.0, float("-inf")], {1: "key"}, _deep(10_000)],
    ids=["object", "set", "bytes", "nan", "inf", "int-key", "deeply-nested"],
)
async def test_a_non_json_event_is_refused_and_nothing_is_queued(invoker: Invoker, store: Store, event: Any) -> None:
    with pytest.raises(InvalidInputError, match="invoke_async\\('quote'\\): the event must be a JSON value"):
        await invoker.invoke_async("quote", event)
    assert (await store.queues.stats("fn.quote")).depth == 0


async def test_invoke_async_many_queues_every_event_in_order_and_each_runs(invoker: Invoker, store: Store) -> None:
    request_ids = await invoker.invoke_async_many("quote", [{"items": n} for n in range(1, 6)])
    assert len(set(request_ids)) == 5
    messages = await store.queues.receive("fn.quote", max_messages=10)
    assert [orjson.loads(m.body) for m in messages] == [{"items": n} for n in range(1, 6)]
    assert [orjson.loads(m.attributes["triggerfish.invocation"])["request_id"] for m in messages] == request_ids
    for message in messages:
        await store.queues.release("fn.quote", message.receipt)
    await invoker.start()
    try:
        async with asyncio.timeout(10):
            await invoker.drain()
    finally:
        await invoker.stop()
    for request_id in request_ids:
        record = await invoker.records.get(request_id)
        assert record is not None
        assert record.status == "succeeded"


@pytest.mark.parametrize(
    ("events", "options", "error", "match"),
    [
        ([], {}, InvalidInputError, "1 to 1000 events, not 0"),
        ({"items": 1}, {}, InvalidInputError, "not dict"),
        ([{"items": 1}] * 1001, {}, InvalidInputError, "not 1001"),
        ([{"items": 1}, {"bad": {1, 2}}], {}, InvalidInputError, "^event 1: invoke_async"),
        ([{"items": 1}, {"pad": "x" * 100}], {"max_event_bytes": 50}, InvalidInputError, "^event 1: its JSON is 110 "),
        ([{"items": 1}], {"trigger": ""}, InvalidInputError, "trigger"),
        # NaN and infinities beside a null or the word in a string: orjson writes them as null, so no text tells them
        # apart from a null that was given; each is refused all the same.
        ([{"items": 1}, {"note": None, "x": float("nan")}], {}, InvalidInputError, "^event 1: invoke_async.*nan"),
        ([{"s": "null", "v": [1.0, float("inf")]}], {}, InvalidInputError, "^event 0: invoke_async.*inf"),
        ([{"items": 1}, [None, (2, float("-inf"))]], {}, InvalidInputError, "^event 1: invoke_async.*inf"),
    ],
)
async def test_invoke_async_many_is_all_or_nothing(
    invoker: Invoker, store: Store, events: Any, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        await invoker.invoke_async_many("quote", events, **options)
    assert (await store.queues.stats("fn.quote")).depth == 0


async def test_invoke_async_many_queues_what_message_makes_of_each_event(invoker: Invoker, store: Store) -> None:
    # The batch lays out its shared envelope once: each queued message is still the bytes `message` writes for
    # its event (encode of the invocation it decodes to), with the caller's trace and one time queued.
    parent = f"00-{'ab' * 16}-{'cd' * 8}-01"
    events = [{"items": 1}, RawJSON(b'{"items":2}'), [1, "two"]]
    request_ids = await invoker.invoke_async_many("quote", events, traceparent=parent)
    received = await store.queues.receive("fn.quote", max_messages=10)
    invocations = [invocation_message.decode(message) for message in received]
    assert [i.request_id for i in invocations] == request_ids
    assert [i.event for i in invocations] == [b'{"items":1}', b'{"items":2}', b'[1,"two"]']
    assert {(i.function, i.trigger, i.traceparent, i.hop_count, i.enqueued_at) for i in invocations} == {
        ("quote", "async", parent, 0, invocations[0].enqueued_at)
    }
    for message, invocation in zip(received, invocations, strict=True):
        encoded = invocation_message.encode(invocation)
        assert (message.body, dict(message.attributes)) == (encoded.body, dict(encoded.attributes))
        _, alone, _ = invoker.message("quote", events[0], trigger="async", traceparent=parent, request_id="r")
        assert list(orjson.loads(encoded.attributes[invocation_message.ENVELOPE_ATTRIBUTE])) == list(
            orjson.loads(alone.attributes[invocation_message.ENVELOPE_ATTRIBUTE])
        )
    for message in received:
        await store.queues.ack("fn.quote", message.receipt)


async def test_invoke_async_many_queues_nulls_as_given(invoker: Invoker, store: Store) -> None:
    events = [None, {"note": None}, ["null", None, 1.5]]
    await invoker.invoke_async_many("quote", events)
    received = await store.queues.receive("fn.quote", max_messages=10)
    assert [m.body for m in received] == [b"null", b'{"note":null}', b'["null",null,1.5]']
    for message in received:
        await store.queues.ack("fn.quote", message.receipt)


def test_first_attempts_write_the_envelope_encode_writes_for_each_function_and_request_id() -> None:
    # The envelope's shared part is laid out once and each message's request id and function put in front of it:
    # the text must be `encode`'s, also for names JSON must escape and when the functions alternate.
    parent = f"00-{'ab' * 16}-{'cd' * 8}-01"
    consumed = {"cloudevents.event_id": 'e-"1"'}
    for trigger, traceparent, hops, enqueued_at, given in [
        ("event", parent, 2, 1765000000.125, consumed),
        ("async", None, 0, 1.0, None),
    ]:
        first = invocation_message.FirstAttempts(trigger, traceparent, hops, enqueued_at, given)
        for request_id, function in [("r-1", "ship"), ('r-"2"', 'odd\\"name'), ("r-3", "ship"), ("r-4", "é")]:
            made = first.message(request_id, function, b"{}")
            invocation = invocation_message.Invocation(
                request_id, function, b"{}", trigger, enqueued_at, traceparent, hops, [], given
            )
            assert made.attributes == invocation_message.encode(invocation).attributes
            received = Message("fn." + function, "m", "r", made.body, made.attributes, None, None, 1, 0.0, 0.0, 0.0)
            assert invocation_message.decode(received) == invocation


def test_a_batchs_request_ids_are_distinct_uuid7s_that_start_with_the_time() -> None:
    before = time.time_ns() // 1_000_000
    batches = [new_request_ids(1000) for _ in range(3)]  # 10,000 random bytes each: more than the pool holds
    after = time.time_ns() // 1_000_000
    found = [request_id for batch in batches for request_id in batch]
    assert len(set(found)) == len(found) == 3000
    assert all(str(uuid.UUID(i)) == i and uuid.UUID(i).version == 7 for i in found)
    assert all(uuid.UUID(i).variant == uuid.RFC_4122 for i in found)
    assert all(before <= int(i.replace("-", "")[:12], 16) <= after for i in found)
    # Their random parts are random: every hex digit appears in each position that is not fixed.
    for position in [*range(15, 18), *range(20, 23), *range(24, 36)]:
        assert len({i[position] for i in found}) == 16
    assert {i[19] for i in found} == set("89ab")  # the variant's digit: two random bits
    time.sleep(0.002)
    assert all(earlier < later for earlier in found for later in new_request_ids(3))


async def test_invoke_async_many_refuses_an_event_over_the_stores_limit_by_its_index(
    invoker: Invoker, store: Store
) -> None:
    big = RawJSON(b'"' + b"x" * store.queues.max_record_bytes + b'"')
    with pytest.raises(
        InvalidInputError, match=r"^event 1: invoke_async\('quote'\): the invocation is .* over the store's limit"
    ):
        await invoker.invoke_async_many("quote", [{"items": 1}, big])
    assert (await store.queues.stats("fn.quote")).depth == 0


async def test_invoke_async_many_of_an_unknown_function_names_the_declared_ones(invoker: Invoker) -> None:
    with pytest.raises(FunctionNotFoundError, match=r"'nope'.*quote"):
        await invoker.invoke_async_many("nope", [{"items": 1}])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hop_count": -1}, "hop_count"),
        ({"hop_count": True}, "hop_count"),
        ({"trigger": ""}, "trigger"),
        ({"trigger": 5}, "trigger"),
    ],
)
async def test_bad_arguments_are_refused(invoker: Invoker, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        await invoker.invoke("quote", {"items": 1}, **kwargs)
    with pytest.raises(InvalidInputError, match=match):
        await invoker.invoke_async("quote", {"items": 1}, **kwargs)


@pytest.mark.parametrize("delay", [-1, float("nan"), "1", 901, True])
async def test_a_bad_delay_is_refused_and_nothing_is_queued(invoker: Invoker, store: Store, delay: Any) -> None:
    with pytest.raises(InvalidInputError, match="delay"):
        await invoker.invoke_async("quote", {"items": 1}, delay=delay)
    assert (await store.queues.stats("fn.quote")).depth == 0


async def test_an_oversized_event_is_refused_without_failing_other_callers(invoker: Invoker, store: Store) -> None:
    big = {"blob": "x" * (store.queues.max_record_bytes + 1)}
    results = await asyncio.gather(
        invoker.invoke_async("quote", {"items": 1}),
        invoker.invoke_async("quote", big),
        invoker.invoke_async("quote", {"items": 2}),
        return_exceptions=True,
    )
    assert isinstance(results[1], InvalidInputError)
    assert "over the store's limit" in str(results[1])
    assert all(isinstance(r, str) for r in (results[0], results[2]))
    assert (await store.queues.stats("fn.quote")).depth == 2


@pytest.mark.parametrize("wait", [-1, float("nan"), "1", 10_000])
async def test_a_bad_wait_is_refused(invoker: Invoker, wait: Any) -> None:
    with pytest.raises(InvalidInputError, match="wait"):
        await invoker.invoke("quote", {"items": 1}, wait=wait)


async def test_a_destination_naming_no_function_is_a_declaration_error(store: Store) -> None:
    bad = App("bad")

    @bad.function(on_failure="function:nowhere")
    def work(event: Any) -> None:
        return None

    with pytest.raises(DeclarationError, match="'work': on_failure=function:nowhere names no declared function"):
        Invoker(InProcessRunner(bad.functions), store)


@pytest.mark.parametrize(("kwargs", "match"), [({"lease_margin": 0}, "lease_margin"), ({"batch_size": 0}, "batch")])
def test_invalid_invoker_settings_are_refused(store: Store, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        Invoker(InProcessRunner(app.functions), store, **kwargs)


def test_request_ids_are_distinct_uuid7s_across_threads_and_pool_refills() -> None:
    found: list[str] = []

    def draw() -> None:
        found.extend(new_request_id() for _ in range(1000))  # several refills of the 256-id pool each

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == len(found) == 4000
    assert all(str(uuid.UUID(i)) == i and uuid.UUID(i).version == 7 for i in found)
    assert all(uuid.UUID(i).variant == uuid.RFC_4122 for i in found)


def test_request_ids_start_with_the_time_so_later_ones_sort_after() -> None:
    # The store keys records, inputs and spans by request id: ids made later sort after, so a batch of records
    # lands at the end of the key-value index rather than on a page of its own each.
    before = time.time_ns() // 1_000_000
    first = new_request_id()
    time.sleep(0.002)
    later = [new_request_id() for _ in range(100)]
    after = time.time_ns() // 1_000_000
    assert before <= int(first.replace("-", "")[:12], 16) <= after
    assert all(first < other for other in later)


def test_a_forked_child_draws_fresh_randomness() -> None:
    new_request_id()  # the pool holds unused bytes now: a child must not hand them out too
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        os.write(write_end, new_request_id().encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    childs = os.read(read_end, 64).decode()
    os.close(read_end)
    mine = new_request_id()
    assert childs != mine
    assert uuid.UUID(childs).version == 7 == uuid.UUID(mine).version
    assert childs[14:] != mine[14:]  # their random parts, not only their times, differ
