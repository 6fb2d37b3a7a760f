"""The memory store against the contract, on a fake clock so leases and expiry take no real time."""

from __future__ import annotations

import time

from tests.store.contract import FullContract
from triggerfish.store import Store, open_store
from triggerfish.store.memory import open_memory_store


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class TestMemoryStore(FullContract):
    async def open(self) -> Store:
        self.clock = FakeClock()
        return open_memory_store("memory://", clock=self.clock)

    async def advance(self, seconds: float) -> None:
        self.clock.now += seconds


async def test_open_store_gives_a_fresh_memory_store_each_time() -> None:
    first = await open_store("memory://")
    second = await open_store("memory://?max_record_bytes=10")
    await first.log.append("s", b"x")
    assert await second.log.streams() == []
    assert second.log.max_record_bytes == second.queues.max_record_bytes == second.kv.max_record_bytes == 10
    await first.close()
    await second.close()


async def test_a_clock_stepping_back_keeps_log_times_in_order() -> None:
    clock = FakeClock()
    store = open_memory_store(clock=clock)
    await store.log.append("s", b"a")
    clock.now -= 60
    late = await store.log.append("s", b"b")
    assert [r.data for r in await store.log.read("s", since=late.time)] == [b"a", b"b"]
    await store.close()


async def test_many_acked_messages_leave_no_garbage_behind() -> None:
    store = open_memory_store()
    for _ in range(50):
        await store.queues.send("q", b"x")
        [message] = await store.queues.receive("q", visibility_timeout=60)
        await store.queues.ack("q", message.receipt)
    queue = store.queues._queues_by_name["q"]  # type: ignore[attr-defined]
    assert len(queue.heap) <= 64 + 2 * len(queue.messages)
    await store.close()


async def test_a_dedup_id_is_honoured_for_five_minutes_by_default() -> None:
    clock = FakeClock()
    store = open_memory_store(clock=clock)  # no configure(): the default QueueConfig
    first = await store.queues.send("jobs", b"charge", dedup_id="order-7")
    clock.now += 299
    retried = await store.queues.send("jobs", b"charge", dedup_id="order-7")
    assert (retried.duplicate, retried.message_id) == (True, first.message_id)
    clock.now += 2  # 301 s after the first send: the window has closed
    fresh = await store.queues.send("jobs", b"charge", dedup_id="order-7")
    assert not fresh.duplicate
    assert (await store.queues.stats("jobs")).visible == 2
    await store.close()
