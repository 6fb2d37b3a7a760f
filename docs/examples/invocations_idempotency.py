"""@idempotent: the same order delivered twice is charged once."""

import asyncio

import triggerfish
from triggerfish.app import App
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.runtime.platform_calls import StorePlatform
from triggerfish.store import open_store

app = App("payments")
charged = []


@app.function
@triggerfish.idempotent(key="$.data.order_id", window=24 * 3600)
def charge(event, context):
    charged.append(event["data"]["order_id"])
    return {"receipt": f"R-{event['data']['order_id']}"}


async def main():
    store = await open_store("memory://")
    # The decorator keeps its keys through the platform, so the runner needs one.
    runner = InProcessRunner(app.functions, platform=StorePlatform(store))
    invoker = Invoker(runner, store)

    event = {"data": {"order_id": "o-42", "amount": 25}}
    first = await invoker.invoke("charge", event)
    again = await invoker.invoke("charge", event)  # a duplicate delivery
    assert first == again == {"receipt": "R-o-42"}
    assert charged == ["o-42"]

    await store.close()


asyncio.run(main())
