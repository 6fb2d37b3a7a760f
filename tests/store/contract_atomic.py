"""The atomic part of the store contract: writes to several parts in one call, all or nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.store.contract import LONG, SHORT, StoreContract
from triggerfish.errors import AtomicConflictError, InvalidInputError, InvalidNameError
from triggerfish.store import ABSENT, OutgoingMessage, Store
from triggerfish.store.atomic import Ack, Append, Commit, Delete, Forward, Op, Put, Route, Send


class AtomicContract(StoreContract):
    async def nothing_written(self, store: Store) -> None:
        assert await store.log.read("out") == []
        assert (await store.queues.stats("deliveries")).depth == 0
        assert await store.kv.get("ns", "k") is None

    async def test_one_call_writes_every_part(self, store: Store) -> None:
        await store.log.append_many("in", [b"e1", b"e2"])
        await store.queues.send("work", b"job")
        [job] = await store.queues.receive("work", visibility_timeout=LONG)
        claim = await store.log.claim("in", "g", lease=LONG)
        assert claim is not None
        receiver = asyncio.ensure_future(store.queues.receive("deliveries", wait=10))
        records, sent, record, acked, committed = await store.atomic(
            [
                Append("out", [b"o1", b"o2"]),
                Send("deliveries", [OutgoingMessage(b"d1"), OutgoingMessage(b"d2", group="g")]),
                Put("ns", "k", b"v", ttl=LONG),
                Ack("work", [job.receipt, "stale"]),
                Commit(claim),
            ]
        )
        assert [(r.stream, r.offset, r.data) for r in records] == [("out", 1, b"o1"), ("out", 2, b"o2")]
        assert [s.duplicate for s in sent] == [False, False]
        assert (record.namespace, record.key, record.value) == ("ns", "k", b"v")
        assert record.expires_at is not None
        assert acked == [True, False]
        assert committed is True
        assert await store.kv.get("ns", "k") == record
        assert await store.log.position("in", "g") == 2
        assert (await store.queues.stats("work")).depth == 0
        # A waiting receive is woken by the atomic send, as by send_many.
        assert [m.body for m in await asyncio.wait_for(receiver, 5)] == [b"d1"]
        assert await store.atomic([]) == []

    async def test_a_failed_version_writes_nothing(self, store: Store) -> None:
        existing = await store.kv.put("ns", "other", b"v1")
        assert existing is not None
        ops: list[Op] = [
            Append("out", [b"o"]),
            Send("deliveries", [OutgoingMessage(b"d")]),
            Put("ns", "k", b"v"),
            Put("ns", "other", b"v2", if_version=existing.version + 1000),
        ]
        with pytest.raises(AtomicConflictError) as caught:
            await store.atomic(ops)
        assert caught.value.index == 3
        assert "'ns'" in str(caught.value)
        assert "'other'" in str(caught.value)
        assert f"version {existing.version + 1000}" in str(caught.value)
        if store.atomic_writes:
            await self.nothing_written(store)
            assert await store.kv.get("ns", "other") == existing

    async def test_records_appended_with_keys_are_found_by_them_and_a_failed_call_leaves_none(
        self, store: Store
    ) -> None:
        # An invocation record's write: its log row found by its request and its span, with a put beside it.
        records, _ = await store.atomic(
            [Append("out", [b"o1", b"o2"], [("r/a/1", "t/x/a"), ("r/b/1",)]), Put("ns", "k", b"v")]
        )
        found = await store.log.find("r/")
        assert [(key, r.stream, r.offset, r.data) for key, r in found] == [
            ("r/a/1", "out", 1, b"o1"),
            ("r/b/1", "out", 2, b"o2"),
        ]
        assert [(key, r.offset) for key, r in await store.log.find("t/x/")] == [("t/x/a", records[0].offset)]
        if store.atomic_writes:
            ops: list[Op] = [Append("out", [b"o3"], [("r/c/1",)]), Put("ns", "k", b"v2", if_version=ABSENT)]
            with pytest.raises(AtomicConflictError):
                await store.atomic(ops)
            assert await store.log.find("r/c/") == []
        with pytest.raises(InvalidInputError, match="one tuple of keys per record"):
            await store.atomic([Append("out", [b"o4"], [("r/d/1",), ("r/e/1",)])])
        assert [r.data for r in await store.log.read("out")] == [b"o1", b"o2"]

    async def test_a_lost_commit_writes_nothing(self, store: Store) -> None:
        await store.log.append("in", b"e")
        lost = await store.log.claim("in", "g", lease=SHORT)
        assert lost is not None
        await self.advance(SHORT * 1.5)
        taken = await store.log.claim("in", "g", lease=LONG)
        assert taken is not None
        with pytest.raises(AtomicConflictError, match="re-claimed") as caught:
            await store.atomic([Send("deliveries", [OutgoingMessage(b"d")]), Commit(lost)])
        assert caught.value.index == 1
        if store.atomic_writes:
            assert (await store.queues.stats("deliveries")).depth == 0
        assert (await store.atomic([Commit(taken)])) == [True]
        assert await store.log.position("in", "g") == 1

    async def test_conditions_see_earlier_operations_of_the_same_call(self, store: Store) -> None:
        created, updated = await store.atomic(
            [Put("ns", "k", b"1", if_version=ABSENT), Put("ns", "j", b"2", if_version=ABSENT)]
        )
        assert created.version != updated.version
        with pytest.raises(AtomicConflictError) as caught:
            await store.atomic([Put("ns", "new", b"1"), Put("ns", "new", b"2", if_version=ABSENT)])
        assert caught.value.index == 1
        deleted, recreated = await store.atomic(
            [Delete("ns", "k", if_version=created.version), Put("ns", "k", b"again", if_version=ABSENT)]
        )
        assert deleted is True
        assert recreated.value == b"again"
        assert await store.atomic([Delete("ns", "absent")]) == [False]
        with pytest.raises(AtomicConflictError, match="Delete"):
            await store.atomic([Delete("ns", "absent", if_version=recreated.version)])

    async def test_a_run_of_puts_writes_each_in_order_and_the_last_of_a_key_stands(self, store: Store) -> None:
        # Backends write a run of unconditional puts as one batch: what each returns and what stands must not change.
        results = await store.atomic(
            [
                Put("ns", "a", b"1"),
                Put("ns", "b", b"2", ttl=LONG),
                Put("other", "a", b"3"),
                Put("ns", "a", b"4"),
                Put("ns", "c", b"5", if_version=ABSENT),
                Put("ns", "d", b"6"),
            ]
        )
        assert [(r.namespace, r.key, r.value) for r in results] == [
            ("ns", "a", b"1"),
            ("ns", "b", b"2"),
            ("other", "a", b"3"),
            ("ns", "a", b"4"),
            ("ns", "c", b"5"),
            ("ns", "d", b"6"),
        ]
        versions = [r.version for r in results]
        assert versions == sorted(versions)
        assert len(set(versions)) == len(versions)
        assert results[1].expires_at is not None
        assert results[0].expires_at is None
        assert await store.kv.get("ns", "a") == results[3]
        assert await store.kv.get("other", "a") == results[2]
        assert await store.kv.get("ns", "d") == results[5]

    async def test_an_ended_lease_is_a_false_ack_not_a_conflict(self, store: Store) -> None:
        await store.queues.send("work", b"job")
        [job] = await store.queues.receive("work", visibility_timeout=SHORT)
        await self.advance(SHORT * 1.5)
        [acked], [record] = await store.atomic([Ack("work", [job.receipt]), Append("out", [b"o"])])
        assert acked is False
        assert record.offset == 1

    @pytest.mark.parametrize(
        ("bad", "error"),
        [
            (Append("out", [b"ok", "text"]), InvalidInputError),  # type: ignore[list-item]
            (Append("bad name", [b"x"]), InvalidNameError),
            (Send("deliveries", [b"raw"]), InvalidInputError),  # type: ignore[list-item]
            (Put("ns", "", b"x"), InvalidNameError),
            (Put("ns", "k", b"x", ttl=-1), InvalidInputError),
            (Put("ns", "k", b"x", if_version=-1), InvalidInputError),
            (Delete("ns", "k", if_version=True), InvalidInputError),
            (Ack("work", [5]), InvalidInputError),  # type: ignore[list-item]
            (Commit("claim"), InvalidInputError),  # type: ignore[arg-type]
            ("Put", InvalidInputError),
            (None, InvalidInputError),
        ],
    )
    async def test_bad_operations_are_refused_before_anything_is_written(
        self, store: Store, bad: Any, error: type[Exception]
    ) -> None:
        with pytest.raises(error):
            await store.atomic([Append("out", [b"o"]), Send("deliveries", [OutgoingMessage(b"d")]), bad])
        await self.nothing_written(store)
        with pytest.raises(InvalidInputError, match="list of operations"):
            await store.atomic(Append("out", [b"o"]))  # type: ignore[arg-type]

    # --- Forward: a write hands its records to a copying reader in its own transaction ---------------

    @staticmethod
    def tagged(index: int, offset: int) -> tuple[int, bytes] | None:
        """Copies as a table's change reader does: records to streams by content, one record dropped."""
        return None if offset == 3 else (index % 2, f"copy of {offset}".encode())

    async def test_a_forward_copies_the_records_when_the_reader_has_copied_everything_before(
        self, store: Store
    ) -> None:
        await store.log.append_many("changes", [b"c1", b"c2"])
        await store.kv.put("places", "reader", b"2")  # the reader copied offsets 1 and 2 itself
        waiting = asyncio.ensure_future(store.log.read("copies.1", wait=10))
        forward = Forward("changes", "places", "reader", ("copies.0", "copies.1"), self.tagged)
        records, forwarded = await store.atomic([Append("changes", [b"c3", b"c4", b"c5"]), forward])
        if not store.atomic_writes:
            assert forwarded is False  # no transaction to decide in: the reader copies them itself
            assert await store.log.read("copies.0") == []
            return
        assert [r.offset for r in records] == [3, 4, 5]
        assert forwarded is True
        # c3 was left out by `build`; c4 (index 1) went to copies.1, c5 (index 2) to copies.0, in order.
        assert [r.data for r in await store.log.read("copies.0")] == [b"copy of 5"]
        assert [r.data for r in await asyncio.wait_for(waiting, 5)] == [b"copy of 4"]
        place = await store.kv.get("places", "reader")
        assert place is not None
        assert place.value == b"5"

    async def test_a_forward_leaves_the_records_to_a_reader_that_is_behind_or_not_started(self, store: Store) -> None:
        await store.log.append_many("changes", [b"c1", b"c2"])
        await store.kv.put("places", "behind", b"1")  # offset 2 not copied yet: copying 3 now would reorder
        forwards = [
            Forward("changes", "places", name, (f"copies-{name}",), lambda index, offset: (0, b"x"))
            for name in ("behind", "absent")
        ]
        _, behind, absent = await store.atomic([Append("changes", [b"c3"]), *forwards])
        assert (behind, absent) == (False, False)
        assert await store.log.read("copies-behind") == []
        assert await store.log.read("copies-absent") == []
        place = await store.kv.get("places", "behind")
        assert place is not None
        assert place.value == b"1"
        assert await store.kv.get("places", "absent") is None

    async def test_a_forward_takes_every_append_to_its_source_in_the_call(self, store: Store) -> None:
        await store.kv.put("places", "reader", b"0")
        ops: list[Op] = [
            Append("changes", [b"a"]),
            Put("items", "a", b"1"),
            Append("changes", [b"b"]),
            Append("elsewhere", [b"not forwarded"]),
            Forward("changes", "places", "reader", ("copies",), lambda index, offset: (0, b"%d@%d" % (index, offset))),
        ]
        *_, forwarded = await store.atomic(ops)
        if store.atomic_writes:
            assert forwarded is True
            assert [r.data for r in await store.log.read("copies")] == [b"0@1", b"1@2"]

    async def test_a_forward_without_its_append_is_refused(self, store: Store) -> None:
        forward = Forward("changes", "places", "reader", ("copies",), lambda index, offset: None)
        with pytest.raises(InvalidInputError, match="comes after no Append to"):
            await store.atomic([Append("out", [b"o"]), forward])
        with pytest.raises(InvalidNameError):
            await store.atomic(
                [Append("changes", [b"c"]), Forward("changes", "places", "reader", ("bad name",), forward.build)]
            )
        assert await store.log.read("out") == []

    # --- Route: a publisher delivers its own records for a consumer group, in its append's transaction -------

    async def caught_up(self, store: Store, stream: str, group: str) -> None:
        """`group` has claimed and committed everything in `stream` so far."""
        await store.log.append_many(stream, [b"e1", b"e2"])
        claim = await store.log.claim(stream, group, lease=LONG)
        assert claim is not None
        assert await store.log.commit(claim)

    async def test_a_route_delivers_the_records_and_moves_a_caught_up_group_past_them(self, store: Store) -> None:
        await self.caught_up(store, "bus", "router")
        waiting = asyncio.ensure_future(store.queues.receive("fn.a", wait=10))
        route = Route("bus", "router", (Send("fn.a", [OutgoingMessage(b"a3")]), Send("fn.b", [])))
        records, routed = await store.atomic([Append("bus", [b"e3", b"e4"]), route])
        assert [r.offset for r in records] == [3, 4]
        if not store.routes_appends and routed is False:
            # Not decided in the write (PostgreSQL, a store without transactions): the group's consumer takes them.
            assert (await store.queues.stats("fn.a")).depth == 0
            claim = await store.log.claim("bus", "router", lease=LONG)
            assert claim is not None
            assert [r.data for r in claim.records] == [b"e3", b"e4"]
            waiting.cancel()
            return
        assert routed is True
        assert await store.log.position("bus", "router") == 4
        assert await store.log.claim("bus", "router", lease=LONG) is None  # nothing left for the consumer
        assert [m.body for m in await asyncio.wait_for(waiting, 5)] == [b"a3"]  # woken, as by any send
        # What comes next is the group's again, from where the route left it.
        await store.log.append("bus", b"e5")
        claim = await store.log.claim("bus", "router", lease=LONG)
        assert claim is not None
        assert [r.offset for r in claim.records] == [5]

    async def test_a_route_leaves_the_records_to_a_group_that_is_behind_holds_a_claim_or_is_new(
        self, store: Store
    ) -> None:
        await store.log.append_many("bus", [b"e1", b"e2"])
        behind = await store.log.claim("bus", "behind", limit=1, lease=LONG)  # e2 not claimed yet
        assert behind is not None
        assert await store.log.commit(behind)
        holding = await store.log.claim("bus", "holding", lease=LONG)  # claimed, not committed
        assert holding is not None
        routes = [
            Route("bus", group, (Send(f"fn.{group}", [OutgoingMessage(b"x")]),))
            for group in ("behind", "holding", "new")
        ]
        _, *routed = await store.atomic([Append("bus", [b"e3"]), *routes])
        assert routed == [False, False, False]
        for group in ("behind", "holding", "new"):
            assert (await store.queues.stats(f"fn.{group}")).depth == 0
        # Each group's consumer delivers e3 itself, in order after what came before.
        later = await store.log.claim("bus", "behind", lease=LONG)
        assert later is not None
        assert [r.data for r in later.records] == [b"e2", b"e3"]
        assert await store.log.commit(holding)
        assert [r.data for r in (await store.log.claim("bus", "holding", lease=LONG) or holding).records] == [b"e3"]
        assert [r.data for r in (await store.log.claim("bus", "new", lease=LONG) or holding).records] == [
            b"e1",
            b"e2",
            b"e3",
        ]

    async def test_a_route_takes_a_new_streams_first_records_for_a_new_group(self, store: Store) -> None:
        # A bus whose load starts with its first event: the group has no place yet, and starts before offset 1.
        route = Route("bus", "router", (Send("fn.a", [OutgoingMessage(b"a1")]),))
        records, routed = await store.atomic([Append("bus", [b"e1", b"e2"]), route])
        assert [r.offset for r in records] == [1, 2]
        if not store.routes_appends and routed is False:
            claim = await store.log.claim("bus", "router", lease=LONG)  # its consumer takes them
            assert claim is not None
            assert [r.data for r in claim.records] == [b"e1", b"e2"]
            return
        assert routed is True
        assert await store.log.position("bus", "router") == 2
        assert await store.log.claim("bus", "router", lease=LONG) is None
        assert [m.body for m in await store.queues.receive("fn.a")] == [b"a1"]
        # The next publish routes too, and what its consumer claims later starts after them.
        _, again = await store.atomic([Append("bus", [b"e3"]), route])
        assert again is True
        await store.log.append("bus", b"e4")
        claim = await store.log.claim("bus", "router", lease=LONG)
        assert claim is not None
        assert [r.offset for r in claim.records] == [4]

    async def test_a_route_without_its_append_is_refused(self, store: Store) -> None:
        route = Route("bus", "router", (Send("fn.a", [OutgoingMessage(b"x")]),))
        with pytest.raises(InvalidInputError, match="comes after no Append to"):
            await store.atomic([Append("other", [b"o"]), route])
        with pytest.raises(InvalidNameError):
            await store.atomic([Append("bus", [b"e"]), Route("bus", "router", (Send("bad name", []),))])
        assert await store.log.read("other") == []
        assert await store.log.read("bus") == []
