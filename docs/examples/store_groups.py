"""Consumer groups: consumers of one group share a stream's records, each range to one consumer, at least once."""

import asyncio

from triggerfish.store import open_store


async def main() -> None:
    async with await open_store("memory://") as store:
        await store.log.append_many("bus.orders", [b"order %d" % i for i in range(1, 8)])

        # Two consumers of the group "rules" (say, on two machines) get disjoint ranges.
        first = await store.log.claim("bus.orders", "rules", limit=3, lease=30)
        second = await store.log.claim("bus.orders", "rules", limit=3, lease=30)
        assert first is not None
        assert second is not None
        assert [r.offset for r in first.records] == [1, 2, 3]
        assert [r.offset for r in second.records] == [4, 5, 6]

        # The position moves over contiguous committed ranges only.
        assert await store.log.commit(second)
        assert await store.log.position("bus.orders", "rules") == 0
        assert await store.log.commit(first)
        assert await store.log.position("bus.orders", "rules") == 6

        # Another group reads the same stream from the beginning, on its own.
        archive = await store.log.claim("bus.orders", "archive", limit=100)
        assert archive is not None
        assert len(archive.records) == 7

        # A consumer that dies without committing: its range goes to the next claim once its lease ends.
        doomed = await store.log.claim("bus.orders", "rules", lease=0.1)
        assert doomed is not None
        await asyncio.sleep(0.2)
        again = await store.log.claim("bus.orders", "rules", lease=30)
        assert again is not None
        assert (again.first, again.last) == (doomed.first, doomed.last)
        assert not await store.log.commit(doomed)  # the old holder lost it
        assert await store.log.commit(again)

        # Replays: move a group back (or forward) by hand.
        await store.log.seek("bus.orders", "rules", 0)
        assert await store.log.position("bus.orders", "rules") == 0


asyncio.run(main())
