import asyncio

from triggerfish import App
from triggerfish.testing import TestPlatform

app = App("bank")


# Version 1 of Deposited held euros as a float; version 2 holds whole cents.
@app.upcaster("Deposited", 1)
def euros_to_cents(data):
    return {"amount": round(data["amount"] * 100)}


@app.function
def balance(event, context):
    stream = f"account-{event['account']}"
    snapshot = context.events.load_snapshot(stream, schema="cents")  # None under any other schema
    total, version = (snapshot.state["balance"], snapshot.version) if snapshot else (0, 0)
    for e in context.events.read(stream, start=version + 1):
        assert e.schema == 2  # every event arrives as the newest version
        total += e.data["amount"]
        version = e.version
    context.events.save_snapshot(stream, version=version, state={"balance": total}, schema="cents")
    return total


async def main():
    async with TestPlatform(app) as tp:
        store = tp.platform.eventstore
        await store.append("account-ada", [{"type": "Deposited", "data": {"amount": 12.5}}])  # schema 1
        await store.append("account-ada", [{"type": "Deposited", "data": {"amount": 250}, "schema": 2}])
        assert await tp.invoke("balance", {"account": "ada"}) == 1500
        await store.append("account-ada", [{"type": "Deposited", "data": {"amount": 5}, "schema": 2}])
        assert await tp.invoke("balance", {"account": "ada"}) == 1505  # the snapshot, then one event
        # A snapshot kept under an old schema is never read as the new one.
        await store.snapshots.save("account-bob", version=1, state={"euros": 3.0}, schema="euros")
        assert await store.snapshots.load("account-bob", schema="cents") is None


asyncio.run(main())
