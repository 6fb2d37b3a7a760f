"""A smart home on Triggerfish: sensor events routed by EventBridge patterns to functions that act on them.

The home's hub publishes what its sensors see (POST /-/events), stamped with
the home's mode ("home", "away" or "night"):

    TemperatureMeasured  {"room": "living", "celsius": 16.5, "battery": 80}
    MotionDetected       {"room": "hall", "lux": 3, "sun": "down", "mode": "home"}
    DoorOpened           {"door": "front", "mode": "away"}

Each function's pattern says which of them it wants; nothing in the code
tests a threshold or a mode:

- heat: a room is below 18 °C, unless someone set its thermostat by hand
  (a numeric range, since a reading under -30 °C is a broken sensor; exists: false; a source prefix);
- stop_heating: a room reaches 21 °C (numeric);
- lights_on: motion where it is dark, under 10 lux or after sunset, except
  at the cat flap ($or inside data; anything-but a prefix);
- raise_alarm: a door opens while nobody is home, motion while the home is
  away, or a sensor reports tampering ($or of whole patterns; anything-but; exists);
- low_battery: a sensor's battery is under 15 % (numeric; the EventBridge shape).

Every action is recorded in one key-value record, the home's state (read it
with GET /home), and announced as an `ActionTaken` event.

Run it with `triggerfish dev examples/iot/app.py`; examples/iot/README.md has requests to try.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import triggerfish
from triggerfish import Context

app = triggerfish.App("home")

SENSORS = [{"prefix": "/home/sensors/"}]
EMPTY_STATE: dict[str, Any] = {"heating": {}, "lights": {}, "alarm": None, "batteries": {}}


# --- the home's state: one record, changed with compare-and-set ------------------------------


def read_state(context: Context) -> tuple[dict[str, Any], int]:
    record = context.call_platform("kv_get", {"namespace": "home", "key": "state"})
    if record is None:
        return json.loads(json.dumps(EMPTY_STATE)), 0  # version 0: there is no record yet
    return json.loads(record["value"]), int(record["version"])


def act(context: Context, action: str, change: Callable[[dict[str, Any]], None], **details: Any) -> dict[str, Any]:
    """Apply `change` to the home's state, then announce the action.

    Several functions act at once (a cold, dark evening brings heating and
    lights together), so the write only succeeds if nobody wrote in between;
    otherwise the state is read again and the change reapplied.
    """
    for _ in range(50):
        state, version = read_state(context)
        change(state)
        args = {"namespace": "home", "key": "state", "value": json.dumps(state), "if_version": version}
        if context.call_platform("kv_put", args) is not None:
            context.publish("ActionTaken", {"action": action, **details}, source="/home/automations")
            return state
    raise triggerfish.Retry("the home's state kept changing; trying again")


@app.http("GET", "/home")
def get_home(event: dict[str, Any], context: Context) -> dict[str, Any]:
    state, _ = read_state(context)
    return state


# --- heating ---------------------------------------------------------------------------------


@app.on_event(
    {
        "type": ["TemperatureMeasured"],
        "source": SENSORS,
        "data": {"celsius": [{"numeric": [">=", -30, "<", 18]}], "manual_override": [{"exists": False}]},
    }
)
def heat(event: dict[str, Any], context: Context) -> dict[str, Any]:
    room = event["data"]["room"]
    return act(context, "heating_on", lambda state: state["heating"].update({room: "on"}), room=room)


@app.on_event({"type": ["TemperatureMeasured"], "source": SENSORS, "data": {"celsius": [{"numeric": [">=", 21]}]}})
def stop_heating(event: dict[str, Any], context: Context) -> dict[str, Any]:
    room = event["data"]["room"]
    return act(context, "heating_off", lambda state: state["heating"].update({room: "off"}), room=room)


# --- lights ----------------------------------------------------------------------------------


@app.on_event(
    {
        "type": ["MotionDetected"],
        "source": [{"anything-but": {"prefix": "/home/sensors/cat-flap"}}],
        "data": {"$or": [{"lux": [{"numeric": ["<", 10]}]}, {"sun": ["down"]}]},
    }
)
def lights_on(event: dict[str, Any], context: Context) -> dict[str, Any]:
    room = event["data"]["room"]
    return act(context, "lights_on", lambda state: state["lights"].update({room: "on"}), room=room)


# --- security --------------------------------------------------------------------------------


@app.on_event(
    {
        "$or": [
            {"type": ["DoorOpened"], "data": {"mode": [{"anything-but": "home"}]}},
            {"type": ["MotionDetected"], "data": {"mode": ["away"]}},
            {"source": SENSORS, "data": {"tamper": [{"exists": True}]}},
        ]
    }
)
def raise_alarm(event: dict[str, Any], context: Context) -> dict[str, Any]:
    data = event["data"]
    if "tamper" in data:
        reason = f"sensor {event['source']} reports tampering"
    elif event["type"] == "DoorOpened":
        reason = f"the {data['door']} door opened while the home is {data['mode']}"
    else:
        reason = f"motion in the {data['room']} while the home is away"
    alarm = {"reason": reason, "event": event["id"]}
    return act(context, "alarm", lambda state: state.update(alarm=alarm), reason=reason)


# --- maintenance: this one reads the EventBridge envelope, as a Lambda function behind EventBridge would --


@app.on_event({"source": SENSORS, "detail": {"battery": [{"numeric": ["<", 15]}]}}, shape="eventbridge")
def low_battery(event: dict[str, Any], context: Context) -> dict[str, Any]:
    sensor = event["source"].removeprefix("/home/sensors/")
    level = event["detail"]["battery"]
    return act(context, "replace_battery", lambda state: state["batteries"].update({sensor: level}), sensor=sensor)
