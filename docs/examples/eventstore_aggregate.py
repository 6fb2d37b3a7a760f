import asyncio

from triggerfish import App
from triggerfish.eventstore import WrongExpectedVersionError
from triggerfish.testing import TestPlatform

app = App("bank")


@app.function
def withdraw(event, context):
    stream = f"account-{event['account']}"
    for _ in range(10):
        history = context.events.read(stream)  # oldest first
        balance = sum(e.data["amount"] * (1 if e.type == "Deposited" else -1) for e in history)
        if balance < event["amount"]:
            return {"ok": False, "balance": balance}
        try:
            context.events.append(
                stream,
                [{"type": "Withdrawn", "data": {"amount": event["amount"]}}],
                expected_version=history[-1].version if history else 0,
            )
        except WrongExpectedVersionError as conflict:
            print("someone else wrote version", conflict.current, "- deciding again")
            continue
        return {"ok": True, "balance": balance - event["amount"]}
    return {"ok": False, "busy": True}


@app.on_event({"type": ["Withdrawn"], "data": {"amount": [{"numeric": [">=", 1000]}]}})
def large(event, context):
    print("large withdrawal from", event["subject"], "of", event["data"]["amount"])


async def main():
    async with TestPlatform(app) as tp:
        events = tp.platform.eventstore.events
        await tp.platform.eventstore.append("account-ada", [{"type": "Deposited", "data": {"amount": 1500}}])
        assert await tp.invoke("withdraw", {"account": "ada", "amount": 1200}) == {"ok": True, "balance": 300}
        assert await tp.invoke("withdraw", {"account": "ada", "amount": 500}) == {"ok": False, "balance": 300}
        newest = await events.read_stream("account-ada", backwards=True)
        assert [(e.version, e.type) for e in newest] == [(2, "Withdrawn"), (1, "Deposited")]
        await tp.drain()  # the bus routes the Withdrawn event to the rule
        [published] = [e for e in await tp.published() if e.type == "Withdrawn"]
        assert (published.subject, published.source) == ("account-ada", "/bank/eventstore/account")


asyncio.run(main())
