"""The app `benchmarks/bench_events.py` measures fan-out with: one `OrderPlaced` to four functions.

Each function has its own rule on the default bus, all four matching every
`OrderPlaced`, as the shop's inventory, payment, notification and analytics
functions do. The handlers do a little work on the order and return; the
benchmark counts their invocation records.
"""

from __future__ import annotations

from typing import Any

from triggerfish.app import App

app = App("bench-fanout")

ORDER_PLACED: dict[str, Any] = {"type": ["OrderPlaced"], "source": ["shop"]}


@app.on_event(ORDER_PLACED)
def reserve_stock(event: dict[str, Any]) -> dict[str, Any]:
    return {"reserved": [item["sku"] for item in event["data"]["items"]]}


@app.on_event(ORDER_PLACED)
def charge_payment(event: dict[str, Any]) -> dict[str, Any]:
    return {"charged": event["data"]["total"]}


@app.on_event(ORDER_PLACED)
def notify_customer(event: dict[str, Any]) -> dict[str, Any]:
    return {"to": event["data"]["customer"]["id"]}


@app.on_event(ORDER_PLACED)
def record_sale(event: dict[str, Any]) -> dict[str, Any]:
    return {"region": event["data"]["region"]}
