"""examples/shop-choreographed on the in-process platform: every effect of the order flow, deterministically.

Requests go through the real gateway (in-process, over httpx's ASGI transport)
to the TestPlatform's invoker, so the handlers see the API Gateway event the
server would give them; events, queues, retries and the schedule run as on the
server, with no backoff and no sleeps.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from triggerfish.gateway import Gateway, RouteTable
from triggerfish.loader import load_app
from triggerfish.testing import TestPlatform

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop-choreographed" / "app.py"
APPROVED, DECLINED, PROVIDER_DOWN = "4242424242424242", "4000000000000002", "4000000000000119"


@dataclass
class Shop:
    platform: TestPlatform
    http: httpx.AsyncClient

    async def order(self, *items: tuple[str, int], card: str = APPROVED, email: str = "ada@example.com") -> str:
        body = {
            "email": email,
            "address": "1 Reef Road, Wellington",
            "card": card,
            "items": [{"sku": sku, "quantity": quantity} for sku, quantity in items],
        }
        placed = await self.http.post("/orders", json=body)
        assert placed.status_code == 201, placed.text
        order_id: str = placed.json()["order_id"]
        assert placed.headers["location"] == f"/orders/{order_id}"
        return order_id

    async def get(self, path: str) -> Any:
        answer = await self.http.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def events(self, order_id: str) -> list[str]:
        """The types of the events published about one order, in order."""
        return [e.type for e in await self.platform.published() if (e.data or {}).get("order_id") == order_id]


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    app = load_app(str(SHOP))
    async with TestPlatform(app) as platform:
        await platform.create_table("orders", "order_id")  # as [tables.orders] of its triggerfish.toml
        gateway = Gateway(RouteTable.from_specs(platform.specs), platform.invoker.invoke)
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
            yield Shop(platform, client)


async def test_an_approved_order_is_reserved_charged_shipped_and_the_customer_told(shop: Shop) -> None:
    order_id = await shop.order(("fish-food", 2), ("net", 1))
    assert (await shop.get(f"/orders/{order_id}"))["status"] == "placed"  # nothing has reacted yet
    await shop.platform.drain()

    order = await shop.get(f"/orders/{order_id}")
    assert order["status"] == "shipped"
    assert order["total"] == 2 * 450 + 1299
    assert order["card_last4"] == "4242"
    assert "card" not in order  # the card number is not kept with the order
    assert order["reservation"] == {"reserved": {"fish-food": 2, "net": 1}, "backordered": {}}
    assert order["payment"] == {"status": "processed", "amount": 2199}
    assert order["label"]["carrier"] == "Fishpost"
    assert order["label"]["address"] == "1 Reef Road, Wellington"
    assert order["label"]["tracking"].startswith("TF")
    assert sorted(order["notifications"]) == ["OrderPlaced", "OrderShipped"]
    assert order["notifications"]["OrderShipped"]["subject"] == f"Order {order_id} is on its way"
    assert {n["to"] for n in order["notifications"].values()} == {"ada@example.com"}
    assert order["bounced"] == {}

    assert await shop.events(order_id) == ["OrderPlaced", "PaymentProcessed", "OrderShipped"]
    assert (await shop.get("/stock/fish-food"))["available"] == 98
    assert (await shop.get("/stock/net"))["available"] == 19
    assert await shop.platform.queue_messages("notifications") == []
    assert await shop.platform.queue_messages("payments-dlq") == []


async def test_a_declined_card_publishes_payment_failed_and_nothing_ships(shop: Shop) -> None:
    order_id = await shop.order(("aquarium", 1), card=DECLINED)
    await shop.platform.drain()

    order = await shop.get(f"/orders/{order_id}")
    assert order["status"] == "payment_failed"
    assert order["payment"] == {"status": "failed", "reason": "card_declined"}
    assert order["label"] is None
    assert sorted(order["notifications"]) == ["OrderPlaced", "PaymentFailed"]
    assert await shop.events(order_id) == ["OrderPlaced", "PaymentFailed"]
    assert await shop.platform.invocations(function="ship_order") == []
    # A decline is an answer, not a failure: the charge succeeded at its first attempt.
    assert [r.status for r in await shop.platform.invocations(function="charge_payment")] == ["succeeded"]


async def test_a_charge_the_provider_never_answers_is_retried_then_dead_lettered(shop: Shop) -> None:
    order_id = await shop.order(("net", 2), card=PROVIDER_DOWN)
    await shop.platform.drain()

    attempts = await shop.platform.invocations(function="charge_payment")
    assert [(r.attempt, r.status) for r in attempts] == [(1, "failed"), (2, "failed"), (3, "failed")]
    assert {r.error["errorType"] for r in attempts if r.error} == {"Retry"}
    (dead,) = await shop.platform.dead_letters("charge_payment")  # read from payments-dlq
    assert dead["requestContext"]["condition"] == "RetriesExhausted"
    assert dead["requestContext"]["approximateInvokeCount"] == 3
    assert dead["requestPayload"]["data"]["order_id"] == order_id
    assert "timed out" in dead["responsePayload"]["errorMessage"]
    assert len(await shop.platform.queue_messages("payments-dlq")) == 1

    order = await shop.get(f"/orders/{order_id}")
    assert order["status"] == "placed"
    assert order["payment"] is None
    assert order["reservation"] == {"reserved": {"net": 2}, "backordered": {}}  # the other functions went on
    assert list(order["notifications"]) == ["OrderPlaced"]
    assert await shop.events(order_id) == ["OrderPlaced"]


async def test_a_bounced_email_is_retried_then_dead_lettered_while_the_rest_of_its_batch_is_sent(
    shop: Shop,
) -> None:
    good = await shop.order(("fish-food", 1))
    bad = await shop.order(("fish-food", 1), email="bo@example.invalid")
    await shop.platform.drain()

    assert sorted((await shop.get(f"/orders/{good}"))["notifications"]) == ["OrderPlaced", "OrderShipped"]
    bounced = await shop.get(f"/orders/{bad}")
    assert bounced["status"] == "shipped"  # a bounced email holds nothing else up
    assert bounced["notifications"] == {}
    # The order page shows what bounced: each email was tried once per receive the queue allows.
    assert sorted(bounced["bounced"]) == ["OrderPlaced", "OrderShipped"]
    assert {b["attempts"] for b in bounced["bounced"].values()} == {3}
    assert "550 no such domain" in bounced["bounced"]["OrderPlaced"]["error"]
    # Only the bounced emails came back, up to the queue's max receives (3 on the test platform),
    # then moved to the dead-letter queue.
    dead = [json.loads(m.body) for m in await shop.platform.queue_messages("notifications.dlq")]
    assert sorted((d["order_id"], d["kind"], d["to"]) for d in dead) == [
        (bad, "OrderPlaced", "bo@example.invalid"),
        (bad, "OrderShipped", "bo@example.invalid"),
    ]
    assert await shop.platform.queue_messages("notifications") == []
    assert {r.status for r in await shop.platform.invocations(function="send_emails")} == {"succeeded"}


async def test_a_repeated_order_placed_event_reserves_and_charges_once(shop: Shop) -> None:
    order_id = await shop.order(("aquarium", 1))
    await shop.platform.drain()
    (placed,) = [e for e in await shop.platform.published() if e.type == "OrderPlaced"]
    batches = len(await shop.platform.invocations(function="send_emails"))

    await shop.platform.publish(placed)  # delivered again, as at-least-once delivery may
    await shop.platform.drain()

    assert (await shop.get("/stock/aquarium"))["available"] == 1
    assert len(await shop.platform.invocations(function="charge_payment", status="succeeded")) == 2
    assert await shop.events(order_id) == ["OrderPlaced", "PaymentProcessed", "OrderShipped", "OrderPlaced"]
    # The repeat's email had the same dedup id as the first one: the queue took it once, so no new batch.
    assert len(await shop.platform.invocations(function="notify_customer", status="succeeded")) == 3
    assert len(await shop.platform.invocations(function="send_emails")) == batches


async def test_items_out_of_stock_are_backordered_until_the_warehouse_delivers(shop: Shop) -> None:
    order_id = await shop.order(("aquarium", 3))
    await shop.platform.drain()
    order = await shop.get(f"/orders/{order_id}")
    assert order["reservation"] == {"reserved": {"aquarium": 2}, "backordered": {"aquarium": 1}}
    assert (await shop.get("/stock/aquarium"))["available"] == 0

    await shop.platform.publish("StockDelivered", {"units": {"aquarium": 5, "net": 10}}, source="/warehouse")
    await shop.platform.drain()
    assert (await shop.get("/stock/aquarium"))["available"] == 5
    assert (await shop.get("/stock/net"))["available"] == 30


async def test_a_delivery_of_an_unknown_product_goes_straight_to_the_dead_letters(shop: Shop) -> None:
    await shop.platform.publish("StockDelivered", {"units": {"anchor": 1}}, source="/warehouse")
    await shop.platform.drain()
    (attempt,) = await shop.platform.invocations(function="restock")
    assert attempt.error is not None
    assert "anchor" in attempt.error["errorMessage"]
    (dead,) = await shop.platform.dead_letters("restock")
    assert dead["requestContext"]["condition"] == "NonRetryable"


async def test_the_nightly_report_counts_the_previous_days_orders(shop: Shop) -> None:
    first = await shop.order(("fish-food", 2))
    await shop.order(("aquarium", 1))
    await shop.platform.drain()
    day = (await shop.get(f"/orders/{first}"))["placed_at"][:10]
    assert (await shop.http.get(f"/reports/{day}")).status_code == 404

    fired = await shop.platform.advance(2 * 24 * 3600)  # two nights: one of them reports `day`

    assert len(fired) == 2
    assert await shop.get(f"/reports/{day}") == {"day": day, "orders": 2, "value": 2 * 450 + 8900}
    reports = sorted((e.data for e in await shop.platform.published() if e.type == "DailyReport"), key=str)
    (other,) = [r for r in reports if r["day"] != day]
    assert other["orders"] == 0  # the other night reported a day without orders
    assert datetime.date.fromisoformat(other["day"]) in {
        datetime.date.fromisoformat(day) + datetime.timedelta(days=shift) for shift in (-1, 1)
    }
    runs = await shop.platform.invocations(function="nightly_report", status="succeeded")
    assert [r.trigger for r in runs] == ["schedule", "schedule"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "the body must be a JSON order"),
        ("{not json", "the body is not valid JSON"),
        ("[1, 2]", "the body must be a JSON object"),
        ({"address": "x", "card": APPROVED, "items": []}, "email must be an address like ada@example.com, not None"),
        ({"email": "ada", "address": "x", "card": APPROVED, "items": []}, "email must be an address"),
        ({"email": "ada@example.com", "card": APPROVED, "items": []}, "address must be the delivery address"),
        ({"email": "ada@example.com", "address": "x", "card": "4242 4242", "items": []}, "card must be the card"),
        ({"email": "ada@example.com", "address": "x", "card": APPROVED, "items": []}, "items must be a list of 1"),
        (
            {"email": "a@b.co", "address": "x", "card": APPROVED, "items": [{"sku": "anchor", "quantity": 1}]},
            "items[0].sku must be one of fish-food, net, aquarium, not 'anchor'",
        ),
        (
            {
                "email": "a@b.co",
                "address": "x",
                "card": APPROVED,
                "items": [{"sku": "net", "quantity": 1}, {"sku": "net", "quantity": 0}],
            },
            "items[1].quantity must be a whole number from 1 to 100, not 0",
        ),
    ],
)
async def test_a_bad_order_is_400_naming_the_field_and_nothing_happens(shop: Shop, body: Any, reason: str) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    answer = await shop.http.post("/orders", content=content, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert reason in answer.json()["message"]
    await shop.platform.drain()
    assert await shop.platform.published() == []


async def test_unknown_orders_products_and_reports_are_404(shop: Shop) -> None:
    assert (await shop.http.get("/orders/o-nope")).json() == {"message": "no order 'o-nope'"}
    assert (await shop.http.get("/orders/o-nope")).status_code == 404
    assert (await shop.http.get("/stock/anchor")).status_code == 404
    assert (await shop.http.get("/reports/1999-12-31")).status_code == 404
