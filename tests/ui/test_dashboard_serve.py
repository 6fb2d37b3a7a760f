"""The dashboard under `triggerfish serve`: it asks for an API key, keeps it in a cookie only the dashboard
receives, and lets the key do exactly what the control API lets it do."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server.devserver import DevServer
from tests.ui.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium, screenshot_path

APP = """\
import triggerfish

app = triggerfish.App("greeter")


@app.function
def hello(event, context):
    print("greeting", event.get("name"))
    return {"greeting": "hi " + str(event.get("name"))}
"""

pytestmark = pytest.mark.timeout(180)
EFFECT_MS = 30_000


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevServer, str, str]]:
    """A `serve` with the greeter deployed; its admin key and a viewer key of the greeter."""
    require_chromium()
    project = tmp_path_factory.mktemp("ui-serve")
    (project / "greeter").mkdir()
    (project / "greeter" / "app.py").write_text(APP)
    server = DevServer(
        "--port", "0", "--no-isolation", "--data-dir", "server", cwd=project, verb="serve"
    ).start(60)  # fmt: skip
    try:
        admin = (project / "server" / "admin.key").read_text().strip()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGERFISH_")}
        env["TRIGGERFISH_CONFIG"] = os.devnull
        command = [sys.executable, "-m", "triggerfish", "deploy", str(project / "greeter")]
        deployed = subprocess.run(
            [*command, "--server", server.url, "--key", admin],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert deployed.returncode == 0, deployed.stderr
        made = httpx.post(
            f"{server.url}/-/api/v1/keys",
            json={"name": "looker", "role": "viewer", "app": "greeter"},
            headers={"authorization": f"Bearer {admin}"},
        )
        assert made.status_code == 201, made.text
        yield server, admin, made.json()["key"]
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(served: tuple[DevServer, str, str]) -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EFFECT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context()
    opened = context.new_page()
    opened.set_default_timeout(EFFECT_MS)
    try:
        yield opened
    finally:
        opened.screenshot(path=screenshot_path(f"serve_{request.node.name}"), full_page=True)
        context.close()


def sign_in(page: Any, key: str) -> None:
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def test_the_dashboard_asks_for_a_key_and_keeps_it_in_a_strict_httponly_cookie(
    served: tuple[DevServer, str, str], page: Any
) -> None:
    from playwright.sync_api import expect

    server, admin, _ = served
    page.goto(f"{server.url}/-/ui/apps/greeter/functions")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    sign_in(page, "tfk_00000000_" + "x" * 32)
    expect(page.get_by_role("alert")).to_contain_text("unknown API key")
    sign_in(page, "not a key")
    expect(page.get_by_role("alert")).to_contain_text("That is not an API key of this server")
    sign_in(page, admin)
    # Back to the page asked for, now signed in.
    expect(page.get_by_role("heading", level=1)).to_have_text("Functions")
    expect(page.get_by_role("link", name="hello")).to_be_visible()
    [cookie] = page.context.cookies()
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/-/ui")
    assert page.evaluate("document.cookie") == ""  # no script on the page can read the key
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert page.context.cookies() == []


def test_an_admin_sees_the_apps_and_invokes_a_function(served: tuple[DevServer, str, str], page: Any) -> None:
    from playwright.sync_api import expect

    server, admin, _ = served
    page.goto(f"{server.url}/-/ui/")
    sign_in(page, admin)
    expect(page.get_by_role("heading", level=1)).to_have_text("Apps")
    page.get_by_role("link", name="greeter").click()
    expect(page.get_by_role("rowheader", name="hello")).to_be_visible()
    page.get_by_role("link", name="hello").click()
    page.get_by_label("Payload (JSON: the event the handler gets)").fill('{"name": "Ada"}')
    page.get_by_role("button", name="Invoke hello").click()
    expect(page.get_by_label("Returned")).to_contain_text("hi Ada")
    expect(page.locator("pre.logs")).to_contain_text("greeting Ada")
    expect(page.get_by_role("table", name="Deployed versions")).to_contain_text("live")
    # A server keeps no inputs unless the app says so: the invocation says why there is no re-run.
    page.get_by_role("status").get_by_role("link").click()
    expect(page.get_by_role("region", name="Input")).to_contain_text("The input was not kept")
    expect(page.get_by_role("button", name="Re-run with this input")).to_have_count(0)


def test_a_viewer_key_looks_but_may_not_invoke(served: tuple[DevServer, str, str], page: Any) -> None:
    from playwright.sync_api import expect

    server, _, viewer = served
    page.goto(f"{server.url}/-/ui/apps/greeter/functions/hello")
    sign_in(page, viewer)
    expect(page.get_by_role("heading", level=1)).to_have_text("Function hello")
    page.get_by_role("button", name="Invoke hello").click()
    expect(page.get_by_role("alert")).to_contain_text("a viewer key may not invoke on app 'greeter'")
    # Another app's dashboard is as absent to it as to the API.
    answer = page.goto(f"{server.url}/-/ui/apps/blog/")
    assert answer is not None
    assert answer.status == 404


def test_a_form_posted_without_the_cookie_is_refused(served: tuple[DevServer, str, str]) -> None:
    """What another site's page could send (a form post, no key: the cookie is SameSite=Strict) changes nothing."""
    server, _, _ = served
    answer = httpx.post(
        f"{server.url}/-/ui/apps/greeter/functions/hello/invoke",
        data={"payload": "{}"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/-/ui/login?next=")
