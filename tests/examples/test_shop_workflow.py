"""examples/shop, the order flow as a durable workflow: `triggerfish dev examples/shop/app.py` in a subprocess,
driven over HTTP as a user would, every path of the workflow checked through the shop's routes and the control
API's workflow records (`/-/api/v1/workflows/ID`); then a kill -9 of the whole platform while an order waits
between two steps, after which the order finishes with each step's effect applied once; and a kill -9 in the middle
of the charge step (after the provider charged, before the step's result was checkpointed): the step runs again
(at least once) and the provider charges once, by the step's idempotency key.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.devserver import DevServer, poll
from triggerfish.events.shapes import scheduled_event

REPO = Path(__file__).resolve().parents[2]
APPROVED, DECLINED, PROVIDER_DOWN = "4242424242424242", "4000000000000002", "4000000000000119"
#: Seconds to wait for an order to finish: the provider-down card's retries take about 1.5 s.
EFFECT_TIMEOUT = 30.0
FINAL = ("shipped", "payment_failed", "cancelled")


@dataclass
class Shop:
    server: DevServer
    http: httpx.Client

    def place(
        self,
        *items: tuple[str, int],
        card: str = APPROVED,
        address: str = "1 Reef Road",
        email: str = "ada@example.com",
        **headers: str,
    ) -> httpx.Response:
        body = {
            "email": email,
            "address": address,
            "card": card,
            "items": [{"sku": sku, "quantity": quantity} for sku, quantity in items],
        }
        return self.http.post("/orders", json=body, headers=headers)

    def order(
        self,
        *items: tuple[str, int],
        card: str = APPROVED,
        address: str = "1 Reef Road",
        email: str = "ada@example.com",
    ) -> str:
        placed = self.place(*items, card=card, address=address, email=email)
        assert placed.status_code == 201, placed.text
        assert placed.json()["workflow_id"] == placed.json()["order_id"]
        order_id: str = placed.json()["order_id"]
        return order_id

    def get(self, path: str) -> Any:
        answer = self.http.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def stock(self, sku: str) -> int:
        available: int = self.get(f"/stock/{sku}")["available"]
        return available

    def finished(self, order_id: str) -> dict[str, Any]:
        """The order page once its workflow has finished and its email went out."""

        def check() -> dict[str, Any] | None:
            order: dict[str, Any] = self.get(f"/orders/{order_id}")
            done = (
                order["status"] in FINAL and order["notifications"] and self.workflow(order_id)["status"] != "RUNNING"
            )
            return order if done else None

        return poll(check, timeout=EFFECT_TIMEOUT)

    def workflow(self, order_id: str) -> dict[str, Any]:
        record: dict[str, Any] = self.get(f"/-/api/v1/workflows/{order_id}")
        return record

    def steps(self, order_id: str) -> list[tuple[str, str, int]]:
        """The workflow's operations in order: name, status, attempts."""
        return [(op["name"], op["status"], op.get("attempts", 1)) for op in self.workflow(order_id)["ops"]]


def serve(data_dir: Path) -> DevServer:
    return DevServer("examples/shop/app.py", "--port", "0", "--data-dir", str(data_dir), "--no-reload", cwd=REPO)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    server = serve(tmp_path_factory.mktemp("shop-workflow-data")).start()
    try:
        with httpx.Client(base_url=server.url, timeout=15) as client:
            yield Shop(server, client)
    finally:
        server.stop()


def test_the_shop_lists_its_workflow(shop: Shop) -> None:
    listing = shop.server.output()
    for line in ("place_order", "http POST /orders", "order_flow", "send_emails", "queue notifications"):
        assert line in listing
    assert "order_flow" in shop.get("/-/health")["functions"]


def test_an_approved_order_is_reserved_charged_shipped_and_emailed_each_step_once(shop: Shop) -> None:
    before = shop.stock("net"), shop.stock("fish-food")
    order_id = shop.order(("fish-food", 2), ("net", 1))

    order = shop.finished(order_id)
    assert order["status"] == "shipped"
    assert order["reservation"] == {"reserved": {"fish-food": 2, "net": 1}, "backordered": {}}
    assert order["payment"]["status"] == "processed"
    assert order["payment"]["amount"] == 2 * 450 + 1299
    assert order["label"]["tracking"].startswith("TF")
    assert list(order["notifications"]) == ["OrderShipped"]
    # The provider charged once, refunded nothing.
    assert [c["amount"] for c in order["provider"]["charges"].values()] == [2199]
    assert order["provider"]["refunds"] == {}
    assert (shop.stock("net"), shop.stock("fish-food")) == (before[0] - 1, before[1] - 2)
    # The workflow's history: each step ran once, in order; its result is the tracking number.
    record = shop.workflow(order_id)
    assert record["status"] == "SUCCEEDED"
    assert record["result"] == {"status": "shipped", "tracking": order["label"]["tracking"]}
    assert shop.steps(order_id) == [
        ("reserve stock", "SUCCEEDED", 1),
        ("charge payment", "SUCCEEDED", 1),
        ("create shipping label", "SUCCEEDED", 1),
        ("notify customer", "SUCCEEDED", 1),
    ]
    assert order["workflow"]["cli"] == f"triggerfish workflows describe {order_id}"


def test_a_declined_card_is_not_retried_and_releases_the_reservation(shop: Shop) -> None:
    before = shop.stock("net")
    order_id = shop.order(("net", 2), card=DECLINED)

    order = shop.finished(order_id)
    assert order["status"] == "payment_failed"
    assert order["payment"] == {"status": "failed", "reason": "card_declined"}
    assert order["reservation"]["released"] is True
    assert order["provider"] == {"charges": {}, "refunds": {}}
    assert list(order["notifications"]) == ["PaymentFailed"]
    assert shop.stock("net") == before  # taken, then given back: once
    assert shop.steps(order_id) == [
        ("reserve stock", "SUCCEEDED", 1),
        ("charge payment", "FAILED", 1),  # a declined card says the same every time: not tried again
        ("undo reserve stock", "SUCCEEDED", 1),
        ("record failure", "SUCCEEDED", 1),
        ("notify customer", "SUCCEEDED", 1),
    ]


def test_a_provider_that_stays_down_is_tried_three_times_then_the_order_fails(shop: Shop) -> None:
    before = shop.stock("fish-food")
    order_id = shop.order(("fish-food", 3), card=PROVIDER_DOWN)

    order = shop.finished(order_id)
    assert order["status"] == "payment_failed"
    assert order["payment"] == {"status": "failed", "reason": "provider_unavailable"}
    assert shop.stock("fish-food") == before
    charge = next(op for op in shop.workflow(order_id)["ops"] if op["name"] == "charge payment")
    assert (charge["status"], charge["attempts"]) == ("FAILED", 3)
    assert charge["error"]["errorType"] == "ProviderUnavailable"
    assert [name for name, _, _ in shop.steps(order_id)].count("undo reserve stock") == 1


def test_a_failed_shipment_refunds_the_payment_and_releases_the_stock_newest_first(shop: Shop) -> None:
    before = shop.stock("net")
    order_id = shop.order(("net", 2), address="7 Coral Way, Atlantis")

    order = shop.finished(order_id)
    assert order["status"] == "cancelled"
    assert order["cancellation"]["reason"] == "carrier_refused"
    assert "Atlantis" in order["cancellation"]["message"]
    assert order["label"] is None
    # Charged once, refunded once: the refund names the charge.
    [(charge_id, charge)] = order["provider"]["charges"].items()
    [(refunded, refund)] = order["provider"]["refunds"].items()
    assert (charge["charge_id"], charge["amount"]) == (refunded, 2598)
    assert order["payment"]["status"] == "refunded"
    assert order["payment"]["refund_id"] == refund["refund_id"]
    assert shop.stock("net") == before
    assert list(order["notifications"]) == ["OrderCancelled"]
    assert charge_id
    assert shop.steps(order_id) == [
        ("reserve stock", "SUCCEEDED", 1),
        ("charge payment", "SUCCEEDED", 1),
        ("create shipping label", "FAILED", 1),
        ("undo charge payment", "SUCCEEDED", 1),
        ("undo reserve stock", "SUCCEEDED", 1),
        ("record failure", "SUCCEEDED", 1),
        ("notify customer", "SUCCEEDED", 1),
    ]


def test_a_retried_post_with_the_same_idempotency_key_is_the_same_order_and_workflow(shop: Shop) -> None:
    first = shop.place(("fish-food", 1), **{"Idempotency-Key": "retry-me-wf12"})
    again = shop.place(("fish-food", 1), **{"Idempotency-Key": "retry-me-wf12"})
    assert (first.status_code, again.status_code) == (201, 200)
    order_id = first.json()["order_id"]
    assert again.json()["order_id"] == again.json()["workflow_id"] == order_id
    shop.finished(order_id)
    assert len(shop.get(f"/orders/{order_id}")["provider"]["charges"]) == 1
    listed = shop.get("/-/api/v1/workflows?function=order_flow&limit=1000")["workflows"]
    assert [w["id"] for w in listed].count(order_id) == 1


def test_an_email_that_bounces_is_tried_again_then_waits_in_the_dead_letter_queue(shop: Shop) -> None:
    order_id = shop.order(("fish-food", 1), email="bounce@example.invalid")

    def bounced_twice() -> dict[str, Any] | None:
        order: dict[str, Any] = shop.get(f"/orders/{order_id}")
        return order if order["bounced"].get("OrderShipped", {}).get("attempts") == 2 else None

    order = poll(bounced_twice, timeout=EFFECT_TIMEOUT)
    assert order["status"] == "shipped"  # the order went on: only the email failed
    assert order["notifications"] == {}

    def dead_letter() -> dict[str, Any] | None:
        answer = shop.http.post("/-/api/v1/queues/notifications.dlq/receive", json={"max": 10, "visibility_timeout": 1})
        if answer.status_code != 200:
            return None
        mine = [m for m in answer.json()["messages"] if json.loads(m["body"])["order_id"] == order_id]
        return mine[0] if mine else None

    email = json.loads(poll(dead_letter, timeout=EFFECT_TIMEOUT)["body"])
    assert (email["kind"], email["to"]) == ("OrderShipped", "bounce@example.invalid")


def test_the_nightly_report_counts_the_day_s_orders(shop: Shop) -> None:
    def report(day: str) -> dict[str, Any]:
        # What the scheduler hands the function at 02:00 the next day, sent through the control API.
        fire = datetime.datetime.fromisoformat(day).replace(hour=2, tzinfo=datetime.UTC) + datetime.timedelta(days=1)
        answer = shop.http.post(
            "/-/api/v1/functions/nightly_report/invoke", json=scheduled_event("nightly_report", fire)
        )
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    before = report(today)
    order_id = shop.order(("net", 1))
    if shop.get(f"/orders/{order_id}")["placed_at"][:10] != today:
        pytest.skip("midnight UTC passed while the test ran")
    after = report(today)
    assert after == {"day": today, "orders": before["orders"] + 1, "value": before["value"] + 1299}
    assert shop.get(f"/reports/{today}") == after


def test_a_bad_order_is_refused_naming_the_field(shop: Shop) -> None:
    answer = shop.http.post("/orders", json={"email": "ada@example.com", "address": "x", "card": "1", "items": []})
    assert answer.status_code == 400
    assert answer.json()["message"].startswith("bad order: card must be the card number")


@pytest.mark.timeout(180)
def test_a_kill_9_between_two_steps_and_the_order_finishes_with_each_effect_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = serve(data_dir).start()
    try:
        with httpx.Client(base_url=first.url, timeout=15) as http:
            shop = Shop(first, http)
            assert shop.stock("aquarium") == 2
            # Three aquariums, two in stock: reserved and charged, then the workflow waits for the warehouse.
            order_id = shop.order(("aquarium", 3))
            poll(lambda: ("delivery of aquarium", "WAITING", 1) in shop.steps(order_id), timeout=EFFECT_TIMEOUT)
            assert shop.get(f"/orders/{order_id}")["status"] == "paid"
    finally:
        # The whole platform at once, as a power cut would: no shutdown, nothing flushed.
        assert first.process is not None
        os.killpg(first.process.pid, signal.SIGKILL)
        first.wait()

    second = serve(data_dir).start()
    try:
        with httpx.Client(base_url=second.url, timeout=15) as http:
            shop = Shop(second, http)
            assert shop.get(f"/orders/{order_id}")["status"] == "paid"
            delivery = {
                "specversion": "1.0",
                "id": "delivery-after-crash",
                "source": "/warehouse",
                "type": "StockDelivered",
                "data": {"units": {"aquarium": 5}},
            }
            headers = {"content-type": "application/cloudevents+json"}
            assert http.post("/-/events", json=delivery, headers=headers).status_code == 202

            order = shop.finished(order_id)
            assert order["status"] == "shipped", json.dumps([order, shop.workflow(order_id)["ops"]], indent=1)
            assert order["reservation"] == {"reserved": {"aquarium": 3}, "backordered": {}}
            assert len(order["provider"]["charges"]) == 1  # charged before the kill, never again
            assert order["provider"]["refunds"] == {}
            assert list(order["notifications"]) == ["OrderShipped"]
            assert shop.stock("aquarium") == 2 + 5 - 3
            steps = shop.steps(order_id)
            assert [name for name, _, _ in steps] == [
                "reserve stock",
                "charge payment",
                "delivery of aquarium",
                "reserve backordered aquarium",
                "create shipping label",
                "notify customer",
            ]
            assert all(status == "SUCCEEDED" for _, status, _ in steps)
            # The steps checkpointed before the kill ran once; restock may be a moment behind the workflow's
            # wake-up, so the backorder's reservation can take a retry.
            assert steps[0][2] == steps[1][2] == steps[4][2] == steps[5][2] == 1
    finally:
        second.stop()


#: Added to a copy of the shop's app.py: the payment provider charges, notes the charge outside the platform, then
#: holds the step until a file named `go` exists, so the test can kill the platform in the middle of the step.
HELD_PROVIDER = """

# --- added by tests/examples/test_shop_workflow.py ---
import time as _time
from pathlib import Path as _Path

_HERE = _Path(__file__).resolve().parent
_provider_charge = provider_charge


def provider_charge(context: Context, card: str, amount: int, key: str, reference: str) -> str:
    charge_id = _provider_charge(context, card, amount, key, reference)
    with (_HERE / "charges.log").open("a") as log:
        log.write(f"{reference} {charge_id}\\n")
    while not (_HERE / "go").exists():
        _time.sleep(0.02)
    return charge_id
"""


def finished_order(shop: Shop, order_id: str) -> dict[str, Any] | None:
    order: dict[str, Any] = shop.get(f"/orders/{order_id}")
    done = order["status"] in FINAL and order["notifications"] and shop.workflow(order_id)["status"] != "RUNNING"
    return order if done else None


#: The run the kill -9 ends runs again once its lease lapses: the function's timeout (10 s) plus this margin, 8 s
#: instead of the default 30, so the test waits about 18 s for it instead of 40. Not much less: a claim of
#: @idempotent (CLAIM_MARGIN) outlives the dead run's timeout by 5 s, and a rerun that meets it is tried again
#: twice, a second apart, then dead-lettered.
SHORT_LEASE = ("--lease-margin", "8")


@pytest.mark.timeout(240)
def test_a_kill_9_in_the_middle_of_the_charge_step_charges_once_and_the_order_finishes(tmp_path: Path) -> None:
    shop_dir = tmp_path / "shop"
    shop_dir.mkdir()
    (shop_dir / "app.py").write_text((REPO / "examples/shop/app.py").read_text() + HELD_PROVIDER)
    (shop_dir / "triggerfish.toml").write_text((REPO / "examples/shop/triggerfish.toml").read_text())
    charges_log = shop_dir / "charges.log"
    data_dir = tmp_path / "data"

    def serve_held() -> DevServer:
        return DevServer(
            str(shop_dir / "app.py"), "--port", "0", "--data-dir", str(data_dir), "--no-reload", *SHORT_LEASE, cwd=REPO
        )

    first = serve_held().start()
    try:
        with httpx.Client(base_url=first.url, timeout=15) as http:
            shop = Shop(first, http)
            before = shop.stock("net")
            order_id = shop.order(("net", 2))
            # The provider has charged; the step has not returned, so its result is not checkpointed.
            poll(lambda: charges_log.exists() and charges_log.read_text(), timeout=EFFECT_TIMEOUT)
            assert shop.get(f"/orders/{order_id}")["provider"]["charges"]
            assert [(name, status) for name, status, _ in shop.steps(order_id)] == [("reserve stock", "SUCCEEDED")]
    finally:
        assert first.process is not None
        os.killpg(first.process.pid, signal.SIGKILL)  # the whole platform, in the middle of the step
        first.wait()

    (shop_dir / "go").touch()
    second = serve_held().start()
    try:
        with httpx.Client(base_url=second.url, timeout=15) as http:
            shop = Shop(second, http)
            started = time.monotonic()
            # The workflow's run died with the platform: its invocation is delivered again once its lease lapses.
            order = poll(lambda: finished_order(shop, order_id), timeout=120)
            assert order["status"] == "shipped", json.dumps([order, shop.workflow(order_id)["ops"]], indent=1)
            print(f"resumed and finished {time.monotonic() - started:.1f} s after the restart")
            # The step ran again (at least once: its first run was never checkpointed) ...
            runs = charges_log.read_text().split("\n")[:-1]
            assert runs == [runs[0], runs[0]]
            # ... and the provider charged once, by the step's idempotency key: the same key on both runs.
            [(charge_id, charge)] = order["provider"]["charges"].items()
            assert charge["amount"] == 2 * 1299
            assert runs[0] == f"{order_id} {order['payment']['charge_id']}"
            assert order["provider"]["refunds"] == {}
            # The steps checkpointed before the kill did not run again: the stock was taken once.
            assert shop.stock("net") == before - 2
            assert list(order["notifications"]) == ["OrderShipped"]
            assert [(name, status) for name, status, _ in shop.steps(order_id)] == [
                ("reserve stock", "SUCCEEDED"),
                ("charge payment", "SUCCEEDED"),
                ("create shipping label", "SUCCEEDED"),
                ("notify customer", "SUCCEEDED"),
            ]
            assert charge_id
    finally:
        second.stop()
