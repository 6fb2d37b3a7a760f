"""One published event fans out to every function whose pattern matches, and onwards."""

import asyncio

from triggerfish import App
from triggerfish.testing import TestPlatform

app = App("shop")


@app.on_event({"type": ["order.placed"]})
def ship(event, context):
    context.publish("order.shipped", {"id": event["data"]["id"]})


@app.on_event({"detail-type": ["order.placed"], "detail": {"total": [{"numeric": [">=", 100]}]}}, shape="eventbridge")
def review(event, context):
    return f"reviewing a large order of {event['detail']['total']}"


@app.on_event({"type": ["order.shipped"]})
def notify(event, context):
    return f"order {event['data']['id']} is on its way"


async def main() -> None:
    async with TestPlatform(app) as platform:
        await platform.publish("order.placed", {"id": 1, "total": 150})
        await platform.publish("order.placed", {"id": 2, "total": 20})
        await platform.drain()

        ran = sorted(r.function for r in await platform.invocations(status="succeeded"))
        assert ran == ["notify", "notify", "review", "ship", "ship"]
        assert [e.type for e in await platform.published()] == [
            "order.placed",
            "order.placed",
            "order.shipped",
            "order.shipped",
        ]


asyncio.run(main())
