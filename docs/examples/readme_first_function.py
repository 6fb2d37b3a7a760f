import asyncio

import triggerfish
from triggerfish.testing import TestPlatform

app = triggerfish.App("shop")


@app.on_event({"type": ["OrderPlaced"], "data": {"total": [{"numeric": [">", 100]}]}})
def big_order(event, context):
    context.logger.info("big order %s", event["data"]["order_id"])
    context.publish("VipOrder", {"order_id": event["data"]["order_id"]})


async def main() -> None:
    async with TestPlatform(app) as platform:
        await platform.publish("OrderPlaced", {"order_id": "o-1", "total": 250})
        await platform.publish("OrderPlaced", {"order_id": "o-2", "total": 20})
        await platform.drain()
        vip = [e for e in await platform.published() if e.type == "VipOrder"]
        assert [e.data for e in vip] == [{"order_id": "o-1"}]


asyncio.run(main())
