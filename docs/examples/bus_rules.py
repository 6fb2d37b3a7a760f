"""A rule added at run time: big orders go to a queue, reshaped by an input transformer."""

import asyncio

import orjson

from triggerfish.bus.bus import EventBus
from triggerfish.bus.rules import Rules
from triggerfish.events.cloudevent import Event
from triggerfish.store import open_store


async def main() -> None:
    async with await open_store("memory://") as store:
        rules = Rules(store)
        await rules.put(
            {
                "id": "big-orders",
                "pattern": {"type": ["OrderPlaced"], "data": {"total": [{"numeric": [">=", 100]}]}},
                "targets": [
                    {
                        "id": "review",
                        "kind": "queue",
                        "name": "order-review",
                        "transformer": {
                            "input_paths": {"order": "$.data.order_id", "total": "$.data.total"},
                            "input_template": '{"order": <order>, "note": "order <order> is worth <total>"}',
                        },
                    }
                ],
            }
        )
        bus = EventBus(store, rules)
        await bus.publish(
            "default",
            [
                Event.create("OrderPlaced", "shop", {"order_id": "o-1", "total": 250}),
                Event.create("OrderPlaced", "shop", {"order_id": "o-2", "total": 20}),
            ],
        )
        await bus.drain()  # a server runs `await bus.start()` instead
        await bus.stop()

        [message] = await store.queues.receive("order-review")
        assert orjson.loads(message.body) == {"order": "o-1", "note": "order o-1 is worth 250"}


asyncio.run(main())
