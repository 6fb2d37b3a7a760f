"""The smart home's devices over MQTT: telemetry in order per device, hot rooms, per-minute averages, shadows.

Devices publish to the local Mosquitto (`[mqtt] url` in triggerfish.toml):

    home/<room>/<device>/reported   {"seq": 41, "temperature": 31.5, "power": "off"}   what the device is

and listen on `home/<room>/<device>/set` for commands. Four functions:

- shadow: every report, in order per device (one topic, one partition), becomes the device's
  shadow (a key-value record `shadows/<room>/<device>`: reported and desired state). When they
  differ the device is sent the difference on `.../set` (over MQTT) and a `ShadowDelta` event
  goes on the bus. Each reading also goes into the built-in stream `readings`, keyed by room.
- hot_rooms: an IoT rule keeps only readings over 30 °C (`topic(2)` is the room); each turns the
  room's fan on (`home/<room>/fan/set`) and raises an alert on `home/alerts`.
- room_averages: a 60-second tumbling window over `readings`: at the end of each minute, the
  room's average is published to `home/<room>/average` and kept in `averages/<room>`.
- set_desired: `{"room": ..., "device": ..., "desired": {...}}` sets what a device should be.

Run it with `triggerfish dev examples/iot/devices.py` (examples/iot/README.md).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import triggerfish
from triggerfish import Context

app = triggerfish.App("devices")

HOT_ROOMS = "SELECT temperature, topic(2) AS room FROM 'home/+/+/reported' WHERE temperature > 30"


def payload(record: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(record["mqtt"]["data"]))


def read(context: Context, key: str) -> tuple[dict[str, Any], int]:
    record = context.call_platform("kv_get", {"namespace": "home", "key": key})
    return (json.loads(record["value"]), int(record["version"])) if record else ({}, 0)


def update(context: Context, key: str, change: Any) -> dict[str, Any]:
    """Read, change and write one record with compare-and-set (a handler and set_desired may race)."""
    for _ in range(50):
        value, version = read(context, key)
        change(value)
        args = {"namespace": "home", "key": key, "value": json.dumps(value), "if_version": version}
        if context.call_platform("kv_put", args) is not None:
            return value
    raise triggerfish.Retry(f"{key} kept changing")


def send_delta(context: Context, room: str, device: str, shadow: dict[str, Any]) -> None:
    """Tell the device what differs between what it should be and what it says it is."""
    reported, desired = shadow.get("reported", {}), shadow.get("desired", {})
    delta = {name: value for name, value in desired.items() if reported.get(name) != value}
    if delta:
        context.mqtt.publish(f"home/{room}/{device}/set", delta)
        context.publish("ShadowDelta", {"room": room, "device": device, "delta": delta}, source="/home/shadows")


@app.on_mqtt("home/+/+/reported", batch_size=100, batch_window=0.1, parallelization=4)
def shadow(event: dict[str, Any], context: Context) -> None:
    for record in event["Records"]:
        _, room, device, _ = record["mqtt"]["topic"].split("/")
        reading = payload(record)

        def report(value: dict[str, Any], reading: dict[str, Any] = reading) -> None:
            value.setdefault("desired", {})
            value["reported"] = {**value.get("reported", {}), **reading}

        send_delta(context, room, device, update(context, f"shadows/{room}/{device}", report))
        if "temperature" in reading:
            row = {"room": room, "device": device, "temperature": reading["temperature"], "seq": reading.get("seq")}
            context.streams.put("readings", row)


@app.on_mqtt("home/+/+/reported", rule=HOT_ROOMS)
def hot_rooms(event: dict[str, Any], context: Context) -> None:
    for record in event["Records"]:
        hot = payload(record)  # the rule's output: {"temperature": ..., "room": ...}
        context.mqtt.publish(f"home/{hot['room']}/fan/set", {"power": "on"})
        context.mqtt.publish("home/alerts", {"alert": "hot", **hot})


@app.on_stream("readings", partition_key="room", window=60, parallelization=2)
def room_averages(event: dict[str, Any], context: Context) -> dict[str, Any]:
    state = dict(event["state"])  # per room: [sum, count], carried from the window's earlier batches
    for record in event["Records"]:
        reading = json.loads(base64.b64decode(record["kinesis"]["data"]))
        total, count = state.get(reading["room"], [0.0, 0])
        state[reading["room"]] = [total + reading["temperature"], count + 1]
    if event["isFinalInvokeForWindow"]:
        for room, (total, count) in state.items():
            average = {"room": room, "average": round(total / count, 2), "window": event["window"]}
            context.mqtt.publish(f"home/{room}/average", average)
            context.call_platform(
                "kv_put", {"namespace": "home", "key": f"averages/{room}", "value": json.dumps(average)}
            )
    return {"state": state}


@app.function()
def set_desired(event: dict[str, Any], context: Context) -> dict[str, Any]:
    room, device = event["room"], event["device"]

    def desire(value: dict[str, Any]) -> None:
        value["desired"] = {**value.get("desired", {}), **event["desired"]}
        value.setdefault("reported", {})

    shadow = update(context, f"shadows/{room}/{device}", desire)
    send_delta(context, room, device, shadow)
    return shadow
