"""Scheduled functions fire when the test moves the clock forward."""

import asyncio
import datetime

from triggerfish import App
from triggerfish.testing import TestPlatform

app = App("reports")
sent = []


@app.schedule("cron(0 9 * * ? *)")  # every day at 09:00 UTC
def morning_report(event, context):
    sent.append(event["time"])


async def main() -> None:
    start = datetime.datetime(2024, 5, 1, 8, 0, tzinfo=datetime.UTC)
    async with TestPlatform(app, start=start) as platform:
        await platform.advance(3 * 24 * 3600)  # three days
        assert sent == ["2024-05-01T09:00:00Z", "2024-05-02T09:00:00Z", "2024-05-03T09:00:00Z"]


asyncio.run(main())
