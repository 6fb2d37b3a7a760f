"""Concurrency slots: free ones are taken at once, waiters are served first come first served within their wait,
a wait that runs out is False, and a cancelled waiter never keeps a slot."""

from __future__ import annotations

import asyncio

from triggerfish.runtime.slots import Slots


async def test_free_slots_are_taken_without_waiting_and_the_next_caller_is_refused_at_no_wait() -> None:
    slots = Slots(2)
    assert await slots.take(0)
    assert await slots.take(0)
    assert slots.locked()
    assert not await slots.take(0)
    slots.release()
    assert slots.free == 1
    assert await slots.take(0)


async def test_a_released_slot_goes_to_the_longest_waiting_caller() -> None:
    slots = Slots(1)
    assert await slots.take(1)
    order: list[str] = []

    async def waiter(name: str) -> None:
        assert await slots.take(30)
        order.append(name)

    first = asyncio.ensure_future(waiter("first"))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(waiter("second"))
    await asyncio.sleep(0)
    slots.release()
    assert not await slots.take(0)  # handed to the waiter, not free for a newcomer to barge in on
    await asyncio.wait_for(first, 10)
    assert order == ["first"]
    slots.release()
    await asyncio.wait_for(second, 10)
    assert order == ["first", "second"]
    slots.release()
    assert slots.free == 1


async def test_a_wait_that_runs_out_is_false_and_leaves_the_slots_as_they_were() -> None:
    slots = Slots(1)
    assert await slots.take(1)
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert not await slots.take(0.05)
    assert loop.time() - began >= 0.04
    slots.release()  # the timed-out waiter is skipped: the slot is free again
    assert slots.free == 1


async def test_a_cancelled_waiter_takes_no_slot() -> None:
    slots = Slots(1)
    assert await slots.take(1)
    waiting = asyncio.ensure_future(slots.take(30))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    slots.release()
    assert slots.free == 1


async def test_a_waiter_cancelled_just_as_it_is_handed_a_slot_passes_it_on() -> None:
    slots = Slots(1)
    assert await slots.take(1)
    first = asyncio.ensure_future(slots.take(30))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(slots.take(30))
    await asyncio.sleep(0)
    slots.release()  # handed to the first waiter ...
    first.cancel()  # ... which is cancelled before it resumes
    await asyncio.gather(first, return_exceptions=True)
    assert first.cancelled()
    assert await asyncio.wait_for(second, 10)  # the slot went on to the second
    assert slots.free == 0
    slots.release()
    assert slots.free == 1


def test_slots_that_outlive_their_event_loop_serve_waiters_on_the_next_one() -> None:
    """The loop a waiter's future is made on is remembered (asking costs a system call on Python 3.11), and
    asked for again once that loop is closed: a runner's slots may serve one `asyncio.run` after another."""
    slots = Slots(1)

    async def wait_for_a_released_slot() -> bool:
        assert await slots.take(0)
        asyncio.get_running_loop().call_later(0.01, slots.release)
        handed = await slots.take(5)
        slots.release()
        return handed

    assert asyncio.run(wait_for_a_released_slot())
    assert asyncio.run(wait_for_a_released_slot())
    assert slots.free == 1
