import asyncio
import json

from triggerfish import App
from triggerfish.testing import TestPlatform

app = App("bank")
CURRENCIES = {"EUR"}  # a rate table the projection reads; "GBP" is missing at first


@app.projection("account", order="stream", max_concurrency=8)
def statements(event, view):
    if event.data["currency"] not in CURRENCIES:
        raise LookupError(f"no rate for {event.data['currency']}")
    lines = view.get(event.stream, [])
    view.put(event.stream, [*lines, f"{event.version}: {event.type} {event.data['amount']}"])


async def lines(tp, stream):
    record = await tp.store.kv.get("projection.statements", stream)
    return json.loads(record.value) if record else []


async def main():
    async with TestPlatform(app) as tp:
        store = tp.platform.eventstore
        await store.append("account-ada", [{"type": "Deposited", "data": {"amount": 70, "currency": "EUR"}}])
        await store.append("account-bob", [{"type": "Deposited", "data": {"amount": 5, "currency": "GBP"}}])
        await store.append("account-bob", [{"type": "Deposited", "data": {"amount": 8, "currency": "EUR"}}])
        await store.append("account-ada", [{"type": "Withdrawn", "data": {"amount": 20, "currency": "EUR"}}])
        await tp.drain()
        # Bob's first event fails: his stream waits at version 0; Ada's goes on.
        assert await lines(tp, "account-ada") == ["1: Deposited 70", "2: Withdrawn 20"]
        assert await lines(tp, "account-bob") == []
        [status] = await tp.platform.projections.status()
        assert (status["order"], status["lag"], status["streams_behind"]) == ("stream", 0, 1)
        assert status["behind"]["account-bob"] == {"version": 0, "failed": 1, "error": "no rate for GBP"}

        CURRENCIES.add("GBP")  # the cause is fixed (in real life: a deploy)
        await tp.advance(1)  # a stream behind is tried again every second
        assert await lines(tp, "account-bob") == ["1: Deposited 5", "2: Deposited 8"]
        [status] = await tp.platform.projections.status()
        assert status["streams_behind"] == 0


asyncio.run(main())
