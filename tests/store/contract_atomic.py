"""The atomic part of the store contract: writes to several parts in one call, all or nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.store.contract import LONG, SHORT, StoreContract
from triggerfish.errors import AtomicConflictError, InvalidInputError, InvalidNameError
from triggerfish.store import ABSENT, OutgoingMessage, Store
from triggerfish.store.atomic import Ack, Append, Commit, Delete, Op, Put, Send


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
