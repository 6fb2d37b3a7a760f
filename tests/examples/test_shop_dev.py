"""examples/shop-choreographed for real: `triggerfish dev` on its app.py in a subprocess, driven over HTTP.

What a user would do and see: orders through the shop's own routes, the
warehouse's deliveries through `POST /-/events`, and every effect observed
through the shop's routes and the control API (`/-/api/v1/...`): invocation
records with their attempts, queues and their dead letters, the schedule.
The server runs with the example's triggerfish.toml; retries are quick
because the payment function asks for them with `Retry(delay=...)` and the
notifications queue allows two receives. Last, a kill -9 of the whole platform in the middle of charge_payment:
started again, the order is charged again (the handler runs at least once) and ships once.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
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
#: Seconds to wait for an effect: retries of the flaky payment take about 1 s, bounced emails about 3 s.
EFFECT_TIMEOUT = 30.0


@dataclass
class Shop:
    server: DevServer
    http: httpx.Client

    def order(self, *items: tuple[str, int], card: str = APPROVED, email: str = "ada@example.com") -> str:
        body = {
            "email": email,
            "address": "1 Reef Road, Wellington",
            "card": card,
            "items": [{"sku": sku, "quantity": quantity} for sku, quantity in items],
        }
        placed = self.http.post("/orders", json=body)
        assert placed.status_code == 201, placed.text
        order_id: str = placed.json()["order_id"]
        return order_id

    def get(self, path: str, **params: Any) -> Any:
        answer = self.http.get(path, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def order_when(self, order_id: str, done: Any) -> dict[str, Any]:
        """The order page, polled until `done(order)` holds."""

        def check() -> dict[str, Any] | None:
            order: dict[str, Any] = self.get(f"/orders/{order_id}")
            return order if done(order) else None

        return poll(check, timeout=EFFECT_TIMEOUT)

    def invocations(self, **params: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get("/-/api/v1/invocations", limit=1000, **params)["invocations"]
        return found

    def queue(self, name: str) -> dict[str, Any]:
        described: dict[str, Any] = self.get(f"/-/api/v1/queues/{name}")
        return described

    def visible(self, queue: str) -> int:
        """How many messages wait on `queue` (0 before its first message: queues exist by use)."""
        answer = self.http.get(f"/-/api/v1/queues/{queue}")
        if answer.status_code == 404:
            return 0
        assert answer.status_code == 200, answer.text
        count: int = answer.json()["stats"]["visible"]
        return count

    def dead_letters(self, queue: str, expected: int) -> list[dict[str, Any]]:
        """The messages on `queue` once it holds `expected` of them (received for a second, then back)."""
        poll(lambda: self.visible(queue) >= expected, timeout=EFFECT_TIMEOUT)
        answer = self.http.post(f"/-/api/v1/queues/{queue}/receive", json={"max": 10, "visibility_timeout": 1})
        assert answer.status_code == 200, answer.text
        messages: list[dict[str, Any]] = answer.json()["messages"]
        return messages


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    data_dir = tmp_path_factory.mktemp("shop-data")
    server = DevServer("examples/shop-choreographed/app.py", "--port", "0", "--data-dir", str(data_dir), cwd=REPO)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=15) as client:
            yield Shop(server, client)
    finally:
        server.stop()


def test_the_shop_serves_with_every_function_listed(shop: Shop) -> None:
    listing = shop.server.output()
    for line in ("place_order", "http POST /orders", "send_emails", "queue notifications", "cron(0 2 * * ? *)",
                 "change orders insert"):  # fmt: skip
        assert line in listing
    health = shop.get("/-/health")
    assert (health["status"], health["app"]) == ("ok", "shop")
    assert "charge_payment" in health["functions"]


def test_an_order_is_reserved_charged_shipped_and_emailed(shop: Shop) -> None:
    net_before = shop.get("/stock/net")["available"]
    order_id = shop.order(("fish-food", 2), ("net", 1))

    order = shop.order_when(order_id, lambda o: o["status"] == "shipped" and len(o["notifications"]) == 2)
    assert order["total"] == 2 * 450 + 1299
    assert order["payment"] == {"status": "processed", "amount": 2199}
    assert order["reservation"] == {"reserved": {"fish-food": 2, "net": 1}, "backordered": {}}
    assert order["label"]["tracking"].startswith("TF")
    assert order["notifications"]["OrderShipped"]["subject"] == f"Order {order_id} is on its way"
    assert order["bounced"] == {}
    assert shop.get("/stock/net")["available"] == net_before - 1
    for function in ("place_order", "reserve_stock", "charge_payment", "ship_order", "notify_customer", "send_emails"):
        assert shop.invocations(function=function, status="succeeded"), function
    assert {r["trigger"] for r in shop.invocations(function="place_order")} == {"http"}
    assert {r["trigger"] for r in shop.invocations(function="ship_order")} == {"dynamodb"}  # the order's change
    assert {r["trigger"] for r in shop.invocations(function="send_emails")} == {"queue"}


def test_a_declined_card_fails_the_payment_and_the_customer_is_told(shop: Shop) -> None:
    order_id = shop.order(("fish-food", 1), card=DECLINED)
    order = shop.order_when(order_id, lambda o: "PaymentFailed" in o["notifications"])
    assert order["status"] == "payment_failed"
    assert order["payment"] == {"status": "failed", "reason": "card_declined"}
    assert order["label"] is None
    assert sorted(order["notifications"]) == ["OrderPlaced", "PaymentFailed"]


def test_a_charge_that_keeps_failing_is_retried_then_lands_in_payments_dlq(shop: Shop) -> None:
    order_id = shop.order(("net", 1), card=PROVIDER_DOWN)

    (dead,) = [
        record
        for record in (json.loads(m["body"]) for m in shop.dead_letters("payments-dlq", 1))
        if record["requestPayload"]["data"]["order_id"] == order_id
    ]
    assert dead["requestContext"]["condition"] == "RetriesExhausted"
    assert dead["requestContext"]["approximateInvokeCount"] == 3
    assert "timed out" in dead["responsePayload"]["errorMessage"]
    attempts = shop.invocations(request_id=dead["requestContext"]["requestId"])
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, "failed"), (2, "failed"), (3, "failed")]
    assert {a["error"]["errorType"] for a in attempts} == {"Retry"}

    order = shop.order_when(order_id, lambda o: o["notifications"])
    assert order["status"] == "placed"  # never charged: it waits in payments-dlq for a person
    assert order["payment"] is None
    assert order["reservation"]["reserved"] == {"net": 1}


def test_a_bounced_email_is_retried_then_dead_lettered_while_its_batch_mates_are_sent(shop: Shop) -> None:
    good = shop.order(("fish-food", 1))
    bad = shop.order(("fish-food", 1), email="bo@example.invalid")

    assert sorted(shop.order_when(good, lambda o: len(o["notifications"]) == 2)["notifications"]) == [
        "OrderPlaced",
        "OrderShipped",
    ]
    dead = [json.loads(m["body"]) for m in shop.dead_letters("notifications.dlq", 2)]
    assert sorted((d["order_id"], d["kind"]) for d in dead) == [(bad, "OrderPlaced"), (bad, "OrderShipped")]
    order = shop.order_when(bad, lambda o: o["status"] == "shipped")
    assert order["notifications"] == {}
    # Received twice each (max_receives = 2 in triggerfish.toml), then moved to notifications.dlq.
    assert {kind: b["attempts"] for kind, b in order["bounced"].items()} == {"OrderPlaced": 2, "OrderShipped": 2}
    # The warning send_emails logged for each bounce is in the output of its invocation records.
    output = "".join(r["output"] for r in shop.invocations(function="send_emails"))
    assert output.count("not sent to bo@example.invalid: 550 no such domain") == 2 * 2
    queue = shop.queue("notifications")
    assert queue["config"]["max_receives"] == 2
    assert queue["consumers"] == ["send_emails"]


def test_the_warehouse_publishes_deliveries_through_the_events_endpoint(shop: Shop) -> None:
    before = shop.get("/stock/aquarium")["available"]
    delivery = {
        "specversion": "1.0",
        "id": "delivery-1",
        "source": "/warehouse",
        "type": "StockDelivered",
        "datacontenttype": "application/json",
        "data": {"units": {"aquarium": 5}},
    }
    published = shop.http.post("/-/events", json=delivery, headers={"content-type": "application/cloudevents+json"})
    assert published.status_code == 202
    assert published.json()["ids"] == ["delivery-1"]
    poll(lambda: shop.get("/stock/aquarium")["available"] == before + 5, timeout=EFFECT_TIMEOUT)

    # The same through EventBridge's PutEvents form.
    entry = {"Source": "/warehouse", "DetailType": "StockDelivered", "Detail": json.dumps({"units": {"aquarium": 1}})}
    put = shop.http.post("/-/events", json={"Entries": [entry]})
    assert put.status_code == 202
    assert put.json()["FailedEntryCount"] == 0
    poll(lambda: shop.get("/stock/aquarium")["available"] == before + 6, timeout=EFFECT_TIMEOUT)


def test_the_nightly_report_is_scheduled_and_reports_the_day(shop: Shop) -> None:
    (schedule,) = shop.get("/-/api/v1/schedules")["schedules"]
    assert (schedule["function"], schedule["paused"]) == ("nightly_report", False)
    assert all(fire.endswith("T02:00:00Z") for fire in schedule["next_fires"])

    def report(day: str) -> dict[str, Any]:
        # What the scheduler hands the function at 02:00 the next day, sent through the control API.
        fire = datetime.datetime.fromisoformat(day).replace(hour=2, tzinfo=datetime.UTC) + datetime.timedelta(days=1)
        answer = shop.http.post(
            "/-/api/v1/functions/nightly_report/invoke", json=scheduled_event("nightly_report", fire)
        )
        assert answer.status_code == 200, answer.text
        assert "x-amz-function-error" not in answer.headers, answer.text
        result: dict[str, Any] = answer.json()
        return result

    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    before = report(today)
    order_id = shop.order(("aquarium", 1), ("net", 1))
    day = shop.get(f"/orders/{order_id}")["placed_at"][:10]
    if day != today:
        pytest.skip("midnight UTC passed while the test ran")
    after = report(day)
    assert after == {"day": day, "orders": before["orders"] + 1, "value": before["value"] + 8900 + 1299}
    assert shop.get(f"/reports/{day}") == after


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", "the body is not valid JSON"),
        (json.dumps({"email": "ada", "address": "x", "card": APPROVED, "items": []}), "email must be an address"),
        (
            json.dumps(
                {"email": "a@b.co", "address": "x", "card": APPROVED, "items": [{"sku": "net", "quantity": -1}]}
            ),
            "items[0].quantity must be a whole number from 1 to 100, not -1",
        ),
    ],
)
def test_a_bad_order_is_400_naming_the_field(shop: Shop, body: str, reason: str) -> None:
    answer = shop.http.post("/orders", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert reason in answer.json()["message"]


def test_unknown_orders_are_404_and_unknown_routes_too(shop: Shop) -> None:
    assert shop.http.get("/orders/o-nope").status_code == 404
    assert shop.http.get("/stock/anchor").status_code == 404
    assert shop.http.get("/basket").status_code == 404
    assert shop.http.delete("/orders/o-nope").status_code == 405


#: Added to a copy of the choreographed shop's app.py: the payment provider approves, notes it outside the
#: platform, then holds charge_payment until a file named `go` exists, so the test can kill the platform there.
HELD_PROVIDER = """

# --- added by tests/examples/test_shop_dev.py ---
import time as _time
from pathlib import Path as _Path

_HERE = _Path(__file__).resolve().parent
_charge_card = charge_card


def charge_card(card: str, amount: int) -> str:
    outcome = _charge_card(card, amount)
    with (_HERE / "charges.log").open("a") as log:
        log.write(f"{amount} {outcome}\\n")
    while not (_HERE / "go").exists():
        _time.sleep(0.02)
    return outcome
"""


#: The run the kill -9 ends runs again once its lease lapses: the function's timeout (10 s) plus this margin, 8 s
#: instead of the default 30, so the test waits about 18 s for it instead of 40. Not much less: a claim of
#: @idempotent (CLAIM_MARGIN) outlives the dead run's timeout by 5 s, and a rerun that meets it is tried again
#: twice, a second apart, then dead-lettered.
SHORT_LEASE = ("--lease-margin", "8")


@pytest.mark.timeout(240)
def test_a_kill_9_in_the_middle_of_charging_and_the_order_still_ships_once(tmp_path: Path) -> None:
    shop_dir = tmp_path / "shop"
    shop_dir.mkdir()
    source = REPO / "examples/shop-choreographed"
    (shop_dir / "app.py").write_text((source / "app.py").read_text() + HELD_PROVIDER)
    # The notifications queue's batches, leased as long as the send takes (timeout 10 s) and a little more, not 30 s:
    # an email the killed platform was sending goes out again soon after the restart.
    settings = (source / "triggerfish.toml").read_text()
    queue = "[queues.notifications]\n"
    assert queue in settings
    (shop_dir / "triggerfish.toml").write_text(settings.replace(queue, queue + "visibility_timeout = 12\n"))
    charges = shop_dir / "charges.log"
    data_dir = tmp_path / "data"

    def serve() -> DevServer:
        return DevServer(
            str(shop_dir / "app.py"), "--port", "0", "--data-dir", str(data_dir), "--no-reload", *SHORT_LEASE, cwd=REPO
        )

    first = serve().start()
    try:
        with httpx.Client(base_url=first.url, timeout=15) as http:
            shop = Shop(first, http)
            before = shop.get("/stock/net")["available"]
            order_id = shop.order(("net", 3))
            # charge_payment is in the middle of its run: the provider approved, the order is not paid yet.
            poll(lambda: charges.exists() and charges.read_text(), timeout=EFFECT_TIMEOUT)
            assert shop.get(f"/orders/{order_id}")["status"] in ("placed", "reserved")
    finally:
        assert first.process is not None
        os.killpg(first.process.pid, signal.SIGKILL)  # the whole platform, as a power cut would
        first.wait()

    (shop_dir / "go").touch()
    second = serve().start()
    try:
        with httpx.Client(base_url=second.url, timeout=15) as http:
            shop = Shop(second, http)

            def shipped() -> dict[str, Any] | None:
                order: dict[str, Any] = shop.get(f"/orders/{order_id}")
                emailed = {"OrderPlaced", "OrderShipped"} <= set(order["notifications"])
                return order if order["status"] == "shipped" and emailed else None

            # The OrderPlaced event comes to charge_payment again once the killed run's lease lapses; the
            # OrderPlaced email, if the killed platform was sending it, once its batch's lease lapses.
            order = poll(shipped, timeout=120)
            # charge_payment ran again (at least once): the provider was asked twice for the same order ...
            assert charges.read_text().split("\n")[:-1] == [f"{3 * 1299} approved"] * 2
            # ... and everything after it happened once: one payment, one label, the stock taken once.
            assert order["payment"] == {"status": "processed", "amount": 3 * 1299}
            assert order["reservation"] == {"reserved": {"net": 3}, "backordered": {}}
            assert order["label"]["tracking"].startswith("TF")
            assert shop.get("/stock/net")["available"] == before - 3
            assert sorted(order["notifications"]) == ["OrderPlaced", "OrderShipped"]
            assert len(shop.invocations(function="ship_order", status="succeeded")) == 1
    finally:
        second.stop()
