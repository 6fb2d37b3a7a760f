"""The server's scheduler on a SQLite store: once per occurrence, even across a restart."""

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


@app.schedule("rate(5 minutes)")
def sweep(event, context):
    ran.append(event["time"])


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC)


async def server(url: str, times: list[str]) -> list[str]:
    """Start a server on the store, let its scheduler see each time in turn, stop it."""
    store = await open_store(url)
    invoker = Invoker(InProcessRunner(app.functions, platform=StorePlatform(store)), store)
    await invoker.start()
    scheduler = Scheduler(store, app.functions, invoker=invoker)
    fired = []
    for moment in times:
        fired += await scheduler.run_due(at(moment))  # the background loop does this every second
    await invoker.drain()
    await invoker.stop()
    await store.close()
    return fired


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/triggerfish.db"
        first = await server(url, ["2024-05-01 12:00:00", "2024-05-01 12:04"])
        # Restarted on the same store: 12:00 already fired, so only 12:05 does.
        second = await server(url, ["2024-05-01 12:00:30", "2024-05-01 12:05:01"])
    assert ran == ["2024-05-01T12:00:00Z", "2024-05-01T12:05:00Z"]
    assert len(first) == len(second) == 1  # request ids; the same occurrence always gets the same one


asyncio.run(main())
