"""The app `benchmarks/bench_events.py` measures publish-to-handler latency with: 100 rules on one bus.

The benchmark publishes `OrderPlaced` events from `shop` (their data: see
`order_event_data`). One rule matches them all, `entry`'s: its handler
appends the event id and the time it was entered to the file named by its
BENCH_EVENTS_ENTRY_LOG setting, which the benchmark sets (and the other
functions a line saying they ran, which they must not). (A write to a
file costs the platform nothing; printing would add reading the worker's
output to what is measured.)

The other 99 rules, on nine functions, never match that stream but cost
what rules cost: 63 are anchored on other types and sources (exact, prefix,
suffix, equals-ignore-case, wildcard, cidr, $or), and 36 are near misses:
they name `OrderPlaced` too and fail on a data field (a numeric range,
anything-but, exists, a nested value), so the matcher may check them for
every event.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any

from triggerfish.app import App

app = App("bench-events")

#: The one rule the benchmark's stream matches.
MATCHING: dict[str, Any] = {"type": ["OrderPlaced"], "source": ["shop"], "data": {"total": [{"numeric": [">", 0]}]}}

OTHER_TYPES = [
    "PaymentProcessed",
    "PaymentFailed",
    "OrderShipped",
    "OrderCancelled",
    "RefundIssued",
    "StockLow",
    "TemperatureReading",
    "MotionDetected",
    "DoorOpened",
]


def _rule(number: int) -> dict[str, Any]:
    """Rule `number` (0-98) of the 99 that do not match the stream; eleven kinds, nine of each."""
    k = number // 11
    kind = number % 11
    other = OTHER_TYPES[k]
    if kind == 0:
        return {"type": [other]}
    if kind == 1:
        return {"type": [{"prefix": f"Inventory.{k}."}], "source": ["warehouse"]}
    if kind == 2:
        return {"source": [{"suffix": f".sensors-{k}"}], "data": {"celsius": [{"numeric": [">", 30 + k]}]}}
    if kind == 3:
        return {"type": [{"equals-ignore-case": other.lower()}], "source": ["payments"]}
    if kind == 4:
        return {"source": [{"wildcard": f"warehouse-{k}-*"}], "type": ["StockLow"]}
    if kind == 5:
        return {"source": ["iot"], "$or": [{"data": {"celsius": [{"numeric": [">", 40 + k]}]}}, {"type": [other]}]}
    if kind == 6:
        return {"type": ["OrderPlaced"], "data": {"total": [{"numeric": [">=", 10_000 + 1000 * k]}]}}
    if kind == 7:
        return {"type": ["OrderPlaced"], "data": {"region": [{"anything-but": ["nz", "au", "us"]}]}}
    if kind == 8:
        return {"type": ["OrderPlaced"], "data": {"coupon": [{"exists": True}]}}
    if kind == 9:
        return {"source": ["partners"], "data": {"ip": [{"cidr": f"192.168.{k}.0/24"}]}}
    return {"type": ["OrderPlaced"], "data": {"customer": {"tier": [f"diamond-{k}"]}}}


NON_MATCHING: list[dict[str, Any]] = [_rule(n) for n in range(99)]


def order_event_data(number: int) -> dict[str, Any]:
    """The data of the benchmark's `number`th OrderPlaced event (a small, realistic order)."""
    return {
        "order_id": f"o-{number}",
        "total": 10.0 + number % 490,
        "currency": "NZD",
        "region": ("nz", "au", "us")[number % 3],
        "ip": f"10.1.{number % 250}.{number % 200 + 1}",
        "customer": {"id": f"c-{number % 977}", "tier": ("gold", "silver", "bronze")[number % 3]},
        "items": [{"sku": "fish-food", "qty": 1 + number % 4}],
    }


ENTRY_LOG = "BENCH_EVENTS_ENTRY_LOG"
_log: list[int] = []  # this worker's file descriptor, opened on its first invocation


def _write(line: str) -> None:
    path = os.environ.get(ENTRY_LOG)
    if not path:
        return
    if not _log:
        _log.append(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    # One short O_APPEND write: lines from several workers never interleave.
    os.write(_log[0], line.encode())


@app.on_event(MATCHING)
def entry(event: dict[str, Any]) -> None:
    _write(f"{event['id']} {time.time()!r}\n")


def _unexpected(event: dict[str, Any]) -> None:
    # The benchmark counts these lines: none of these rules may match its stream.
    _write(f"unexpected {event['id']}\n")


OTHERS = [
    "refund",
    "restock",
    "loyalty",
    "fraud_review",
    "ship_label",
    "sensor_alert",
    "door_alarm",
    "newsletter",
    "audit",
]
for _index, _name in enumerate(OTHERS):
    # One handler object per function: a name is bound to one handler.
    _handler: Callable[[dict[str, Any]], None] = functools.partial(_unexpected)
    for _pattern in NON_MATCHING[_index * 11 : _index * 11 + 11]:
        app.on_event(_pattern, name=_name)(_handler)
