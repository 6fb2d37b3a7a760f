"""`triggerfish.testing.TestPlatform`: what users' own tests rely on."""

from __future__ import annotations

import datetime
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from triggerfish.app import App
from triggerfish.bus.parking import parked
from triggerfish.errors import (
    DeclarationError,
    EventTooLargeError,
    FunctionNotFoundError,
    HandlerError,
    InvalidEventError,
    InvalidInputError,
    InvalidNameError,
    InvocationError,
    NonRetryable,
)
from triggerfish.events.cloudevent import Event
from triggerfish.testing import SyncTestPlatform, TestPlatform


def shop() -> tuple[App, list[tuple[str, Any]]]:
    """A small app whose handlers note what they received."""
    app = App("shop")
    seen: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def note(name: str, event: Any) -> None:
        with lock:
            seen.append((name, event))

    @app.function()
    def quote(event: Any, context: Any) -> dict[str, int]:
        if event["items"] < 1:
            raise ValueError("an order needs at least one item")
        return {"total": event["items"] * 10}

    @app.on_event({"type": ["order.placed"]})
    def ship(event: Any, context: Any) -> None:
        note("ship", event)
        context.publish("order.shipped", {"id": event["data"]["id"]})

    large = {"detail-type": ["order.placed"], "detail": {"total": [{"numeric": [">=", 100]}]}}

    @app.on_event(large, shape="eventbridge")
    async def review(event: Any, context: Any) -> str:
        note("review", event)
        return "ok"

    @app.on_event({"type": ["order.shipped"]})
    def notify(event: Any, context: Any) -> None:
        note("notify", event)

    return app, seen


async def test_invoke_returns_results_and_raises_handler_errors() -> None:
    app, _ = shop()
    async with TestPlatform(app) as platform:
        assert await platform.invoke("quote", {"items": 3}) == {"total": 30}
        with pytest.raises(HandlerError) as caught:
            await platform.invoke("quote", {"items": 0})
        assert caught.value.error_type == "ValueError"
        assert caught.value.error["errorMessage"] == "an order needs at least one item"
        with pytest.raises(FunctionNotFoundError, match="nope"):
            await platform.invoke("nope", {})
        records = await platform.invocations(function="quote")
        assert [r.status for r in records] == ["succeeded", "failed"]
        assert [r.function for r in await platform.invocations(status="failed")] == ["quote"]


async def test_invoke_async_runs_on_drain() -> None:
    app, _ = shop()
    async with TestPlatform(app) as platform:
        request_id = await platform.invoke_async("quote", {"items": 1})
        assert await platform.invocations() == []
        await platform.drain()
        (record,) = await platform.invocations()
        assert record.request_id == request_id
        assert record.status == "succeeded"


async def test_publish_fans_out_in_each_triggers_shape_and_follows_published_events() -> None:
    app, seen = shop()
    async with TestPlatform(app) as platform:
        event_id = await platform.publish("order.placed", {"id": 1, "total": 150})
        await platform.drain()
        kinds = sorted(name for name, _ in seen)
        assert kinds == ["notify", "review", "ship"]
        received = dict(seen)
        assert received["ship"]["id"] == event_id
        assert received["ship"]["type"] == "order.placed"
        assert received["ship"]["data"] == {"id": 1, "total": 150}
        assert received["review"]["detail-type"] == "order.placed"
        assert received["review"]["detail"] == {"id": 1, "total": 150}
        assert received["notify"]["data"] == {"id": 1}
        published = await platform.published()
        assert [e.type for e in published] == ["order.placed", "order.shipped"]
        assert published[1].traceparent is not None
        assert await platform.published("other") == []


async def test_publish_takes_an_event_or_a_cloudevent_dict_and_a_bus() -> None:
    app = App("audit")
    seen: list[Any] = []

    @app.on_event({"source": ["billing"]}, bus="audit")
    def record(event: Any) -> None:
        seen.append(event["id"])

    async with TestPlatform(app) as platform:
        event = Event.create(type="invoice.paid", source="billing", data={"n": 1})
        await platform.publish(event, bus="audit")
        await platform.publish({"specversion": "1.0", "id": "e-2", "source": "billing", "type": "t"}, bus="audit")
        await platform.publish(event)  # the default bus has no rule for it
        await platform.drain()
        assert sorted(seen) == sorted([event.id, "e-2"])


async def test_failures_are_retried_then_dead_lettered() -> None:
    app = App("billing")
    attempts: list[int] = []

    @app.function(retries=2)
    def charge(event: Any, context: Any) -> None:
        attempts.append(context.attempt)
        raise ConnectionError("provider down")

    @app.function(retries=2)
    def refuse(event: Any, context: Any) -> None:
        raise NonRetryable("card declined")

    async with TestPlatform(app) as platform:
        request_id = await platform.invoke_async("charge", {"order": 7})
        await platform.invoke_async("refuse", {"order": 8})
        await platform.drain()
        assert attempts == [1, 2, 3]
        assert [r.attempt for r in await platform.invocations(function="charge")] == [1, 2, 3]
        (dead,) = await platform.dead_letters("charge")
        assert dead["requestContext"]["requestId"] == request_id
        assert dead["requestPayload"] == {"order": 7}
        assert len(await platform.invocations(function="refuse")) == 1
        assert len(await platform.dead_letters("refuse")) == 1


async def test_a_retry_that_later_succeeds_leaves_no_dead_letter() -> None:
    app = App("flaky")
    calls: list[int] = []

    @app.function(retries=2)
    def flaky(event: Any, context: Any) -> str:
        calls.append(context.attempt)
        if context.attempt < 2:
            raise TimeoutError("try again")
        return "done"

    async with TestPlatform(app) as platform:
        await platform.invoke_async("flaky", {})
        await platform.drain()
        assert calls == [1, 2]
        assert [r.status for r in await platform.invocations()] == ["failed", "succeeded"]
        assert await platform.dead_letters("flaky") == []


async def test_success_destination_is_invoked() -> None:
    app = App("chain")
    got: list[Any] = []

    @app.function(on_success="function:after")
    def first(event: Any) -> dict[str, int]:
        return {"n": event["n"] + 1}

    @app.function()
    def after(event: Any) -> None:
        got.append(event)

    async with TestPlatform(app) as platform:
        await platform.invoke_async("first", {"n": 1})
        await platform.drain()
        (record,) = got
        assert record["responsePayload"] == {"n": 2}
        assert record["requestPayload"] == {"n": 1}


async def test_queue_batches_are_sqs_shaped_and_sized() -> None:
    app = App("warehouse")
    batches: list[list[int]] = []

    @app.on_queue("parcels", batch_size=2)
    def pack(event: Any, context: Any) -> None:
        for record in event["Records"]:
            assert record["eventSource"] == "aws:sqs"
            assert record["eventSourceARN"].endswith(":parcels")
        batches.append([json.loads(r["body"])["id"] for r in event["Records"]])

    async with TestPlatform(app) as platform:
        for i in range(5):
            await platform.send("parcels", {"id": i})
        await platform.drain()
        assert sorted(i for batch in batches for i in batch) == [0, 1, 2, 3, 4]
        assert all(1 <= len(batch) <= 2 for batch in batches)
        assert await platform.queue_messages("parcels") == []
        assert {r.function for r in await platform.invocations()} == {"pack"}


async def test_partial_batch_failure_retries_only_the_failed_message() -> None:
    app = App("warehouse")
    received: list[str] = []

    @app.on_queue("parcels", batch_size=10)
    def pack(event: Any, context: Any) -> dict[str, Any]:
        failures = []
        for record in event["Records"]:
            received.append(record["body"])
            if record["body"] == "heavy":
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    async with TestPlatform(app, queue_max_receives=3) as platform:
        for body in ("a", "heavy", "b"):
            await platform.send("parcels", body)
        await platform.drain()
        assert sorted(received) == ["a", "b", "heavy", "heavy", "heavy"]
        assert await platform.queue_messages("parcels") == []
        (dead,) = await platform.queue_messages("parcels.dlq")
        assert dead.body == b"heavy"


async def test_a_raising_queue_handler_fails_the_whole_batch() -> None:
    app = App("warehouse")
    sizes: list[int] = []

    @app.on_queue("parcels", batch_size=10)
    def pack(event: Any) -> None:
        sizes.append(len(event["Records"]))
        raise RuntimeError("conveyor jammed")

    async with TestPlatform(app, queue_max_receives=2) as platform:
        await platform.send("parcels", "x")
        await platform.send("parcels", "y")
        await platform.drain()
        assert sizes == [2, 2]
        assert len(await platform.queue_messages("parcels.dlq")) == 2


async def test_an_endless_event_loop_is_stopped() -> None:
    app = App("echo")
    count = 0

    @app.on_event({"type": ["ping"]})
    def ping(event: Any, context: Any) -> None:
        nonlocal count
        count += 1
        context.publish("ping", {})

    async with TestPlatform(app) as platform:
        await platform.publish("ping", {})
        await platform.drain()
        assert 10 <= count <= 20


async def test_runs_on_a_sqlite_store_file(tmp_path: Path) -> None:
    app, seen = shop()
    async with TestPlatform(app, store_url=f"sqlite:///{tmp_path}/store.db") as platform:
        await platform.publish("order.placed", {"id": 5, "total": 1})
        await platform.drain()
        assert sorted(name for name, _ in seen) == ["notify", "ship"]
    assert (tmp_path / "store.db").exists()


async def test_bad_input_is_rejected_and_nothing_is_stored() -> None:
    app, _ = shop()
    async with TestPlatform(app) as platform:
        with pytest.raises(InvalidInputError, match="publish\\(\\) takes"):
            await platform.publish(42)  # type: ignore[arg-type]
        with pytest.raises(InvalidEventError, match="source"):
            await platform.publish({"specversion": "1.0", "id": "x", "type": "t"})
        with pytest.raises(InvalidInputError, match="UTF-8"):
            await platform.send("parcels", b"\xff\xfe")
        with pytest.raises(InvalidInputError, match="JSON"):
            await platform.send("parcels", {"not": object()})
        assert await platform.published() == []
        assert await platform.queue_messages("parcels") == []


async def test_using_a_platform_that_is_not_running_says_how_to_start_it() -> None:
    app, _ = shop()
    platform = TestPlatform(app)
    with pytest.raises(InvocationError, match="async with TestPlatform"):
        await platform.invoke("quote", {"items": 1})


async def test_advance_fires_schedules_with_the_scheduled_event() -> None:
    app = App("cron")
    fired: list[Any] = []

    @app.schedule("rate(1 hour)")
    def hourly(event: Any) -> None:
        fired.append(event)

    start = datetime.datetime(2024, 5, 1, 10, 30, tzinfo=datetime.UTC)
    async with TestPlatform(app, start=start) as platform:
        assert await platform.advance(0) == []
        request_ids = await platform.advance(3 * 3600)
        assert len(request_ids) == 3
        assert [e["time"] for e in fired] == ["2024-05-01T11:00:00Z", "2024-05-01T12:00:00Z", "2024-05-01T13:00:00Z"]
        assert {e["detail-type"] for e in fired} == {"Scheduled Event"}
        assert fired[0]["resources"] == ["arn:aws:events:local:000000000000:rule/hourly"]
        assert platform.now == start + datetime.timedelta(hours=3)
        assert {r.trigger for r in await platform.invocations()} == {"schedule"}
        with pytest.raises(InvalidInputError, match="advance"):
            await platform.advance(-1)


def test_start_must_be_aware() -> None:
    with pytest.raises(InvalidInputError, match="aware datetime"):
        TestPlatform(App("x"), start=datetime.datetime(2024, 1, 1))


async def test_dead_letters_follow_a_dead_letter_queue_destination() -> None:
    app = App("billing")

    @app.function(retries=0, dead_letter="queue:failed-charges")
    def charge(event: Any) -> None:
        raise ConnectionError("provider down")

    async with TestPlatform(app) as platform:
        await platform.invoke_async("charge", {"order": 9})
        await platform.drain()
        (dead,) = await platform.dead_letters("charge")
        assert dead["requestPayload"] == {"order": 9}
        assert dead["requestContext"]["condition"] == "RetriesExhausted"
        assert len(await platform.queue_messages("failed-charges")) == 1
        assert await platform.queue_messages("dlq.charge") == []


async def test_drain_gives_up_on_work_that_does_not_settle() -> None:
    app = App("relay")
    relaying = True

    @app.on_event({"type": ["hop"]})
    def relay(event: Any, context: Any) -> None:
        if relaying:
            context.publish("hop", {"n": event["data"]["n"] + 1})

    async with TestPlatform(app, max_drain_rounds=3) as platform:
        await platform.publish("hop", {"n": 0})
        with pytest.raises(InvocationError, match="did not settle after 3 rounds"):
            await platform.drain()
        relaying = False
        await platform.drain()  # what was still in flight settles once the relay stops
        assert 3 <= len(await platform.invocations(function="relay")) <= 6


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retry_delay": -1}, "base"),
        ({"queue_max_receives": 0}, "max_receives"),
        ({"max_drain_rounds": 0}, "max_drain_rounds"),
    ],
)
def test_bad_options_fail_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        TestPlatform(App("x"), **options)


async def test_a_destination_naming_no_function_fails_at_start() -> None:
    app = App("broken")

    @app.function(on_failure="function:nowhere")
    def lonely(event: Any) -> None:
        return None

    platform = TestPlatform(app)
    with pytest.raises(DeclarationError, match="nowhere"):
        await platform.start()
    with pytest.raises(InvocationError, match="not running"):
        platform.store  # noqa: B018


async def test_hostile_publishes_are_refused_with_the_reason() -> None:
    app, _ = shop()
    async with TestPlatform(app) as platform:
        with pytest.raises(InvalidNameError, match="name"):
            await platform.publish("order.placed", {}, bus="orders; DROP TABLE")
        with pytest.raises(InvalidInputError, match="bus"):
            await platform.publish("order.placed", {}, bus="")
        with pytest.raises(EventTooLargeError):
            await platform.publish("order.placed", {"blob": "x" * 300_000})
        with pytest.raises(InvalidEventError, match="type"):
            await platform.publish("", {})
        assert await platform.published() == []


async def test_records_keep_what_the_handler_printed_and_logged() -> None:
    app = App("chatty")

    @app.function()
    def talk(event: Any, context: Any) -> None:
        print("hello from print")
        context.logger.info("hello from the logger")

    async with TestPlatform(app) as platform:
        await platform.invoke("talk", {})
        (record,) = await platform.invocations()
        assert "hello from print" in record.output
        assert "hello from the logger" in record.output
        assert record.request_id in record.output  # the logger prefixes the request id


def test_sync_platform_for_tests_that_are_not_async() -> None:
    app, seen = shop()
    with SyncTestPlatform(app) as platform:
        assert platform.invoke("quote", {"items": 4}) == {"total": 40}
        platform.publish("order.placed", {"id": 3, "total": 500})
        platform.drain()
        assert sorted(name for name, _ in seen) == ["notify", "review", "ship"]
        assert [e.type for e in platform.published()] == ["order.placed", "order.shipped"]
        assert len(platform.invocations(status="succeeded")) == 4
        with pytest.raises(HandlerError, match="at least one item"):
            platform.invoke("quote", {"items": 0})
    with pytest.raises(InvocationError, match="not running"):
        platform.invoke("quote", {"items": 1})


async def test_a_record_on_a_bus_that_is_not_an_event_is_parked_as_the_server_parks_it() -> None:
    app, seen = shop()
    async with TestPlatform(app) as platform:
        await platform.store.log.append("bus.default", b'{"not": "an event"}')
        await platform.drain()
        [kept] = await parked(platform.store.log)
        assert (kept.stream, kept.offset) == ("bus.default", 1)
        assert "specversion" in kept.reason
        await platform.publish("order.placed", {"id": 1, "total": 5})
        await platform.drain()
        assert sorted(name for name, _ in seen) == ["notify", "ship"]


async def test_a_handler_past_its_timeout_is_recorded_as_timed_out() -> None:
    app = App("slow")
    release = threading.Event()

    @app.function(timeout=0.1)
    def slow(event: Any) -> None:
        release.wait(5)

    async with TestPlatform(app) as platform:
        try:
            with pytest.raises(HandlerError, match=r"Task timed out after 0\.10 seconds"):
                await platform.invoke("slow", {})
        finally:
            release.set()
        assert [r.status for r in await platform.invocations()] == ["timed_out"]


async def test_messages_sent_by_functions_carry_the_hop_count_so_a_queue_loop_stops() -> None:
    app = App("echo")
    seen_attributes: list[Any] = []

    @app.on_queue("echo")
    def bounce(event: Any, context: Any) -> None:
        seen_attributes.append(event["Records"][0]["messageAttributes"])
        context.send("echo", "again", attributes={"kind": "bounce"})

    async with TestPlatform(app) as platform:
        await platform.send("echo", "first")
        await platform.drain()
        assert 10 <= len(seen_attributes) <= 20
        assert seen_attributes[0] == {}
        assert set(seen_attributes[1]) == {"kind"}  # the platform's own attributes are not shown
        records = await platform.invocations(function="bounce")
        assert len(records) == len(seen_attributes)
        assert {r.status for r in records} == {"succeeded"}


async def test_a_test_that_ends_with_work_in_flight_closes_promptly() -> None:
    app = App("relay")

    @app.on_event({"type": ["hop"]})
    def relay(event: Any, context: Any) -> None:
        context.publish("hop", {"n": event["data"]["n"] + 1})

    platform = TestPlatform(app, max_drain_rounds=3)
    async with platform:
        await platform.publish("hop", {"n": 0})
        with pytest.raises(InvocationError, match="did not settle"):
            await platform.drain()
    with pytest.raises(InvocationError, match="not running"):
        platform.store  # noqa: B018


async def test_requests_reach_the_apps_routes_through_the_gateway() -> None:
    app = App("api")

    @app.http("POST", "/orders/{order_id}/notes")
    def add_note(event: Any, context: Any) -> dict[str, Any]:
        context.publish("note.added", {"order": event["pathParameters"]["order_id"]})
        return {"statusCode": 201, "headers": {"location": "/notes/1"}, "body": event["body"]}

    async with TestPlatform(app) as platform:
        created = await platform.request("POST", "/orders/o-1/notes", json={"text": "fragile"})
        assert created.status_code == 201
        assert created.headers["location"] == "/notes/1"
        assert created.json() == {"text": "fragile"}
        assert (await platform.request("GET", "/orders/o-1/notes")).status_code == 405
        assert (await platform.request("GET", "/nowhere")).status_code == 404
        await platform.drain()
        assert [e.data for e in await platform.published()] == [{"order": "o-1"}]


def test_sync_platform_sends_requests_too() -> None:
    app = App("api")

    @app.http("GET", "/hello/{name}")
    def hello(event: Any, context: Any) -> dict[str, str]:
        return {"hello": event["pathParameters"]["name"]}

    with SyncTestPlatform(app) as platform:
        answer = platform.request("GET", "/hello/ada")
        assert answer.status_code == 200
        assert answer.json() == {"hello": "ada"}
