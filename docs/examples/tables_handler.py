"""A handler's `context.table`: conditional writes, updates, queries, and an event published with the write."""

import asyncio

from triggerfish import App
from triggerfish.tables.errors import ConditionFailedError
from triggerfish.testing import TestPlatform

app = App("shop")


@app.function
def place(event, context):
    orders = context.table("orders")
    try:
        orders.put(
            {"customer": event["customer"], "order_id": event["order_id"], "status": "NEW", "total": event["total"]},
            condition="attribute_not_exists(order_id)",  # placing the same order twice does nothing
            publish=[context.event("order.placed", {"order_id": event["order_id"]})],  # with the write, or not at all
        )
    except ConditionFailedError:
        return {"placed": False}
    return {"placed": True}


@app.function
def pay(event, context):
    key = {"customer": event["customer"], "order_id": event["order_id"]}
    return context.table("orders").update(key, set={"status": "PAID"}, add={"payments": 1})


@app.function
def history(event, context):
    page = context.table("orders").query(
        "customer = :c AND order_id > :after",
        values={":c": event["customer"], ":after": 0},
        forward=False,  # newest first
        limit=10,
    )
    return [(item["order_id"], item["status"]) for item in page.items]


async def main() -> None:
    async with TestPlatform(app) as platform:
        # The table's keys: in triggerfish.toml, [tables.orders] partition_key = "customer", sort_key = "order_id:N"
        await platform.create_table("orders", "customer", "order_id:N")
        assert await platform.invoke("place", {"customer": "ada", "order_id": 1, "total": 42}) == {"placed": True}
        assert await platform.invoke("place", {"customer": "ada", "order_id": 1, "total": 42}) == {"placed": False}
        assert await platform.invoke("place", {"customer": "ada", "order_id": 2, "total": 7.5}) == {"placed": True}
        paid = await platform.invoke("pay", {"customer": "ada", "order_id": 1})
        assert paid == {"customer": "ada", "order_id": 1, "status": "PAID", "total": 42, "payments": 1}
        assert await platform.invoke("history", {"customer": "ada"}) == [[2, "NEW"], [1, "PAID"]]
        # One event per order actually placed: the refused write published nothing.
        assert [event.type for event in await platform.published()] == ["order.placed", "order.placed"]


asyncio.run(main())
