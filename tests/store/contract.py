"""The store contract, written once against the interface and run for every backend.

A backend's test module subclasses `StoreContract` and says how to open a
fresh store and how to let time pass (a fake clock for the memory store, real
sleeps for SQLite). Times used here are short so the suite stays fast.
"""

from __future__ import annotations

import abc
import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.backends import OpensStore
from tests.patience import scaled
from triggerfish.errors import InvalidInputError, InvalidNameError, StoreClosedError
from triggerfish.store import ABSENT, OutgoingMessage, QueueConfig, Store

#: A lease long enough that it cannot end while a test looks at it, on a loaded machine.
LONG = 30.0
#: A lease or delay the test waits out with `advance`.
SHORT = 0.2


class StoreContract(OpensStore):
    """Every backend opens a fresh, empty store per test."""

    @abc.abstractmethod
    async def advance(self, seconds: float) -> None:
        """Let at least `seconds` pass on the store's clock."""


# --- the event log ---------------------------------------------------------------------------


class LogContract(StoreContract):
    async def test_offsets_start_at_one_and_count_per_stream(self, store: Store) -> None:
        first = await store.log.append("orders", b"a")
        second = await store.log.append("orders", b"b")
        other = await store.log.append("audit", b"c")
        assert (first.offset, second.offset, other.offset) == (1, 2, 1)
        assert await store.log.last_offset("orders") == 2
        assert await store.log.last_offset("never-used") == 0
        assert await store.log.streams() == ["audit", "orders"]

    async def test_bytes_come_back_exactly(self, store: Store) -> None:
        bodies = [b"", b"\x00\xff\x00", bytes(range(256)) * 40, "é✓".encode()]
        await store.log.append_many("s", bodies)
        assert [r.data for r in await store.log.read("s")] == bodies

    async def test_append_many_is_ordered_and_contiguous(self, store: Store) -> None:
        await store.log.append("s", b"first")
        records = await store.log.append_many("s", [b"%d" % i for i in range(50)])
        assert [r.offset for r in records] == list(range(2, 52))
        assert [r.data for r in await store.log.read("s", after=1, limit=100)] == [b"%d" % i for i in range(50)]
        assert await store.log.append_many("s", []) == []
        assert await store.log.last_offset("s") == 51

    async def test_concurrent_appends_get_distinct_contiguous_offsets(self, store: Store) -> None:
        async def producer(n: int) -> list[int]:
            return [(await store.log.append("s", b"%d-%d" % (n, i))).offset for i in range(20)]

        offsets = [o for batch in await asyncio.gather(*(producer(n) for n in range(8))) for o in batch]
        assert sorted(offsets) == list(range(1, 161))

    async def test_read_after_and_limit(self, store: Store) -> None:
        await store.log.append_many("s", [b"%d" % i for i in range(1, 11)])
        page = await store.log.read("s", after=3, limit=4)
        assert [r.offset for r in page] == [4, 5, 6, 7]
        assert [r.data for r in page] == [b"4", b"5", b"6", b"7"]
        assert await store.log.read("s", after=10) == []
        assert await store.log.read("missing") == []

    async def test_read_by_time_range(self, store: Store) -> None:
        await store.log.append("s", b"old")
        await self.advance(SHORT)
        middle = await store.log.append("s", b"middle")
        await self.advance(SHORT)
        newest = await store.log.append("s", b"new")
        window = await store.log.read("s", since=middle.time, until=newest.time)
        assert [r.data for r in window] == [b"middle"]
        assert [r.data for r in await store.log.read("s", since=middle.time)] == [b"middle", b"new"]
        assert [r.data for r in await store.log.read("s", until=middle.time)] == [b"old"]

    async def test_long_poll_returns_a_record_appended_later_promptly(self, store: Store) -> None:
        await store.log.append("s", b"seen")
        reader = asyncio.ensure_future(store.log.read("s", after=1, wait=10.0))
        await asyncio.sleep(0.05)
        assert not reader.done()
        started = time.monotonic()
        await store.log.append("s", b"fresh")
        records = await asyncio.wait_for(reader, 5)
        assert [r.data for r in records] == [b"fresh"]
        assert time.monotonic() - started < 1.0

    async def test_long_poll_gives_up_after_wait(self, store: Store) -> None:
        started = time.monotonic()
        assert await store.log.read("s", wait=0.15) == []
        assert 0.1 <= time.monotonic() - started < 2.0

    async def test_trim_by_age_keeps_offsets_and_never_reuses_them(self, store: Store) -> None:
        await store.log.append_many("s", [b"a", b"b"])
        await self.advance(SHORT * 2)
        await store.log.append("s", b"c")
        assert await store.log.trim("s", max_age=SHORT) == 2
        assert [(r.offset, r.data) for r in await store.log.read("s")] == [(3, b"c")]
        await self.advance(SHORT * 2)
        assert await store.log.trim("s", max_age=SHORT) == 1
        assert await store.log.read("s") == []
        assert await store.log.last_offset("s") == 3
        assert (await store.log.append("s", b"d")).offset == 4
        assert "s" in await store.log.streams()

    async def test_trim_by_size_drops_the_oldest(self, store: Store) -> None:
        await store.log.append_many("s", [b"x" * 100] * 5)
        assert await store.log.trim("s", max_bytes=250) == 3
        assert [r.offset for r in await store.log.read("s")] == [4, 5]
        assert await store.log.trim("s", max_bytes=250) == 0
        assert await store.log.trim("s", max_bytes=0) == 2
        assert await store.log.trim("missing", max_bytes=0) == 0

    async def test_records_are_found_by_their_keys_in_every_stream(self, store: Store) -> None:
        await store.log.append("plain", b"no keys")
        await store.log.append_many("orders", [b"o1", b"o2", b"o3"], keys=[("r/b/1", "t/x/1"), (), ("r/a/1",)])
        await store.log.append_many("refunds", [b"f1"], keys=[("r/b/2", "t/x/2")])
        found = await store.log.find("r/")
        assert [(key, r.stream, r.offset, r.data) for key, r in found] == [
            ("r/a/1", "orders", 3, b"o3"),
            ("r/b/1", "orders", 1, b"o1"),
            ("r/b/2", "refunds", 1, b"f1"),
        ]
        assert [key for key, _ in await store.log.find("t/x/")] == ["t/x/1", "t/x/2"]  # by the second key
        assert [key for key, _ in await store.log.find("r/b/")] == ["r/b/1", "r/b/2"]
        assert [key for key, _ in await store.log.find("r/", limit=2)] == ["r/a/1", "r/b/1"]
        assert await store.log.find("r/c") == []
        # Keys do not change what the streams hold.
        assert [r.data for r in await store.log.read("orders")] == [b"o1", b"o2", b"o3"]

    async def test_a_record_found_by_both_keys_comes_once_for_each(self, store: Store) -> None:
        await store.log.append_many("s", [b"x"], keys=[("k/1", "k/2")])
        assert [(key, r.data) for key, r in await store.log.find("k/")] == [("k/1", b"x"), ("k/2", b"x")]

    async def test_keys_go_with_their_records_when_the_stream_is_trimmed(self, store: Store) -> None:
        await store.log.append_many("s", [b"a", b"b"], keys=[("k/a",), ("k/b",)])
        await self.advance(SHORT * 2)
        await store.log.append_many("s", [b"c"], keys=[("k/c",)])
        assert await store.log.trim("s", max_age=SHORT) == 2
        assert [(key, r.offset) for key, r in await store.log.find("k/")] == [("k/c", 3)]

    async def test_keys_are_found_in_utf8_byte_order(self, store: Store) -> None:
        keys = ["k/é", "k/z", "k/A", "k/✓"]
        await store.log.append_many("s", [key.encode() for key in keys], keys=[(key,) for key in keys])
        assert [key for key, _ in await store.log.find("k/")] == sorted(keys, key=str.encode)


# --- queues ----------------------------------------------------------------------------------


class QueueContract(StoreContract):
    async def test_send_receive_ack(self, store: Store) -> None:
        sent = await store.queues.send("jobs", b"\x00body", attributes={"kind": "test"})
        [message] = await store.queues.receive("jobs", visibility_timeout=LONG)
        assert message.message_id == sent.message_id
        assert not sent.duplicate
        assert (message.queue, message.body, dict(message.attributes)) == ("jobs", b"\x00body", {"kind": "test"})
        assert message.receive_count == 1
        assert message.lease_expires_at == pytest.approx(message.first_received_at + LONG, abs=0.01)
        assert await store.queues.ack("jobs", message.receipt) is True
        assert await store.queues.ack("jobs", message.receipt) is False
        assert await store.queues.receive("jobs") == []
        assert (await store.queues.stats("jobs")).depth == 0

    async def test_attributes_come_back_as_they_were_sent(self, store: Store) -> None:
        # Quotes, escapes and text beyond ASCII (the SQLite store writes them with orjson), and a name that is a
        # subclass of str (which orjson refuses as a key: the store falls back to json for it).
        class Name(str):
            pass

        sent = {"quoted": 'say "hi"\\\n', "ünïcode": "😀 ∂", Name("named"): "x"}
        await store.queues.send("jobs", b"body", attributes=sent)
        [message] = await store.queues.receive("jobs", visibility_timeout=LONG)
        assert dict(message.attributes) == {"quoted": 'say "hi"\\\n', "ünïcode": "😀 ∂", "named": "x"}
        assert await store.queues.ack_many("jobs", [message.receipt, "ünïcode.receipt"]) == [True, False]

    async def test_message_ids_are_uuid7s_that_sort_by_when_they_were_sent(self, store: Store) -> None:
        # Time-ordered, so that each send adds at the end of the store's index of messages and each acknowledgement
        # takes from its start, rather than each writing a page of its own.
        first = await store.queues.send("jobs", b"1")
        await asyncio.sleep(0.002)
        later = await store.queues.send_many("jobs", [OutgoingMessage(b"2"), OutgoingMessage(b"3")])
        ids = [first.message_id, *(result.message_id for result in later)]
        assert [uuid.UUID(message_id).version for message_id in ids] == [7, 7, 7]
        assert len(set(ids)) == 3
        assert all(ids[0] < later_id for later_id in ids[1:])
        # A write's ids are drawn together (SQLite): more of them than one draw from the randomness pool covers.
        many = [result.message_id for result in await store.queues.send_many("jobs", [OutgoingMessage(b"m")] * 500)]
        assert len(set(many)) == 500
        assert all(uuid.UUID(i).hex == i and uuid.UUID(i).version == 7 for i in many)
        assert all(uuid.UUID(i).variant == uuid.RFC_4122 and ids[0] < i for i in many)

    async def test_leased_message_is_hidden_until_the_lease_ends(self, store: Store) -> None:
        await store.queues.send("jobs", b"work")
        [first] = await store.queues.receive("jobs", visibility_timeout=SHORT)
        assert await store.queues.receive("jobs") == []
        await self.advance(SHORT * 1.5)
        [again] = await store.queues.receive("jobs", visibility_timeout=LONG)
        assert again.message_id == first.message_id
        assert again.receive_count == 2
        assert again.receipt != first.receipt
        assert again.first_received_at == first.first_received_at

    async def test_stale_receipt_is_refused(self, store: Store) -> None:
        await store.queues.send("jobs", b"work")
        [first] = await store.queues.receive("jobs", visibility_timeout=SHORT)
        await self.advance(SHORT * 1.5)
        assert await store.queues.ack("jobs", first.receipt) is False  # lease ended, nobody holds it
        [second] = await store.queues.receive("jobs", visibility_timeout=LONG)
        assert await store.queues.ack("jobs", first.receipt) is False
        assert await store.queues.release("jobs", first.receipt) is False
        assert await store.queues.extend("jobs", first.receipt, LONG) is False
        assert await store.queues.ack_many("jobs", [first.receipt, second.receipt, "nonsense", ""]) == [
            False,
            True,
            False,
            False,
        ]

    async def test_ack_many_with_a_receipt_twice_acknowledges_once(self, store: Store) -> None:
        await store.queues.send_many("jobs", [OutgoingMessage(b"a"), OutgoingMessage(b"b")])
        a, b = await store.queues.receive("jobs", max_messages=2, visibility_timeout=LONG)
        assert await store.queues.ack_many("jobs", [a.receipt, b.receipt, a.receipt]) == [True, True, False]
        assert (await store.queues.stats("jobs")).depth == 0

    async def test_queue_visibility_timeout_is_the_default_lease(self, store: Store) -> None:
        await store.queues.configure("jobs", QueueConfig(visibility_timeout=SHORT))
        await store.queues.send("jobs", b"work")
        [first] = await store.queues.receive("jobs")
        assert first.lease_expires_at - first.first_received_at == pytest.approx(SHORT, abs=0.01)
        await self.advance(SHORT * 1.5)
        assert [m.receive_count for m in await store.queues.receive("jobs")] == [2]

    async def test_release_with_delay(self, store: Store) -> None:
        await store.queues.send("jobs", b"work")
        [message] = await store.queues.receive("jobs", visibility_timeout=LONG)
        assert await store.queues.release("jobs", message.receipt, delay=SHORT) is True
        assert await store.queues.receive("jobs") == []
        stats = await store.queues.stats("jobs")
        assert (stats.visible, stats.delayed, stats.in_flight) == (0, 1, 0)
        await self.advance(SHORT * 1.5)
        [again] = await store.queues.receive("jobs")
        assert again.receive_count == 2
        assert await store.queues.ack("jobs", message.receipt) is False

    async def test_release_at_once_makes_it_visible(self, store: Store) -> None:
        await store.queues.send("jobs", b"work")
        [message] = await store.queues.receive("jobs", visibility_timeout=LONG)
        assert await store.queues.release("jobs", message.receipt)
        assert [m.body for m in await store.queues.receive("jobs")] == [b"work"]

    async def test_extend_keeps_the_lease(self, store: Store) -> None:
        await store.queues.send("jobs", b"work")
        [message] = await store.queues.receive("jobs", visibility_timeout=SHORT)
        assert await store.queues.extend("jobs", message.receipt, LONG) is True
        await self.advance(SHORT * 1.5)
        assert await store.queues.receive("jobs") == []
        assert await store.queues.ack("jobs", message.receipt) is True

    async def test_delayed_send(self, store: Store) -> None:
        await store.queues.send("jobs", b"later", delay=SHORT)
        await store.queues.send("jobs", b"now")
        assert [m.body for m in await store.queues.receive("jobs", max_messages=10)] == [b"now"]
        stats = await store.queues.stats("jobs")
        assert (stats.visible, stats.delayed, stats.in_flight) == (0, 1, 1)
        await self.advance(SHORT * 1.5)
        assert [m.body for m in await store.queues.receive("jobs", max_messages=10)] == [b"later"]

    async def test_oldest_first_and_batches(self, store: Store) -> None:
        results = await store.queues.send_many("jobs", [OutgoingMessage(b"%d" % i) for i in range(25)])
        assert len({r.message_id for r in results}) == 25
        first = await store.queues.receive("jobs", max_messages=10, visibility_timeout=LONG)
        second = await store.queues.receive("jobs", max_messages=100, visibility_timeout=LONG)
        assert [m.body for m in first + second] == [b"%d" % i for i in range(25)]
        assert [m.message_id for m in first + second] == [r.message_id for r in results]

    async def test_dedup_id_within_the_window(self, store: Store) -> None:
        # The window must outlast the eight calls below on the store's real clock: stretched by load (on
        # PostgreSQL at load 16 they took 0.6 s, and a 0.4 s window had ended before the last send).
        window = scaled(SHORT * 2)
        await store.queues.configure("jobs", QueueConfig(dedup_window=window))
        original = await store.queues.send("jobs", b"one", dedup_id="order-7")
        repeat = await store.queues.send("jobs", b"two", dedup_id="order-7")
        assert repeat.duplicate
        assert repeat.message_id == original.message_id
        batch = await store.queues.send_many(
            "jobs", [OutgoingMessage(b"x", dedup_id="b"), OutgoingMessage(b"y", dedup_id="b")]
        )
        assert [r.duplicate for r in batch] == [False, True]
        assert batch[0].message_id == batch[1].message_id
        assert (await store.queues.stats("jobs")).visible == 2
        # acknowledging does not end the window: a retry of the same send is still a duplicate
        [message] = await store.queues.receive("jobs")
        await store.queues.ack("jobs", message.receipt)
        assert (await store.queues.send("jobs", b"three", dedup_id="order-7")).duplicate
        await self.advance(window * 1.25)
        fresh = await store.queues.send("jobs", b"four", dedup_id="order-7")
        assert not fresh.duplicate
        assert fresh.message_id != original.message_id

    async def test_fifo_one_in_flight_per_group_in_send_order(self, store: Store) -> None:
        await store.queues.configure("orders", QueueConfig(fifo=True))
        for body, group in [(b"a1", "a"), (b"a2", "a"), (b"b1", "b"), (b"a3", "a"), (b"b2", "b")]:
            await store.queues.send("orders", body, group=group)
        batch = await store.queues.receive("orders", max_messages=10, visibility_timeout=LONG)
        assert [m.body for m in batch] == [b"a1", b"b1"]
        assert await store.queues.receive("orders", max_messages=10) == []
        a1, b1 = batch
        await store.queues.release("orders", b1.receipt)
        assert [m.body for m in await store.queues.receive("orders", visibility_timeout=LONG)] == [b"b1"]
        await store.queues.ack("orders", a1.receipt)
        assert [m.body for m in await store.queues.receive("orders", max_messages=10, visibility_timeout=LONG)] == [
            b"a2"
        ]

    async def test_fifo_group_waits_for_a_delayed_release(self, store: Store) -> None:
        await store.queues.configure("orders", QueueConfig(fifo=True))
        await store.queues.send_many("orders", [OutgoingMessage(b"a1", group="a"), OutgoingMessage(b"a2", group="a")])
        [a1] = await store.queues.receive("orders", max_messages=10, visibility_timeout=LONG)
        await store.queues.release("orders", a1.receipt, delay=SHORT)
        assert await store.queues.receive("orders", max_messages=10) == []
        await self.advance(SHORT * 1.5)
        assert [m.body for m in await store.queues.receive("orders", max_messages=10)] == [b"a1"]

    async def test_fifo_expired_lease_redelivers_the_same_head(self, store: Store) -> None:
        await store.queues.configure("orders", QueueConfig(fifo=True))
        await store.queues.send_many("orders", [OutgoingMessage(b"a1", group="a"), OutgoingMessage(b"a2", group="a")])
        await store.queues.receive("orders", visibility_timeout=SHORT)
        await self.advance(SHORT * 1.5)
        [again] = await store.queues.receive("orders", max_messages=10, visibility_timeout=LONG)
        assert (again.body, again.receive_count) == (b"a1", 2)

    async def test_turning_fifo_on_and_off_with_messages_waiting(self, store: Store) -> None:
        await store.queues.send_many("q", [OutgoingMessage(b"a1", group="a"), OutgoingMessage(b"a2", group="a")])
        await store.queues.configure("q", QueueConfig(fifo=True))
        assert [m.body for m in await store.queues.receive("q", max_messages=10, visibility_timeout=LONG)] == [b"a1"]
        await store.queues.configure("q", QueueConfig(fifo=False))
        assert [m.body for m in await store.queues.receive("q", max_messages=10)] == [b"a2"]

    async def test_standard_queue_ignores_groups_for_ordering(self, store: Store) -> None:
        await store.queues.send_many("jobs", [OutgoingMessage(b"a1", group="a"), OutgoingMessage(b"a2", group="a")])
        batch = await store.queues.receive("jobs", max_messages=10)
        assert [(m.body, m.group) for m in batch] == [(b"a1", "a"), (b"a2", "a")]

    async def test_dead_letter_after_max_receives(self, store: Store) -> None:
        await store.queues.configure("jobs", QueueConfig(max_receives=2, dead_letter="jobs.dlq"))
        sent = await store.queues.send("jobs", b"poison", group="g", attributes={"k": "v"})
        sent_at = (await store.queues.receive("jobs", visibility_timeout=SHORT))[0].sent_at
        await self.advance(SHORT * 1.5)
        assert [m.receive_count for m in await store.queues.receive("jobs", visibility_timeout=SHORT)] == [2]
        await self.advance(SHORT * 1.5)
        assert await store.queues.receive("jobs", max_messages=10) == []
        assert (await store.queues.stats("jobs")).depth == 0
        [dead] = await store.queues.receive("jobs.dlq")
        assert (dead.message_id, dead.body, dict(dead.attributes), dead.group) == (
            sent.message_id,
            b"poison",
            {"k": "v"},
            "g",
        )
        assert dead.sent_at == sent_at
        assert dead.receive_count == 1

    async def test_dead_letter_leaves_healthy_messages_deliverable(self, store: Store) -> None:
        await store.queues.configure("jobs", QueueConfig(max_receives=1, dead_letter="dlq"))
        await store.queues.send("jobs", b"bad")
        await store.queues.receive("jobs", visibility_timeout=SHORT)
        await store.queues.send("jobs", b"good")
        await self.advance(SHORT * 1.5)
        assert [m.body for m in await store.queues.receive("jobs", max_messages=10)] == [b"good"]
        assert (await store.queues.stats("dlq")).visible == 1

    async def test_retention_drops_old_messages(self, store: Store) -> None:
        await store.queues.configure("jobs", QueueConfig(retention=SHORT))
        await store.queues.send("jobs", b"old")
        await self.advance(SHORT * 1.5)
        await store.queues.send("jobs", b"new")
        assert (await store.queues.stats("jobs")).visible == 1
        assert [m.body for m in await store.queues.receive("jobs", max_messages=10)] == [b"new"]

    async def test_purge_and_stats(self, store: Store) -> None:
        empty = await store.queues.stats("empty")
        assert (empty.depth, empty.oldest_age, empty.next_visible_at) == (0, None, None)
        await store.queues.send_many("jobs", [OutgoingMessage(b"%d" % i) for i in range(5)])
        sent_at = store.queues.clock()
        await store.queues.send("jobs", b"later", delay=LONG)
        await store.queues.send("jobs", b"much later", delay=LONG * 2)
        await store.queues.receive("jobs", max_messages=2, visibility_timeout=LONG)
        await self.advance(SHORT)
        stats = await store.queues.stats("jobs")
        assert (stats.visible, stats.delayed, stats.in_flight, stats.depth) == (3, 2, 2, 7)
        assert stats.oldest_age is not None
        assert stats.oldest_age >= SHORT * 0.9
        # The earliest delayed message, not a lease: a test clock or a scheduler can wait exactly that long.
        assert stats.next_visible_at == pytest.approx(sent_at + LONG, abs=0.5)
        assert await store.queues.purge("jobs") == 7
        assert (await store.queues.stats("jobs")).depth == 0
        assert await store.queues.receive("jobs") == []

    async def test_long_poll_receive_gets_a_later_send_promptly(self, store: Store) -> None:
        receiver = asyncio.ensure_future(store.queues.receive("jobs", wait=10.0))
        await asyncio.sleep(0.05)
        assert not receiver.done()
        started = time.monotonic()
        await store.queues.send("jobs", b"hello")
        messages = await asyncio.wait_for(receiver, 5)
        assert [m.body for m in messages] == [b"hello"]
        assert time.monotonic() - started < 1.0

    async def test_config_roundtrip_and_queue_list(self, store: Store) -> None:
        assert await store.queues.config("new") == QueueConfig()
        config = QueueConfig(visibility_timeout=5, max_receives=3, dead_letter="dlq", fifo=True, dedup_window=60)
        await store.queues.configure("orders", config)
        assert await store.queues.config("orders") == config
        await store.queues.send("jobs", b"x")
        assert {"jobs", "orders"} <= set(await store.queues.queues())


# --- key-value records -----------------------------------------------------------------------


class KeyValueContract(StoreContract):
    async def test_put_get_delete(self, store: Store) -> None:
        record = await store.kv.put("ns", "key", b"\x00value")
        assert record is not None
        assert await store.kv.get("ns", "key") == record
        assert (record.namespace, record.key, record.value, record.expires_at) == ("ns", "key", b"\x00value", None)
        assert await store.kv.get("other", "key") is None
        assert await store.kv.delete("ns", "key") is True
        assert await store.kv.delete("ns", "key") is False
        assert await store.kv.get("ns", "key") is None

    async def test_versions_are_unique_across_the_store(self, store: Store) -> None:
        a = await store.kv.put("ns", "a", b"1")
        b = await store.kv.put("other", "b", b"1")
        a2 = await store.kv.put("ns", "a", b"2")
        assert a
        assert b
        assert a2
        assert len({a.version, b.version, a2.version}) == 3
        assert a2.version > a.version

    async def test_compare_and_set(self, store: Store) -> None:
        created = await store.kv.put("ns", "k", b"v1", if_version=ABSENT)
        assert created is not None
        assert await store.kv.put("ns", "k", b"again", if_version=ABSENT) is None
        updated = await store.kv.put("ns", "k", b"v2", if_version=created.version)
        assert updated is not None
        assert updated.value == b"v2"
        assert await store.kv.put("ns", "k", b"stale", if_version=created.version) is None
        assert await store.kv.delete("ns", "k", if_version=created.version) is False
        assert (await store.kv.get("ns", "k")) == updated
        assert await store.kv.put("ns", "absent", b"x", if_version=12345) is None
        assert await store.kv.get("ns", "absent") is None

    async def test_no_aba_after_delete_and_recreate(self, store: Store) -> None:
        first = await store.kv.put("ns", "lock", b"holder-1", if_version=ABSENT)
        assert first is not None
        assert await store.kv.delete("ns", "lock", if_version=first.version)
        second = await store.kv.put("ns", "lock", b"holder-2", if_version=ABSENT)
        assert second is not None
        assert second.version != first.version
        assert await store.kv.put("ns", "lock", b"holder-1 again", if_version=first.version) is None

    async def test_concurrent_create_only_has_one_winner(self, store: Store) -> None:
        results = await asyncio.gather(*(store.kv.put("ns", "k", b"%d" % i, if_version=ABSENT) for i in range(20)))
        assert sum(r is not None for r in results) == 1

    async def test_expired_record_is_absent_everywhere(self, store: Store) -> None:
        record = await store.kv.put("ns", "k", b"v", ttl=SHORT)
        assert record is not None
        assert record.expires_at is not None
        assert await store.kv.get("ns", "k") == record
        await store.kv.put("ns", "stays", b"v")
        await self.advance(SHORT * 1.5)
        assert await store.kv.get("ns", "k") is None
        assert [r.key for r in await store.kv.scan("ns")] == ["stays"]
        assert await store.kv.delete("ns", "k") is False
        assert await store.kv.put("ns", "k", b"v2", if_version=record.version) is None
        recreated = await store.kv.put("ns", "k", b"v2", if_version=ABSENT)
        assert recreated is not None
        assert recreated.expires_at is None

    async def test_put_many_is_one_put_per_item_in_order(self, store: Store) -> None:
        before = await store.kv.put("ns", "b", b"old", ttl=LONG)
        assert before is not None
        written = await store.kv.put_many("ns", [("b", b"1"), ("a", b"2"), ("b", b"3")], ttl=LONG)
        assert [(r.key, r.value) for r in written] == [("b", b"1"), ("a", b"2"), ("b", b"3")]
        versions = [r.version for r in written]
        assert versions == sorted(set(versions))
        assert versions[0] > before.version
        assert all(r.expires_at is not None for r in written)
        assert await store.kv.get("ns", "b") == written[2]
        assert await store.kv.get("ns", "a") == written[1]
        assert [r.key for r in await store.kv.scan("ns")] == ["a", "b"]
        assert await store.kv.put_many("ns", []) == []
        # compare-and-set still sees the versions put_many handed out
        assert await store.kv.put("ns", "a", b"x", if_version=written[1].version) is not None

    async def test_concurrent_put_many_get_distinct_versions(self, store: Store) -> None:
        batches = await asyncio.gather(
            *(store.kv.put_many("ns", [(f"k{i}/{j}", b"v") for j in range(5)]) for i in range(10)),
            *(store.kv.put("ns", f"single{i}", b"v") for i in range(10)),
        )
        records = [r for batch in batches for r in (batch if isinstance(batch, list) else [batch])]
        versions = [r.version for r in records if r is not None]
        assert len(versions) == len(set(versions)) == 60
        assert len(await store.kv.scan("ns")) == 60

    async def test_put_many_refuses_bad_items_and_writes_nothing(self, store: Store) -> None:
        with pytest.raises(InvalidNameError):
            await store.kv.put_many("ns", [("fine", b"v"), ("", b"v")])
        with pytest.raises(InvalidInputError):
            await store.kv.put_many("ns", [("fine", b"v"), ("other", "text")])  # type: ignore[list-item]
        with pytest.raises(InvalidInputError):
            await store.kv.put_many("ns", [("fine", b"v")], ttl=-1)
        assert await store.kv.scan("ns") == []

    async def test_scan_by_prefix_in_key_order(self, store: Store) -> None:
        for key in ["b/2", "a/1", "b/1", "b%", "b_", "c", "b/3"]:
            await store.kv.put("ns", key, key.encode())
        assert [r.key for r in await store.kv.scan("ns", prefix="b/")] == ["b/1", "b/2", "b/3"]
        assert [r.key for r in await store.kv.scan("ns", prefix="b/", limit=2)] == ["b/1", "b/2"]
        # characters that are wildcards in SQL LIKE must match only themselves
        assert [r.key for r in await store.kv.scan("ns", prefix="b%")] == ["b%"]
        assert [r.key for r in await store.kv.scan("ns", prefix="b_")] == ["b_"]
        assert [r.key for r in await store.kv.scan("ns")] == ["a/1", "b%", "b/1", "b/2", "b/3", "b_", "c"]
        assert await store.kv.scan("empty") == []

    async def test_scan_a_key_range_pages_in_order(self, store: Store) -> None:
        for key in ["t/a", "t/b", "t/c", "t/d", "u/a"]:
            await store.kv.put("ns", key, key.encode())
        # start is inclusive, end exclusive: what a table's pages and sort-key ranges read
        assert [r.key for r in await store.kv.scan("ns", prefix="t/", start="t/b", end="t/d")] == ["t/b", "t/c"]
        first = await store.kv.scan("ns", prefix="t/", limit=2)
        rest = await store.kv.scan("ns", prefix="t/", start=first[-1].key + "\x01")
        assert [r.key for r in first + rest] == ["t/a", "t/b", "t/c", "t/d"]
        assert [r.key for r in await store.kv.scan("ns", start="t/d")] == ["t/d", "u/a"]
        assert [r.key for r in await store.kv.scan("ns", prefix="t/", end="t/")] == []


# --- bad input -------------------------------------------------------------------------------

# A list and a dict too: a check that looks a name up in a set of good ones must still refuse what cannot be hashed.
BAD_NAMES: list[Any] = ["", " ", "a b", "-lead", "x" * 256, "a\x00b", "naïve", None, 7, b"bytes", ["q"], {"q": 1}]
BAD_SECONDS: list[Any] = [-1, -0.001, math.nan, math.inf, "5", True]


class BadInputContract(StoreContract):
    async def unchanged(self, store: Store) -> None:
        assert await store.log.streams() == []
        assert await store.queues.queues() in ([], ["q"])
        assert (await store.queues.stats("q")).depth == 0
        assert await store.kv.scan("ns") == []

    async def rejects(self, store: Store, error: type[Exception], call: Callable[[], Awaitable[object]]) -> str:
        with pytest.raises(error) as caught:
            await call()
        await self.unchanged(store)
        return str(caught.value)

    @pytest.mark.parametrize("name", BAD_NAMES)
    async def test_bad_names(self, store: Store, name: Any) -> None:
        message = await self.rejects(store, InvalidNameError, lambda: store.log.append(name, b"x"))
        assert "stream name" in message
        assert "letters, digits" in message
        await self.rejects(store, InvalidNameError, lambda: store.queues.send(name, b"x"))
        await self.rejects(store, InvalidNameError, lambda: store.kv.put(name, "k", b"x"))
        await self.rejects(store, InvalidNameError, lambda: store.queues.configure(name, QueueConfig()))

    @pytest.mark.parametrize("key", ["", "k" * 1025, "a\x00b", None, 5])
    async def test_bad_keys(self, store: Store, key: Any) -> None:
        await self.rejects(store, InvalidNameError, lambda: store.kv.put("ns", key, b"x"))
        if key is not None:  # None means "no dedup id" / "no group"
            await self.rejects(store, InvalidNameError, lambda: store.queues.send("q", b"x", dedup_id=key))
            await self.rejects(store, InvalidNameError, lambda: store.queues.send("q", b"x", group=key))

    async def test_oversize_bodies(self, store: Store) -> None:
        big = b"x" * (store.log.max_record_bytes + 1)
        message = await self.rejects(store, InvalidInputError, lambda: store.log.append("s", big))
        assert f"{len(big)} bytes" in message
        assert "limit" in message
        await self.rejects(store, InvalidInputError, lambda: store.log.append_many("s", [b"ok", big]))
        await self.rejects(store, InvalidInputError, lambda: store.queues.send("q", big))
        await self.rejects(
            store,
            InvalidInputError,
            lambda: store.queues.send_many("q", [OutgoingMessage(b"ok"), OutgoingMessage(big)]),
        )
        await self.rejects(store, InvalidInputError, lambda: store.kv.put("ns", "k", big))
        assert await store.log.append("s", b"x" * store.log.max_record_bytes)  # exactly the limit is fine

    @pytest.mark.parametrize("body", ["text", None, 12, ["b"], {"a": 1}])
    async def test_non_bytes_bodies(self, store: Store, body: Any) -> None:
        message = await self.rejects(store, InvalidInputError, lambda: store.log.append("s", body))
        assert "must be bytes" in message
        await self.rejects(store, InvalidInputError, lambda: store.queues.send("q", body))
        await self.rejects(store, InvalidInputError, lambda: store.kv.put("ns", "k", body))

    async def test_append_many_of_a_single_bytes_object(self, store: Store) -> None:
        message = await self.rejects(store, InvalidInputError, lambda: store.log.append_many("s", b"abc"))  # type: ignore[arg-type]
        assert "append()" in message

    @pytest.mark.parametrize(
        "keys",
        [[("k/1",)], [("k/1",), ("k/2",), ("k/3",)], [["k/1"], ("k/2",)], [("a", "b", "c"), ()], [("",), ()]],
        ids=["too-few", "too-many", "not-a-tuple", "three-keys", "empty-key"],
    )
    async def test_bad_record_keys_append_nothing(self, store: Store, keys: Any) -> None:
        with pytest.raises((InvalidInputError, InvalidNameError)):
            await store.log.append_many("s", [b"1", b"2"], keys=keys)
        assert await store.log.read("s") == []
        for prefix in ("", None):
            with pytest.raises(InvalidInputError, match="prefix"):
                await store.log.find(prefix)  # type: ignore[arg-type]

    @pytest.mark.parametrize("seconds", BAD_SECONDS)
    async def test_bad_durations(self, store: Store, seconds: Any) -> None:
        await self.rejects(store, InvalidInputError, lambda: store.queues.send("q", b"x", delay=seconds))
        await self.rejects(store, InvalidInputError, lambda: store.queues.receive("q", visibility_timeout=seconds))
        await self.rejects(store, InvalidInputError, lambda: store.queues.receive("q", wait=seconds))
        await self.rejects(store, InvalidInputError, lambda: store.kv.put("ns", "k", b"x", ttl=seconds))
        await self.rejects(store, InvalidInputError, lambda: store.log.read("s", wait=seconds))
        await self.rejects(store, InvalidInputError, lambda: store.log.trim("s", max_age=seconds))

    async def test_durations_out_of_range(self, store: Store) -> None:
        await self.rejects(store, InvalidInputError, lambda: store.queues.send("q", b"x", delay=15 * 60 + 1))
        await self.rejects(store, InvalidInputError, lambda: store.kv.put("ns", "k", b"x", ttl=0))
        await self.rejects(store, InvalidInputError, lambda: store.queues.receive("q", visibility_timeout=0))

    @pytest.mark.parametrize(
        ("fields", "words"),
        [
            ({"max_receives": 3}, "go together"),
            ({"dead_letter": "dlq"}, "go together"),
            ({"max_receives": 0, "dead_letter": "dlq"}, "max_receives"),
            ({"max_receives": 2.5, "dead_letter": "dlq"}, "max_receives"),
            ({"max_receives": True, "dead_letter": "dlq"}, "max_receives"),
            ({"visibility_timeout": -1}, "visibility_timeout"),
            ({"visibility_timeout": math.nan}, "visibility_timeout"),
            ({"retention": 0}, "retention"),
            ({"retention": 15 * 24 * 3600}, "retention"),
            ({"dedup_window": -5}, "dedup_window"),
            ({"max_receives": 2, "dead_letter": "bad name"}, "dead-letter queue name"),
        ],
    )
    async def test_bad_queue_config(self, store: Store, fields: dict[str, Any], words: str) -> None:
        with pytest.raises((InvalidInputError, InvalidNameError), match=words):
            QueueConfig(**fields)
        await self.unchanged(store)

    async def test_queue_cannot_dead_letter_to_itself(self, store: Store) -> None:
        config = QueueConfig(max_receives=2, dead_letter="q")
        message = await self.rejects(store, InvalidInputError, lambda: store.queues.configure("q", config))
        assert "own dead-letter" in message
        assert await store.queues.config("q") == QueueConfig()
        await self.rejects(store, InvalidInputError, lambda: store.queues.configure("q", {"fifo": True}))  # type: ignore[arg-type]

    @pytest.mark.parametrize("count", [0, -1, 10_001, 2.0, True, "3"])
    async def test_bad_receive_counts(self, store: Store, count: Any) -> None:
        await self.rejects(store, InvalidInputError, lambda: store.queues.receive("q", max_messages=count))

    @pytest.mark.parametrize("limit", [0, -5, 1.5, "10", None, 2**63])
    async def test_bad_limits(self, store: Store, limit: Any) -> None:
        await self.rejects(store, InvalidInputError, lambda: store.log.read("s", limit=limit))
        await self.rejects(store, InvalidInputError, lambda: store.kv.scan("ns", limit=limit))

    @pytest.mark.parametrize("count", [-1, 1.5, "10", True, 2**63])
    async def test_bad_offsets_and_sizes(self, store: Store, count: Any) -> None:
        await self.rejects(store, InvalidInputError, lambda: store.log.read("s", after=count))
        await self.rejects(store, InvalidInputError, lambda: store.log.trim("s", max_bytes=count))

    @pytest.mark.parametrize("prefix", ["\ud800", None, b"a"])
    async def test_bad_prefixes(self, store: Store, prefix: Any) -> None:
        await self.rejects(store, InvalidInputError, lambda: store.kv.scan("ns", prefix=prefix))

    @pytest.mark.parametrize("value", [math.nan, "yesterday", True])
    async def test_bad_read_times(self, store: Store, value: Any) -> None:
        await self.rejects(store, InvalidInputError, lambda: store.log.read("s", since=value))
        await self.rejects(store, InvalidInputError, lambda: store.log.read("s", until=value))
        await self.rejects(store, InvalidInputError, lambda: store.log.read("s", after=value))

    @pytest.mark.parametrize("version", ["1", 1.0, True, -1])
    async def test_bad_versions(self, store: Store, version: Any) -> None:
        await self.rejects(store, InvalidInputError, lambda: store.kv.put("ns", "k", b"x", if_version=version))
        await self.rejects(store, InvalidInputError, lambda: store.kv.delete("ns", "k", if_version=version))

    async def test_bad_attributes(self, store: Store) -> None:
        await self.rejects(store, InvalidInputError, lambda: store.queues.send("q", b"x", attributes={"n": 1}))  # type: ignore[dict-item]
        await self.rejects(store, InvalidInputError, lambda: store.queues.send("q", b"x", attributes=[("a", "b")]))  # type: ignore[arg-type]
        await self.rejects(store, InvalidInputError, lambda: store.queues.send_many("q", [b"raw"]))  # type: ignore[list-item]

    @pytest.mark.parametrize("receipt", [None, 5, b"bytes"])
    async def test_non_string_receipts(self, store: Store, receipt: Any) -> None:
        await store.queues.send("q", b"x")
        [message] = await store.queues.receive("q", visibility_timeout=LONG)
        calls: list[Callable[[], Awaitable[bool]]] = [
            lambda: store.queues.ack("q", receipt),
            lambda: store.queues.release("q", receipt),
            lambda: store.queues.extend("q", receipt, 5),
        ]
        for call in calls:
            with pytest.raises(InvalidInputError, match="receipt"):
                await call()
        assert await store.queues.ack("q", message.receipt)

    @pytest.mark.parametrize(
        "receipt",
        [
            "",
            ".",
            "x" * 10_000,
            "'; DROP TABLE messages; --",
            "\x00",
            "../../etc/passwd",
            "1.2.3",
            "\ud800",
            '["json"]',
        ],
    )
    async def test_hostile_receipts_are_simply_refused(self, store: Store, receipt: str) -> None:
        await store.queues.send("q", b"x")
        [message] = await store.queues.receive("q", visibility_timeout=LONG)
        assert await store.queues.ack("q", receipt) is False
        assert await store.queues.release("q", receipt) is False
        assert await store.queues.extend("q", receipt, 5) is False
        assert await store.queues.ack("q", message.receipt) is True

    async def test_closed_store_refuses_work(self, store: Store) -> None:
        await store.log.append("s", b"x")
        await store.close()
        with pytest.raises(StoreClosedError):
            await store.log.append("s", b"y")
        with pytest.raises(StoreClosedError):
            await store.queues.send("q", b"y")
        with pytest.raises(StoreClosedError):
            await store.kv.get("ns", "k")
        await store.close()  # closing twice is harmless


# The groups and atomic parts live in modules of their own, which build on StoreContract above.
from tests.store.contract_atomic import AtomicContract  # noqa: E402
from tests.store.contract_groups import GroupContract  # noqa: E402


class FullContract(LogContract, QueueContract, KeyValueContract, BadInputContract, GroupContract, AtomicContract):
    """Everything a backend must do; subclass it once per backend."""
