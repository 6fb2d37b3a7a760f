"""examples/iot/devices.py on the in-process platform: shadows and deltas, hot rooms, per-minute averages."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from triggerfish.loader import load_app
from triggerfish.testing import TestPlatform

DEVICES = Path(__file__).resolve().parents[2] / "examples" / "iot" / "devices.py"


@pytest.fixture
async def home() -> AsyncIterator[TestPlatform]:
    async with TestPlatform(load_app(str(DEVICES))) as platform:
        yield platform


async def report(platform: TestPlatform, room: str, device: str, **state: Any) -> None:
    await platform.mqtt_publish(f"home/{room}/{device}/reported", json.dumps(state))


def sent(platform: TestPlatform, topic_filter: str) -> list[Any]:
    return [json.loads(payload) for _, payload in platform.mqtt_messages(topic_filter)]


async def test_a_shadow_keeps_the_reported_state_in_order_and_sends_the_delta_to_the_device(
    home: TestPlatform,
) -> None:
    for seq in range(1, 6):
        await report(home, "hall", "lamp", seq=seq, power="off")
    await home.drain()
    shadow = await home.invoke("set_desired", {"room": "hall", "device": "lamp", "desired": {"power": "on"}})
    await home.drain()
    assert shadow["reported"] == {"seq": 5, "power": "off"}, "the last report wins: reports are handled in order"
    assert sent(home, "home/hall/lamp/set") == [{"power": "on"}]
    deltas = [e.data for e in await home.published() if e.type == "ShadowDelta"]
    assert deltas == [{"room": "hall", "device": "lamp", "delta": {"power": "on"}}]
    await report(home, "hall", "lamp", seq=6, power="on")  # the lamp did it: no delta any more
    await home.drain()
    assert sent(home, "home/hall/lamp/set") == [{"power": "on"}]


async def test_a_hot_room_turns_its_fan_on_and_raises_an_alert(home: TestPlatform) -> None:
    await report(home, "attic", "thermo", seq=1, temperature=31.5)
    await report(home, "cellar", "thermo", seq=1, temperature=12.0)
    await home.drain()
    assert sent(home, "home/+/fan/set") == [{"power": "on"}]
    assert [topic for topic, _ in home.mqtt_messages("home/+/fan/set")] == ["home/attic/fan/set"]
    assert sent(home, "home/alerts") == [{"alert": "hot", "temperature": 31.5, "room": "attic"}]


async def test_each_rooms_average_is_published_when_the_minute_ends(home: TestPlatform) -> None:
    for seq, temperature in enumerate((20.0, 21.0, 22.5), start=1):
        await report(home, "kitchen", "thermo", seq=seq, temperature=temperature)
    await report(home, "study", "thermo", seq=1, temperature=18.0)
    await home.drain()
    assert sent(home, "home/+/average") == [], "the minute has not ended"
    await home.advance(61)
    await home.drain()
    averages = {a["room"]: a["average"] for a in sent(home, "home/+/average")}
    assert averages == {"kitchen": 21.17, "study": 18.0}
