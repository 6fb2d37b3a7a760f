"""The SQLite writer runs a batch's leases after its writes (store/_sqlite_worker.py): a receive that waited in
the writer's queue takes what was sent while it waited, in the same commit."""

from __future__ import annotations

import asyncio

from triggerfish.store import OutgoingMessage, Store
from triggerfish.store.sqlite import SqliteStore


async def test_a_receive_queued_before_a_send_in_one_commit_takes_what_it_sent(
    stores: tuple[SqliteStore, Store],
) -> None:
    """A dispatcher's look that reached the writer just before an event's invocations does not leave them for its
    next look: it leases them in the commit that sends them."""
    store, other = stores
    # The queue known to this process, so that neither call below looks anything up before its write.
    await store.queues.send("fn.f", b"0")
    [first] = await store.queues.receive("fn.f", visibility_timeout=30)
    assert await store.queues.ack("fn.f", first.receipt)
    before = store.write_stats.batches
    # Submitted in one turn of the event loop: one batch, the receive first.
    received, _ = await asyncio.gather(
        store.queues.receive("fn.f", max_messages=10, visibility_timeout=30),
        store.queues.send_many("fn.f", [OutgoingMessage(b"1"), OutgoingMessage(b"2")]),
    )
    assert [m.body for m in received] == [b"1", b"2"]
    assert [m.receive_count for m in received] == [1, 1]
    assert store.write_stats.batches == before + 1
    assert await other.queues.receive("fn.f") == []  # leased to that receive, and durable
    assert await store.queues.ack_many("fn.f", [m.receipt for m in received]) == [True, True]


async def test_a_log_claim_queued_before_an_append_in_one_commit_claims_it(stores: tuple[SqliteStore, Store]) -> None:
    store, _ = stores
    await store.log.append("bus.b", b"0")
    claim = await store.log.claim("bus.b", "g", limit=10, lease=30)
    assert claim is not None
    assert await store.log.commit(claim)
    claimed, _ = await asyncio.gather(
        store.log.claim("bus.b", "g", limit=10, lease=30),
        store.log.append_many("bus.b", [b"1", b"2"]),
    )
    assert claimed is not None
    assert [record.data for record in claimed.records] == [b"1", b"2"]
