"""`authorize` behind real Starlette endpoints on a real socket, with keys in a real SQLite store.

The matrix test sends every action with a key of every role, to its own app, to
another app and server-wide, and compares every answer with a table written out
by hand (not derived from ROLE_ACTIONS, which is what is under test).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from triggerfish.gateway import GatewayServer
from triggerfish.server.auth import (
    ACTIONS,
    APP_ENDPOINT_ACTIONS,
    Principal,
    app_not_found,
    authorize,
    guarded,
)
from triggerfish.server.control import control_routes
from triggerfish.server.control_io import endpoint, json_response
from triggerfish.server.keys import ApiKeys
from triggerfish.store import open_store

APPS = ("shop", "blog")


@endpoint
async def app_action(request: Request) -> Response:
    app = request.path_params["app"]
    principal = await authorize(request, request.path_params["action"], app)
    if app not in APPS:
        raise app_not_found(app)
    return json_response({"role": principal.role, "app": principal.app})


@endpoint
async def server_action(request: Request) -> Response:
    principal = await authorize(request, request.path_params["action"], None)
    return json_response({"role": principal.role, "apps": [app for app in APPS if principal.sees(app)]})


@endpoint
async def twice(request: Request) -> Response:
    first = await authorize(request, "read", "shop")
    second = await authorize(request, "read", "shop")
    return json_response({"same": first is second})


async def invoke_something(request: Request) -> Response:
    return json_response({"invoked": request.path_params["app"]})


def endpoints(keys: ApiKeys | None) -> Starlette:
    app = Starlette(
        routes=[
            Route("/-/api/v1/apps/{app}/invoke", guarded(invoke_something, "invoke"), methods=["POST"]),
            Route("/-/api/v1/apps/{app}/do/{action}", app_action, methods=["POST"]),
            Route("/-/api/v1/do/{action}", server_action, methods=["POST"]),
            Route("/-/api/v1/twice", twice, methods=["GET"]),
        ]
    )
    app.state.keys = keys
    return app


@dataclass
class Server:
    client: httpx.AsyncClient
    keys: ApiKeys
    #: One key per role of app "shop", and one admin key; "blog" has a viewer.
    key: dict[str, str]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with await open_store(f"sqlite:///{tmp_path}/s.db") as store:
        keys = ApiKeys(store)
        made = {"admin": (await keys.create("ops", "admin"))[0]}
        for role in ("deployer", "publisher", "invoker", "viewer"):
            made[role] = (await keys.create(f"shop {role}", role, app="shop"))[0]
        made["blog viewer"] = (await keys.create("blog viewer", "viewer", app="blog"))[0]
        async with (
            GatewayServer(endpoints(keys), port=0) as served,
            httpx.AsyncClient(base_url=served.url) as client,
        ):
            yield Server(client, keys, made)


def bearer(text: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {text}"}


# What each role may do within its own app, as the design says (docs/security.md).
ALLOWED_IN_OWN_APP = {
    "admin": {"read", "invoke", "publish", "deploy", "configure", "secrets", "admin"},
    "deployer": {"read", "invoke", "deploy", "configure", "secrets"},
    "publisher": {"publish"},
    "invoker": {"invoke"},
    "viewer": {"read"},
}


async def test_every_role_and_action_on_its_own_app_another_app_and_the_server(server: Server) -> None:
    answers: dict[tuple[str, str, str], int] = {}
    expected: dict[tuple[str, str, str], int] = {}
    for role, allowed in ALLOWED_IN_OWN_APP.items():
        for action in ACTIONS:
            status = 200 if action in allowed else 403
            for where, url in (("own", f"/-/api/v1/apps/shop/do/{action}"), ("server", f"/-/api/v1/do/{action}")):
                response = await server.client.post(url, headers=bearer(server.key[role]))
                answers[role, action, where] = response.status_code
                expected[role, action, where] = status
            # A key of app shop sees nothing of app blog; an admin key acts on every app.
            response = await server.client.post(f"/-/api/v1/apps/blog/do/{action}", headers=bearer(server.key[role]))
            answers[role, action, "other"] = response.status_code
            expected[role, action, "other"] = status if role == "admin" else 404
    assert answers == expected


async def test_a_key_of_another_app_gets_the_same_404_as_an_app_that_does_not_exist(server: Server) -> None:
    other = await server.client.post("/-/api/v1/apps/shop/do/read", headers=bearer(server.key["blog viewer"]))
    ghost = await server.client.post("/-/api/v1/apps/shop-archive/do/read", headers=bearer(server.key["admin"]))
    assert other.status_code == ghost.status_code == 404
    assert other.json() == {"error": {"code": "AppNotFound", "message": "no app named 'shop' on this server"}}
    assert ghost.json() == {"error": {"code": "AppNotFound", "message": "no app named 'shop-archive' on this server"}}
    # Its own role would not have allowed deploying either, yet it learns nothing but "no such app".
    deploy = await server.client.post("/-/api/v1/apps/shop/do/deploy", headers=bearer(server.key["blog viewer"]))
    assert deploy.json() == other.json()


async def test_a_server_wide_request_lists_only_the_apps_a_key_sees(server: Server) -> None:
    viewer = await server.client.post("/-/api/v1/do/read", headers=bearer(server.key["blog viewer"]))
    admin = await server.client.post("/-/api/v1/do/read", headers=bearer(server.key["admin"]))
    assert viewer.json() == {"role": "viewer", "apps": ["blog"]}
    assert admin.json() == {"role": "admin", "apps": ["shop", "blog"]}


async def test_a_forbidden_action_names_the_roles_that_may(server: Server) -> None:
    response = await server.client.post("/-/api/v1/apps/shop/do/deploy", headers=bearer(server.key["viewer"]))
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "Forbidden"
    assert error["message"] == "a viewer key may not deploy on app 'shop'; roles that may: admin, deployer"
    assert (error["action"], error["role"]) == ("deploy", "viewer")


async def test_the_key_may_come_in_x_api_key(server: Server) -> None:
    response = await server.client.post("/-/api/v1/apps/shop/do/read", headers={"x-api-key": server.key["viewer"]})
    assert response.status_code == 200
    assert response.json() == {"role": "viewer", "app": "shop"}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "this endpoint needs an API key: send `Authorization: Bearer KEY` or `x-api-key: KEY`"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "this endpoint needs an API key"),
        ({"Authorization": "Bearer hunter2"}, "that is not an API key of this server"),
        ({"Authorization": "Bearer tfk_00000000_" + "a" * 32}, "unknown API key tfk_00000000..."),
    ],
)
async def test_no_key_or_a_bad_one_is_401_with_a_bearer_challenge(
    server: Server, headers: dict[str, str], message: str
) -> None:
    response = await server.client.post("/-/api/v1/apps/shop/do/read", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "Unauthorized"
    assert response.json()["error"]["message"].startswith(message)


async def test_a_key_with_a_forged_secret_is_unknown(server: Server) -> None:
    text = server.key["admin"]
    forged = text[:-1] + ("A" if text[-1] != "A" else "B")
    response = await server.client.post("/-/api/v1/do/admin", headers=bearer(forged))
    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("unknown API key")


async def test_a_revoked_key_is_refused_from_the_next_request_on(server: Server) -> None:
    text = server.key["deployer"]
    for _ in range(3):
        assert (await server.client.post("/-/api/v1/apps/shop/do/deploy", headers=bearer(text))).status_code == 200
    info = await server.keys.revoke(text)
    refused = await server.client.post("/-/api/v1/apps/shop/do/deploy", headers=bearer(text))
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == (
        f"API key {info.prefix} (shop deployer) was revoked; ask an admin for a new one"
    )


async def test_a_request_is_identified_once_however_often_it_is_authorized(server: Server) -> None:
    response = await server.client.get("/-/api/v1/twice", headers=bearer(server.key["viewer"]))
    assert response.json() == {"same": True}


async def test_without_keys_as_under_dev_everything_is_allowed() -> None:
    async with (
        GatewayServer(endpoints(None), port=0) as served,
        httpx.AsyncClient(base_url=served.url) as client,
    ):
        for action in ACTIONS:
            assert (await client.post(f"/-/api/v1/apps/shop/do/{action}")).status_code == 200
            assert (await client.post(f"/-/api/v1/do/{action}")).status_code == 200


async def test_a_server_that_does_not_say_where_its_keys_are_refuses_rather_than_opens() -> None:
    app = endpoints(None)
    del app.state.keys
    async with (
        GatewayServer(app, port=0) as served,
        httpx.AsyncClient(base_url=served.url) as client,
    ):
        response = await client.post("/-/api/v1/apps/shop/do/read")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "InternalError"


def test_the_open_principal_sees_and_may_everything() -> None:
    principal = Principal.open()
    assert principal.is_open
    assert principal.app is None
    assert all(principal.may(action, "any-app") and principal.may(action, None) for action in ACTIONS)


async def test_a_guarded_endpoint_runs_only_for_keys_that_may(server: Server) -> None:
    async def post(app: str, role: str | None) -> int:
        headers = {} if role is None else bearer(server.key[role])
        return (await server.client.post(f"/-/api/v1/apps/{app}/invoke", headers=headers)).status_code

    assert [await post("shop", role) for role in ("admin", "deployer", "invoker")] == [200, 200, 200]
    assert [await post("shop", role) for role in ("publisher", "viewer", None)] == [403, 403, 401]
    assert await post("shop", "blog viewer") == 404


def test_every_per_app_control_endpoint_has_an_action() -> None:
    declared = {
        (method, route.path)
        for route in control_routes()
        if isinstance(route, Route)
        for method in (route.methods or set()) - {"HEAD"}
    }
    assert declared == set(APP_ENDPOINT_ACTIONS)
    assert set(APP_ENDPOINT_ACTIONS.values()) <= set(ACTIONS)
    assert APP_ENDPOINT_ACTIONS["POST", "/functions/{name}/invoke"] == "invoke"
    assert APP_ENDPOINT_ACTIONS["POST", "/queues/{name:path}/messages"] == "publish"
