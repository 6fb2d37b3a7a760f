"""Receives made ahead on SQLite (store/_sqlite_ahead.py): a waiting receive is leased in the send's own write."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.patience import until
from triggerfish.errors import AtomicConflictError
from triggerfish.store import OutgoingMessage, QueueConfig, Store, _sqlite_ahead, open_store
from triggerfish.store import sqlite as sqlite_module
from triggerfish.store.atomic import Append, Put, Send
from triggerfish.store.sqlite import SqliteQueues, SqliteStore


async def _until_waiting(store: SqliteStore, queue: str, receives: int = 1) -> None:
    queues = store.queues
    assert isinstance(queues, SqliteQueues)

    def waiting() -> bool:
        return sum(queues.ahead._waiting.get(queue, {}).values()) >= receives

    await until(waiting, 5, f"{receives} receive(s) waiting on {queue}", interval=0.005)


async def test_a_waiting_receive_is_leased_in_the_write_of_the_send_that_wakes_it(
    stores: tuple[SqliteStore, Store],
) -> None:
    """A dispatcher waiting on its function's queue gets the invocations from the send's own transaction: no
    second writer round trip between an event's routing and its handler."""
    store, other = stores
    waiting = asyncio.create_task(store.queues.receive("fn.f", max_messages=10, visibility_timeout=30, wait=10))
    await _until_waiting(store, "fn.f")
    before = store.write_stats.batches
    await store.queues.send_many("fn.f", [OutgoingMessage(b"1"), OutgoingMessage(b"2")])
    messages = await asyncio.wait_for(waiting, 5)
    assert [m.body for m in messages] == [b"1", b"2"]
    assert [m.receive_count for m in messages] == [1, 1]
    assert store.write_stats.batches == before + 1  # the send and the lease: one transaction
    assert await other.queues.receive("fn.f") == []  # leased to this receive
    assert await store.queues.ack_many("fn.f", [m.receipt for m in messages]) == [True, True]


async def test_the_bus_consumers_atomic_send_is_leased_ahead_too(stores: tuple[SqliteStore, Store]) -> None:
    store, _ = stores
    waiting = asyncio.create_task(store.queues.receive("fn.f", max_messages=5, visibility_timeout=30, wait=10))
    await _until_waiting(store, "fn.f")
    before = store.write_stats.batches
    await store.atomic([Send("fn.f", [OutgoingMessage(b"invoke")]), Append("bus.b", [b"routed"])])
    messages = await asyncio.wait_for(waiting, 5)
    assert [m.body for m in messages] == [b"invoke"]
    assert store.write_stats.batches == before + 1


async def test_a_lease_made_for_a_receive_that_stopped_is_handed_back_at_once(
    stores: tuple[SqliteStore, Store],
) -> None:
    """Not left leased for its visibility timeout (30 s here): the next receive anywhere gets the message."""
    store, other = stores
    waiting = asyncio.create_task(store.queues.receive("fn.f", visibility_timeout=30, wait=10))
    await _until_waiting(store, "fn.f")
    sending = asyncio.ensure_future(store.queues.send("fn.f", b"1"))
    waiting.cancel()
    await sending
    began = time.monotonic()
    messages = await until(lambda: other.queues.receive("fn.f", wait=0.2), 5, "the message handed back")
    assert time.monotonic() - began < 15  # the lease made ahead was for 30 s
    assert [m.body for m in messages] == [b"1"]
    assert messages[0].receive_count == 2  # the lease made ahead counts, as a long poll whose client left


async def test_receives_of_other_sizes_waiting_together_each_get_what_they_asked_for(
    stores: tuple[SqliteStore, Store],
) -> None:
    """The lease made ahead is as large as the smallest waiting receive asks, so whichever takes it takes it
    whole: no message is leased to a receive that cannot take it (which would count a receive for nothing)."""
    store, _ = stores
    many = asyncio.create_task(store.queues.receive("fn.f", max_messages=10, visibility_timeout=30, wait=10))
    await _until_waiting(store, "fn.f")
    # (the one that finds nothing left waits on, to the end of its wait)
    one = asyncio.create_task(store.queues.receive("fn.f", max_messages=1, visibility_timeout=30, wait=1))
    await _until_waiting(store, "fn.f", receives=2)
    await store.queues.send_many("fn.f", [OutgoingMessage(str(n).encode()) for n in range(3)])
    got = await asyncio.wait_for(asyncio.gather(many, one), 5)
    assert len(got[1]) == 1
    # What neither took was never leased: the next receive gets it at once, received for the first time.
    rest = await store.queues.receive("fn.f", max_messages=10)
    received = [m for batch in [*got, rest] for m in batch]
    assert sorted(m.body for m in received) == [b"0", b"1", b"2"]
    assert {m.receive_count for m in received} == {1}


async def test_receives_waiting_with_other_visibility_timeouts_lease_their_own(
    stores: tuple[SqliteStore, Store],
) -> None:
    store, _ = stores
    short = asyncio.create_task(store.queues.receive("q", visibility_timeout=5, wait=10))
    long = asyncio.create_task(store.queues.receive("q", visibility_timeout=50, wait=10))
    await _until_waiting(store, "q", receives=2)
    await store.queues.send_many("q", [OutgoingMessage(b"1"), OutgoingMessage(b"2")])
    got = await asyncio.wait_for(asyncio.gather(short, long), 5)
    assert sorted(m.body for batch in got for m in batch) == [b"1", b"2"]
    assert [round(m.lease_expires_at - m.first_received_at) for m in got[0]] == [5]
    assert [round(m.lease_expires_at - m.first_received_at) for m in got[1]] == [50]


async def test_a_lease_made_ahead_for_a_process_that_stops_is_left_to_run_out_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = await open_store(url)
    assert isinstance(store, SqliteStore)
    waiting = asyncio.create_task(store.queues.receive("fn.f", visibility_timeout=0.3, wait=10))
    await _until_waiting(store, "fn.f")
    sending = asyncio.ensure_future(store.queues.send("fn.f", b"1"))
    waiting.cancel()
    await sending
    await store.close()
    await asyncio.sleep(0.05)  # the hand-back's turn, after the close
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    again = await open_store(url)
    try:
        messages = await again.queues.receive("fn.f", wait=5)
        assert [m.body for m in messages] == [b"1"]  # delivered all the same (at least once)
    finally:
        await again.close()


async def test_a_receive_that_found_the_queue_empty_waits_without_looking_until_this_process_sends(
    stores: tuple[SqliteStore, Store],
) -> None:
    """A dispatcher looks again as soon as it started what it got; on a busy writer that look waits a commit, and
    sends committed meanwhile miss their lease ahead. A waiting receive on a queue a lease just found empty does
    not look first while this process has not sent to it: it waits at once, for the next send's write to lease."""
    store, _ = stores
    await store.queues.send("fn.f", b"1")
    [first] = await store.queues.receive("fn.f", max_messages=10, visibility_timeout=30)  # fewer than 10: drained
    operations = store.write_stats.operations
    waiting = asyncio.create_task(store.queues.receive("fn.f", max_messages=10, visibility_timeout=30, wait=10))
    await _until_waiting(store, "fn.f")
    assert store.write_stats.operations == operations  # no look on the writer first
    batches = store.write_stats.batches
    await store.queues.send("fn.f", b"2")
    [second] = await asyncio.wait_for(waiting, 5)
    assert second.body == b"2"
    assert store.write_stats.batches == batches + 1  # leased in the send's own write
    await store.queues.send("fn.f", b"3")  # this process sent since: a receive looks
    assert [m.body for m in await store.queues.receive("fn.f", max_messages=10, visibility_timeout=30)] == [b"3"]
    assert first.body == b"1"


async def test_a_fifo_queue_or_one_configured_anew_is_never_taken_for_drained(
    stores: tuple[SqliteStore, Store],
) -> None:
    """On a FIFO queue an acknowledgement makes the next message of a group receivable, with no send: a receive
    there always looks."""
    store, _ = stores
    queues = store.queues
    assert isinstance(queues, SqliteQueues)
    await queues.configure("fifo", QueueConfig(fifo=True))
    await queues.send_many("fifo", [OutgoingMessage(b"a1", group="a"), OutgoingMessage(b"a2", group="a")])
    [a1] = await queues.receive("fifo", max_messages=10, visibility_timeout=30)
    assert not queues.ahead.drained("fifo")
    await queues.ack("fifo", a1.receipt)
    assert [m.body for m in await queues.receive("fifo", max_messages=10, visibility_timeout=30, wait=10)] == [b"a2"]
    assert await queues.receive("plain", max_messages=10) == []
    assert queues.ahead.drained("plain")
    await queues.configure("plain", QueueConfig(visibility_timeout=5))
    assert not queues.ahead.drained("plain")


async def test_another_nodes_send_to_a_queue_found_empty_is_found_by_the_next_poll(
    stores: tuple[SqliteStore, Store],
) -> None:
    store, other = stores
    assert await store.queues.receive("fn.f", max_messages=10, visibility_timeout=30) == []  # found empty
    await other.queues.send("fn.f", b"from another node")  # this process hears nothing of it
    began = time.monotonic()
    [message] = await store.queues.receive("fn.f", max_messages=10, visibility_timeout=30, wait=10)
    assert message.body == b"from another node"
    assert time.monotonic() - began < 5  # a poll interval or so, not the wait


# --- leased by the send's own statement: the write that stores the invocations leases them -----------------------


def _no_separate_lease(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every lease that took messages by a statement of its own on the writer (a receive's look, or one made behind a
    send), by queue: a send that leases what it stores makes none. (A look that finds nothing, as a waiting
    receive's poll on a slow machine may, leases nothing and is not counted.)"""
    looks: list[str] = []
    lease = _sqlite_ahead.lease

    def counted(c: Any, queue: str, *args: Any) -> Any:
        made = lease(c, queue, *args)
        if made[0]:
            looks.append(queue)
        return made

    monkeypatch.setattr(_sqlite_ahead, "lease", counted)
    monkeypatch.setattr(sqlite_module, "lease_messages", counted)
    return looks


async def test_a_waiting_receive_gets_what_an_atomic_send_stored_leased_by_its_own_statement(
    stores: tuple[SqliteStore, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bus's invocations reach the waiting dispatcher without a lease statement of their own: the send stores
    them leased, and hands over the messages it stored, as a receive would have read them."""
    store, other = stores
    looks = _no_separate_lease(monkeypatch)
    waiting = asyncio.create_task(store.queues.receive("fn.f", max_messages=10, visibility_timeout=30, wait=10))
    await _until_waiting(store, "fn.f")
    looks.clear()
    batches = store.write_stats.batches
    sent = [OutgoingMessage(b"1", attributes={"a": "x"}), OutgoingMessage(b"2")]
    [results] = await store.atomic([Send("fn.f", sent)])
    messages = await asyncio.wait_for(waiting, 5)
    assert looks == []
    assert store.write_stats.batches == batches + 1
    assert [m.body for m in messages] == [b"1", b"2"]
    assert [m.message_id for m in messages] == [r.message_id for r in results]
    assert [dict(m.attributes) for m in messages] == [{"a": "x"}, {}]
    assert {(m.receive_count, m.first_received_at == m.sent_at) for m in messages} == {(1, True)}
    assert {round(m.lease_expires_at - m.sent_at) for m in messages} == {30}
    assert await other.queues.receive("fn.f") == []  # leased: another node does not get them
    # Handed back, they read from the store as the lease made them: counted once received, attributes kept.
    assert await store.queues.release("fn.f", messages[0].receipt)
    [again] = await other.queues.receive("fn.f", visibility_timeout=30)
    assert (again.message_id, again.body, dict(again.attributes), again.receive_count) == (
        messages[0].message_id,
        b"1",
        {"a": "x"},
        2,
    )
    assert await store.queues.ack_many("fn.f", [messages[1].receipt]) == [True]
    assert await other.queues.ack_many("fn.f", [again.receipt]) == [True]
    assert (await store.queues.stats("fn.f")).depth == 0


async def test_sends_of_one_turn_share_the_lease_up_to_the_batch_and_leave_the_rest_to_the_next_look(
    stores: tuple[SqliteStore, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = stores
    looks = _no_separate_lease(monkeypatch)
    waiting = asyncio.create_task(store.queues.receive("fn.f", max_messages=4, visibility_timeout=30, wait=10))
    await _until_waiting(store, "fn.f")
    looks.clear()
    writes = [store.atomic([Send("fn.f", [OutgoingMessage(f"{n}-{k}".encode()) for k in range(3)])]) for n in range(3)]
    await asyncio.gather(*writes)
    messages = await asyncio.wait_for(waiting, 5)
    assert looks == []
    assert [m.body for m in messages] == [b"0-0", b"0-1", b"0-2", b"1-0"]  # in the order they were sent
    # The rest were stored as ever: the next receive looks (this process sent since) and leases them.
    rest = await store.queues.receive("fn.f", max_messages=10, visibility_timeout=30)
    assert looks == ["fn.f"]
    assert [m.body for m in rest] == [b"1-1", b"1-2", b"2-0", b"2-1", b"2-2"]
    assert {m.receive_count for m in [*messages, *rest]} == {1}


async def test_a_send_leases_only_plain_messages_of_a_standard_queue(stores: tuple[SqliteStore, Store]) -> None:
    """A delayed message keeps its delay, and a FIFO queue's messages their group's order: neither is leased by the
    send; the waiting receive gets the plain ones."""
    store, other = stores
    waiting = asyncio.create_task(store.queues.receive("fn.f", max_messages=10, visibility_timeout=30, wait=10))
    await _until_waiting(store, "fn.f")
    sent = [OutgoingMessage(b"later", delay=60), OutgoingMessage(b"now"), OutgoingMessage(b"once", dedup_id="d")]
    await store.atomic([Send("fn.f", sent)])
    assert [m.body for m in await asyncio.wait_for(waiting, 5)] == [b"now"]
    assert [m.body for m in await other.queues.receive("fn.f", max_messages=10)] == [b"once"]
    assert (await store.queues.stats("fn.f")).delayed == 1
    await store.queues.configure("fifo.f", QueueConfig(fifo=True))
    waiting = asyncio.create_task(store.queues.receive("fifo.f", max_messages=10, visibility_timeout=30, wait=10))
    await _until_waiting(store, "fifo.f")
    await store.atomic([Send("fifo.f", [OutgoingMessage(b"a1", group="a"), OutgoingMessage(b"a2", group="a")])])
    assert [m.body for m in await asyncio.wait_for(waiting, 5)] == [b"a1"]  # the group's head, then its turn


async def test_a_failed_atomic_write_hands_over_nothing_and_the_receive_waits_on(
    stores: tuple[SqliteStore, Store],
) -> None:
    store, _ = stores
    waiting = asyncio.create_task(store.queues.receive("fn.f", max_messages=10, visibility_timeout=30, wait=10))
    await _until_waiting(store, "fn.f")
    with pytest.raises(AtomicConflictError):
        await store.atomic([Send("fn.f", [OutgoingMessage(b"never")]), Put("ns", "k", b"v", if_version=7)])
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await store.queues.send("fn.f", b"next")
    assert [m.body for m in await asyncio.wait_for(waiting, 5)] == [b"next"]
    assert (await store.queues.stats("fn.f")).depth == 1


async def test_a_receive_that_took_a_send_leased_lease_smaller_than_its_batch_waits_without_looking(
    stores: tuple[SqliteStore, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dispatcher looks again as soon as it started what it got: after a lease its send made that left nothing
    receivable, it waits at once for the next send's write, as after a lease that found the queue drained."""
    store, _ = stores
    queues = store.queues
    assert isinstance(queues, SqliteQueues)
    looks = _no_separate_lease(monkeypatch)
    for n in range(3):
        waiting = asyncio.create_task(queues.receive("fn.f", max_messages=10, visibility_timeout=30, wait=10))
        await _until_waiting(store, "fn.f")
        await store.atomic([Send("fn.f", [OutgoingMessage(f"{n}".encode())])])
        assert [m.body for m in await asyncio.wait_for(waiting, 5)] == [f"{n}".encode()]
        assert queues.ahead.drained("fn.f")  # so the next receive waits at once
    assert looks == []
    await store.atomic([Send("fn.f", [OutgoingMessage(b"a")])])  # nobody waits: stored as ever
    assert not queues.ahead.drained("fn.f")  # this process sent since: a receive looks
    assert [m.body for m in await queues.receive("fn.f", max_messages=10, visibility_timeout=30)] == [b"a"]
    waiting = asyncio.create_task(queues.receive("fn.f", max_messages=1, visibility_timeout=30, wait=10))
    await _until_waiting(store, "fn.f")
    await store.atomic([Send("fn.f", [OutgoingMessage(b"d"), OutgoingMessage(b"e")])])
    assert [m.body for m in await asyncio.wait_for(waiting, 5)] == [b"d"]
    assert not queues.ahead.drained("fn.f")  # a full batch, and more is receivable: the next receive looks
