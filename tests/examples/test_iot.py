"""examples/iot on the in-process platform: each sensor event reaches exactly the automations its patterns name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from triggerfish.loader import load_app
from triggerfish.testing import TestPlatform

HOME = Path(__file__).resolve().parents[2] / "examples" / "iot" / "app.py"


@pytest.fixture
async def home() -> AsyncIterator[TestPlatform]:
    async with TestPlatform(load_app(str(HOME))) as platform:
        yield platform


async def sense(platform: TestPlatform, type: str, sensor: str, **data: Any) -> list[dict[str, Any]]:
    """Publish one sensor event as the hub would, run what it causes; the actions taken, in order."""
    before = len(await platform.published())
    await platform.publish(type, data, source=f"/home/sensors/{sensor}")
    await platform.drain()
    return [e.data for e in (await platform.published())[before:] if e.type == "ActionTaken"]


async def state(platform: TestPlatform) -> dict[str, Any]:
    answer: dict[str, Any] = await platform.invoke("get_home", {})
    return answer


@pytest.mark.parametrize(
    ("type", "sensor", "data", "actions"),
    [
        # heating: below 18 °C on, from 21 °C off, nothing in between
        ("TemperatureMeasured", "thermo-living", {"room": "living", "celsius": 16.5}, ["heating_on"]),
        ("TemperatureMeasured", "thermo-living", {"room": "living", "celsius": 17.99}, ["heating_on"]),
        ("TemperatureMeasured", "thermo-living", {"room": "living", "celsius": 18}, []),
        ("TemperatureMeasured", "thermo-living", {"room": "living", "celsius": 20.5}, []),
        ("TemperatureMeasured", "thermo-living", {"room": "living", "celsius": 21}, ["heating_off"]),
        # a reading below the range is a broken sensor; a thermostat set by hand is left alone
        ("TemperatureMeasured", "thermo-living", {"room": "living", "celsius": -45}, []),
        ("TemperatureMeasured", "thermo-living", {"room": "living", "celsius": 12, "manual_override": 19}, []),
        # lights: motion where it is dark, by light level or by the sun; never the cat flap
        ("MotionDetected", "motion-hall", {"room": "hall", "lux": 3, "sun": "up", "mode": "home"}, ["lights_on"]),
        ("MotionDetected", "motion-hall", {"room": "hall", "lux": 200, "sun": "down", "mode": "home"}, ["lights_on"]),
        ("MotionDetected", "motion-hall", {"room": "hall", "lux": 200, "sun": "up", "mode": "home"}, []),
        ("MotionDetected", "cat-flap", {"room": "kitchen", "lux": 1, "sun": "down", "mode": "home"}, []),
        # security: a door while nobody is home, motion while away, tampering whatever the mode
        ("DoorOpened", "door-front", {"door": "front", "mode": "away"}, ["alarm"]),
        ("DoorOpened", "door-front", {"door": "front", "mode": "night"}, ["alarm"]),
        ("DoorOpened", "door-front", {"door": "front", "mode": "home"}, []),
        ("MotionDetected", "motion-hall", {"room": "hall", "lux": 500, "sun": "up", "mode": "away"}, ["alarm"]),
        ("DoorOpened", "door-back", {"door": "back", "mode": "home", "tamper": "case opened"}, ["alarm"]),
        # maintenance
        ("TemperatureMeasured", "thermo-attic", {"room": "attic", "celsius": 19, "battery": 9}, ["replace_battery"]),
        ("TemperatureMeasured", "thermo-attic", {"room": "attic", "celsius": 19, "battery": 15}, []),
    ],
)
async def test_each_event_reaches_the_automations_its_patterns_name(
    home: TestPlatform, type: str, sensor: str, data: dict[str, Any], actions: list[str]
) -> None:
    taken = await sense(home, type, sensor, **data)
    assert [a["action"] for a in taken] == actions
    ran = {r.function for r in await home.invocations() if r.trigger == "event"}
    assert len(ran) == len(actions)  # no other automation even ran


async def test_heating_follows_the_temperature_and_the_state_records_it(home: TestPlatform) -> None:
    assert await sense(home, "TemperatureMeasured", "thermo-living", room="living", celsius=16.5) == [
        {"action": "heating_on", "room": "living"}
    ]
    assert (await state(home))["heating"] == {"living": "on"}
    await sense(home, "TemperatureMeasured", "thermo-bedroom", room="bedroom", celsius=15)
    await sense(home, "TemperatureMeasured", "thermo-living", room="living", celsius=21.5)
    assert (await state(home))["heating"] == {"living": "off", "bedroom": "on"}


async def test_a_door_opening_at_night_raises_the_alarm_with_the_reason(home: TestPlatform) -> None:
    assert (await state(home))["alarm"] is None
    await sense(home, "DoorOpened", "door-front", door="front", mode="night")
    alarm = (await state(home))["alarm"]
    assert alarm["reason"] == "the front door opened while the home is night"
    (opened,) = [e for e in await home.published() if e.type == "DoorOpened"]
    assert alarm["event"] == opened.id


async def test_a_sensor_outside_the_home_is_ignored(home: TestPlatform) -> None:
    await home.publish("TemperatureMeasured", {"room": "living", "celsius": 5}, source="/garden/weather-station")
    await home.drain()
    assert await home.invocations(function="heat") == []


async def test_low_battery_gets_the_eventbridge_envelope(home: TestPlatform) -> None:
    await sense(home, "MotionDetected", "motion-hall", room="hall", lux=500, sun="up", mode="home", battery=4)
    assert (await state(home))["batteries"] == {"motion-hall": 4}
    (record,) = await home.invocations(function="low_battery")
    assert record.status == "succeeded"


async def test_a_cold_dark_evening_at_once_loses_no_action(home: TestPlatform) -> None:
    # Published together, the automations run at the same time and all change the one state record.
    for room in ("living", "bedroom", "study", "kitchen"):
        await home.publish("TemperatureMeasured", {"room": room, "celsius": 14}, source=f"/home/sensors/t-{room}")
        await home.publish(
            "MotionDetected", {"room": room, "lux": 2, "sun": "down", "mode": "home"}, source=f"/home/sensors/m-{room}"
        )
    await home.drain()
    current = await state(home)
    assert current["heating"] == dict.fromkeys(("living", "bedroom", "study", "kitchen"), "on")
    assert current["lights"] == dict.fromkeys(("living", "bedroom", "study", "kitchen"), "on")
    assert len([e for e in await home.published() if e.type == "ActionTaken"]) == 8
