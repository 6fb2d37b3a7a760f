"""GET /-/metrics on `triggerfish serve` nodes: behind a key, per app, and right on each node of a cluster."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.cluster.test_nodes_in_process import eventually
from tests.observe.test_metrics import parse, value
from tests.patience import scaled
from tests.server.test_host import GZIP, JSON, write_app
from tests.services import POSTGRES_URL, drop_schema, require_postgres
from triggerfish.deploy.bundle import pack
from triggerfish.gateway import GatewayServer
from triggerfish.server.host import Host
from triggerfish.server.host_http import HostASGI

#: httpx's own 5 s is less than a deploy or a scrape takes on a loaded machine.
TIMEOUT = scaled(30)


@dataclass
class Node:
    host: Host
    url: str


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[list[Node]]:
    """Two nodes over one PostgreSQL schema; `shop` and `blog` deployed on the first, loaded by both."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    store_url = f"{POSTGRES_URL}?schema={schema}&pool_size=4"
    try:
        async with AsyncExitStack() as stack:
            nodes = []
            for n in range(2):
                host = Host(data_dir=tmp_path / f"node{n}", store_url=store_url)
                await host.start()
                stack.push_async_callback(host.stop)
                server = await stack.enter_async_context(GatewayServer(HostASGI(host), port=0))
                nodes.append(Node(host, server.url))
            admin = bearer(nodes[0].host.first_admin_key)
            async with httpx.AsyncClient(base_url=nodes[0].url, headers={**admin, **GZIP}, timeout=TIMEOUT) as http:
                for app in ("shop", "blog"):
                    bundle = pack(write_app(tmp_path / app, app, 1))
                    base = f"/-/api/v1/apps/{app}"
                    assert (await http.put(f"{base}/bundles/{bundle.sha256}", content=bundle.data)).status_code == 201
                    deployed = await http.post(f"{base}/deploys", json={"bundle": bundle.sha256}, headers=JSON)
                    assert deployed.status_code == 201, deployed.text

            async def loaded() -> bool:
                return set(nodes[1].host.apps) == {"shop", "blog"}

            await eventually(loaded, 20)
            yield nodes
    finally:
        await drop_schema(schema)


def bearer(key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}


async def test_each_node_counts_what_it_ran_and_both_read_the_same_queues(cluster: list[Node]) -> None:
    first, second = cluster
    admin = first.host.first_admin_key
    assert admin is not None
    async with httpx.AsyncClient(headers=JSON, timeout=TIMEOUT) as http:
        for _ in range(3):
            assert (await http.get(f"{first.url}/shop/hello")).status_code == 200
        assert (await http.get(f"{second.url}/shop/hello")).status_code == 200
        assert (await http.post(f"{second.url}/shop/remember", json={"n": 1})).status_code == 200
        for node in cluster:
            await node.host.apps["shop"].current.invoker.records.settled()
        scraped = []
        for node in cluster:
            answer = await http.get(f"{node.url}/-/metrics", headers=bearer(admin))
            assert answer.status_code == 200, answer.text
            scraped.append(parse(answer.text))
    hello = {"app": "shop", "function": "hello", "trigger": "http", "outcome": "success"}
    assert value(scraped[0], "triggerfish_function_invocations_total", **hello) == 3
    assert value(scraped[1], "triggerfish_function_invocations_total", **hello) == 1
    # The queue is the cluster's: the same figure from either node.
    for samples in scraped:
        assert value(samples, "triggerfish_queue_messages", app="shop", queue="notes", state="visible") == 1


async def test_a_key_of_one_app_sees_its_series_only_and_roles_without_read_are_refused(cluster: list[Node]) -> None:
    node = cluster[0]
    host = node.host
    viewer, _ = await host.keys.create("shop's viewer", "viewer", "shop")
    publisher, _ = await host.keys.create("shop's publisher", "publisher", "shop")
    async with httpx.AsyncClient(base_url=node.url, headers=JSON, timeout=TIMEOUT) as http:
        assert (await http.get("/shop/hello")).status_code == 200
        assert (await http.get("/blog/hello")).status_code == 200
        for app in ("shop", "blog"):
            await host.apps[app].current.invoker.records.settled()
        everything = parse((await http.get("/-/metrics", headers=bearer(host.first_admin_key))).text)
        answer = await http.get("/-/metrics", headers=bearer(viewer))
        assert answer.status_code == 200
        own = parse(answer.text)
        refused = await http.get("/-/metrics", headers=bearer(publisher))
        anonymous = await http.get("/-/metrics")
    name = "triggerfish_function_invocations_total"
    assert {dict(labels)["app"] for (metric, labels) in everything if metric == name} == {"shop", "blog"}
    assert {dict(labels)["app"] for (metric, labels) in own if metric == name} == {"shop"}
    assert all(dict(labels).get("app") == "shop" for _, labels in own)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "Forbidden"
    assert anonymous.status_code == 401
