import asyncio
import json

from triggerfish import App
from triggerfish.testing import TestPlatform

app = App("bank")


@app.projection("account", batch_size=100)
def balances(event, view):
    row = view.get(event.stream, {"balance": 0})
    sign = 1 if event.type == "Deposited" else -1
    view.put(event.stream, {"balance": row["balance"] + sign * event.data["amount"]})


async def main():
    async with TestPlatform(app) as tp:
        store = tp.platform.eventstore
        await store.append("account-ada", [{"type": "Deposited", "data": {"amount": 700}}])
        await store.append("account-ada", [{"type": "Withdrawn", "data": {"amount": 200}}])
        await store.append("loan-7", [{"type": "Granted", "data": {"amount": 10_000}}])  # another category
        await tp.drain()
        record = await tp.store.kv.get("projection.balances", "account-ada")
        assert json.loads(record.value) == {"balance": 500}
        [status] = await tp.platform.projections.status()
        assert (status["position"], status["lag"]) == (3, 0)

        await tp.platform.projections.rebuild("balances")  # `triggerfish eventstore rebuild balances`
        await tp.drain()
        assert json.loads((await tp.store.kv.get("projection.balances", "account-ada")).value) == {"balance": 500}


asyncio.run(main())
