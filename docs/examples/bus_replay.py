"""Replaying an hour of a bus to one rule, after fixing its target."""

import asyncio
import time

from triggerfish.bus.archive import Archive
from triggerfish.bus.bus import EventBus
from triggerfish.bus.rules import Rules
from triggerfish.events.cloudevent import Event
from triggerfish.store import open_store


async def main() -> None:
    async with await open_store("memory://") as store:
        rules = Rules(store)
        await rules.put(
            {"id": "audit", "pattern": {"source": ["shop"]}, "targets": [{"id": "q", "kind": "queue", "name": "audit"}]}
        )
        bus = EventBus(store, rules)
        await bus.publish("default", [Event.create("OrderPlaced", "shop", {"n": n}) for n in range(3)])
        await bus.drain()

        now = time.time()
        queued = await Archive(bus).replay("default", now - 3600, now + 1, rule="audit", name="audit-fix")
        await bus.drain()
        await bus.stop()

        assert queued == 3
        messages = await store.queues.receive("audit", max_messages=10)
        assert len(messages) == 6  # three live deliveries, three replayed
        assert sum(b'"replayname":"audit-fix"' in m.body for m in messages) == 3


asyncio.run(main())
