"""Taking a concurrency slot within a bounded wait: shared by every Runner."""

from __future__ import annotations

import asyncio
import contextlib


async def acquire_within(slots: asyncio.Semaphore, wait: float) -> bool:
    """Take a slot of `slots`, waiting at most `wait` seconds; False when none freed up in time.

    A free slot is taken without yielding to the loop (the warm path's cost).
    """
    if not slots.locked():
        await slots.acquire()
        return True
    if wait <= 0:
        return False
    # Not asyncio.wait_for around acquire(): on 3.11 it can time out after the acquire
    # succeeded and leak the slot.
    task = asyncio.ensure_future(slots.acquire())
    await asyncio.wait({task}, timeout=wait)
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return task.done() and not task.cancelled() and task.exception() is None
