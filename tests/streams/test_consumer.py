"""`StreamConsumers` on a real SQLite store: one node per partition, checkpoints, take-over, at least once."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from triggerfish.bus.publisher import Publisher
from triggerfish.errors import HandlerError
from triggerfish.names import SOURCE_GROUP
from triggerfish.retry import RetryPolicy
from triggerfish.store import Store, open_store
from triggerfish.streams.batches import BatchOptions
from triggerfish.streams.consumer import StreamConsumers, StreamSubscription
from triggerfish.streams.records import SourceRecord, encode_record, partition_of

FAST = RetryPolicy(base=0.01, ceiling=0.01)


class Functions:
    """The platform's side of a consumer: records each batch a function got, by node; `fail` decides failures."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[str]]] = []
        self.fail: Callable[[list[str]], bool] = lambda payloads: False
        self.queued: list[tuple[str, Any]] = []
        #: A batch holding one of these payloads waits for its event before it returns (a slow handler).
        self.hold: dict[str, asyncio.Event] = {}
        self.done: list[str] = []

    def node(self, name: str) -> Any:
        functions = self

        class Invoker:
            async def invoke(self, function: str, event: Any = None, **options: Any) -> Any:
                payloads = [base64.b64decode(r["mqtt"]["data"]).decode() for r in event["Records"]]
                functions.batches.append((name, payloads))
                for payload in payloads:
                    if payload in functions.hold:
                        await functions.hold[payload].wait()
                if functions.fail(payloads):
                    raise HandlerError({"errorType": "ValueError", "errorMessage": "failed on purpose"})
                functions.done.extend(payloads)
                return None

            async def invoke_async(self, function: str, event: Any = None, **options: Any) -> str:
                functions.queued.append((function, event))
                return "id"

        return Invoker()

    def handled(self) -> list[str]:
        return [p for _, batch in self.batches for p in batch]


SUB = StreamSubscription("ingest", "mqtt", "arn:aws:iot:local:000000000000:topicfilter/#", partitions=2, batch_size=10)


async def append(store: Store, sub: StreamSubscription, messages: list[tuple[str, str]]) -> None:
    for topic, payload in messages:
        record = SourceRecord(topic, time.time(), payload.encode(), {"topic": topic})
        await store.log.append(sub.stream(partition_of(topic, sub.partitions)), encode_record(record))


def node(store: Store, functions: Functions, name: str, **options: Any) -> StreamConsumers:
    return StreamConsumers(
        store, functions.node(name), Publisher(store), app="home", node=name, retry_policy=FAST, **options
    )


@asynccontextmanager
async def sqlite(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(f"sqlite:///{tmp_path}/s.db")
    try:
        yield store
    finally:
        await store.close()


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def in_order(handled: list[str], sent: list[tuple[str, str]]) -> bool:
    """Every topic's first sightings come in the order sent (duplicates from at-least-once are allowed)."""
    for topic in {t for t, _ in sent}:
        expected = [p for t, p in sent if t == topic]
        firsts = list(dict.fromkeys(p for p in handled if p in set(expected)))
        if firsts != expected:
            return False
    return True


async def test_one_node_reads_each_partition_and_another_takes_over_from_the_checkpoint(tmp_path: Path) -> None:
    sent = [(f"dev{n % 5}", f"{n % 5}-{n}") for n in range(100)]
    functions = Functions()
    async with sqlite(tmp_path) as store:
        first, second = node(store, functions, "a"), node(store, functions, "b", ownership_ttl=0.6)
        await first.update([SUB])
        await until(lambda: len(first.owned()) == 2)
        await second.update([SUB])
        await append(store, SUB, sent[:50])
        await until(lambda: len(functions.handled()) >= 50)
        assert {name for name, _ in functions.batches} == {"a"}
        assert second.owned() == []
        await first.stop()
        await append(store, SUB, sent[50:])
        await until(lambda: len(functions.handled()) >= 100)
        await second.stop()
        positions = [await store.log.position(SUB.stream(n), SOURCE_GROUP) for n in range(2)]
        last = [await store.log.last_offset(SUB.stream(n)) for n in range(2)]
    assert {name for name, _ in functions.batches[-1:]} == {"b"}
    assert sorted(functions.handled()) == sorted(p for _, p in sent)
    assert in_order(functions.handled(), sent)
    assert positions == last


async def test_a_failing_partition_holds_up_only_itself(tmp_path: Path) -> None:
    functions = Functions()
    functions.fail = lambda payloads: "bad" in payloads
    bad_topic = "dev0"
    good_topic = next(f"dev{n}" for n in range(1, 20) if partition_of(f"dev{n}", 2) != partition_of(bad_topic, 2))
    async with sqlite(tmp_path) as store:
        consumers = node(store, functions, "a")
        await consumers.update([SUB])
        await append(store, SUB, [(bad_topic, "bad"), (bad_topic, "after-bad")])
        await append(store, SUB, [(good_topic, f"good-{n}") for n in range(20)])
        await until(lambda: functions.handled().count("good-19") == 1)
        await until(lambda: functions.handled().count("bad") >= 3)
        await consumers.stop()
    behind = [batch for _, batch in functions.batches if "after-bad" in batch]
    assert all(batch[0] == "bad" for batch in behind), "a record behind a failing one ran without it"


async def test_a_slow_key_does_not_stall_the_others(tmp_path: Path) -> None:
    functions = Functions()
    released = asyncio.Event()
    functions.hold = {"slow": released}
    slow_topic = "dev0"
    other = next(f"dev{n}" for n in range(1, 20) if partition_of(f"dev{n}", 2) != partition_of(slow_topic, 2))
    async with sqlite(tmp_path) as store:
        consumers = node(store, functions, "a")
        await consumers.update([SUB])
        await append(store, SUB, [(slow_topic, "slow"), (slow_topic, "after-slow")])
        await append(store, SUB, [(other, f"other-{n}") for n in range(20)])
        await until(lambda: "other-19" in functions.done)
        stalled = "slow" not in functions.done and "after-slow" not in functions.done
        released.set()
        await until(lambda: "after-slow" in functions.done)
        await consumers.stop()
    assert stalled, "while its handler ran, the slow key waited (in order) and the other partition went on"
    assert functions.done.index("slow") < functions.done.index("after-slow")


async def test_records_given_up_on_go_to_a_function_destination(tmp_path: Path) -> None:
    from triggerfish.model import Destination

    functions = Functions()
    functions.fail = lambda payloads: "bad" in payloads
    sub = StreamSubscription(
        "ingest", "mqtt", "arn", batch_size=4, options=BatchOptions(max_retries=2, bisect_on_error=True),
        on_failure=Destination("function", "alarm"),
    )  # fmt: skip
    async with sqlite(tmp_path) as store:
        consumers = node(store, functions, "a")
        await consumers.update([sub])
        await append(store, sub, [("t", "1"), ("t", "bad"), ("t", "3"), ("t", "4")])
        await until(lambda: bool(functions.queued) and "4" in functions.handled())
        await consumers.stop()
    function, record = functions.queued[0]
    assert function == "alarm"
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["MQTTBatchInfo"]["shardId"] == "partition-000"
    assert [base64.b64decode(r["mqtt"]["data"]) for r in record["records"]] == [b"bad"]
    assert "1" in functions.handled()
    assert "3" in functions.handled()


async def test_a_restarted_node_takes_its_partitions_back_at_once_and_reruns_what_was_not_committed(
    tmp_path: Path,
) -> None:
    functions = Functions()
    sub = StreamSubscription("ingest", "mqtt", "arn", batch_size=5)
    async with sqlite(tmp_path) as store:
        await append(store, sub, [("t", str(n)) for n in range(5)])
        # A claim taken by a node that then died: leased for a long time, never committed.
        dead = await store.log.claim(sub.stream(0), SOURCE_GROUP, limit=5, lease=600)
        assert dead is not None
        restarted = node(store, functions, "a")
        await restarted.update([sub])
        await until(lambda: len(functions.handled()) == 5, seconds=5)
        await restarted.stop()
        position = await store.log.position(sub.stream(0), SOURCE_GROUP)
    assert functions.handled() == ["0", "1", "2", "3", "4"]
    assert position == 5
