"""The Workflows screen in a real browser: an execution listed, and its operations on a time line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server.devserver import DevServer
from tests.ui.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium, screenshot_path

APP = """
import triggerfish

app = triggerfish.App("orders")


def reserve(order):
    return {"reserved": order["items"]}


def charge(order):
    return {"charged": 1299}


@app.workflow
def fulfil(ctx, order):
    ctx.step(reserve, order, name="reserve")
    ctx.sleep(0.2, name="settle")
    ctx.step(charge, order, name="charge")
    return {"order": order["id"], "done": True}
"""
EFFECT_MS = 30_000
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    require_chromium()
    project = tmp_path_factory.mktemp("ui-workflows")
    (project / "app.py").write_text(APP)
    server = DevServer("app.py", "--port", "0", "--no-reload", "--quiet", cwd=project).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(dev: DevServer, request: pytest.FixtureRequest) -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EFFECT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        opened = browser.new_page()
        opened.set_default_timeout(EFFECT_MS)
        try:
            yield opened
        finally:
            opened.screenshot(path=screenshot_path(request.node.name), full_page=True)
            browser.close()


def test_a_workflow_run_shows_its_operations_on_a_time_line(dev: DevServer, page: Any) -> None:
    from playwright.sync_api import expect

    started = httpx.post(
        f"{dev.url}/-/api/v1/workflows",
        json={"function": "fulfil", "input": {"id": "o-7", "items": ["net"]}, "id": "order-o-7"},
    )
    assert started.status_code == 202, started.text
    page.goto(f"{dev.url}/-/ui/workflows")
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="order-o-7"))
    # The list polls itself until the run, resumed after its sleep, has succeeded.
    expect(row).to_contain_text(re.compile("succeeded", re.IGNORECASE))
    row.get_by_role("link", name="order-o-7").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Workflow order-o-7")
    steps = page.get_by_role("list", name="Operations on the workflow's time line").get_by_role("listitem")
    expect(steps).to_have_count(3)
    expect(steps.nth(0)).to_contain_text(re.compile(r"1\. step reserve\s+succeeded", re.IGNORECASE))
    expect(steps.nth(1)).to_contain_text("sleep settle")
    expect(steps.nth(2)).to_contain_text("step charge")
    expect(page.locator("pre.json").last).to_contain_text('"done": true')
