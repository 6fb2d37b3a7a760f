"""A PostgreSQL store call cancelled while it waits for a pooled connection ends cancelled, whenever the cancellation
comes: never a call that goes on (and a stopping loop that never stops) because the connection came in the same
turn. On Python 3.11 psycopg_pool's wait drops such a cancellation (`Engine.connection` says how)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.services import POSTGRES_URL
from triggerfish.store import open_store
from triggerfish.store._waiting import wait_any
from triggerfish.store.postgres import PostgresStore


@pytest.fixture
async def store(schema: str) -> AsyncIterator[PostgresStore]:
    # Two connections: the LISTEN connection may hold one, so a call waits whenever a test holds the other.
    opened = await open_store(f"{POSTGRES_URL}?schema={schema}&pool_size=2&notify=off")
    assert isinstance(opened, PostgresStore)
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_call_cancelled_as_its_connection_arrives_ends_cancelled(store: PostgresStore) -> None:
    pool = store.engine.pool
    await store.kv.put("ns", "key", b"v")
    outcomes: dict[str, int] = {"cancelled": 0, "finished before its cancellation": 0}
    # The turn the cancellation lands in, counted from the connection's return: each in turn, so the one where
    # the pool hands the connection over (where psycopg_pool on 3.11 drops the cancellation) is among them.
    for turns in range(12):
        for _ in range(2):
            held, release = asyncio.Event(), asyncio.Event()
            holder = asyncio.create_task(hold(pool, held, release))
            await held.wait()
            call = asyncio.create_task(store.kv.get("ns", "key"))
            for _ in range(5):  # the call is now waiting for the held connection
                await asyncio.sleep(0)
            release.set()
            for _ in range(turns):
                await asyncio.sleep(0)
            if not call.cancel():
                outcomes["finished before its cancellation"] += 1
                await holder
                continue
            with pytest.raises(asyncio.CancelledError):
                await call  # a call that went on would return the value here
            outcomes["cancelled"] += 1
            await holder
    assert outcomes["cancelled"] > 0, outcomes
    # The pool is whole after all those cancellations: a call still gets a connection and its answer.
    found = await asyncio.wait_for(store.kv.get("ns", "key"), 10)
    assert found is not None
    assert found.value == b"v"


async def hold(pool: Any, held: asyncio.Event, release: asyncio.Event) -> None:
    """Hold one of the pool's connections from `held` until `release`."""
    async with pool.connection() as _:
        held.set()
        await release.wait()


async def test_a_long_poll_in_a_task_whose_cancellation_was_lost_ends_it() -> None:
    """Whatever lost it (another library's wait), a task asked to stop does not long-poll on for good."""

    async def loop_of_receives() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        # Lost, as a library's wait would lose it: the task is still asked to stop (`cancelling()`).
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)
        while True:  # a receive loop: each wait ends by its timeout, and the loop goes on
            await wait_any(asyncio.Event(), 0.01)

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(loop_of_receives(), 10)
