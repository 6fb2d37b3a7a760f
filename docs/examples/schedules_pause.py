"""Look at the schedules, pause one and resume it."""

import asyncio
import datetime

from triggerfish import App
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.runtime.platform_calls import StorePlatform
from triggerfish.store import open_store
from triggerfish.triggers.schedules import Scheduler

app = App("shop")


@app.schedule("cron(0 2 * * ? *)")
@app.schedule("rate(1 hour)")
def housekeeping(event, context):
    return event["resources"]


@app.schedule("0 6 * * MON", tz="America/New_York")
def weekly_digest(event, context):
    return None


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC)


async def main() -> None:
    store = await open_store("memory://")
    invoker = Invoker(InProcessRunner(app.functions, platform=StorePlatform(store)), store)
    scheduler = Scheduler(store, app.functions, invoker=invoker)

    # A function with several schedules names them name#1, name#2, ... (in the event's resources too).
    listed = {s.name: s.next_fire for s in await scheduler.next_fires(at("2024-05-01 10:30"))}
    assert listed == {
        "housekeeping#1": at("2024-05-02 02:00"),
        "housekeeping#2": at("2024-05-01 11:00"),
        "weekly_digest": at("2024-05-06 10:00"),  # 06:00 in New York
    }

    await scheduler.pause("housekeeping#2", now=at("2024-05-01 10:30"))  # on every server sharing the store
    assert await scheduler.run_due(at("2024-05-01 11:00:01")) == []
    [status] = [s for s in await scheduler.next_fires(at("2024-05-01 11:30")) if s.paused]
    assert (status.name, status.next_fire) == ("housekeeping#2", None)

    await scheduler.resume("housekeeping#2", now=at("2024-05-01 11:30"))  # 11:00 fell while paused: it stays skipped
    assert await scheduler.run_due(at("2024-05-01 11:31")) == []
    assert len(await scheduler.run_due(at("2024-05-01 12:00:01"))) == 1
    await store.close()


asyncio.run(main())
