"""GET /-/metrics on a real platform (worker processes, a SQLite or PostgreSQL store, a loopback socket)."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.backends import platform_store
from tests.cluster.test_nodes_in_process import eventually
from tests.server.conftest import Served, serve_app
from triggerfish import App
from triggerfish.observe.metrics import DURATION_BUCKETS, outcome_of, platform_state
from triggerfish.runtime.records import InvocationRecord
from triggerfish.testing import TestPlatform

WATCHED_APP = """
import triggerfish

app = triggerfish.App("watched")


@app.http("GET", "/ok")
def ok(event, context):
    return {"ok": True}


@app.http("GET", "/boom")
def boom(event, context):
    raise ValueError("boom")


@app.on_event({"source": ["tests"]}, retries=0)
def fails(event, context):
    raise RuntimeError("no")
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by name and sorted labels (the official parser: the text format holds)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


async def scrape(client: httpx.AsyncClient) -> Samples:
    answer = await client.get("/-/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(answer.text)


@pytest.fixture(params=["sqlite", "postgresql"])
async def watched(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Served]:
    async with platform_store(request.param) as store_url:
        async for served in serve_app(tmp_path, WATCHED_APP, store_url=store_url):
            yield served


async def test_invocations_durations_and_cold_starts_are_counted_by_trigger_and_outcome(watched: Served) -> None:
    async with httpx.AsyncClient(base_url=watched.url) as client:
        for _ in range(3):
            assert (await client.get("/ok")).status_code == 200
        assert (await client.get("/boom")).status_code == 500
        await watched.platform.current.invoker.records.settled()
        samples = await scrape(client)
    app = {"app": "watched"}
    ok = {**app, "function": "ok", "trigger": "http"}
    assert value(samples, "triggerfish_function_invocations_total", **ok, outcome="success") == 3
    assert value(samples, "triggerfish_function_invocations_total", **app, function="boom", trigger="http",
                 outcome="error") == 1  # fmt: skip
    assert value(samples, "triggerfish_function_duration_seconds_count", **ok) == 3
    assert value(samples, "triggerfish_function_duration_seconds_bucket", **ok, le="+Inf") == 3
    assert value(samples, "triggerfish_function_duration_seconds_sum", **ok) > 0
    # The first request of each function started its worker.
    assert value(samples, "triggerfish_function_cold_starts_total", **app, function="ok") == 1
    assert value(samples, "triggerfish_function_init_duration_seconds_count", **app, function="ok") == 1
    assert value(samples, "triggerfish_function_billed_gb_seconds_total", **app, function="ok") > 0
    # Workers of this node: one warm worker per function that ran, none busy now.
    assert value(samples, "triggerfish_function_workers", **app, function="ok", state="idle") == 1
    assert value(samples, "triggerfish_function_concurrent_executions", **app, function="ok") == 0
    assert value(samples, "triggerfish_function_memory_limit_bytes", **app, function="ok") == 128 * 1024 * 1024
    # The store's commits: SQLite's group commit, PostgreSQL's write transactions (the same names).
    commits = value(samples, "triggerfish_store_commits_total")
    assert commits > 0
    assert value(samples, "triggerfish_store_committed_operations_total") >= commits
    assert value(samples, "triggerfish_store_commit_seconds_total") > 0
    assert value(samples, "triggerfish_store_largest_batch_operations") >= 1
    # One warm worker: a Python process's resident memory, from a few MB up.
    assert 1024 * 1024 < value(samples, "triggerfish_function_resident_memory_bytes", **app, function="ok") < 2**31


async def test_http_requests_are_counted_by_route_and_status_with_their_latency(watched: Served) -> None:
    async with httpx.AsyncClient(base_url=watched.url) as client:
        for _ in range(2):
            assert (await client.get("/ok")).status_code == 200
        assert (await client.get("/boom")).status_code == 500
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.post("/ok")).status_code == 405
        samples = await scrape(client)
    app = {"app": "watched"}
    assert value(samples, "triggerfish_http_requests_total", **app, route="GET /ok", status="200") == 2
    assert value(samples, "triggerfish_http_requests_total", **app, route="GET /boom", status="500") == 1
    assert value(samples, "triggerfish_http_requests_total", **app, route="", status="404") == 1
    assert value(samples, "triggerfish_http_requests_total", **app, route="", status="405") == 1
    assert value(samples, "triggerfish_http_request_duration_seconds_count", **app, route="GET /ok") == 2
    assert value(samples, "triggerfish_http_request_duration_seconds_sum", **app, route="GET /ok") > 0


async def test_events_rules_and_dead_letters_are_read_from_the_store(watched: Served) -> None:
    async with httpx.AsyncClient(base_url=watched.url) as client:
        events = [
            {"specversion": "1.0", "id": f"e{i}", "source": s, "type": "t"}
            for i, s in enumerate(["tests", "tests", "elsewhere"])
        ]
        batch = {"content-type": "application/cloudevents-batch+json"}
        answer = await client.post("/-/events", json=events, headers=batch)
        assert answer.status_code < 300, answer.text

        async def dead_lettered() -> bool:
            samples = await scrape(client)
            return value(samples, "triggerfish_dead_letter_messages", app="watched", queue="dlq.fails") == 2

        await eventually(dead_lettered, 20)
        samples = await scrape(client)
    app = {"app": "watched"}
    assert value(samples, "triggerfish_bus_events_published_total", **app, bus="default") == 3
    assert value(samples, "triggerfish_bus_consumer_lag_events", **app, bus="default") == 0
    matched = [v for (name, _), v in samples.items() if name == "triggerfish_bus_events_matched_total"]
    assert matched == [2]
    assert value(samples, "triggerfish_queue_messages", **app, queue="dlq.fails", state="visible") == 2
    assert value(samples, "triggerfish_queue_oldest_message_age_seconds", **app, queue="dlq.fails") >= 0
    assert value(samples, "triggerfish_function_invocations_total", **app, function="fails", trigger="event",
                 outcome="error") == 2  # fmt: skip


async def test_failed_deliveries_to_targets_are_counted_retried_then_dead_lettered(watched: Served) -> None:
    # A webhook on a port nothing listens on: one retry, then the dead letters.
    retry = {"max_attempts": 2, "backoff": {"base": 0.05, "multiplier": 1, "ceiling": 0.05, "jitter": 0}}
    rule = {
        "pattern": {"source": ["hooks"]},
        "targets": [{"id": "gone", "kind": "webhook", "name": "http://127.0.0.1:9/hook", "retry": retry}],
    }
    async with httpx.AsyncClient(base_url=watched.url) as client:
        assert (await client.put("/-/api/v1/buses/default/rules/to-nowhere", json=rule)).status_code == 201
        event = {"specversion": "1.0", "id": "h1", "source": "hooks", "type": "t"}
        published = await client.post("/-/events", json=event, headers={"content-type": "application/cloudevents+json"})
        assert published.status_code == 202

        async def dead_lettered() -> bool:
            samples = await scrape(client)
            return (
                value(samples, "triggerfish_dead_letter_messages", app="watched", queue="deliver.default.dead-letter")
                == 1
            )

        await eventually(dead_lettered, 20)
        samples = await scrape(client)
    failures = {"app": "watched", "kind": "bus", "name": "default"}
    assert value(samples, "triggerfish_delivery_failures_total", **failures, outcome="retried") == 1
    assert value(samples, "triggerfish_delivery_failures_total", **failures, outcome="dead_lettered") == 1


async def test_schedule_fires_and_misses_are_counted() -> None:
    app = App("ticking")

    @app.schedule("rate(1 minute)", name="tick")
    def tick(event: object, context: object) -> None:
        return None

    async with TestPlatform(app) as platform:
        await platform.advance(180)
        # Ten minutes later at once: under the default missed="latest" the latest fires, the nine before are missed.
        await platform.platform.scheduler.run_due(platform.now + datetime.timedelta(minutes=10))
        families = {family.name: family for family in await platform_state(platform.platform)}
    fires = families["triggerfish_schedule_fires"].samples
    assert [(s.labels, s.value) for s in fires] == [({"app": "ticking", "schedule": "tick"}, 4)]
    misses = families["triggerfish_schedule_misses"].samples
    assert [(s.labels, s.value) for s in misses] == [({"app": "ticking", "schedule": "tick"}, 1)]


async def test_topic_publishes_and_consumer_lag_are_read_from_the_store() -> None:
    app = App("paging")

    @app.on_topic("alerts")
    def paged(event: object, context: object) -> None:
        return None

    async with TestPlatform(app) as platform:
        for n in range(3):
            await platform.publish_topic("alerts", f"alert {n}")
        families = {family.name: family for family in await platform_state(platform.platform)}
        published = families["triggerfish_topic_messages_published"].samples
        assert [(s.labels, s.value) for s in published] == [({"app": "paging", "topic": "alerts"}, 3)]
        # Nothing consumed yet: three messages behind.
        lag = families["triggerfish_topic_consumer_lag_messages"].samples
        assert [(s.labels, s.value) for s in lag] == [({"app": "paging", "topic": "alerts"}, 3)]
        await platform.drain()
        families = {family.name: family for family in await platform_state(platform.platform)}
    lag = families["triggerfish_topic_consumer_lag_messages"].samples
    assert [(s.labels, s.value) for s in lag] == [({"app": "paging", "topic": "alerts"}, 0)]


def _record(status: str, error_type: str | None = None) -> InvocationRecord:
    return InvocationRecord(
        request_id="r",
        function="f",
        version="1",
        trigger="http",
        attempt=1,
        status=status,
        started_at=0.0,
        ended_at=0.0,
        duration_ms=1.0,
        billed_duration_ms=1,
        memory_mb=128,
        gb_seconds=0.0,
        error=None if error_type is None else {"errorType": error_type},
    )


@pytest.mark.parametrize(
    ("status", "error_type", "outcome"),
    [
        ("succeeded", None, "success"),
        ("failed", "ValueError", "error"),
        ("failed", "Runtime.ExitError", "crash"),
        ("timed_out", "Runtime.Timeout", "timeout"),
        ("throttled", "TooManyRequestsException", "throttled"),
        ("out_of_memory", "Runtime.OutOfMemory", "out_of_memory"),
        ("expired", "EventAgeExceeded", "expired"),
    ],
)
def test_outcome_labels(status: str, error_type: str | None, outcome: str) -> None:
    assert outcome_of(_record(status, error_type)) == outcome


def test_duration_buckets_run_from_a_millisecond_to_lambdas_longest_timeout() -> None:
    assert DURATION_BUCKETS[0] == 0.001
    assert DURATION_BUCKETS[-1] == 900.0
    assert list(DURATION_BUCKETS) == sorted(DURATION_BUCKETS)
