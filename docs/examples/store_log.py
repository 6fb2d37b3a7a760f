"""The event log: append records to a stream, read them back by offset, wait for new ones, apply retention."""

import asyncio

from triggerfish.store import open_store


async def main() -> None:
    async with await open_store("memory://") as store:
        first = await store.log.append("orders", b'{"id": 1}')
        await store.log.append_many("orders", [b'{"id": 2}', b'{"id": 3}'])
        assert first.offset == 1
        assert await store.log.last_offset("orders") == 3

        # A consumer remembers the last offset it handled and reads on from there.
        page = await store.log.read("orders", after=1, limit=10)
        assert [r.offset for r in page] == [2, 3]

        # A long-poll read waits for the next record instead of spinning.
        waiting = asyncio.ensure_future(store.log.read("orders", after=3, wait=5.0))
        await store.log.append("orders", b'{"id": 4}')
        assert [r.data for r in await waiting] == [b'{"id": 4}']

        # Retention drops the oldest records; offsets are never reused.
        assert await store.log.trim("orders", max_bytes=20) == 2
        assert [r.offset for r in await store.log.read("orders")] == [3, 4]
        assert (await store.log.append("orders", b'{"id": 5}')).offset == 5

        # A record can carry up to two keys, and is found by either in every stream (a prefix, in key order).
        await store.log.append_many("refunds", [b'{"id": 6}'], keys=[("order/5/refund", "customer/c-9/6")])
        [(key, record)] = await store.log.find("customer/c-9/")
        assert (key, record.stream, record.offset) == ("customer/c-9/6", "refunds", 1)


asyncio.run(main())
