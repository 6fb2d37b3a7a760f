"""What fires after an outage, under each missed-fire policy."""

import asyncio
import datetime
import tempfile

from triggerfish import App
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.runtime.platform_calls import StorePlatform
from triggerfish.store import open_store
from triggerfish.triggers.schedules import Scheduler

app = App("reports")
ran = []


@app.schedule("rate(1 hour)")
def hourly(event, context):
    ran.append(event["time"][11:16])


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC)


async def outage(missed: str) -> list[str]:
    """Fire 09:00, be down until 12:30, come back: what runs?"""
    ran.clear()
    with tempfile.TemporaryDirectory() as directory:
        store = await open_store(f"sqlite:///{directory}/triggerfish.db")
        invoker = Invoker(InProcessRunner(app.functions, platform=StorePlatform(store)), store)
        await invoker.start()
        scheduler = Scheduler(store, app.functions, invoker=invoker, missed=missed)
        await scheduler.run_due(at("2024-05-01 09:00:00"))
        await scheduler.run_due(at("2024-05-01 12:30:00"))  # 10:00, 11:00 and 12:00 were missed
        await invoker.drain()
        await invoker.stop()
        await store.close()
    return sorted(ran)


async def main() -> None:
    assert await outage("latest") == ["09:00", "12:00"]  # the default: once, for the latest missed time
    assert await outage("all") == ["09:00", "10:00", "11:00", "12:00"]  # each, oldest first (at most 100)
    assert await outage("skip") == ["09:00"]  # none: it carries on at 13:00


asyncio.run(main())
