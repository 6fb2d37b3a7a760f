"""The dashboard in a real browser against `triggerfish dev examples/shop/app.py`, clicked through as a user does.

One dev server and one Chromium for the module; each test opens its own
browser context (its own cookies) and saves a screenshot of what it saw
under test-artifacts/ui/. Waits are Playwright's: `expect(...)` retries its
check until it holds (or fails after its timeout), never a bare sleep.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.devserver import DevServer, poll
from tests.ui.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium, screenshot_path

REPO = Path(__file__).resolve().parents[2]
#: How long an effect may take to show (retries of a bounced email take about 3 s).
EFFECT_MS = 30_000

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    require_chromium()
    data_dir = tmp_path_factory.mktemp("shop-ui")
    server = DevServer("examples/shop/app.py", "--port", "0", "--data-dir", str(data_dir), "--quiet", cwd=REPO)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(shop: DevServer) -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    # `expect` retries its check until it holds: give it as long as an effect may take on a loaded machine.
    expect.set_options(timeout=EFFECT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(EFFECT_MS)
    try:
        yield opened
    finally:
        opened.screenshot(path=screenshot_path(request.node.name), full_page=True)
        context.close()


def order(shop: DevServer, card: str = "4242424242424242", email: str = "ada@example.com") -> str:
    body = {"email": email, "address": "1 Reef Road", "card": card, "items": [{"sku": "net", "quantity": 1}]}
    placed = httpx.post(f"{shop.url}/orders", json=body, timeout=15)
    assert placed.status_code == 201, placed.text
    order_id: str = placed.json()["order_id"]
    return order_id


def ui(shop: DevServer, path: str = "/") -> str:
    return f"{shop.url}/-/ui{path}"


def test_the_overview_lists_every_function_with_its_figures(shop: DevServer, page: Any) -> None:
    from playwright.sync_api import expect

    order(shop)
    page.goto(ui(shop))
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="place_order"))
    # The live table polls itself: the order placed above shows as one invocation of place_order.
    expect(row.get_by_role("cell").first).not_to_have_text("0")
    for name in ("charge_payment", "send_emails", "nightly_report"):
        expect(page.get_by_role("rowheader", name=name)).to_be_visible()
    header = page.get_by_role("columnheader")
    for column in ("Per minute", "Errors", "p50", "p99", "Cold starts", "Running", "Today"):
        expect(header.filter(has_text=column)).to_have_count(1)
    # Today's usage comes from the rollups (folded shortly after the records are stored).
    expect(row.get_by_role("cell").last).to_contain_text("GB-s")


def test_invoking_a_function_shows_its_result_and_logs_and_bad_json_says_where(shop: DevServer, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(ui(shop))
    page.get_by_role("navigation", name="Screens").get_by_role("link", name="Functions").click()
    page.get_by_role("link", name="get_stock").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Function get_stock")
    payload = page.get_by_label("Payload (JSON: the event the handler gets)")
    payload.fill('{"pathParameters": {"sku": "net"},\n "headers": }')
    page.get_by_role("button", name="Invoke get_stock").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("line 2 column")
    expect(payload).to_have_attribute("aria-invalid", "true")
    # What was typed is kept, so the mistake can be fixed in place.
    expect(payload).to_have_value(re.compile(r'"headers": }'))
    payload.fill('{"pathParameters": {"sku": "net"}}')
    page.get_by_role("button", name="Invoke get_stock").click()
    result = page.get_by_label("Returned")
    expect(result).to_contain_text('"statusCode": 200')
    expect(result).to_contain_text("net")
    # The page keeps its own address (not the form's action): reloading shows the function again.
    expect(page).to_have_url(re.compile(r"/-/ui/functions/get_stock$"))
    page.get_by_role("status").get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Invocation ")
    expect(page.get_by_role("heading", name="Attempt 1: succeeded")).to_be_visible()
    # Its input is kept (dev keeps inputs): shown, and the invoke form comes back with it to edit.
    expect(page.get_by_label("The event it was given")).to_contain_text('"sku": "net"')
    page.get_by_role("link", name="Edit the input and invoke").click()
    expect(page.get_by_label("Payload (JSON: the event the handler gets)")).to_have_value(
        '{\n  "pathParameters": {\n    "sku": "net"\n  }\n}'
    )


def test_rerun_with_this_input_runs_it_again_and_shows_the_new_invocation(shop: DevServer, page: Any) -> None:
    from playwright.sync_api import expect

    placed = httpx.post(
        f"{shop.url}/orders",
        json={
            "email": "rerun@example.com",
            "address": "2 Reef Road",
            "card": "4242424242424242",
            "items": [{"sku": "net", "quantity": 1}],
        },
        headers={"Authorization": "Bearer tfk_never_shown", "X-Trace-Me": "yes"},
        timeout=15,
    )
    original = placed.headers["x-triggerfish-request-id"]
    page.goto(ui(shop, f"/invocations/{original}"))
    shown = page.get_by_label("The event it was given")
    expect(shown).to_contain_text("rerun@example.com")
    expect(shown).to_contain_text('"authorization": "[redacted]"')
    expect(shown).to_contain_text('"x-trace-me": "yes"')
    expect(page.get_by_text("headers.authorization was replaced by")).to_be_visible()
    assert "tfk_never_shown" not in page.content()
    page.get_by_role("button", name="Re-run with this input").click()
    expect(page.get_by_role("status")).to_contain_text(f"A re-run of {original} with its input")
    # The address is the new invocation's: reloading or sharing it shows the re-run.
    expect(page).to_have_url(re.compile(rf"/-/ui/invocations/[0-9a-f-]+\?rerun_of={original}$"))
    expect(page.get_by_role("heading", level=1)).not_to_have_text(f"Invocation {original}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Invocation ")
    expect(page.get_by_label("The event it was given")).to_contain_text("rerun@example.com")
    expect(page.get_by_role("heading", name=re.compile(r"Attempt 1: "))).to_be_visible()
    # The new invocation links back to the one it re-ran.
    page.get_by_role("status").get_by_role("link", name=original).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Invocation {original}")


def test_an_invocation_shows_its_trace_as_a_waterfall_across_functions(shop: DevServer, page: Any) -> None:
    from playwright.sync_api import expect

    order(shop)
    api = f"{shop.url}/-/api/v1"

    def placed() -> str | None:
        found = httpx.get(f"{api}/invocations", params={"function": "ship_order", "order": "desc"}).json()
        return found["invocations"][0]["request_id"] if found["invocations"] else None

    ship = poll(placed, timeout=EFFECT_MS / 1000)
    page.goto(ui(shop, "/invocations?function=ship_order"))
    expect(page.get_by_role("link", name=ship)).to_be_visible()
    page.get_by_role("link", name=ship).click()
    waterfall = page.get_by_role("list", name="Spans of the trace, on one time line")
    # One trace from the HTTP request on: the order's route, the publish, the rules' functions, the shipping.
    for name in ("place_order", "charge_payment", "ship_order", "publish default"):
        expect(waterfall.get_by_role("listitem").filter(has_text=name).first).to_be_visible()
    page.get_by_role("link", name="its invocations").click()
    expect(page.get_by_role("cell", name="place_order").first).to_be_visible()


def test_invocations_filter_by_status_and_a_bad_filter_says_why(shop: DevServer, page: Any) -> None:
    from playwright.sync_api import expect

    order(shop, card="4000000000000002")  # declined: the payment fails and is not retried
    page.goto(ui(shop, "/invocations"))
    page.get_by_label("Status").select_option("succeeded")
    page.get_by_label("Function").select_option("place_order")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"status=succeeded"))
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows.nth(1)).to_contain_text("place_order")
    page.get_by_label("Since").fill("yesterday")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("alert")).to_contain_text("since must be epoch seconds or an ISO 8601 time")


def test_sending_an_event_shows_it_with_the_rule_it_matched_and_replay_queues_it_again(
    shop: DevServer, page: Any
) -> None:
    from playwright.sync_api import expect

    page.goto(ui(shop, "/events"))
    page.get_by_label("Source").fill("/warehose")  # misspelt: the restock rule misses it by its source
    page.get_by_label("Type").fill("StockDelivered")
    page.get_by_role("button", name="Send event").click()
    recent = page.get_by_role("table", name=re.compile("The newest 50"))
    missed = recent.get_by_role("row").filter(has_text="/warehose").first
    expect(missed).to_contain_text("restock: source differs")
    page.get_by_label("Source").fill("/warehouse")
    data = page.get_by_label("Data (JSON)")
    data.fill("{sku: net}")
    page.get_by_role("button", name="Send event").click()
    expect(page.get_by_role("alert")).to_contain_text("data: invalid JSON at line 1 column 2")
    data.fill(json.dumps({"units": {"net": 5}}))
    page.get_by_role("button", name="Send event").click()
    expect(page.get_by_role("status").filter(has_text="Published to bus default")).to_be_visible()
    row = recent.get_by_role("row").filter(has_text="StockDelivered").first
    expect(row).to_contain_text("restock")
    page.get_by_label("To rule").select_option("restock")
    page.get_by_role("button", name="Replay bus default").click()
    replayed = page.get_by_role("status").filter(has_text="queued")
    expect(replayed).to_contain_text(re.compile(r"[1-9]\d* deliver(y|ies) queued"))


def test_dead_letters_are_shown_and_redriven(shop: DevServer, page: Any) -> None:
    from playwright.sync_api import expect

    order(shop, email="bounce@example.invalid")  # the email bounces: retried, then notifications.dlq
    page.goto(ui(shop, "/queues"))
    notifications = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="notifications", exact=True))
    # The live table polls itself until the bounced email lands in the dead-letter queue.
    redrive = notifications.get_by_role("button", name=re.compile("Redrive .* dead letters of notifications"))
    expect(redrive).to_be_visible()
    redrive.click()
    expect(page.get_by_role("status")).to_contain_text(re.compile(r"Moved [1-9]\d* messages from notifications.dlq"))


def test_a_schedule_is_paused_and_resumed(shop: DevServer, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(ui(shop, "/schedules"))
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="nightly_report"))
    expect(row).to_contain_text("cron(0 2 * * ? *)")
    expect(row).to_contain_text("running")
    row.get_by_role("button", name=re.compile("Pause schedule")).click()
    expect(page.get_by_role("status")).to_contain_text("is paused")
    expect(row).to_contain_text("paused")
    row.get_by_role("button", name=re.compile("Resume schedule")).click()
    expect(page.get_by_role("status")).to_contain_text("is running")


def test_the_flow_map_draws_the_declarations_with_rates(shop: DevServer, page: Any) -> None:
    from playwright.sync_api import expect

    order(shop)
    page.goto(ui(shop, "/flow"))
    expect(page.get_by_role("img", name=re.compile("Event flow of the app"))).to_be_visible()
    edges = page.get_by_role("table", name="The same connections as a list")
    route = edges.get_by_role("row").filter(has_text="POST /orders")
    expect(route).to_contain_text("place_order")
    expect(route).to_contain_text("/min")
    expect(edges.get_by_role("row").filter(has_text="queue notifications").first).to_be_visible()
    expect(edges.get_by_role("row").filter(has_text="rule restock").first).to_contain_text("restock")
    # What handlers do in code is learned from their traces: place_order publishes to the bus.
    expect(edges.get_by_role("row").filter(has_text="seen in traces").filter(has_text="place_order")).to_have_count(1)


def test_workflows_screen_says_when_the_app_has_none(shop: DevServer, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(ui(shop, "/workflows"))
    expect(page.get_by_role("cell", name=re.compile("No workflow has run"))).to_be_visible()


def test_a_missing_function_is_a_404_page_naming_the_declared_ones(shop: DevServer, page: Any) -> None:
    from playwright.sync_api import expect

    answer = page.goto(ui(shop, "/functions/nope"))
    assert answer is not None
    assert answer.status == 404
    expect(page.get_by_role("alert")).to_contain_text("no function named 'nope'")


def test_an_unknown_page_is_a_page_and_a_post_from_another_site_is_refused(shop: DevServer) -> None:
    unknown = httpx.get(ui(shop, "/nope"))
    assert unknown.status_code == 404
    assert "the dashboard has no page /-/ui/nope" in unknown.text
    assert unknown.headers["content-type"].startswith("text/html")
    # A form on another site's page posting to dev's dashboard: the Origin rule refuses it before it runs.
    forged = httpx.post(
        ui(shop, "/functions/get_stock/invoke"), data={"payload": "{}"}, headers={"Origin": "http://evil.example"}
    )
    assert forged.status_code == 403
    assert forged.json()["error"]["code"] == "OriginNotAllowed"


def test_what_handlers_and_events_carry_is_shown_as_text_never_as_markup(shop: DevServer) -> None:
    hostile = {
        "specversion": "1.0",
        "id": "x-1",
        "source": "/x",
        "type": "<script>alert(1)</script>",
        "data": {"note": "<img src=x onerror=alert(2)>"},
    }
    sent = httpx.post(
        f"{shop.url}/-/events", json=hostile, headers={"content-type": "application/cloudevents+json"}, timeout=15
    )
    assert sent.status_code == 202, sent.text
    page = httpx.get(ui(shop, "/events"), timeout=15).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    assert "<img src=x" not in page


def test_the_keyboard_reaches_the_content_and_every_screen(shop: DevServer, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(ui(shop))
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_role("navigation", name="Screens").get_by_role("link", name="Overview")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Functions")
    for link in page.get_by_role("navigation", name="Screens").get_by_role("link").all():
        name = link.inner_text()
        link.focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", level=1)).to_have_text("Overview" if name == "Overview" else name)


def test_pages_work_while_htmx_is_still_loading(shop: DevServer, browser: Any) -> None:
    """Every page is whole before its script arrives: links and forms work as plain HTML meanwhile."""
    from playwright.sync_api import expect

    context = browser.new_context()
    held: list[Any] = []
    # The script is held back until the test ends: as slow as a script can be.
    context.route("**/static/htmx.min.js", lambda route: held.append(route))
    page = context.new_page()
    page.set_default_timeout(EFFECT_MS)
    try:
        # A deferred script holds back DOMContentLoaded, not the page: wait only for the answer to arrive.
        page.goto(ui(shop, "/functions/get_stock"), wait_until="commit")
        expect(page.get_by_role("heading", level=1)).to_have_text("Function get_stock")
        assert page.evaluate("typeof window.htmx") == "undefined"
        page.get_by_label("Payload (JSON: the event the handler gets)").fill('{"pathParameters": {"sku": "net"}}')
        page.get_by_role("button", name="Invoke get_stock").click()
        expect(page.get_by_label("Returned")).to_contain_text('"statusCode": 200')
        page.get_by_role("link", name="Queues and topics").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Queues and topics")
        page.screenshot(path=screenshot_path("slow_script"), full_page=True)
    finally:
        for route in held:
            route.abort()
        context.close()


def test_without_javascript_every_screen_is_plain_links_and_forms(shop: DevServer, browser: Any) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(EFFECT_MS)
    try:
        page.goto(ui(shop))
        for name in ("Functions", "Invocations", "Events", "Queues and topics", "Schedules", "Flow map", "Workflows"):
            page.get_by_role("navigation", name="Screens").get_by_role("link", name=name).click()
            expect(page.get_by_role("heading", level=1)).to_have_text(name)
        page.goto(ui(shop, "/functions/get_stock"))
        page.get_by_label("Payload (JSON: the event the handler gets)").fill("[1,")
        page.get_by_role("button", name="Invoke get_stock").click()
        expect(page.get_by_role("alert")).to_contain_text("payload: invalid JSON")
        # Re-run is a plain form: it posts, and the browser follows to the new invocation's page.
        page.get_by_label("Payload (JSON: the event the handler gets)").fill('{"pathParameters": {"sku": "net"}}')
        page.get_by_role("button", name="Invoke get_stock").click()
        page.get_by_role("status").get_by_role("link").click()
        original = page.url.rsplit("/", 1)[1]
        page.get_by_role("button", name="Re-run with this input").click()
        expect(page.get_by_role("status")).to_contain_text(f"A re-run of {original} with its input")
        expect(page).to_have_url(re.compile(rf"/-/ui/invocations/[0-9a-f-]+\?rerun_of={original}$"))
        page.screenshot(path=screenshot_path("no_javascript"), full_page=True)
    finally:
        context.close()
