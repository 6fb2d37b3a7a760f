"""An online shop's order flow on Triggerfish: HTTP, a table and its changes, events, queues, retries,
dead letters and a schedule.

    POST /orders ──► place_order ── the order into the table "orders", OrderPlaced published with it
                        │                  │
     change: INSERT     ▼                  ├───────────────────────────┐
                 reserve_stock             ▼                           ▼
             (stock, reservation)    charge_payment               notify_customer ──► queue "notifications"
                                  order status "paid" (with               │
                                  PaymentProcessed) or PaymentFailed      ▼
                                  (provider down: retried, then      send_emails (batches; a bounced
                                   queue "payments-dlq")             address is retried, then
                        │                                            "notifications.dlq")
     change: MODIFY to "paid"
                        ▼
                   ship_order ── label, status "shipped" (with OrderShipped) ──► notify_customer
    StockDelivered (from the warehouse, POST /-/events) ──► restock
    every night at 02:00 UTC ──► nightly_report
    GET /orders/{order_id}, GET /stock/{sku}, GET /reports/{day}: what happened

Run it with `triggerfish dev examples/shop-choreographed/app.py`; its README.md walks through it. The same shop
with its order flow as one durable workflow is examples/shop.

Orders live in the table "orders" (triggerfish.toml declares it): each write that matters to someone
else is a change the order's stream carries, in order per order, to the functions that react to it
(`@app.on_change`), and the events a write announces are published with it, atomically (`publish=`):
the shop never has an order without its OrderPlaced, nor a paid order whose PaymentProcessed was lost.
The other records (reservations, labels, the outbox of sent emails and the bounces) are key-value
records each written by one function. The two records several invocations change at once, a product's
stock and a day's tally, are changed with compare-and-set.

Payment outcomes are decided by the card number, with the test cards
payment providers publish, so every path can be tried by hand:
4242424242424242 is charged, 4000000000000002 is declined, and
4000000000000119 finds the provider down on every attempt.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import triggerfish
from triggerfish import Context
from triggerfish.store import ABSENT
from triggerfish.tables.errors import ConditionFailedError
from triggerfish.tables.values import item_to_python

app = triggerfish.App("shop")

#: Prices in cents, so that totals add up exactly.
CATALOGUE = {"fish-food": 450, "net": 1299, "aquarium": 8900}
#: Units of each product in the warehouse before any order or delivery.
INITIAL_STOCK = {"fish-food": 100, "net": 20, "aquarium": 2}

APPROVED_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"
PROVIDER_DOWN_CARD = "4000000000000119"
#: Seconds the payment provider asks us to wait before trying again when it is down.
PROVIDER_RETRY_AFTER = 0.5

#: Mail to the reserved top-level domain .invalid (RFC 2606) bounces, as it would at a real relay.
UNDELIVERABLE = ".invalid"

EVENTS_SOURCE = "/shop/"
NOTIFY_ON = ("OrderPlaced", "PaymentFailed", "OrderShipped")


# --- key-value records ---------------------------------------------------------------------------
# Handlers run in worker processes; the store lives in the platform, so records go through the context.


def read(context: Context, namespace: str, key: str) -> tuple[Any, int]:
    """A record's value (None when there is none) and its version (ABSENT when there is none)."""
    record = context.call_platform("kv_get", {"namespace": namespace, "key": key})
    if record is None:
        return None, ABSENT
    return json.loads(record["value"]), int(record["version"])


def write(context: Context, namespace: str, key: str, value: Any, *, if_version: int | None = None) -> bool:
    """Store a record; with `if_version`, only if the record is still at that version (ABSENT: not there)."""
    args = {"namespace": namespace, "key": key, "value": json.dumps(value), "if_version": if_version}
    return context.call_platform("kv_put", args) is not None


def change(context: Context, namespace: str, key: str, update: Callable[[Any], Any], default: Any) -> tuple[Any, Any]:
    """Apply `update` to a record (`default` when there is none); returns the values before and after.

    Compare-and-set: when another invocation changed the record between our
    read and our write, read it again and reapply the change.
    """
    for _ in range(50):
        value, version = read(context, namespace, key)
        before = default if value is None else value
        after = update(before)
        if write(context, namespace, key, after, if_version=version):
            return before, after
    raise triggerfish.Retry(f"{namespace}/{key} kept changing under us; try again")


# --- the HTTP API --------------------------------------------------------------------------------


class BadOrder(ValueError):
    """The order in a request body is not one we can take; the message says which field and why."""


def parse_order(body: Any) -> dict[str, Any]:
    """Check an order body and return the order's fields, or raise BadOrder naming the field."""
    if not isinstance(body, str) or not body.strip():
        raise BadOrder('the body must be a JSON order: {"email": ..., "address": ..., "card": ..., "items": [...]}')
    try:
        order = json.loads(body)
    except ValueError as exc:
        raise BadOrder(f"the body is not valid JSON: {exc}") from None
    if not isinstance(order, dict):
        raise BadOrder("the body must be a JSON object")
    email = order.get("email")
    if not isinstance(email, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise BadOrder(f"email must be an address like ada@example.com, not {email!r}")
    address = order.get("address")
    if not isinstance(address, str) or not 0 < len(address.strip()) <= 200:
        raise BadOrder("address must be the delivery address, 1 to 200 characters")
    card = order.get("card")
    if not isinstance(card, str) or not re.fullmatch(r"\d{12,19}", card):
        raise BadOrder("card must be the card number, 12 to 19 digits without spaces")
    items = order.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= 20:
        raise BadOrder('items must be a list of 1 to 20 items, each {"sku": ..., "quantity": ...}')
    lines = []
    for index, item in enumerate(items):
        sku = item.get("sku") if isinstance(item, dict) else None
        quantity = item.get("quantity") if isinstance(item, dict) else None
        if sku not in CATALOGUE:
            raise BadOrder(f"items[{index}].sku must be one of {', '.join(CATALOGUE)}, not {sku!r}")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= 100:
            raise BadOrder(f"items[{index}].quantity must be a whole number from 1 to 100, not {quantity!r}")
        lines.append({"sku": sku, "quantity": quantity, "price": CATALOGUE[sku]})
    total = sum(line["price"] * line["quantity"] for line in lines)
    return {"email": email, "address": address.strip(), "card": card, "items": lines, "total": total}


def respond(status: int, document: Any, **headers: str) -> dict[str, Any]:
    """A Lambda proxy response with a JSON body."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **headers},
        "body": json.dumps(document),
    }


@app.http("POST", "/orders")
def place_order(event: dict[str, Any], context: Context) -> dict[str, Any]:
    """Take an order: check it, store it, count it for tonight's report, and tell the shop about it."""
    try:
        order = parse_order(event.get("body"))
    except BadOrder as exc:
        return respond(400, {"message": f"bad order: {exc}"})
    order_id = f"o-{uuid.uuid4().hex[:12]}"
    placed_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    card = order.pop("card")
    order.update(order_id=order_id, placed_at=placed_at, card_last4=card[-4:])
    # The card goes to the payment function with the event, never into the table; a real shop would send a
    # provider's token instead. The event is published with the write (the table's outbox), or not at all.
    placed = context.event("OrderPlaced", {**order, "card": card}, source=EVENTS_SOURCE + "orders", subject=order_id)
    orders = context.table("orders")
    orders.put({**order, "status": "placed"}, condition="attribute_not_exists(order_id)", publish=[placed])
    change(
        context,
        "daily-tally",
        placed_at[:10],
        lambda tally: {"orders": tally["orders"] + 1, "value": tally["value"] + order["total"]},
        default={"orders": 0, "value": 0},
    )
    return respond(
        201, {"order_id": order_id, "status": "placed", "total": order["total"]}, Location=f"/orders/{order_id}"
    )


@app.http("GET", "/orders/{order_id}")
def get_order(event: dict[str, Any], context: Context) -> dict[str, Any]:
    """The order, its status, and what every function did about it."""
    order_id = event["pathParameters"]["order_id"]
    order = context.table("orders").get({"order_id": order_id})
    if order is None:
        return respond(404, {"message": f"no order {order_id!r}"})
    # "placed" until charged (or while the charge waits in payments-dlq), then "paid", "payment_failed", "shipped".
    label, _ = read(context, "labels", order_id)
    reservation, _ = read(context, "reservations", order_id)
    notifications, bounced = {}, {}
    for kind in NOTIFY_ON:
        sent, _ = read(context, "outbox", f"{order_id}:{kind}")
        if sent is not None:
            notifications[kind] = sent
        bounce, _ = read(context, "bounces", f"{order_id}:{kind}")
        if bounce is not None:
            bounced[kind] = bounce
    document = {
        "payment": None,
        **order,
        "reservation": reservation,
        "label": label,
        "notifications": notifications,
        "bounced": bounced,
    }
    return respond(200, document)


@app.http("GET", "/stock/{sku}")
def get_stock(event: dict[str, Any], context: Context) -> dict[str, Any]:
    sku = event["pathParameters"]["sku"]
    if sku not in CATALOGUE:
        return respond(404, {"message": f"no product {sku!r}; we sell {', '.join(CATALOGUE)}"})
    level, _ = read(context, "stock", sku)
    return respond(200, {"sku": sku, "available": INITIAL_STOCK[sku] if level is None else level})


@app.http("GET", "/reports/{day}")
def get_report(event: dict[str, Any], context: Context) -> dict[str, Any]:
    day = event["pathParameters"]["day"]
    report, _ = read(context, "reports", day)
    if report is None:
        return respond(404, {"message": f"no report for {day!r} yet; reports run at 02:00 UTC the next day"})
    return respond(200, report)


# --- reacting to orders --------------------------------------------------------------------------
# Events and changes can arrive more than once (delivery is at least once), so the functions with effects
# that must happen once check that they have not happened yet: charge_payment is @idempotent on the order
# id, reserve_stock looks for the order's reservation, ship_order writes a label only if there is none.


def take_from_stock(context: Context, sku: str, wanted: int) -> int:
    """Take up to `wanted` units of `sku`; returns how many there were to take."""
    before, after = change(context, "stock", sku, lambda level: max(level - wanted, 0), INITIAL_STOCK[sku])
    return int(before - after)


@app.on_change("orders", ops=["insert"], starting_position="TRIM_HORIZON")
def reserve_stock(event: dict[str, Any], context: Context) -> list[dict[str, Any]]:
    """A new order in the table (an INSERT of its change stream): reserve its items."""
    return [reserve(context, new_image(record)) for record in event["Records"]]


def new_image(record: dict[str, Any]) -> dict[str, Any]:
    """The item after the change, as plain values (the record carries DynamoDB's typed form)."""
    return item_to_python(record["dynamodb"]["NewImage"])


def reserve(context: Context, order: dict[str, Any]) -> dict[str, Any]:
    """Take each item from stock; what is not there is backordered. Once per order, however often it comes."""
    done, _ = read(context, "reservations", order["order_id"])
    if done is not None:
        return dict(done)
    reserved: dict[str, int] = {}
    backordered: dict[str, int] = {}
    for line in order["items"]:
        sku, wanted = line["sku"], line["quantity"]
        taken = take_from_stock(context, sku, wanted)
        if taken:
            reserved[sku] = reserved.get(sku, 0) + taken
        if wanted > taken:
            backordered[sku] = backordered.get(sku, 0) + wanted - taken
    reservation = {"reserved": reserved, "backordered": backordered}
    write(context, "reservations", order["order_id"], reservation)
    return reservation


class ProviderUnavailable(Exception):
    """The payment provider did not answer."""


def charge_card(card: str, amount: int) -> str:
    """A stand-in for the payment provider: "approved" or "declined", decided by the test card numbers."""
    if card == PROVIDER_DOWN_CARD:
        raise ProviderUnavailable(f"the payment provider timed out charging {amount} cents")
    return "declined" if card == DECLINED_CARD else "approved"


@app.on_event(
    {"type": ["OrderPlaced"], "source": [{"prefix": EVENTS_SOURCE}]},
    retries=2,
    dead_letter="queue:payments-dlq",
)
@triggerfish.idempotent(key="$.data.order_id")
def charge_payment(event: dict[str, Any], context: Context) -> str:
    """Charge the card; after three attempts with the provider down, the order waits in payments-dlq."""
    order = event["data"]
    order_id = order["order_id"]
    try:
        outcome = charge_card(order["card"], order["total"])
    except ProviderUnavailable as exc:
        # Retry(delay=...) comes back when the provider asked, instead of the platform's minute-long backoff.
        raise triggerfish.Retry(str(exc), delay=PROVIDER_RETRY_AFTER) from exc
    news = {"order_id": order_id, "email": order["email"], "amount": order["total"]}
    orders = context.table("orders")
    if outcome == "approved":
        # The change to "paid" is what ships the order (ship_order reads the table's changes).
        paid = context.event("PaymentProcessed", news, source=EVENTS_SOURCE + "payments", subject=order_id)
        payment = {"status": "processed", "amount": order["total"]}
        orders.update({"order_id": order_id}, set={"status": "paid", "payment": payment}, publish=[paid])
    else:
        failed = {**news, "reason": "card_declined"}
        refused = context.event("PaymentFailed", failed, source=EVENTS_SOURCE + "payments", subject=order_id)
        payment = {"status": "failed", "reason": "card_declined"}
        orders.update({"order_id": order_id}, set={"status": "payment_failed", "payment": payment}, publish=[refused])
    return outcome


@app.on_change("orders", ops=["modify"], filter={"dynamodb": {"NewImage": {"status": {"S": ["paid"]}}}})
def ship_order(event: dict[str, Any], context: Context) -> list[dict[str, Any]]:
    """An order's change to "paid" (the filter lets only those through): label it and mark it shipped."""
    return [ship(context, new_image(record)) for record in event["Records"]]


def ship(context: Context, order: dict[str, Any]) -> dict[str, Any]:
    """Create the shipping label (once: a repeated change finds it) and say the order has shipped."""
    order_id = order["order_id"]
    tracking = "TF" + hashlib.sha256(order_id.encode()).hexdigest()[:10].upper()
    label = {"carrier": "Fishpost", "tracking": tracking, "address": order["address"], "parcels": len(order["items"])}
    if not write(context, "labels", order_id, label, if_version=ABSENT):
        label, _ = read(context, "labels", order_id)
    news = {"order_id": order_id, "email": order["email"], "tracking": label["tracking"]}
    shipped = context.event("OrderShipped", news, source=EVENTS_SOURCE + "shipping", subject=order_id)
    # Only from "paid": a change that comes again finds the order shipped, and publishes nothing twice.
    with contextlib.suppress(ConditionFailedError):
        context.table("orders").update(
            {"order_id": order_id}, set={"status": "shipped"}, condition="#s = :paid",
            names={"#s": "status"}, values={":paid": "paid"}, publish=[shipped],
        )  # fmt: skip
    return dict(label)


@app.on_event({"type": ["StockDelivered"], "source": ["/warehouse"]})
def restock(event: dict[str, Any], context: Context) -> dict[str, int]:
    """The warehouse (outside the app, publishing through POST /-/events) received goods."""
    units = event["data"].get("units")
    if not isinstance(units, dict) or not set(units) <= set(CATALOGUE):
        # Another attempt would read the same event: send it straight to the dead letters.
        raise triggerfish.NonRetryable(f"a delivery lists units per product of {', '.join(CATALOGUE)}, not {units!r}")
    return {sku: add_to_stock(context, sku, count) for sku, count in units.items()}


def add_to_stock(context: Context, sku: str, units: int) -> int:
    _, after = change(context, "stock", sku, lambda level: level + units, INITIAL_STOCK[sku])
    return int(after)


# --- notifications: through a queue, in batches ---------------------------------------------------

SUBJECTS = {
    "OrderPlaced": "Thank you for your order {order_id}",
    "PaymentFailed": "Your payment for order {order_id} did not go through",
    "OrderShipped": "Order {order_id} is on its way",
}


@app.on_event({"type": list(NOTIFY_ON), "source": [{"prefix": EVENTS_SOURCE}]})
def notify_customer(event: dict[str, Any], context: Context) -> str:
    """Queue an email; the dedup id keeps a repeated event from sending the same email twice."""
    data, kind = event["data"], event["type"]
    email = {"to": data["email"], "order_id": data["order_id"], "kind": kind, "subject": SUBJECTS[kind].format(**data)}
    if "tracking" in data:
        email["tracking"] = data["tracking"]
    return context.send("notifications", email, dedup_id=f"{data['order_id']}:{kind}")


class Bounced(Exception):
    """The mail relay refused the address."""


def deliver_email(email: dict[str, Any]) -> None:
    """A stand-in for the mail relay."""
    if email["to"].endswith(UNDELIVERABLE):
        raise Bounced(f"550 no such domain for {email['to']}")


@app.on_queue("notifications", batch_size=10, batch_window=0.5)
def send_emails(event: dict[str, Any], context: Context) -> dict[str, Any]:
    """Send a batch of emails; the ones that bounce are reported back, so only they come again.

    A message that keeps bouncing moves to notifications.dlq after the
    queue's max_receives (triggerfish.toml).
    """
    failures = []
    for record in event["Records"]:
        email = json.loads(record["body"])
        try:
            deliver_email(email)
        except Bounced as exc:
            context.logger.warning("not sent to %s: %s", email["to"], exc)
            attempts = int(record["attributes"]["ApproximateReceiveCount"])
            bounce = {"to": email["to"], "error": str(exc), "attempts": attempts}
            write(context, "bounces", f"{email['order_id']}:{email['kind']}", bounce)
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        sent = {"to": email["to"], "subject": email["subject"], "message_id": record["messageId"]}
        write(context, "outbox", f"{email['order_id']}:{email['kind']}", sent)
    return {"batchItemFailures": failures}


# --- every night ---------------------------------------------------------------------------------


@app.schedule("cron(0 2 * * ? *)")
def nightly_report(event: dict[str, Any], context: Context) -> dict[str, Any]:
    """At 02:00 UTC, report the previous day's orders (the tally place_order keeps)."""
    fired = datetime.datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
    day = (fired - datetime.timedelta(days=1)).date().isoformat()
    tally, _ = read(context, "daily-tally", day)
    report = {"day": day, **(tally or {"orders": 0, "value": 0})}
    write(context, "reports", day, report)
    context.publish("DailyReport", report, source=EVENTS_SOURCE + "reports")
    return report
