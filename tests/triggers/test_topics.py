"""Topics: durable publish, fan-out to functions, queues and webhooks, filters, run-time subscriptions, bad input."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.http_receiver import HttpReceiver
from triggerfish.app import App
from triggerfish.bus.bus import EventBus
from triggerfish.bus.rules import Rules
from triggerfish.bus.webhook import verify
from triggerfish.errors import DeclarationError, FunctionNotFoundError, InvalidInputError, InvalidPatternError
from triggerfish.events.cloudevent import Event
from triggerfish.events.ruleset import RuleSet
from triggerfish.names import (
    LOOP_STOPPED_STREAM,
    topic_dead_letter_queue,
    topic_delivery_queue,
    topic_stream,
)
from triggerfish.retry import RetryPolicy
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.runtime.platform_calls import StorePlatform
from triggerfish.store import Store, open_store
from triggerfish.testing import SyncTestPlatform, TestPlatform
from triggerfish.triggers.sns import TopicMessage
from triggerfish.triggers.subscriptions import Subscription, Subscriptions
from triggerfish.triggers.topics import Topics

SECRET = "whsec-topics"
BIG = {"filter": {"size": ["big"]}}
FAST = {"max_attempts": 3, "backoff": {"base": 0.0, "ceiling": 0.0}}

app = App("topic-tests")
calls: dict[str, list[Any]] = defaultdict(list)
calls_lock = threading.Lock()


def record(name: str, event: Any) -> None:
    with calls_lock:
        calls[name].append(event)


def messages_of(name: str) -> list[str]:
    with calls_lock:
        return [r["Sns"]["Message"] for event in calls[name] for r in event["Records"]]


@app.on_topic("orders")
def audit(event: Any) -> None:
    record("audit", event)


@app.on_topic("orders", filter={"kind": ["refund"]})
def refunds(event: Any) -> None:
    record("refunds", event)


@app.on_topic("orders", filter={"total": [{"numeric": [">=", 100]}]}, filter_scope="body")
def big_orders(event: Any) -> None:
    record("big_orders", event)


@app.on_topic("results")
def results(event: Any) -> None:
    record("results", event)


@app.function(on_success="topic:results")
def produce(event: Any) -> Any:
    return {"made": event}


@app.on_topic("loop")
def loop(event: Any) -> None:
    record("loop", event)


# on_success names the topic that triggers it: only the loop guard ends this.
@app.on_topic("echo", on_success="topic:echo")
def echo(event: Any) -> str:
    record("echo", event)
    return "again"


@pytest.fixture(autouse=True)
def clear_calls() -> None:
    with calls_lock:
        calls.clear()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        yield opened
    finally:
        await opened.close()


def make_invoker(store: Store) -> Invoker:
    # As triggerfish.testing builds it: handlers in threads, platform calls on the store, no retry backoff.
    runner = InProcessRunner(app.functions, platform=StorePlatform(store), app_name=app.name)
    return Invoker(runner, store, retry_policy=RetryPolicy(base=0.0, ceiling=0.0), app_name=app.name)


@pytest.fixture
async def invoker(store: Store) -> AsyncIterator[Invoker]:
    started = make_invoker(store)
    await started.start()
    try:
        yield started
    finally:
        await started.stop(drain=False)


@pytest.fixture
async def topics(store: Store, invoker: Invoker) -> AsyncIterator[Topics]:
    made = Topics(store, app.functions, invoker=invoker)
    try:
        yield made
    finally:
        await made.stop()


async def settle(topics: Topics, invoker: Invoker) -> None:
    """Fan out and run everything that is due, including what the invocations cause."""
    for _ in range(100):
        await topics.drain()
        await invoker.drain()
        if not await topics.deliver_due():
            return
    raise AssertionError("topics and invocations did not settle")


async def bodies(store: Store, queue: str) -> list[bytes]:
    messages = await store.queues.receive(queue, max_messages=100, visibility_timeout=600)
    return [m.body for m in messages]


class Receiver(HttpReceiver):
    """Answers each POST with the next of `statuses` (then 200)."""

    path = "/sns"

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        super().__init__()

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with calls_lock:
            self.received.append(({k.lower(): v for k, v in headers.items()}, body))
            return self.statuses.pop(0) if self.statuses else 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def down_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/sns"


# --- publishing --------------------------------------------------------------------------------


async def test_a_publish_is_durable_when_it_returns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    async with await open_store(url) as store:
        message_id = await Topics(store, {}).publish("orders", "hello", subject="Hi", attributes={"kind": "sale"})
    async with await open_store(url) as store:
        [stored] = await store.log.read(topic_stream("orders"))
    message = TopicMessage.from_json(stored.data)
    assert (message.message_id, message.message, message.subject) == (message_id, "hello", "Hi")
    assert message.attributes == {"kind": "sale"}


# --- fan-out -----------------------------------------------------------------------------------


async def test_one_message_reaches_every_function_and_queue_whose_filter_matches(
    store: Store, topics: Topics, invoker: Invoker
) -> None:
    await topics.subscribe("orders", "queue", "order-log")
    refund = await topics.publish("orders", json.dumps({"total": 250}), attributes={"kind": "refund"})
    sale = await topics.publish("orders", json.dumps({"total": 20}), attributes={"kind": "sale"})
    await settle(topics, invoker)
    assert sorted(messages_of("audit")) == sorted([json.dumps({"total": 250}), json.dumps({"total": 20})])
    assert messages_of("refunds") == [json.dumps({"total": 250})]  # by attribute
    assert messages_of("big_orders") == [json.dumps({"total": 250})]  # by body
    notes = [orjson.loads(body) for body in await bodies(store, "order-log")]
    assert sorted(n["MessageId"] for n in notes) == sorted([refund, sale])


async def test_functions_get_the_sns_record_shape(topics: Topics, invoker: Invoker) -> None:
    message_id = await topics.publish("orders", "text", subject="New order", attributes={"kind": "refund"})
    await settle(topics, invoker)
    [event] = calls["refunds"]
    [lambda_record] = event["Records"]
    arn = "arn:aws:sns:local:000000000000:orders"
    assert {k: v for k, v in lambda_record.items() if k != "Sns"} == {
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": f"{arn}:refunds",
    }
    sns = lambda_record["Sns"]
    assert sns["Timestamp"].endswith("Z")
    assert {k: v for k, v in sns.items() if k != "Timestamp"} == {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": arn,
        "Subject": "New order",
        "Message": "text",
        "SignatureVersion": "1",
        "Signature": "",
        "SigningCertUrl": "",
        "UnsubscribeUrl": "",
        "MessageAttributes": {"kind": {"Type": "String", "Value": "refund"}},
    }


async def test_a_queue_gets_the_notification_json_or_with_raw_delivery_the_message(
    store: Store, topics: Topics
) -> None:
    await topics.subscribe("news", "queue", "as-json")
    await topics.subscribe("news", "queue", "as-raw", raw=True)
    message_id = await topics.publish("news", "plain words", attributes={"lang": "en"})
    await topics.drain()
    [note] = await store.queues.receive("as-json")
    document = orjson.loads(note.body)
    assert document["Type"] == "Notification"
    assert (document["MessageId"], document["Message"]) == (message_id, "plain words")
    assert "Subject" not in document  # as SNS: absent when the message has none
    assert document["MessageAttributes"] == {"lang": {"Type": "String", "Value": "en"}}
    [raw] = await store.queues.receive("as-raw")
    assert raw.body == b"plain words"
    assert raw.attributes["lang"] == "en"  # as SNS's raw delivery to SQS: attributes carried over


# --- filters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "attributes", "delivered"),
    [
        ({"kind": ["refund"]}, {"kind": "refund"}, True),
        ({"kind": ["refund"]}, {"kind": "sale"}, False),
        ({"kind": ["refund"]}, {}, False),
        ({"kind": [{"prefix": "ref"}]}, {"kind": "refund"}, True),
        ({"kind": [{"anything-but": ["sale"]}]}, {"kind": "refund"}, True),
        ({"kind": [{"exists": False}]}, {"region": "eu"}, True),
        ({"kind": ["refund"], "region": ["eu"]}, {"kind": "refund", "region": "us"}, False),
        # Attributes are strings: a numeric condition matches none, as SNS's String attributes.
        ({"total": [{"numeric": [">", 1]}]}, {"total": "5"}, False),
    ],
)
async def test_filters_on_attributes(
    store: Store, topics: Topics, policy: dict[str, Any], attributes: dict[str, str], delivered: bool
) -> None:
    await topics.subscribe("alerts", "queue", "filtered", filter=policy)
    await topics.publish("alerts", "m", attributes=attributes)
    await topics.drain()
    assert bool(await bodies(store, "filtered")) is delivered


@pytest.mark.parametrize(
    ("policy", "body", "delivered"),
    [
        ({"total": [{"numeric": [">=", 100]}]}, {"total": 150}, True),
        ({"total": [{"numeric": [">=", 100]}]}, {"total": 50}, False),
        ({"customer": {"tier": ["gold"]}}, {"customer": {"tier": "gold"}}, True),
        ({"customer": {"tier": ["gold"]}}, {"customer": {"tier": "silver"}}, False),
        ({"total": [{"exists": True}]}, "not json at all", False),
        ({"total": [{"exists": True}]}, [1, 2], False),
    ],
)
async def test_filters_on_the_body(
    store: Store, topics: Topics, policy: dict[str, Any], body: Any, delivered: bool
) -> None:
    await topics.subscribe("alerts", "queue", "filtered", filter=policy, filter_scope="body")
    await topics.publish("alerts", body if isinstance(body, str) else json.dumps(body), attributes={"total": "1"})
    await topics.drain()
    assert bool(await bodies(store, "filtered")) is delivered


# --- webhooks ----------------------------------------------------------------------------------


async def test_a_webhook_gets_the_notification_signed(topics: Topics, receiver: Receiver) -> None:
    subscription = await topics.subscribe("news", "webhook", receiver.url, secret=SECRET)
    message_id = await topics.publish("news", '{"headline": "hi"}')
    await topics.drain()
    [(headers, body)] = receiver.received
    verify(SECRET, headers, body)  # raises if the signature is wrong or missing
    assert orjson.loads(body)["MessageId"] == message_id
    assert orjson.loads(orjson.loads(body)["Message"]) == {"headline": "hi"}
    assert headers["x-amz-sns-message-type"] == "Notification"
    assert headers["x-amz-sns-subscription-arn"] == subscription.arn


async def test_a_failing_webhook_is_retried_until_it_answers(store: Store, topics: Topics) -> None:
    flaky = Receiver(statuses=[503, 500])
    try:
        await topics.subscribe("news", "webhook", flaky.url, retry=FAST)
        message_id = await topics.publish("news", "m")
        await topics.drain()
    finally:
        flaky.close()
    assert [orjson.loads(body)["MessageId"] for _, body in flaky.received] == [message_id] * 3
    assert (await store.queues.stats(topic_dead_letter_queue("news"))).visible == 0
    assert (await store.queues.stats(topic_delivery_queue("news"))).depth == 0


async def test_a_webhook_that_is_down_ends_in_the_dead_letter_queue(store: Store, topics: Topics) -> None:
    url = down_url()
    subscription = await topics.subscribe("news", "webhook", url, retry=FAST)
    message_id = await topics.publish("news", "m", attributes={"k": "v"})
    await topics.drain()
    [dead] = await store.queues.receive(topic_dead_letter_queue("news"))
    letter = orjson.loads(dead.body)
    assert letter["message"]["id"] == message_id
    assert letter["attempts"] == 3
    assert letter["condition"] == "RetriesExhausted"
    assert letter["subscription"] == {"arn": subscription.arn, "kind": "webhook", "endpoint": url}
    assert "ConnectError" in letter["error"]
    assert dead.attributes["SUBSCRIPTION_ARN"] == subscription.arn
    assert (await store.queues.stats(topic_delivery_queue("news"))).depth == 0


async def test_a_subscription_can_name_its_own_dead_letter_queue(store: Store, topics: Topics) -> None:
    await topics.subscribe("news", "webhook", down_url(), retry={"max_attempts": 1}, dead_letter="news-failed")
    await topics.publish("news", "m")
    await topics.drain()
    assert (await store.queues.stats("news-failed")).visible == 1


# --- durability --------------------------------------------------------------------------------


async def test_a_message_published_before_a_restart_is_delivered_after_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    async with await open_store(url) as store:
        first = Topics(store, {})
        await first.subscribe("orders", "queue", "out")
        message_id = await first.publish("orders", "before the crash")
        # The server stops before its consumer ever ran.
    async with await open_store(url) as store:
        second = Topics(store, {})
        await second.start()
        try:
            [message] = await store.queues.receive("out", wait=10.0)
        finally:
            await second.stop()
        assert orjson.loads(message.body)["MessageId"] == message_id
        assert await second.checkpoint("orders") == 1


async def test_deliveries_made_before_a_crash_are_made_again_with_the_same_message_id(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    async with await open_store(url) as store:
        first = Topics(store, {})
        await first.subscribe("orders", "queue", "out")
        message_id = await first.publish("orders", "m")
        # A consumer claimed the message and stored its deliveries, then died before committing the range
        # (possible where the store cannot write both together: parts from different engines).
        claim = await store.log.claim(topic_stream("orders"), "fan-out", lease=0.2)
        assert claim is not None
        await store.atomic(await first.consume("orders", claim.records))
        await first.deliverer.run_once("orders")
    await asyncio.sleep(0.3)  # its claim lapses
    async with await open_store(url) as store:
        second = Topics(store, {})
        await second.drain()
        await second.stop()
        ids = [orjson.loads(body)["MessageId"] for body in await bodies(store, "out")]
    assert ids == [message_id, message_id]  # at least once: subscribers deduplicate on MessageId


async def test_every_server_fans_a_topic_out_sharing_its_messages(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    async with await open_store(url) as first_store, await open_store(url) as second_store:
        first, second = Topics(first_store, {}, batch_size=1), Topics(second_store, {}, batch_size=1)
        await first.subscribe("orders", "queue", "out")
        await first.publish("orders", "m")
        await second.publish("orders", "n")
        assert await first.pump("orders") == 1
        assert await second.pump("orders") == 1  # not held by the first: the next message is its own
        assert await first.pump("orders") == 0
        for topics in (first, second):
            while await topics.deliverer.run_once("orders"):
                pass
            await topics.stop()
        assert sorted(orjson.loads(body)["Message"] for body in await bodies(first_store, "out")) == ["m", "n"]


# --- run-time subscriptions --------------------------------------------------------------------


async def test_run_time_subscriptions_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    async with await open_store(url) as store:
        first = Topics(store, app.functions)
        kept = await first.subscribe("orders", "queue", "kept", filter={"kind": ["sale"]})
        gone = await first.subscribe("orders", "queue", "gone")
        assert await first.unsubscribe(gone.arn)
        await first.stop()
    async with await open_store(url) as store:
        second = Topics(store, app.functions)
        listed = await second.subscriptions("orders")
        assert [(s.kind, s.endpoint, s.source) for s in listed] == [
            ("function", "audit", "app"),
            ("function", "refunds", "app"),
            ("function", "big_orders", "app"),
            ("queue", "kept", "api"),
        ]
        assert listed[-1] == kept
        await second.publish("orders", "m", attributes={"kind": "sale"})
        await second.drain()
        await second.stop()
        assert len(await bodies(store, "kept")) == 1
        assert await bodies(store, "gone") == []


async def test_subscribing_again_is_idempotent_and_a_conflict_is_refused(topics: Topics) -> None:
    first = await topics.subscribe("orders", "queue", "q", filter={"kind": ["sale"]})
    assert await topics.subscribe("orders", "queue", "q", filter={"kind": ["sale"]}) == first
    with pytest.raises(InvalidInputError, match="already has a queue subscription to 'q' with other settings"):
        await topics.subscribe("orders", "queue", "q", filter={"kind": ["refund"]})
    assert not await topics.unsubscribe("arn:aws:sns:local:000000000000:orders:nope")
    [app_subscription] = [s for s in await topics.subscriptions("orders") if s.endpoint == "audit"]
    with pytest.raises(InvalidInputError, match="comes from the app's code"):
        await topics.unsubscribe(app_subscription)


async def test_a_subscription_another_server_added_takes_effect(store: Store) -> None:
    running = Topics(store, {}, refresh=0.1)
    await running.start()
    try:
        await Topics(store, {}).subscribe("orders", "queue", "out")  # another server's control API
        await asyncio.sleep(0.3)  # past a refresh; nothing here can signal another server's write
        await running.publish("orders", "m")
        [message] = await store.queues.receive("out", wait=10.0)
    finally:
        await running.stop()
    assert orjson.loads(message.body)["Message"] == "m"


async def test_loading_subscriptions_that_did_not_change_rebuilds_no_filter_set(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every server loads the run-time subscriptions again every few seconds; compiling their filters each
    # time held the event loop for nothing. An unchanged store keeps the filter sets; a change is still seen.
    here = Subscriptions(store)
    assert not here.matching("orders", TopicMessage(message_id="m-0", message="m", timestamp=time.time()))
    await here.add(Subscription.from_dict({"id": "a", "topic": "orders", "kind": "queue", "endpoint": "big", **BIG}))
    await here.load()
    built: list[str] = []
    add_rule = RuleSet.add

    def counted(self: RuleSet, rule_id: str, pattern: Any) -> None:
        built.append(rule_id)
        add_rule(self, rule_id, pattern)

    monkeypatch.setattr(RuleSet, "add", counted)
    await here.load()
    await here.load()
    assert built == []
    big = TopicMessage(message_id="m-1", message="m", timestamp=time.time(), attributes={"size": "big"})
    assert [s.endpoint for s in here.matching("orders", big)] == ["big"]
    # Another server's subscription and removal are still seen.
    other = Subscriptions(store)
    await other.load()
    added = await other.add(
        Subscription.from_dict({"id": "b", "topic": "orders", "kind": "queue", "endpoint": "also", **BIG})
    )
    built.clear()
    await here.load()
    assert sorted(built) == ["a", "b"]
    assert [s.endpoint for s in here.matching("orders", big)] == ["big", "also"]
    assert await other.remove(added)
    await here.load()
    assert [s.endpoint for s in here.matching("orders", big)] == ["big"]


async def test_a_new_app_version_brings_its_own_subscriptions(store: Store, invoker: Invoker) -> None:
    old = App("topic-tests")
    old.on_topic("orders")(audit)
    topics = Topics(store, old.functions, invoker=invoker)
    await topics.subscribe("orders", "queue", "q")
    topics.update(app.functions)
    listed = await topics.subscriptions("orders")
    assert [s.endpoint for s in listed] == ["audit", "refunds", "big_orders", "q"]
    await topics.publish("orders", "{}", attributes={"kind": "refund"})
    await settle(topics, invoker)
    await topics.stop()
    assert messages_of("refunds") == ["{}"]


# --- wire-up: bus targets and destinations -----------------------------------------------------


async def test_a_bus_rules_topic_target_fans_out(store: Store, topics: Topics) -> None:
    rules = Rules(store)
    await rules.put({"id": "r", "pattern": {"source": ["shop"]}, "targets": [{"kind": "topic", "name": "orders"}]})
    bus = EventBus(store, rules)
    await topics.subscribe("orders", "queue", "out")
    [event_id] = await bus.publish("default", [Event.create("order.placed", "shop", {"total": 5})])
    await bus.drain()
    await bus.stop()
    await topics.drain()
    [body] = await bodies(store, "out")
    event = orjson.loads(orjson.loads(body)["Message"])  # the topic message is the event's JSON
    assert (event["id"], event["data"]) == (event_id, {"total": 5})


async def test_a_topic_destination_fans_out_to_the_topics_subscribers(topics: Topics, invoker: Invoker) -> None:
    request_id = await invoker.invoke_async("produce", {"n": 1})
    await settle(topics, invoker)
    [message] = messages_of("results")
    destination_record = json.loads(message)
    assert destination_record["requestContext"]["requestId"] == request_id
    assert destination_record["responsePayload"] == {"made": {"n": 1}}


async def test_a_topic_destination_looping_back_is_stopped_by_the_loop_guard(
    store: Store, topics: Topics, invoker: Invoker
) -> None:
    await topics.publish("echo", "start")
    await settle(topics, invoker)
    assert len(calls["echo"]) == 17  # hop counts 0 to 16; the destination at hop 17 is stopped
    [stopped] = await store.log.read(LOOP_STOPPED_STREAM)
    kept = orjson.loads(stopped.data)
    assert (kept["op"], kept["target"], kept["function"], kept["hop_count"]) == ("topic", "echo", "echo", 17)


# --- the test platform -------------------------------------------------------------------------


async def test_the_test_platform_fans_out_on_drain() -> None:
    async with TestPlatform(app) as platform:
        message_id = await platform.publish_topic("orders", '{"total": 500}', "Big", {"kind": "refund"})
        await platform.drain()
        assert messages_of("big_orders") == ['{"total": 500}']
        assert messages_of("refunds") == ['{"total": 500}']
        assert calls["audit"][0]["Records"][0]["Sns"]["MessageId"] == message_id
        assert {r.trigger for r in await platform.invocations()} == {"topic"}


def test_the_sync_test_platform_publishes_to_topics() -> None:
    with SyncTestPlatform(app) as platform:
        platform.publish_topic("orders", "hi", attributes={"kind": "refund"})
        platform.drain()
    assert messages_of("refunds") == ["hi"]


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "message", "options", "error"),
    [
        ("bad name!", "m", {}, "invalid topic name 'bad name!': use 1 to 255 characters"),
        ("", "m", {}, "invalid topic name ''"),
        ("t", b"bytes", {}, "the message must be a str, not bytes"),
        ("t", {"a": 1}, {}, "the message must be a str, not dict; send JSON as text"),
        ("t", "", {}, "the message must not be empty"),
        ("t", "x" * (256 * 1024 + 1), {}, "is 262145 bytes with its attributes, over the limit of 262144 bytes"),
        ("t", "x" * (256 * 1024 - 5), {"attributes": {"k": "v"}}, "over the limit of 262144 bytes"),
        ("t", "\ud800", {}, "the message is not valid Unicode text"),
        ("t", "m", {"attributes": {"n": 5}}, "attribute 'n': the value must be a str, not int"),
        ("t", "m", {"attributes": {5: "v"}}, "attribute names must be str, not int"),
        ("t", "m", {"attributes": ["k", "v"]}, "attributes must be a mapping of names to strings, not list"),
        ("t", "m", {"attributes": {"has space": "v"}}, "invalid attribute name 'has space'"),
        ("t", "m", {"attributes": {"AWS.x": "v"}}, "starts with a reserved prefix"),
        ("t", "m", {"attributes": {"triggerfish.hopcount": "1"}}, "starts with a reserved prefix"),
        ("t", "m", {"attributes": {f"a{i}": "v" for i in range(11)}}, "at most 10 attributes"),
        ("t", "m", {"subject": "two\nlines"}, "must be one line of printable ASCII"),
        ("t", "m", {"subject": "x" * 100}, "the subject must be 1 to 99 characters"),
        ("t", "m", {"subject": 7}, "the subject must be a str or None, not int"),
    ],
)
async def test_bad_publishes_are_refused_with_the_reason(
    store: Store, topic: Any, message: Any, options: dict[str, Any], error: str
) -> None:
    topics = Topics(store, {})
    with pytest.raises(InvalidInputError) as caught:
        await topics.publish(topic, message, **options)
    assert error in str(caught.value)
    assert not [s for s in await store.log.streams() if s.startswith("topic.")]  # nothing stored


@pytest.mark.parametrize(
    ("arguments", "options", "error"),
    [
        (("t", "carrier-pigeon", "x"), {}, "kind must be one of function, queue, webhook, not 'carrier-pigeon'"),
        (("t", "webhook", "ftp://x"), {}, "a webhook's endpoint is its http:// or https:// URL"),
        (("t", "queue", "no spaces"), {}, "invalid queue name 'no spaces'"),
        (("bad name!", "queue", "q"), {}, "invalid topic name 'bad name!'"),
        (("t", "queue", "q"), {"filter": {"kind": "refund"}}, "the filter"),
        (("t", "queue", "q"), {"filter": '{"kind": ["x"]}'}, "the filter must be a dict pattern"),
        (("t", "queue", "q"), {"filter": {}}, "the filter must be a non-empty pattern"),
        (("t", "queue", "q"), {"filter_scope": "headers"}, "filter_scope must be 'attributes'"),
        (("t", "function", "audit"), {"raw": True}, "raw delivery is for queue and webhook subscriptions"),
        (("t", "queue", "q"), {"secret": "s"}, "secret is for webhook subscriptions only"),
        (("t", "queue", "q"), {"retry": {"max_attempts": 0}}, "max_attempts must be a whole number from 1 to 185"),
        (("t", "queue", "q"), {"retry": {"tries": 3}}, "retry must be an object with max_event_age"),
    ],
)
async def test_bad_subscriptions_are_refused_with_the_reason(
    store: Store, arguments: tuple[Any, ...], options: dict[str, Any], error: str
) -> None:
    topics = Topics(store, app.functions)
    with pytest.raises(InvalidInputError) as caught:
        await topics.subscribe(*arguments, **options)
    assert error in str(caught.value)
    assert await topics.subscriptions("t") == []


async def test_a_bad_filter_pattern_says_where_it_is_wrong(store: Store) -> None:
    topics = Topics(store, {})
    with pytest.raises(InvalidPatternError) as caught:
        await topics.subscribe("t", "queue", "q", filter={"price": [{"numeric": [">", "ten"]}]})
    assert caught.value.path.startswith("price")
    assert str(caught.value).endswith("(in the filter of the subscription to topic 't')")


async def test_a_function_the_app_does_not_declare_cannot_subscribe(store: Store) -> None:
    with pytest.raises(FunctionNotFoundError, match="no function named 'ghost' to subscribe; the app declares:"):
        await Topics(store, app.functions).subscribe("t", "function", "ghost")


def test_on_topic_checks_its_filter_scope() -> None:
    with pytest.raises(DeclarationError, match="filter_scope must be 'attributes'"):
        App("x").on_topic("t", filter={"a": ["b"]}, filter_scope="MessageBody")(audit)
    with pytest.raises(DeclarationError, match="invalid event filter"):
        App("x").on_topic("t", filter={"a": "b"})(audit)
