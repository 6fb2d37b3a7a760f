"""BackgroundWrites: items added without waiting go out in batches, one batch at a time; `settled` waits for them."""

from __future__ import annotations

import asyncio
import logging

import pytest

from triggerfish.runtime.background_writes import BackgroundWrites


class Recorder:
    """A `write` that records its batches and can be held open, as a slow commit is."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()

    async def __call__(self, batch: list[int]) -> None:
        self.entered.set()
        await self.gate.wait()
        self.batches.append(batch)


async def test_items_added_in_one_turn_go_out_in_one_batch() -> None:
    write = Recorder()
    writes = BackgroundWrites(write)
    for item in range(5):
        writes.add(item)
    assert writes.pending == 5
    await writes.settled()
    assert write.batches == [[0, 1, 2, 3, 4]]
    assert writes.pending == 0


async def test_items_added_during_a_write_go_out_together_in_the_next() -> None:
    write = Recorder()
    write.gate.clear()
    writes = BackgroundWrites(write)
    writes.add(0)
    await asyncio.wait_for(write.entered.wait(), 10)  # the first batch is being written and held
    for item in range(1, 4):
        writes.add(item)
    write.gate.set()
    await writes.settled()
    assert write.batches == [[0], [1, 2, 3]]


async def test_settled_waits_for_what_was_added_before_it_not_after() -> None:
    write = Recorder()
    write.gate.clear()
    writes = BackgroundWrites(write)
    writes.add(0)
    await asyncio.wait_for(write.entered.wait(), 10)
    waiting = asyncio.ensure_future(writes.settled())
    writes.add(1)  # after settled() was called: it need not wait for this one
    await asyncio.sleep(0)
    assert not waiting.done()  # item 0 is still being written
    write.gate.set()
    await asyncio.wait_for(waiting, 10)
    assert write.batches[0] == [0]
    await writes.settled()
    assert write.batches == [[0], [1]]


async def test_a_failed_write_is_logged_and_the_next_batches_still_go(caplog: pytest.LogCaptureFixture) -> None:
    written: list[list[int]] = []

    async def write(batch: list[int]) -> None:
        if 0 in batch:
            raise RuntimeError("disk on fire")
        written.append(batch)

    writes = BackgroundWrites(write)
    writes.add(0)
    with caplog.at_level(logging.ERROR, logger="triggerfish.runtime"):
        await writes.settled()
    assert "a background write of 1 items failed" in caplog.text
    writes.add(1)
    await writes.settled()
    assert written == [[1]]


async def test_settled_returns_at_once_when_nothing_was_added() -> None:
    writes: BackgroundWrites[int] = BackgroundWrites(Recorder())
    await asyncio.wait_for(writes.settled(), 1)


async def test_items_left_by_a_cancelled_task_are_written_by_settled() -> None:
    write = Recorder()
    writes = BackgroundWrites(write)
    writes.add(0)
    task = writes._task
    assert task is not None
    task.cancel()  # before it ran: the item is still pending
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(writes.settled(), 10)
    assert write.batches == [[0]]
