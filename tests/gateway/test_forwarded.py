"""The headers API Gateway adds, and the client's address believed only of the proxies the operator names."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.apps import web
from triggerfish.errors import InvalidInputError
from triggerfish.gateway import Gateway, GatewayServer, RouteTable
from triggerfish.gateway.forwarded import TrustedProxies
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.store import Store, open_store

ROUTES = RouteTable.from_specs(web.app.functions)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(f"sqlite:///{tmp_path}/gateway.db")
    yield store
    await store.close()


async def _echo(store: Store, headers: dict[str, str], trusted: TrustedProxies | None = None) -> dict[str, Any]:
    invoker = Invoker(InProcessRunner(web.app.functions), store)
    async with (
        GatewayServer(Gateway(ROUTES, invoker.invoke), port=0, trusted_proxies=trusted) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        response = await client.get("/echo/x", headers=headers)
        assert response.status_code == 200
        event: dict[str, Any] = response.json()
        event["port"] = server.port
        return event


async def test_api_gateways_headers_are_added(store: Store) -> None:
    event = await _echo(store, {})
    headers = event["headers"]
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-port"] == str(event["port"])
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", headers["x-amzn-trace-id"])


async def test_the_trace_header_names_the_callers_trace(store: Store) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    event = await _echo(store, {"traceparent": traceparent})
    assert event["headers"]["x-amzn-trace-id"] == "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736"


async def test_a_callers_own_xray_header_is_kept_and_none_is_added(store: Store) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    event = await _echo(
        store, {"X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793", "traceparent": traceparent}
    )
    assert event["headers"]["x-amzn-trace-id"] == "Root=1-5759e988-bd862e3fe1be46a994272793"
    assert event["headers"]["traceparent"] == traceparent


async def test_forwarded_headers_from_an_untrusted_caller_are_not_believed(store: Store) -> None:
    """By default not even loopback is a proxy: a local process cannot claim to be anyone."""
    claimed = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"}
    event = await _echo(store, claimed)
    assert event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"
    # As API Gateway: the claimed chain is kept, with the real caller appended; proto and port are the server's.
    assert event["headers"]["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert event["headers"]["x-forwarded-proto"] == "http"
    assert event["headers"]["x-forwarded-port"] == str(event["port"])


async def test_a_trusted_proxy_names_the_client(store: Store) -> None:
    trusted = TrustedProxies.parse(["127.0.0.0/8", "10.0.0.0/8"])
    claimed = {
        "X-Forwarded-For": "198.51.100.1, 203.0.113.9, 10.1.2.3",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Port": "443",
    }
    event = await _echo(store, claimed, trusted)
    # The nearest address no trusted proxy accounts for: the leftmost one is the client's own claim.
    assert event["requestContext"]["http"]["sourceIp"] == "203.0.113.9"
    assert event["headers"]["x-forwarded-for"] == "198.51.100.1, 203.0.113.9, 10.1.2.3"
    assert (event["headers"]["x-forwarded-proto"], event["headers"]["x-forwarded-port"]) == ("https", "443")


def test_a_bad_proxy_address_is_refused_naming_it() -> None:
    with pytest.raises(InvalidInputError, match=r"'10\.0\.0\.300' is not an IP address or network"):
        TrustedProxies.parse(["10.0.0.0/8", "10.0.0.300"])
