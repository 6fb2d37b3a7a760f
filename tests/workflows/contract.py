"""The workflow state a store keeps, as one contract every backend passes (memory, SQLite, PostgreSQL).

Subclasses say how to open the store (`open`) and how to let store time pass (`advance`).
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from triggerfish.errors import AtomicConflictError
from triggerfish.store import ABSENT, Store
from triggerfish.workflows.engine import Timer, new_record
from triggerfish.workflows.state import WorkflowState


class WorkflowStateContract(abc.ABC):
    @abc.abstractmethod
    async def open(self) -> Store: ...

    @pytest.fixture
    async def state(self) -> AsyncIterator[WorkflowState]:
        store = await self.open()
        try:
            yield WorkflowState(store)
        finally:
            await store.close()

    async def test_a_record_is_created_once(self, state: WorkflowState) -> None:
        record = new_record("w1", "order", {"id": 7}, 100.0)
        await state.atomic([state.put(record, ABSENT)])
        with pytest.raises(AtomicConflictError):
            await state.atomic([state.put(new_record("w1", "order", {"id": 8}, 101.0), ABSENT)])
        stored = await state.get("w1")
        assert stored is not None
        assert stored.record["input"] == {"id": 7}
        assert await state.get("nope") is None

    async def test_a_write_over_an_old_version_changes_nothing_of_the_whole_write(self, state: WorkflowState) -> None:
        record = new_record("w1", "order", None, 100.0)
        await state.atomic([state.put(record, ABSENT)])
        first = await state.get("w1")
        assert first is not None
        await state.atomic([state.put({**record, "status": "SUCCEEDED"}, first.version)])
        stale_timer = state.timer(Timer("w1", 0, time.time(), "wake"), time.time())
        with pytest.raises(AtomicConflictError):
            await state.atomic([state.put({**record, "status": "FAILED"}, first.version), stale_timer])
        now = await state.get("w1")
        assert now is not None
        assert now.record["status"] == "SUCCEEDED"
        assert await state.timers(wait=0.0) == []  # the timer went with the refused write

    async def test_records_are_listed_newest_first_by_function_and_status(self, state: WorkflowState) -> None:
        for index, (function, status) in enumerate([("a", "RUNNING"), ("b", "RUNNING"), ("a", "SUCCEEDED")]):
            record = {**new_record(f"w{index}", function, None, 100.0 + index), "status": status}
            await state.atomic([state.put(record, ABSENT)])
        assert [r["id"] for r in await state.records()] == ["w2", "w1", "w0"]
        assert [r["id"] for r in await state.records(function="a")] == ["w2", "w0"]
        assert [r["id"] for r in await state.records(function="a", status="RUNNING")] == ["w0"]

    async def test_a_timer_comes_up_when_it_is_due_and_not_before(self, state: WorkflowState) -> None:
        now = time.time()
        await state.atomic([state.timer(Timer("w1", 3, now + 0.4, "wake"), now)])
        assert await state.timers(wait=0.0) == []
        deadline = time.monotonic() + 10
        found: list[Any] = []
        while not found and time.monotonic() < deadline:
            found = await state.timers(wait=0.5)
        [(timer, message)] = found
        assert (timer.workflow_id, timer.seq, timer.kind) == ("w1", 3, "wake")
        assert time.time() >= now + 0.4 - 0.05
        await state.atomic([state.ack([message])])
        assert await state.timers(wait=0.0) == []

    async def test_a_timer_due_past_the_longest_delay_is_delayed_by_that_much(self, state: WorkflowState) -> None:
        now = time.time()
        year = Timer("w1", 0, now + 365 * 86400, "wake")
        send = state.timer(year, now)
        assert send.messages[0].delay == 15 * 60.0
        await state.atomic([send])
        assert await state.timers(wait=0.0) == []

    async def test_event_waits_are_kept_per_bus_and_dropped(self, state: WorkflowState) -> None:
        await state.atomic(
            [
                state.wait("w1", 2, "default", {"type": ["paid"]}, 41),
                state.wait("w2", 0, "orders", {"source": ["shop"]}, 0),
            ]
        )
        [wait] = await state.waits("default")
        assert (wait.workflow_id, wait.seq, wait.pattern, wait.after) == ("w1", 2, {"type": ["paid"]}, 41)
        assert {w.bus for w in await state.waits()} == {"default", "orders"}
        await state.atomic([state.drop_wait(wait)])
        assert await state.waits("default") == []

    async def test_the_offset_a_wait_begins_after_is_the_bus_s_last(self, state: WorkflowState) -> None:
        assert await state.offset("default") == 0
        await state.store.log.append("bus.default", b'{"type": "x"}')
        await state.store.log.append("bus.default", b'{"type": "y"}')
        assert await state.offset("default") == 2

    async def test_concurrent_writers_of_one_record_each_land_once(self, state: WorkflowState) -> None:
        await state.atomic([state.put({**new_record("w", "f", None, 0.0), "count": 0}, ABSENT)])

        async def bump() -> None:
            while True:
                stored = await state.get("w")
                assert stored is not None
                try:
                    await state.atomic(
                        [state.put({**stored.record, "count": stored.record["count"] + 1}, stored.version)]
                    )
                    return
                except AtomicConflictError:
                    await asyncio.sleep(0)

        await asyncio.gather(*(bump() for _ in range(8)))
        stored = await state.get("w")
        assert stored is not None
        assert stored.record["count"] == 8
