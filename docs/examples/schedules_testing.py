"""A scheduled function in a unit test: move the test clock, see the EventBridge scheduled event."""

import asyncio
import datetime

from triggerfish import App
from triggerfish.testing import TestPlatform

app = App("reports")
received = []


@app.schedule("cron(0 9 ? * MON-FRI *)", tz="Europe/Paris")  # weekdays at 09:00 in Paris
def morning_report(event, context):
    received.append(event)


async def main() -> None:
    friday = datetime.datetime(2024, 5, 3, 6, 0, tzinfo=datetime.UTC)
    async with TestPlatform(app, start=friday) as platform:
        await platform.advance(4 * 24 * 3600)  # Friday to Tuesday morning
    # 09:00 in Paris is 07:00 UTC in summer; the weekend does not fire.
    assert [event["time"] for event in received] == ["2024-05-03T07:00:00Z", "2024-05-06T07:00:00Z"]
    event = received[0]
    assert event["source"] == "aws.events"
    assert event["detail-type"] == "Scheduled Event"
    assert event["resources"] == ["arn:aws:events:local:000000000000:rule/morning_report"]
    assert event["detail"] == {}


asyncio.run(main())
