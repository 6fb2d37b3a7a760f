"""An online shop's order flow as a durable workflow: reserve stock, charge, ship, notify; undone when it fails.

    POST /orders ──► place_order ── the order into the table "orders"; starts order_flow (workflow id = order id)

    order_flow:  reserve stock ──► charge payment ──► [backordered items: wait for their StockDelivered, then
                                   (provider down:     reserve them] ──► create shipping label ──► notify customer
                                    retried, then fails)                                                  │
        the payment fails:  undo reserve stock (release)                                                  ▼
        shipping fails:     undo charge payment (refund), undo reserve stock          queue "notifications" ──►
        then:               record failure (payment_failed or cancelled), notify customer   send_emails (batches; a
                                                                                     bounce is retried, then dlq)
    StockDelivered (from the warehouse, POST /-/events) ──► restock
    every night at 02:00 UTC ──► nightly_report
    GET /orders/{order_id}, GET /stock/{sku}, GET /reports/{day}: what happened

Run it with `triggerfish dev examples/shop/app.py`; examples/shop/README.md walks through it. The same shop
choreographed (functions reacting to each other's events and changes, no workflow) is examples/shop-choreographed.

Each step of order_flow is checkpointed: after a crash or a restart the workflow runs again from the top, every
step that finished returns its recorded result without running again, and it goes on with the first one that did
not (docs/workflows.md). A step that ran but whose result was not checkpointed (the platform died in between)
runs again, so each step's effect is idempotent: the reservation and the label are written once per order, and the
payment provider charges once per idempotency key (`ctx.key()`, the same on every run of the step). The order's
status in the table follows the workflow: placed → reserved → paid → shipped, or payment_failed (the stock
released) or cancelled (the payment refunded and the stock released: the saga's compensations, newest first).

Payment outcomes are decided by the card number, with the test cards
payment providers publish, so every path can be tried by hand:
4242424242424242 is charged, 4000000000000002 is declined, and
4000000000000119 finds the provider down on every attempt. An address in
Atlantis makes shipping fail after the card was charged.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import triggerfish
from triggerfish import Context
from triggerfish.retry import RetryPolicy
from triggerfish.store import ABSENT
from triggerfish.tables.errors import ConditionFailedError
from triggerfish.workflows import Saga, StepFailedError, WaitTimeoutError, WorkflowContext

app = triggerfish.App("shop")

#: Prices in cents, so that totals add up exactly.
CATALOGUE = {"fish-food": 450, "net": 1299, "aquarium": 8900}
#: Units of each product in the warehouse before any order or delivery.
INITIAL_STOCK = {"fish-food": 100, "net": 20, "aquarium": 2}

APPROVED_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"
PROVIDER_DOWN_CARD = "4000000000000119"
#: Attempts at charging while the provider is down, half a second then a second apart; then the payment fails.
PAYMENT_ATTEMPTS = 3
PAYMENT_RETRY = RetryPolicy(base=0.5, multiplier=2.0, ceiling=60.0, jitter=0.0)
#: How long an order with backordered items waits for the warehouse's delivery before it is cancelled (a week).
BACKORDER_WAIT = 7 * 24 * 3600
#: The carrier does not deliver there (an address mentioning it cannot be labelled).
UNSHIPPABLE = "atlantis"

#: Mail to the reserved top-level domain .invalid (RFC 2606) bounces, as it would at a real relay.
UNDELIVERABLE = ".invalid"

EVENTS_SOURCE = "/shop/"


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
    """Take an order: check it, store it, count it for tonight's report, and start its workflow.

    A client that sends an Idempotency-Key header gets the same order back when it sends the request again
    (after a timeout, say): the order id comes from the key, and a workflow with that id starts only once.
    """
    try:
        order = parse_order(event.get("body"))
    except BadOrder as exc:
        return respond(400, {"message": f"bad order: {exc}"})
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    key = headers.get("idempotency-key") or context.aws_request_id
    order_id = "o-" + hashlib.sha256(key.encode()).hexdigest()[:12]
    placed_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    card = order.pop("card")
    order.update(order_id=order_id, placed_at=placed_at, card_last4=card[-4:])
    placed = context.event("OrderPlaced", order, source=EVENTS_SOURCE + "orders", subject=order_id)
    try:
        # The card never goes into the table; a real shop would hand the workflow a provider's token instead.
        context.table("orders").put(
            {**order, "status": "placed"}, condition="attribute_not_exists(order_id)", publish=[placed]
        )
    except ConditionFailedError:
        # The same request again: the order exists. Start its workflow all the same (a no-op when it runs), in
        # case the first request died between the two.
        existing = context.table("orders").get({"order_id": order_id})
        context.start_workflow("order_flow", {**order, "card": card}, id=order_id)
        return respond(
            200,
            {"order_id": order_id, "status": existing["status"], "total": existing["total"], "workflow_id": order_id},
            Location=f"/orders/{order_id}",
        )
    change(
        context,
        "daily-tally",
        placed_at[:10],
        lambda tally: {"orders": tally["orders"] + 1, "value": tally["value"] + order["total"]},
        default={"orders": 0, "value": 0},
    )
    # The workflow's id is the order's: starting it again (a retried request) starts nothing new.
    context.start_workflow("order_flow", {**order, "card": card}, id=order_id)
    return respond(
        201,
        {"order_id": order_id, "status": "placed", "total": order["total"], "workflow_id": order_id},
        Location=f"/orders/{order_id}",
    )


@app.http("GET", "/orders/{order_id}")
def get_order(event: dict[str, Any], context: Context) -> dict[str, Any]:
    """The order, its status, what each step did about it, and where to see its workflow."""
    order_id = event["pathParameters"]["order_id"]
    order = context.table("orders").get({"order_id": order_id})
    if order is None:
        return respond(404, {"message": f"no order {order_id!r}"})
    notifications, bounced = {}, {}
    for kind in SUBJECTS:
        sent, _ = read(context, "outbox", f"{order_id}:{kind}")
        if sent is not None:
            notifications[kind] = sent
        bounce, _ = read(context, "bounces", f"{order_id}:{kind}")
        if bounce is not None:
            bounced[kind] = bounce
    workflow = {
        "id": order_id,
        "describe": f"/-/api/v1/workflows/{order_id}",
        "cli": f"triggerfish workflows describe {order_id}",
    }
    # What the payment provider holds for the order: one charge at most, and one refund of it at most.
    account, _ = read(context, "payment-provider", order_id)
    document = {
        "reservation": None,
        "payment": None,
        "label": None,
        **order,
        "notifications": notifications,
        "bounced": bounced,
        "provider": account or NO_ACCOUNT,
        "workflow": workflow,
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


# --- the order's workflow ----------------------------------------------------------------------------
# Every step takes the invocation's context (for the table and the records) and the order; its result is
# checkpointed. Steps are idempotent, because a step the platform died in before its checkpoint runs again.


@app.workflow
def order_flow(ctx: WorkflowContext, order: dict[str, Any]) -> dict[str, Any]:
    """Reserve, charge, (wait for backordered items,) ship, notify. A failed payment releases the stock; a failed
    shipment refunds the payment and releases the stock (the saga's compensations, newest first, each a step)."""
    context = ctx.lambda_context
    stage = "reserve"
    try:
        with Saga(ctx) as saga:
            reservation = saga.step(reserve, context, order, compensate=release, name="reserve stock")
            stage = "payment"
            # The same key on every run of this step: the provider charges once however often it is asked.
            payment_key = ctx.key()
            payment = ctx.step(
                charge, context, order, payment_key,
                name="charge payment", max_attempts=PAYMENT_ATTEMPTS, retry=PAYMENT_RETRY,
            )  # fmt: skip
            saga.add(refund, context, order, payment, name="undo charge payment")
            stage = "backorder"
            for sku in sorted(reservation["backordered"]):
                # Not all in stock: wait for the warehouse's delivery, with no worker held (for days, across
                # restarts), then take what is missing.
                delivery = {
                    "type": ["StockDelivered"],
                    "source": ["/warehouse"],
                    "data": {"units": {sku: [{"exists": True}]}},
                }
                ctx.wait_for_event(delivery, timeout=BACKORDER_WAIT, name=f"delivery of {sku}")
                ctx.step(reserve_backorder, context, order, sku, name=f"reserve backordered {sku}")
            stage = "shipping"
            label = ctx.step(create_label, context, order, name="create shipping label")
    except (StepFailedError, WaitTimeoutError) as exc:
        # The compensations have run (the saga undid what was done); record why, and tell the customer.
        error = (
            exc.error if isinstance(exc, StepFailedError) else {"errorType": "NotDelivered", "errorMessage": str(exc)}
        )
        outcome: dict[str, Any] = ctx.step(record_failure, context, order, stage, error, name="record failure")
        notice = "PaymentFailed" if outcome["status"] == "payment_failed" else "OrderCancelled"
        ctx.step(notify, context, order, notice, name="notify customer")
        return outcome
    ctx.step(notify, context, order, "OrderShipped", label["tracking"], name="notify customer")
    return {"status": "shipped", "tracking": label["tracking"]}


def set_order(context: Context, order_id: str, fields: dict[str, Any], *news: dict[str, Any]) -> None:
    """Update the order's row, publishing `news` (CloudEvents) with the write."""
    context.table("orders").update({"order_id": order_id}, set=fields, publish=list(news))


def take_from_stock(context: Context, sku: str, wanted: int) -> int:
    """Take up to `wanted` units of `sku`; returns how many there were to take."""
    before, after = change(context, "stock", sku, lambda level: max(level - wanted, 0), INITIAL_STOCK[sku])
    return int(before - after)


def add_to_stock(context: Context, sku: str, units: int) -> int:
    _, after = change(context, "stock", sku, lambda level: level + units, INITIAL_STOCK[sku])
    return int(after)


def reserve(context: Context, order: dict[str, Any]) -> dict[str, Any]:
    """Take each item from stock; what is not there is backordered. Once per order: a run again finds it."""
    order_id = order["order_id"]
    reservation, _ = read(context, "reservations", order_id)
    if reservation is None:
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
        write(context, "reservations", order_id, reservation)
    set_order(context, order_id, {"status": "reserved", "reservation": reservation})
    return dict(reservation)


class NotInStock(Exception):
    """The delivery has not reached the stock yet (restock adds it), or other orders took it first."""


def reserve_backorder(context: Context, order: dict[str, Any], sku: str) -> dict[str, Any]:
    """After a delivery: take the backordered units of `sku` from stock, into the order's reservation."""
    order_id = order["order_id"]
    reservation, version = read(context, "reservations", order_id)
    missing = reservation["backordered"].get(sku, 0)
    if missing:
        # Taken whole or not at all: a part would leave the order waiting on the rest with nothing to wake it.
        before, after = change(
            context, "stock", sku, lambda level: level - missing if level >= missing else level, INITIAL_STOCK[sku]
        )
        if before == after:
            raise NotInStock(f"{missing} x {sku} are not in stock yet")
        reserved = {**reservation["reserved"], sku: reservation["reserved"].get(sku, 0) + missing}
        backordered = {k: v for k, v in reservation["backordered"].items() if k != sku}
        reservation = {**reservation, "reserved": reserved, "backordered": backordered}
        write(context, "reservations", order_id, reservation, if_version=version)
    set_order(context, order_id, {"reservation": reservation})
    return dict(reservation)


def release(context: Context, order: dict[str, Any]) -> dict[str, int]:
    """Compensation of `reserve`: put the reserved units back in stock, once (the reservation says it was)."""
    order_id = order["order_id"]
    reservation, version = read(context, "reservations", order_id)
    if reservation is None or reservation.get("released"):
        return {}
    released = {**reservation, "released": True}
    if write(context, "reservations", order_id, released, if_version=version):
        for sku, units in reservation["reserved"].items():
            add_to_stock(context, sku, units)
    set_order(context, order_id, {"reservation": released})
    return dict(reservation["reserved"])


class ProviderUnavailable(Exception):
    """The payment provider did not answer."""


class CardDeclined(triggerfish.NonRetryable):
    """The card was refused: asking again gives the same answer, so the step is not retried."""


def charge(context: Context, order: dict[str, Any], key: str) -> dict[str, Any]:
    """Charge the card through the provider (with an idempotency key); the order is "paid"."""
    order_id = order["order_id"]
    charge_id = provider_charge(context, order["card"], order["total"], key, reference=order_id)
    payment = {"status": "processed", "amount": order["total"], "charge_id": charge_id}
    news = {"order_id": order_id, "email": order["email"], "amount": order["total"]}
    paid = context.event("PaymentProcessed", news, source=EVENTS_SOURCE + "payments", subject=order_id)
    set_order(context, order_id, {"status": "paid", "payment": payment}, paid)
    return payment


def refund(context: Context, order: dict[str, Any], payment: dict[str, Any]) -> dict[str, Any]:
    """Compensation of `charge`: refund the charge (the provider refunds a charge once)."""
    refund_id = provider_refund(context, payment["charge_id"], reference=order["order_id"])
    refunded = {**payment, "status": "refunded", "refund_id": refund_id}
    set_order(context, order["order_id"], {"payment": refunded})
    return refunded


class CarrierRefused(triggerfish.NonRetryable):
    """The carrier does not deliver to the address: a label cannot be made, however often we ask."""


def create_label(context: Context, order: dict[str, Any]) -> dict[str, Any]:
    """Create the shipping label (once: a run again finds it) and mark the order shipped."""
    order_id = order["order_id"]
    if UNSHIPPABLE in order["address"].lower():
        raise CarrierRefused(f"Fishpost does not deliver to {order['address']!r}")
    tracking = "TF" + hashlib.sha256(order_id.encode()).hexdigest()[:10].upper()
    label = {"carrier": "Fishpost", "tracking": tracking, "address": order["address"], "parcels": len(order["items"])}
    if not write(context, "labels", order_id, label, if_version=ABSENT):
        label, _ = read(context, "labels", order_id)
    news = {"order_id": order_id, "email": order["email"], "tracking": tracking}
    shipped = context.event("OrderShipped", news, source=EVENTS_SOURCE + "shipping", subject=order_id)
    set_order(context, order_id, {"status": "shipped", "label": label}, shipped)
    return dict(label)


def record_failure(context: Context, order: dict[str, Any], stage: str, error: dict[str, Any]) -> dict[str, Any]:
    """After the compensations: the order's final status and why, announced on the bus."""
    order_id = order["order_id"]
    reason = {
        "CardDeclined": "card_declined",
        "ProviderUnavailable": "provider_unavailable",
        "CarrierRefused": "carrier_refused",
        "NotDelivered": "not_delivered",
        "NotInStock": "not_delivered",
    }.get(str(error.get("errorType")), "error")
    news = {"order_id": order_id, "email": order["email"], "reason": reason}
    if stage == "payment":
        failed = context.event("PaymentFailed", news, source=EVENTS_SOURCE + "payments", subject=order_id)
        set_order(
            context, order_id, {"status": "payment_failed", "payment": {"status": "failed", "reason": reason}}, failed
        )
        return {"status": "payment_failed", "reason": reason}
    cancelled = context.event("OrderCancelled", news, source=EVENTS_SOURCE + "orders", subject=order_id)
    detail = {"reason": reason, "stage": stage, "message": error.get("errorMessage", "")}
    set_order(context, order_id, {"status": "cancelled", "cancellation": detail}, cancelled)
    return {"status": "cancelled", "reason": reason}


def notify(context: Context, order: dict[str, Any], kind: str, tracking: str | None = None) -> str:
    """Queue an email; the dedup id keeps a step run again from sending the same email twice."""
    order_id = order["order_id"]
    email = {
        "to": order["email"],
        "order_id": order_id,
        "kind": kind,
        "subject": SUBJECTS[kind].format(order_id=order_id),
    }
    if tracking is not None:
        email["tracking"] = tracking
    return context.send("notifications", email, dedup_id=f"{order_id}:{kind}")


# --- the payment provider, a stand-in ----------------------------------------------------------------
# It keeps an account of each order (its `reference`) in one record, changed with compare-and-set: charges by
# the caller's idempotency key, refunds by charge, so asking twice gives the first answer and charges once.

NO_ACCOUNT: dict[str, dict[str, Any]] = {"charges": {}, "refunds": {}}


def once(account: dict[str, Any], kind: str, key: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The account with `entry` under `kind` (charges, refunds) at `key`, unless one is there already."""
    if key in account[kind]:
        return account
    return {**account, kind: {**account[kind], key: entry}}


def provider_charge(context: Context, card: str, amount: int, key: str, reference: str) -> str:
    """The charge's id; CardDeclined or ProviderUnavailable by the test card numbers."""
    if card == PROVIDER_DOWN_CARD:
        raise ProviderUnavailable(f"the payment provider timed out charging {amount} cents")
    if card == DECLINED_CARD:
        raise CardDeclined(f"the card ending {card[-4:]} was declined")
    charge_id = "ch_" + hashlib.sha256(key.encode()).hexdigest()[:16]
    entry = {"charge_id": charge_id, "amount": amount}
    _, account = change(context, "payment-provider", reference, lambda a: once(a, "charges", key, entry), NO_ACCOUNT)
    return str(account["charges"][key]["charge_id"])


def provider_refund(context: Context, charge_id: str, reference: str) -> str:
    refund_id = "re_" + charge_id[3:]
    entry = {"refund_id": refund_id}
    change(context, "payment-provider", reference, lambda a: once(a, "refunds", charge_id, entry), NO_ACCOUNT)
    return refund_id


# --- the warehouse ---------------------------------------------------------------------------------


@app.on_event({"type": ["StockDelivered"], "source": ["/warehouse"]})
def restock(event: dict[str, Any], context: Context) -> dict[str, int]:
    """The warehouse (outside the app, publishing through POST /-/events) received goods."""
    units = event["data"].get("units")
    if not isinstance(units, dict) or not set(units) <= set(CATALOGUE):
        # Another attempt would read the same event: send it straight to the dead letters.
        raise triggerfish.NonRetryable(f"a delivery lists units per product of {', '.join(CATALOGUE)}, not {units!r}")
    return {sku: add_to_stock(context, sku, count) for sku, count in units.items()}


# --- notifications: through a queue, in batches ---------------------------------------------------

SUBJECTS = {
    "PaymentFailed": "Your payment for order {order_id} did not go through",
    "OrderCancelled": "Order {order_id} was cancelled and refunded",
    "OrderShipped": "Order {order_id} is on its way",
}


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
