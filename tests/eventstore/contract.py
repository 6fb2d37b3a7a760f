"""The event store's contract, written once and run on every backend (memory, SQLite, PostgreSQL, a scoped view)."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.backends import OpensStore
from triggerfish.errors import InvalidInputError
from triggerfish.eventstore.records import NO_STREAM, NewEvent, WrongExpectedVersionError
from triggerfish.eventstore.snapshots import Snapshots
from triggerfish.eventstore.store import EventStore
from triggerfish.store import Store
from triggerfish.store.atomic import Append


class EventStoreContract(OpensStore):
    @pytest.fixture
    def events(self, store: Store) -> EventStore:
        return EventStore(store)

    async def test_append_and_read_a_stream_forwards_and_backwards(self, events: EventStore) -> None:
        first = await events.append("order-1", [NewEvent("Placed", {"n": 1})], expected_version=NO_STREAM)
        second = await events.append(
            "order-1", [{"type": "Paid", "data": {"n": 2}}, {"type": "Shipped", "data": {"n": 3}}], expected_version=1
        )
        assert (first.first, first.last, second.first, second.last) == (1, 1, 2, 3)
        forwards = await events.read_stream("order-1")
        assert [(e.version, e.type, e.data) for e in forwards] == [
            (1, "Placed", {"n": 1}),
            (2, "Paid", {"n": 2}),
            (3, "Shipped", {"n": 3}),
        ]
        assert [e.version for e in await events.read_stream("order-1", start=2)] == [2, 3]
        assert [e.version for e in await events.read_stream("order-1", backwards=True)] == [3, 2, 1]
        assert [e.version for e in await events.read_stream("order-1", backwards=True, start=2, limit=1)] == [2]
        assert [e.version for e in await events.read_stream("order-1", backwards=True, limit=2)] == [3, 2]
        assert await events.read_stream("order-404") == []
        assert await events.version("order-1") == 3

    async def test_a_conflicting_append_fails_with_the_current_version_and_writes_nothing(
        self, events: EventStore
    ) -> None:
        await events.append("order-1", [NewEvent("Placed")], expected_version=NO_STREAM)
        before = await events.position()
        with pytest.raises(WrongExpectedVersionError) as caught:
            await events.append("order-1", [NewEvent("Paid")], expected_version=NO_STREAM)
        assert (caught.value.current, caught.value.expected) == (1, 0)
        with pytest.raises(WrongExpectedVersionError) as caught:
            await events.append("order-1", [NewEvent("Paid"), NewEvent("Shipped")], expected_version=5)
        assert caught.value.current == 1
        assert [e.type for e in await events.read_stream("order-1")] == ["Placed"]
        assert await events.position() == before

    async def test_the_global_order_spans_streams_and_reads_by_category(self, events: EventStore) -> None:
        await events.append("order-1", [NewEvent("Placed")])
        await events.append("account-1", [NewEvent("Opened")])
        await events.append("order-2", [NewEvent("Placed"), NewEvent("Paid")])
        everything = await events.read_all()
        assert [(e.position, e.stream, e.version) for e in everything] == [
            (1, "order-1", 1),
            (2, "account-1", 1),
            (3, "order-2", 1),
            (4, "order-2", 2),
        ]
        assert [e.position for e in await events.read_all(after=2, limit=1)] == [3]
        assert [e.stream for e in await events.read_all(category="order")] == ["order-1", "order-2", "order-2"]
        assert await events.streams() == [("account-1", 1), ("order-1", 1), ("order-2", 2)]
        assert await events.streams(category="order") == [("order-1", 1), ("order-2", 2)]

    async def test_concurrent_appenders_leave_no_gap_and_lose_nothing(self, events: EventStore) -> None:
        writers, each = 8, 6

        async def writer(n: int) -> None:
            for i in range(each):
                await events.append(f"acct-{n % 3}", [NewEvent("Moved", {"w": n, "i": i})])
                await asyncio.sleep(random.random() / 1000)

        await asyncio.gather(*(writer(n) for n in range(writers)))
        everything = await events.read_all(limit=1000)
        assert [e.position for e in everything] == list(range(1, writers * each + 1))
        for n in range(3):
            versions = [e.version for e in everything if e.stream == f"acct-{n}"]
            assert versions == list(range(1, len(versions) + 1))
        # Per writer, its own events keep the order it wrote them in.
        for n in range(writers):
            assert [e.data["i"] for e in everything if e.data["w"] == n] == list(range(each))

    async def test_a_follower_never_sees_a_gap_while_separate_writers_commit(self, store: Store) -> None:
        # Four event stores on one store: four writers' transactions in flight at once (as four nodes would have);
        # a follower reading the global order as it grows must never see a position before the one it expects.
        writers, each = 4, 25
        total = writers * each
        stores = [EventStore(store) for _ in range(writers)]

        async def writer(n: int) -> None:
            for i in range(each):
                await stores[n].append(f"acct-{n}-{i % 3}", [NewEvent("Moved", {"i": i})])

        async def follower() -> list[int]:
            seen: list[int] = []
            while len(seen) < total:
                for event in await stores[0].read_all(after=len(seen), limit=50, wait=0.05):
                    assert event.position == len(seen) + 1, f"saw {event.position} after {len(seen)}"
                    seen.append(event.position)
            return seen

        seen, *_ = await asyncio.gather(follower(), *(writer(n) for n in range(writers)))
        assert seen == list(range(1, total + 1))

    async def test_racing_appenders_with_the_same_expected_version_one_wins(self, events: EventStore) -> None:
        await events.append("acct-1", [NewEvent("Opened")], expected_version=NO_STREAM)
        outcomes = await asyncio.gather(
            *(events.append("acct-1", [NewEvent("Withdrawn", {"by": n})], expected_version=1) for n in range(6)),
            return_exceptions=True,
        )
        won = [o for o in outcomes if not isinstance(o, BaseException)]
        lost = [o for o in outcomes if isinstance(o, WrongExpectedVersionError)]
        assert (len(won), len(lost)) == (1, 5)
        assert all(e.current == 2 for e in lost)
        assert [e.version for e in await events.read_stream("acct-1")] == [1, 2]

    async def test_extra_operations_commit_with_the_append_or_not_at_all(
        self, store: Store, events: EventStore
    ) -> None:
        await events.append("order-1", [NewEvent("Placed")], also=lambda rec: [Append("outbox", [b"1"])])
        assert len(await store.log.read("outbox")) == 1
        with pytest.raises(WrongExpectedVersionError):
            await events.append(
                "order-1", [NewEvent("Placed")], expected_version=0, also=lambda rec: [Append("outbox", [b"2"])]
            )
        assert len(await store.log.read("outbox")) == 1

    async def test_an_event_over_the_record_limit_fails_alone(self, store: Store, events: EventStore) -> None:
        big = "x" * (store.log.max_record_bytes + 1)
        outcomes = await asyncio.gather(
            events.append("order-1", [NewEvent("Placed")]),
            events.append("order-2", [NewEvent("Placed", big)]),
            events.append("order-3", [NewEvent("Placed")]),
            return_exceptions=True,
        )
        assert isinstance(outcomes[1], InvalidInputError)
        assert not isinstance(outcomes[0], BaseException)
        assert not isinstance(outcomes[2], BaseException)
        assert [e.stream for e in await events.read_all()] == ["order-1", "order-3"]

    async def test_bad_input_is_refused_with_what_to_do(self, events: EventStore) -> None:
        with pytest.raises(InvalidInputError, match="list of events"):
            await events.append("order-1", {"type": "Placed"})  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match=r"events\[1\].type"):
            await events.append("order-1", [{"type": "ok"}, {"data": 1}])
        with pytest.raises(InvalidInputError, match="expected_version"):
            await events.append("order-1", [NewEvent("A")], expected_version=-3)
        with pytest.raises(InvalidInputError, match="event stream name"):
            await events.append("no spaces", [NewEvent("A")])
        with pytest.raises(InvalidInputError, match="not JSON"):
            await events.append("order-1", [NewEvent("A", {1, 2})])
        assert await events.position() == 0

    async def test_snapshots_are_read_only_under_their_own_schema(self, store: Store) -> None:
        snapshots = Snapshots(store)
        assert await snapshots.save("acct-1", version=10, state={"balance": 5}, schema="1")
        assert not await snapshots.save("acct-1", version=9, state={"balance": 4}, schema="1")
        assert await snapshots.save("acct-1", version=12, state={"cents": 700}, schema="2")
        one = await snapshots.load("acct-1", schema="1")
        assert one is not None
        assert (one.version, one.state) == (10, {"balance": 5})
        two = await snapshots.load("acct-1", schema="2")
        assert two is not None
        assert two.state == {"cents": 700}
        assert await snapshots.load("acct-1", schema="3") is None
