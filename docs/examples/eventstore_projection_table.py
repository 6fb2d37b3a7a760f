import asyncio

from triggerfish import App
from triggerfish.testing import TestPlatform

app = App("bank")


@app.projection("account", tables=["balances"])
def balances(event, view):
    table = view.table("balances")
    row = table.get({"account": event.stream}) or {"account": event.stream, "balance": 0}
    sign = 1 if event.type == "Deposited" else -1
    table.put({**row, "balance": row["balance"] + sign * event.data["amount"]})


@app.function
def balance(event, context):
    row = context.table("balances").get({"account": f"account-{event['account']}"})
    return None if row is None else row["balance"]


async def main():
    async with TestPlatform(app) as tp:
        # In triggerfish.toml: [tables.balances] partition_key = "account"
        await tp.create_table("balances", "account")
        store = tp.platform.eventstore
        await store.append("account-ada", [{"type": "Deposited", "data": {"amount": 700}}])
        await store.append("account-ada", [{"type": "Withdrawn", "data": {"amount": 200}}])
        await tp.drain()
        assert await tp.invoke("balance", {"account": "ada"}) == 500

        await tp.platform.projections.rebuild("balances")  # empties the table, then applies every event again
        await tp.drain()
        assert await tp.invoke("balance", {"account": "ada"}) == 500


asyncio.run(main())
