"""The platform trims bus archives and topic logs past their retention, as triggerfish.toml sets it."""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path

from triggerfish.events.cloudevent import Event
from triggerfish.names import bus_stream, topic_stream
from triggerfish.server.platform import Platform

APP = """
import triggerfish

app = triggerfish.App("keeper")


@app.on_event({"source": ["tests"]})
def on_default(event, context):
    context.send("seen", event["id"])


@app.on_event({"source": ["tests"]}, bus="other")
def on_other(event, context):
    context.send("seen", event["id"])


@app.on_topic("news")
def on_news(event, context):
    context.send("seen", event["Records"][0]["Sns"]["Message"])
"""

CONFIG = """
[buses.default]
archive_retention = 60

[topics.news]
retention = 60
"""


async def seen(platform: Platform, count: int) -> None:
    """Wait (long-polling receives) until the functions have sent `count` messages to `seen`."""
    got = 0
    async with asyncio.timeout(20):
        while got < count:
            got += len(await platform.store.queues.receive("seen", max_messages=10, wait=1.0))


async def test_archives_and_topic_logs_are_trimmed_past_their_retention_and_no_sooner(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "triggerfish.toml").write_text(CONFIG)
    async with Platform(str(tmp_path / "app.py"), data_dir=tmp_path / "data") as platform:
        await platform.publish("default", [Event.create("t", "tests", data={"n": 1})])
        await platform.publish("other", [Event.create("t", "tests", data={"n": 2})])
        await platform.topics.publish("news", "extra, extra")
        await seen(platform, 3)
        assert await platform.maintain() == 0  # nothing is old yet

        log = platform.store.log
        now = time.time
        log.clock = lambda: now() + 3600  # an hour later
        try:
            removed = await platform.maintain()
        finally:
            log.clock = now
        assert removed == 2
        assert await log.read(bus_stream("default"), after=0) == []
        assert await log.read(topic_stream("news"), after=0) == []
        # The other bus has no table: its archive keeps the default seven days.
        assert len(await log.read(bus_stream("other"), after=0)) == 1
