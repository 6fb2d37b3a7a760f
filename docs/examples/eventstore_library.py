import asyncio
import tempfile
from pathlib import Path

from triggerfish.eventstore import NO_STREAM, EventStore, NewEvent, WrongExpectedVersionError
from triggerfish.store import open_store


async def main():
    with tempfile.TemporaryDirectory() as directory:
        store = await open_store(f"sqlite:///{Path(directory) / 'store.db'}")  # or postgresql://...
        events = EventStore(store)
        await events.append("order-1", [NewEvent("Placed", {"total": 30})], expected_version=NO_STREAM)
        await events.append("order-2", [NewEvent("Placed", {"total": 12})], expected_version=NO_STREAM)
        await events.append("order-1", [NewEvent("Paid"), NewEvent("Shipped")], expected_version=1)
        try:
            await events.append("order-1", [NewEvent("Cancelled")], expected_version=1)
            current = None
        except WrongExpectedVersionError as conflict:
            current = conflict.current  # the stream's version now; nothing was written
        assert current == 3
        everything = await events.read_all(after=0)
        assert [(e.position, e.stream, e.version) for e in everything] == [
            (1, "order-1", 1),
            (2, "order-2", 1),
            (3, "order-1", 2),
            (4, "order-1", 3),
        ]
        assert [e.type for e in await events.read_stream("order-1", backwards=True, limit=2)] == ["Shipped", "Paid"]
        assert await events.streams(category="order") == [("order-1", 3), ("order-2", 1)]
        await store.close()


asyncio.run(main())
