"""A cluster of `triggerfish serve` processes on one PostgreSQL database, and its faults, as users meet them.

Each test has a database of its own and real nodes (separate processes, each its own data directory): a
deploy on one serving on another, a revoked key, a node killed with SIGKILL during a burst, the database
cut under load, and a schedule on two nodes.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster.pg_cluster import Node, cut_database, eventually, fresh_database, restore_database, write_app
from tests.services import require_postgres
from triggerfish.store import open_store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

#: A lease margin of 2 s: a killed node's invocations run again on the other node 2 s past their timeout.
FAST_TAKEOVER = "lease_margin = 2\n"

GREETER = """
import triggerfish

app = triggerfish.App("greeter")


@app.http("GET", "/hello")
def hello(event, context):
    return {"version": VERSION}
"""

COUNTER = """
import triggerfish

app = triggerfish.App("counter")


@app.on_event({"source": ["burst"]}, timeout=2)
def seen(event, context):
    # One record per run: two runs of one event are two keys, so duplicates can be counted.
    key = f"{event['id']}/{context.aws_request_id}"
    context.call_platform("kv_put", {"namespace": "seen", "key": key, "value": "1"})
"""

TICKER = """
import triggerfish

app = triggerfish.App("ticker")


@app.schedule("rate(3 seconds)")
def tick(event, context):
    context.call_platform("kv_put", {"namespace": "ticks", "key": f"{event['time']}/{event['id']}", "value": "1"})
"""


@pytest.fixture
def database() -> Iterator[tuple[str, str]]:
    require_postgres()
    with fresh_database() as found:
        yield found


@pytest.fixture
def nodes(tmp_path: Path, database: tuple[str, str]) -> Iterator[list[Node]]:
    _, url = database
    first = Node(tmp_path / "a", url, config=FAST_TAKEOVER).start()
    # The second node finds the first one's admin key in the store: it makes none of its own.
    key = (tmp_path / "a" / "data" / "admin.key").read_text().strip()
    second = Node(tmp_path / "b", url, config=FAST_TAKEOVER).start(key)
    started = [first, second]
    try:
        assert not (tmp_path / "b" / "data" / "admin.key").exists()
        yield started
    finally:
        for node in started:
            node.stop()


def _served(node: Node, app: str, version: int) -> bool:
    try:
        answer = node.client.get(f"/{app}/hello")
    except httpx.TransportError:
        return False
    return answer.status_code == 200 and answer.json() == {"version": version}


def test_a_deploy_on_one_node_serves_on_the_other_within_two_seconds(nodes: list[Node], tmp_path: Path) -> None:
    a, b = nodes
    for version in (1, 2):
        deployed = a.deploy("greeter", write_app(tmp_path / f"v{version}", GREETER.replace("VERSION", str(version))))
        assert deployed.status_code == 201, deployed.text
        took = eventually(lambda version=version: _served(b, "greeter", version), 2.0, f"v{version} on node B")  # type: ignore[misc]
        print(f"version {version} served on the other node {took:.2f} s after the deploy answered")
    rolled = b.client.post("/-/api/v1/apps/greeter/rollback", json={})
    assert rolled.json()["version"] == 1
    eventually(lambda: _served(a, "greeter", 1), 2.0, "the rollback on node A")

    def both_report_version_1() -> bool:
        listed = a.client.get("/-/api/v1/nodes").json()["nodes"]
        return len(listed) == 2 and all(n["state"] == "up" and n["versions"] == {"greeter": [1]} for n in listed)

    eventually(both_report_version_1, 5.0, "both nodes' heartbeats naming version 1")


def test_a_key_revoked_on_one_node_is_refused_on_every_node_at_once(nodes: list[Node], tmp_path: Path) -> None:
    a, b = nodes
    assert a.deploy("greeter", write_app(tmp_path / "v1", GREETER.replace("VERSION", "1"))).status_code == 201
    made = a.client.post("/-/api/v1/keys", json={"name": "ci", "role": "viewer", "app": "greeter"}).json()
    viewer = {"authorization": f"Bearer {made['key']}"}
    eventually(lambda: _served(b, "greeter", 1), 2.0, "the app on node B")
    assert b.client.get("/-/api/v1/apps/greeter/versions", headers=viewer).status_code == 200
    assert a.client.delete(f"/-/api/v1/keys/{made['id']}").status_code == 200
    # At once: keys are read from the store on every request, on every node.
    assert b.client.get("/-/api/v1/apps/greeter/versions", headers=viewer).status_code == 401


def _seen(url: str) -> Counter[str]:
    """How many times each event id ran (read from the store the nodes share)."""

    async def read() -> Counter[str]:
        async with await open_store(url) as store:
            records = await store.kv.scan("app.counter/seen", limit=100_000)
        return Counter(record.key.split("/", 1)[0] for record in records)

    return asyncio.run(read())


def _events(count: int) -> list[dict[str, Any]]:
    return [
        {"specversion": "1.0", "id": uuid.uuid4().hex, "source": "burst", "type": "Tick", "data": {"n": n}}
        for n in range(count)
    ]


def test_kill_9_of_one_node_during_a_burst_loses_no_acknowledged_event(
    nodes: list[Node], tmp_path: Path, database: tuple[str, str]
) -> None:
    _, url = database
    a, b = nodes
    assert a.deploy("counter", write_app(tmp_path / "app", COUNTER)).status_code == 201
    eventually(lambda: b.client.get("/-/api/v1/apps/counter").status_code == 200, 5.0, "the app on node B")
    acknowledged: list[str] = []
    killed = threading.Event()

    def publish(node: Node, batches: int) -> None:
        for _ in range(batches):
            events = _events(10)
            try:
                answer = node.publish("counter", events)
            except httpx.TransportError:
                continue  # the node is gone: not acknowledged, so not owed
            if answer.status_code == 202:
                acknowledged.extend(e["id"] for e in events)

    to_a = threading.Thread(target=publish, args=(a, 40))
    to_b = threading.Thread(target=publish, args=(b, 40))
    to_a.start()
    to_b.start()
    eventually(lambda: len(acknowledged) >= 200, 30.0, "200 acknowledged events")
    a.kill()
    killed.set()
    to_a.join()
    to_b.join()
    assert len(acknowledged) >= 200

    def all_ran() -> bool:
        return set(acknowledged) <= set(_seen(url))

    took = eventually(all_ran, 60.0, "every acknowledged event's function ran")
    runs = _seen(url)
    duplicates = sum(count - 1 for event, count in runs.items() if event in set(acknowledged))
    print(
        f"{len(acknowledged)} events acknowledged, all ran ({took:.1f} s after the kill), {duplicates} ran twice"
        " (at least once: the killed node's work in flight ran again on the survivor)"
    )
    survivors = b.client.get("/-/api/v1/nodes").json()["nodes"]
    killed_node = [n for n in survivors if n["id"] != b.client.get("/-/api/v1/nodes").json()["this"]]
    assert killed_node, "the killed node is still listed (as gone after 10 s)"


def test_the_database_cut_under_load_answers_503_then_recovers_with_no_false_acknowledgement(
    nodes: list[Node], tmp_path: Path, database: tuple[str, str]
) -> None:
    name, url = database
    a, _ = nodes
    assert a.deploy("counter", write_app(tmp_path / "app", COUNTER)).status_code == 201
    acknowledged: list[str] = []
    statuses: Counter[int] = Counter()
    retry_after: list[str] = []
    stop = threading.Event()

    def publish() -> None:
        while not stop.is_set():
            events = _events(5)
            try:
                answer = a.publish("counter", events)
            except httpx.TransportError as exc:  # a dropped connection would be a failure of its own
                statuses[0] += 1
                print(f"transport error: {exc!r}")
                continue
            statuses[answer.status_code] += 1
            if answer.status_code == 202:
                acknowledged.extend(e["id"] for e in events)
            elif answer.status_code == 503:
                retry_after.append(answer.headers.get("retry-after", ""))
                assert answer.json()["error"]["code"] == "StoreUnavailable"
            time.sleep(0.01)

    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        eventually(lambda: len(acknowledged) >= 50, 30.0, "50 acknowledged events")
        cut_database(name)
        eventually(lambda: statuses[503] >= 3, 30.0, "503 answers while the database is down")
        time.sleep(2.0)
        restore_database(name)
        before = len(acknowledged)
        eventually(lambda: len(acknowledged) >= before + 50, 60.0, "acknowledged events after the database is back")
    finally:
        stop.set()
        publisher.join()
    assert set(statuses) <= {202, 503}, statuses  # no dropped connections, no 500s
    assert all(value.isdigit() for value in retry_after)
    eventually(lambda: set(acknowledged) <= set(_seen(url)), 60.0, "every acknowledged event's function ran")
    print(f"answers while the database was cut and restored: {dict(statuses)}")


def test_a_schedule_on_two_nodes_fires_each_occurrence_exactly_once(
    nodes: list[Node], tmp_path: Path, database: tuple[str, str]
) -> None:
    _, url = database
    a, b = nodes
    assert a.deploy("ticker", write_app(tmp_path / "app", TICKER)).status_code == 201
    eventually(lambda: b.client.get("/-/api/v1/apps/ticker").status_code == 200, 5.0, "the app on node B")
    time.sleep(60)

    async def ticks() -> list[str]:
        async with await open_store(url) as store:
            return [r.key for r in await store.kv.scan("app.ticker/ticks", limit=10_000)]

    fired = asyncio.run(ticks())
    occurrences = Counter(key.split("/", 1)[0] for key in fired)
    assert occurrences
    assert max(occurrences.values()) == 1, f"an occurrence fired twice: {occurrences.most_common(3)}"
    times = sorted(occurrences)
    # Every 3 s from the first to the last: none missed either.
    moments = [datetime.datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times]
    gaps = {(later - earlier).total_seconds() for earlier, later in itertools.pairwise(moments)}
    assert gaps == {3.0}, gaps
    assert len(times) >= 18


def test_a_gateway_node_and_a_worker_node_divide_the_work(tmp_path: Path, database: tuple[str, str]) -> None:
    _, url = database
    gateway = Node(tmp_path / "gw", url, role="gateway", config=FAST_TAKEOVER).start()
    worker = Node(tmp_path / "wk", url, role="worker", config=FAST_TAKEOVER)
    started = [gateway]
    try:
        assert gateway.deploy("counter", write_app(tmp_path / "app", COUNTER)).status_code == 201
        first = _events(20)
        assert gateway.publish("counter", first).status_code == 202
        time.sleep(1.5)
        # Acknowledged, and durable, but a gateway runs no asynchronous work: nothing ran yet.
        assert not set(_seen(url)) & {e["id"] for e in first}
        worker.server.start(timeout=60, ready="worker only (no port open)")  # no port: it says so and runs
        started.append(worker)
        eventually(lambda: {e["id"] for e in first} <= set(_seen(url)), 30.0, "the worker ran the queued events")
        nodes = gateway.client.get("/-/api/v1/nodes").json()["nodes"]
        roles = sorted((tuple(n["roles"]), n["address"] is None) for n in nodes)
        assert roles == [(("gateway",), False), (("worker",), True)]
    finally:
        for node in started:
            node.stop()
