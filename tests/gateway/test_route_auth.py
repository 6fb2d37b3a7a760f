"""Route auth: declaring it, the signature checks against tables of requests, and the gateway refusing for real.

Signatures here are computed with hmac directly, as GitHub's, Stripe's and a
generic sender's documentation describe them, not with the code under test.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import inspect
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

import triggerfish
from triggerfish.app import App
from triggerfish.bus.webhook import sign
from triggerfish.errors import DeclarationError
from triggerfish.gateway import Gateway, GatewayServer, RouteTable
from triggerfish.gateway import route_auth as route_auth_module
from triggerfish.gateway.asgi import Refusal
from triggerfish.gateway.route_auth import check_route_auth, route_authorizer, verify_hmac
from triggerfish.http_auth import HmacAuth, hmac_auth
from triggerfish.loader import spec_from_dict, spec_to_dict
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.server.auth import invoke_check
from triggerfish.server.keys import ApiKeys
from triggerfish.store import open_store

SECRET = "It's a Secret to Everybody"
NOW = 1_700_000_000.0
BODY = b'{"action":"opened","number":1}'

GITHUB = hmac_auth(secret_env="GITHUB_WEBHOOK_SECRET", header="X-Hub-Signature-256", scheme="github")
STRIPE = hmac_auth(secret_env="STRIPE_WEBHOOK_SECRET", scheme="stripe")
GENERIC = hmac_auth(secret_env="HOOK_SECRET")


def hexmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def github_headers(body: bytes = BODY, secret: str = SECRET) -> dict[str, str]:
    return {
        "X-Hub-Signature-256": "sha256=" + hexmac(secret, body),
        "X-GitHub-Delivery": "72d3162e",
        "Content-Type": "application/json",
    }


def stripe_headers(body: bytes = BODY, secret: str = SECRET, t: float = NOW) -> dict[str, str]:
    stamp = str(int(t))
    return {"Stripe-Signature": f"t={stamp},v1={hexmac(secret, stamp.encode() + b'.' + body)}"}


def generic_headers(body: bytes = BODY, secret: str = SECRET, t: float = NOW) -> dict[str, str]:
    stamp = str(int(t))
    return {"X-Timestamp": stamp, "X-Signature": "sha256=" + hexmac(secret, stamp.encode() + b"." + body)}


SIGNERS: dict[str, tuple[HmacAuth, Callable[..., dict[str, str]]]] = {
    "github": (GITHUB, github_headers),
    "stripe": (STRIPE, stripe_headers),
    "generic": (GENERIC, generic_headers),
}


def check(auth: HmacAuth, headers: dict[str, str], body: bytes = BODY, now: float = NOW) -> str | None:
    return verify_hmac(auth, headers, body, secret=SECRET, now=now)


# --- declaring -------------------------------------------------------------------------------


def test_each_scheme_has_its_senders_header_names() -> None:
    assert (GITHUB.header, GITHUB.timestamp_header) == ("X-Hub-Signature-256", None)
    assert (STRIPE.header, STRIPE.timestamp_header, STRIPE.tolerance) == ("Stripe-Signature", None, 300.0)
    assert (GENERIC.scheme, GENERIC.header, GENERIC.timestamp_header) == ("generic", "X-Signature", "X-Timestamp")
    assert triggerfish.hmac_auth is hmac_auth


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"secret_env": "S", "scheme": "gitlab"}, "the schemes are github, stripe, generic"),
        ({"secret_env": "my secret"}, "name the function's env variable"),
        ({"secret_env": "S", "header": "X Signature"}, "must be an HTTP header name"),
        ({"secret_env": "S", "scheme": "github", "timestamp_header": "X-T"}, "carries its time in"),
        ({"secret_env": "S", "tolerance": 0}, "from 1 to 86400 seconds"),
        ({"secret_env": "S", "tolerance": float("nan")}, "must be a number of seconds"),
    ],
)
def test_bad_hmac_auth_arguments_are_refused_by_name(arguments: dict[str, Any], expected: str) -> None:
    with pytest.raises(DeclarationError, match=expected):
        hmac_auth(**arguments)


@pytest.mark.parametrize("auth", ["iam", "", 42, lambda request: True, {"kind": "hmac"}])
def test_a_route_takes_only_auth_the_platform_can_check(auth: Any) -> None:
    app = App("shop")
    with pytest.raises(DeclarationError, match=r"function 'hook': auth must be None \(a public route\), 'api_key'"):
        app.http("POST", "/hook", auth=auth)(hook)


def hook(event: Any, context: Any) -> Any:
    return {"statusCode": 200, "body": event["body"]}


def test_a_routes_auth_crosses_from_the_zygote_as_data_and_comes_back_equal() -> None:
    app = App("shop")
    app.http("POST", "/github", auth=GITHUB, env={"GITHUB_WEBHOOK_SECRET": SECRET})(hook)
    spec = app.functions["hook"]
    data = orjson.loads(orjson.dumps(spec_to_dict(spec)))
    assert data["triggers"][0]["auth"] == {
        "kind": "hmac",
        "scheme": "github",
        "secret_env": "GITHUB_WEBHOOK_SECRET",
        "header": "X-Hub-Signature-256",
        "timestamp_header": None,
        "tolerance": 300.0,
    }
    assert spec_from_dict(data).triggers == spec.triggers


# --- signatures: good ones pass ----------------------------------------------------------------


@pytest.mark.parametrize("scheme", SIGNERS)
def test_a_good_signature_passes(scheme: str) -> None:
    auth, sign = SIGNERS[scheme]
    assert check(auth, sign()) is None


def test_header_names_are_matched_whatever_their_case() -> None:
    headers = {name.lower(): value for name, value in stripe_headers().items()}
    assert check(STRIPE, headers) is None


def test_a_stripe_header_with_several_v1_passes_when_one_matches_as_while_a_secret_is_rotated() -> None:
    stamp = str(int(NOW))
    good = hexmac(SECRET, stamp.encode() + b"." + BODY)
    old = hexmac("the old secret", stamp.encode() + b"." + BODY)
    header = f"t={stamp},v1={old},v1={good},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
    assert check(STRIPE, {"Stripe-Signature": header}) is None


def test_a_timestamp_within_the_tolerance_either_way_passes() -> None:
    assert check(STRIPE, stripe_headers(t=NOW - 299)) is None
    assert check(GENERIC, generic_headers(t=NOW + 299)) is None


# --- signatures: each way of getting it wrong is refused with its reason ----------------------


NO_MATCH = "signature does not match the body"


@pytest.mark.parametrize("scheme", SIGNERS)
def test_a_tampered_body_is_refused(scheme: str) -> None:
    auth, sign = SIGNERS[scheme]
    reason = check(auth, sign(), body=BODY.replace(b"1", b"2"))
    assert reason is not None
    assert NO_MATCH in reason
    assert auth.header in reason


@pytest.mark.parametrize("scheme", SIGNERS)
def test_a_signature_under_another_secret_is_refused(scheme: str) -> None:
    auth, sign = SIGNERS[scheme]
    reason = check(auth, sign(secret="a guess"))
    assert reason is not None
    assert NO_MATCH in reason


@pytest.mark.parametrize("scheme", ["stripe", "generic"])
@pytest.mark.parametrize("offset", [-301, 3600, -86400 * 365])
def test_a_timestamp_past_the_tolerance_is_refused_as_a_replay(scheme: str, offset: float) -> None:
    auth, sign = SIGNERS[scheme]
    reason = check(auth, sign(t=NOW + offset))
    assert reason == (
        f"the signed timestamp is {abs(offset):.0f} s away from the server's clock, past the tolerance of 300 s:"
        " a replayed request, or clocks out of step"
    )


def test_a_declared_tolerance_is_the_one_applied() -> None:
    strict = hmac_auth(secret_env="S", scheme="stripe", tolerance=10)
    assert check(strict, stripe_headers(t=NOW - 11)) is not None
    assert check(strict, stripe_headers(t=NOW - 9)) is None


@pytest.mark.parametrize(
    ("scheme", "drop", "expected"),
    [
        ("github", "X-Hub-Signature-256", "the X-Hub-Signature-256 header is missing"),
        ("stripe", "Stripe-Signature", "the Stripe-Signature header is missing"),
        ("generic", "X-Signature", "the X-Signature header is missing"),
        ("generic", "X-Timestamp", "the X-Timestamp header is missing"),
    ],
)
def test_a_missing_header_is_refused_by_name(scheme: str, drop: str, expected: str) -> None:
    auth, sign = SIGNERS[scheme]
    headers = sign()
    del headers[drop]
    reason = check(auth, headers)
    assert reason is not None
    assert reason.startswith(expected)


@pytest.mark.parametrize(
    ("scheme", "headers", "expected"),
    [
        ("github", {"X-Hub-Signature-256": "sha1=0a1b"}, "must read sha256=<64 hex digits>"),
        ("github", {"X-Hub-Signature-256": "sha256=" + "z" * 64}, "must read sha256=<64 hex digits>"),
        ("github", {"X-Hub-Signature-256": "sha256="}, "must read sha256=<64 hex digits>"),
        ("stripe", {"Stripe-Signature": "v1=abc"}, "must carry one t=<epoch seconds>"),
        ("stripe", {"Stripe-Signature": f"t={int(NOW)},t={int(NOW)},v1=ab"}, "must carry one t=<epoch seconds>"),
        ("stripe", {"Stripe-Signature": f"t={int(NOW)}"}, "carries no v1 signature"),
        ("stripe", {"Stripe-Signature": "t=yesterday,v1=ab"}, "must be whole seconds since the epoch"),
        ("stripe", {"Stripe-Signature": "garbage"}, "must read t=<epoch seconds>,v1=<hex>"),
        ("generic", {"X-Timestamp": "1.5e9", "X-Signature": "sha256=" + "0" * 64}, "must be whole seconds"),
        ("generic", {"X-Timestamp": str(int(NOW)), "X-Signature": "0" * 64}, "must read sha256=<64 hex digits>"),
    ],
)
def test_a_malformed_header_is_refused_saying_what_it_should_read(
    scheme: str, headers: dict[str, str], expected: str
) -> None:
    auth, _ = SIGNERS[scheme]
    reason = check(auth, headers)
    assert reason is not None
    assert expected in reason


def test_a_signature_header_given_twice_is_refused() -> None:
    value = github_headers()["X-Hub-Signature-256"]
    headers = [(b"x-hub-signature-256", value.encode()), (b"x-hub-signature-256", value.encode())]
    reason = verify_hmac(GITHUB, headers, BODY, secret=SECRET, now=NOW)
    assert reason == "the X-Hub-Signature-256 header is given 2 times; send it once"


def test_signatures_are_compared_in_constant_time_only() -> None:
    """A review item made a test: no signature or digest is compared with ==, only with hmac.compare_digest."""
    source = inspect.getsource(route_auth_module)
    tree = ast.parse(source)
    compared = {
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops)
    }
    assert not {text for text in compared if "expected" in text or "wanted" in text or "candidate" in text}
    assert "hmac.compare_digest(" in source
    keys_source = inspect.getsource(ApiKeys.lookup)
    assert "hmac.compare_digest(" in keys_source


# --- check_route_auth: every kind of auth -----------------------------------------------------


def lookup_for(verdicts: dict[str, bool]) -> Callable[[str], Any]:
    async def lookup(text: str) -> bool | None:
        return verdicts.get(text)

    return lookup


async def test_a_route_without_auth_is_public() -> None:
    assert await check_route_auth(None, {}, b"", env={}, now=NOW, keys_lookup=None) is None


async def test_api_key_routes_answer_by_what_the_key_may_do() -> None:
    lookup = lookup_for({"tfk_good": True, "tfk_viewer": False})

    async def run(headers: dict[str, str]) -> Refusal | None:
        return await check_route_auth("api_key", headers, b"", env={}, now=NOW, keys_lookup=lookup)

    assert await run({"Authorization": "Bearer tfk_good"}) is None
    assert await run({"x-api-key": "tfk_good"}) is None
    assert await run({}) == Refusal(
        401, "this route needs an API key: send `Authorization: Bearer KEY` or `x-api-key: KEY`", "Bearer"
    )
    assert await run({"Authorization": "Bearer tfk_gone"}) == Refusal(
        401, "the API key is unknown or revoked", 'Bearer error="invalid_token"'
    )
    forbidden = await run({"Authorization": "Bearer tfk_viewer"})
    assert forbidden is not None
    assert forbidden.status == 403


async def test_api_key_routes_are_open_where_there_are_no_keys_but_signatures_are_still_checked() -> None:
    assert await check_route_auth("api_key", {}, b"", env={}, now=NOW, keys_lookup=None) is None
    env = {"HOOK_SECRET": SECRET}
    refused = await check_route_auth(GENERIC, {}, BODY, env=env, now=NOW, keys_lookup=None)
    assert refused is not None
    assert refused.status == 401
    assert await check_route_auth(GENERIC, generic_headers(), BODY, env=env, now=NOW, keys_lookup=None) is None


async def test_a_route_whose_secret_is_not_set_or_whose_auth_is_unknown_fails_closed() -> None:
    unset = await check_route_auth(GENERIC, generic_headers(), BODY, env={}, now=NOW, keys_lookup=None)
    assert unset == Refusal(500, "this route cannot check signatures: its secret is not configured")
    unknown = await check_route_auth({"callable": "app:auth"}, {}, BODY, env={}, now=NOW, keys_lookup=None)
    assert unknown is not None
    assert unknown.status == 500


def test_a_version_whose_signature_route_has_no_secret_does_not_load() -> None:
    app = App("shop")
    app.http("POST", "/hook", auth=GENERIC)(hook)
    with pytest.raises(
        DeclarationError, match=re.escape("its env has no HOOK_SECRET; set it in env= or triggerfish.toml")
    ):
        route_authorizer(app.functions, keys_lookup=None)


# --- the gateway on a real socket --------------------------------------------------------------

WEBHOOKS = App("shop")
WEBHOOKS.http("POST", "/github", auth=GITHUB, env={"GITHUB_WEBHOOK_SECRET": SECRET}, name="github")(hook)
WEBHOOKS.http("POST", "/stripe", auth=STRIPE, env={"STRIPE_WEBHOOK_SECRET": SECRET}, name="stripe")(hook)
WEBHOOKS.http("POST", "/orders", auth="api_key", name="orders")(hook)
WEBHOOKS.http("POST", "/public", name="public")(hook)


@WEBHOOKS.http("GET", "/headers", auth="api_key")
def headers_seen(event: Any, context: Any) -> Any:
    return sorted(event["headers"])


@dataclass
class Served:
    client: httpx.AsyncClient
    keys: ApiKeys
    key: dict[str, str]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with await open_store(f"sqlite:///{tmp_path}/s.db") as store:
        keys = ApiKeys(store)
        made = {
            "invoker": (await keys.create("shop caller", "invoker", app="shop"))[0],
            "deployer": (await keys.create("shop ci", "deployer", app="shop"))[0],
            "viewer": (await keys.create("shop dashboard", "viewer", app="shop"))[0],
            "blog invoker": (await keys.create("blog caller", "invoker", app="blog"))[0],
            "admin": (await keys.create("ops", "admin"))[0],
        }
        invoker = Invoker(InProcessRunner(WEBHOOKS.functions), store)
        authorize = route_authorizer(WEBHOOKS.functions, keys_lookup=invoke_check(keys, "shop"))
        gateway = Gateway(RouteTable.from_specs(WEBHOOKS.functions), invoker.invoke, authorize=authorize)
        async with GatewayServer(gateway, port=0) as server, httpx.AsyncClient(base_url=server.url) as client:
            yield Served(client, keys, made)


async def test_signed_webhooks_reach_the_function_and_forged_ones_get_401_with_the_reason(served: Served) -> None:
    signed = await served.client.post("/github", content=BODY, headers=github_headers())
    assert signed.status_code == 200
    assert signed.text == BODY.decode()
    forged = await served.client.post("/github", content=BODY + b" ", headers=github_headers())
    assert forged.status_code == 401
    assert forged.json()["message"].startswith("the X-Hub-Signature-256 signature does not match the body")
    assert forged.json()["requestId"] == forged.headers["x-triggerfish-request-id"]
    # A fresh Stripe signature passes on the server's real clock; one from an hour ago does not.
    assert (await served.client.post("/stripe", content=BODY, headers=stripe_headers(t=time.time()))).status_code == 200
    stale = await served.client.post("/stripe", content=BODY, headers=stripe_headers(t=time.time() - 3600))
    assert stale.status_code == 401
    assert "past the tolerance of 300 s" in stale.json()["message"]


async def test_api_key_routes_take_keys_of_the_app_that_may_invoke(served: Served) -> None:
    async def post(key: str | None) -> httpx.Response:
        headers = {} if key is None else {"Authorization": f"Bearer {served.key[key]}"}
        return await served.client.post("/orders", content=b"{}", headers=headers)

    assert [(await post(role)).status_code for role in ("invoker", "deployer", "admin")] == [200, 200, 200]
    assert (await post("viewer")).status_code == 403
    assert (await post("blog invoker")).status_code == 403
    missing = await post(None)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    await served.keys.revoke(served.key["invoker"])
    assert (await post("invoker")).status_code == 401


async def test_a_route_without_auth_stays_public(served: Served) -> None:
    assert (await served.client.post("/public", content=b"hi")).status_code == 200


async def test_a_gateway_with_no_authorizer_refuses_routes_that_declare_auth(tmp_path: Path) -> None:
    async with await open_store(f"sqlite:///{tmp_path}/s.db") as store:
        invoker = Invoker(InProcessRunner(WEBHOOKS.functions), store)
        gateway = Gateway(RouteTable.from_specs(WEBHOOKS.functions), invoker.invoke)
        async with GatewayServer(gateway, port=0) as server, httpx.AsyncClient(base_url=server.url) as client:
            refused = await client.post("/github", content=BODY, headers=github_headers())
            public = await client.post("/public", content=b"hi")
    assert refused.status_code == 500
    assert public.status_code == 200


def test_the_generic_scheme_takes_the_webhooks_triggerfish_itself_sends() -> None:
    auth = hmac_auth(secret_env="S", header="triggerfish-signature", timestamp_header="triggerfish-timestamp")
    headers = sign(SECRET, BODY, timestamp=int(NOW))
    assert check(auth, headers) is None
    assert check(auth, headers, body=BODY + b"!") is not None


async def test_the_function_never_sees_the_key_its_caller_sent(served: Served) -> None:
    for sent in ({"Authorization": f"Bearer {served.key['admin']}"}, {"x-api-key": served.key["admin"]}):
        response = await served.client.get("/headers", headers={**sent, "X-Custom": "kept"})
        assert response.status_code == 200
        assert "x-custom" in response.json()
        assert not {"authorization", "x-api-key"} & set(response.json())
