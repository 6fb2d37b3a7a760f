"""The app `benchmarks/bench_events.py` measures fan-out with: one `OrderPlaced` to four functions.

Each function has its own rule on the default bus, all four matching every
`OrderPlaced`, as the shop's inventory, payment, notification and analytics
functions do. The handlers do a little work on the order, append their
name, the event id and the time they were entered to the file named by
their BENCH_EVENTS_ENTRY_LOG setting (which the benchmark sets), and return;
the benchmark counts those lines.
"""

from __future__ import annotations

import os
import time
from typing import Any

from triggerfish.app import App

ENTRY_LOG = "BENCH_EVENTS_ENTRY_LOG"
_log: list[int] = []  # this worker's file descriptor, opened on its first invocation

app = App("bench-fanout")

#: The four functions, each entered once per event.
FUNCTIONS = ("reserve_stock", "charge_payment", "notify_customer", "record_sale")
ORDER_PLACED: dict[str, Any] = {"type": ["OrderPlaced"], "source": ["shop"]}


def entered(function: str, event: dict[str, Any]) -> None:
    """One line for the benchmark: this function ran for this event, now."""
    now = time.time()
    path = os.environ.get(ENTRY_LOG)
    if not path:
        return
    if not _log:
        _log.append(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    # One short O_APPEND write: lines from several workers never interleave.
    os.write(_log[0], f"{function} {event['id']} {now!r}\n".encode())


@app.on_event(ORDER_PLACED)
def reserve_stock(event: dict[str, Any]) -> dict[str, Any]:
    entered("reserve_stock", event)
    return {"reserved": [item["sku"] for item in event["data"]["items"]]}


@app.on_event(ORDER_PLACED)
def charge_payment(event: dict[str, Any]) -> dict[str, Any]:
    entered("charge_payment", event)
    return {"charged": event["data"]["total"]}


@app.on_event(ORDER_PLACED)
def notify_customer(event: dict[str, Any]) -> dict[str, Any]:
    entered("notify_customer", event)
    return {"to": event["data"]["customer"]["id"]}


@app.on_event(ORDER_PLACED)
def record_sale(event: dict[str, Any]) -> dict[str, Any]:
    entered("record_sale", event)
    return {"region": event["data"]["region"]}
