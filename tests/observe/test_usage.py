"""Usage rolled up from invocation records: folding (pure), the rollup on SQLite and PostgreSQL (surviving trims,
restarts and two nodes rolling at once), and `GET /usage` with prices."""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.server.conftest import serve_app
from tests.services import POSTGRES_URL, drop_schema, require_postgres
from triggerfish.errors import InvalidInputError
from triggerfish.names import USAGE_NAMESPACE, record_stream
from triggerfish.observe.usage import LAMBDA_X86, Prices, Usage, UsageRollup, fold, group, hour_of, price
from triggerfish.runtime.records import InvocationRecord, InvocationRecords, billed_ms, gb_seconds
from triggerfish.store import Store, open_store

#: 2026-12-06 10:00:00 UTC.
TEN = datetime.datetime(2026, 12, 6, 10, tzinfo=datetime.UTC).timestamp()


def record(function: str, started: float, *, status: str = "succeeded", ms: float = 100.0, mb: int = 1024,
           n: int = 0, sent: int = 0, returned: int = 0) -> InvocationRecord:  # fmt: skip
    billed = billed_ms(ms) if status not in ("throttled", "expired") else 0
    return InvocationRecord(
        request_id=f"{function}-{started}-{n}",
        function=function,
        version="1",
        trigger="direct",
        attempt=1,
        status=status,
        started_at=started,
        ended_at=started + ms / 1000,
        duration_ms=ms if billed else 0.0,
        billed_duration_ms=billed,
        memory_mb=mb,
        gb_seconds=gb_seconds(billed, mb),
        input_bytes=sent,
        output_bytes=returned,
    )


def as_stored(records: list[InvocationRecord]) -> list[dict[str, object]]:
    return [orjson.loads(orjson.dumps(r)) for r in records]


# --- pure -------------------------------------------------------------------------------------------------------


def test_fold_counts_attempts_requests_errors_and_gb_seconds_per_function_and_hour() -> None:
    buckets = fold(
        as_stored(
            [
                record("ship", TEN + 5, ms=100.2),  # billed 101 ms at 1 GB
                record("ship", TEN + 3599, status="failed", ms=50),
                record("ship", TEN + 3600),  # the next hour
                record("ship", TEN + 10, status="throttled"),  # never ran: an invocation, no request
                record("quote", TEN + 1, mb=512, ms=1000),
            ]
        )
    )
    assert set(buckets) == {"2026-12-06T10/ship", "2026-12-06T11/ship", "2026-12-06T10/quote"}
    ship = buckets["2026-12-06T10/ship"]
    assert (ship.invocations, ship.requests, ship.errors, ship.billed_ms) == (3, 2, 1, 151)
    assert ship.gb_seconds == pytest.approx(0.151)
    assert buckets["2026-12-06T10/quote"].gb_seconds == pytest.approx(0.5)


def test_fold_adds_up_the_bytes_of_events_in_and_results_out() -> None:
    stored = as_stored(
        [
            record("ship", TEN + 1, sent=120, returned=30),
            record("ship", TEN + 2, sent=80, returned=0, status="failed"),  # an error returns no result
            record("ship", TEN + 3, n=1),  # no bytes either way
        ]
    )
    older = {"function": "ship", "started_at": TEN + 4, "status": "succeeded"}  # written before sizes were kept
    buckets = fold([*stored, older])
    ship = buckets["2026-12-06T10/ship"]
    assert (ship.invocations, ship.bytes_in, ship.bytes_out) == (4, 200, 30)
    # A bucket rolled before the bytes were counted reads as none.
    old = Usage.from_dict({"invocations": 2, "requests": 2})
    assert (old.bytes_in, old.bytes_out) == (0, 0)
    old.add(ship)
    assert old.to_dict()["bytes_in"] == 200


def test_group_by_function_day_and_hour() -> None:
    buckets = [
        ("2026-12-06T10/quote", Usage(invocations=1, requests=1)),
        ("2026-12-06T10/ship", Usage(invocations=2, requests=2)),
        ("2026-12-07T00/ship", Usage(invocations=4, requests=3)),
    ]
    assert [(r.key, r.usage.invocations) for r in group(buckets, "function")] == [("quote", 1), ("ship", 6)]
    assert [(r.key, r.usage.invocations) for r in group(buckets, "day")] == [("2026-12-06", 3), ("2026-12-07", 4)]
    assert [r.key for r in group(buckets, "hour")] == ["2026-12-06T10", "2026-12-07T00"]
    with pytest.raises(InvalidInputError, match="grouped by one of function, day, hour"):
        group(buckets, "week")  # type: ignore[arg-type]


def test_price_is_gb_seconds_and_requests_at_the_given_prices() -> None:
    rows = group([("2026-12-06T10/ship", Usage(invocations=3, requests=2_000_000, gb_seconds=400_000.0))], "function")
    priced, total = price(rows, LAMBDA_X86)
    # Lambda's own example arithmetic: 400,000 GB-s x $0.0000166667 + 2 M requests x $0.20.
    assert priced[0].cost == pytest.approx(400_000 * 0.0000166667 + 0.40)
    assert total.cost == priced[0].cost
    with pytest.raises(InvalidInputError, match="per_gb_second is a number from 0 up"):
        Prices(per_gb_second=-1)


def test_hours_are_utc() -> None:
    assert hour_of(TEN + 3599.9) == "2026-12-06T10"
    assert hour_of(TEN + 3600) == "2026-12-06T11"


# --- the rollup on real stores ---------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{POSTGRES_URL}?schema={schema}&pool_size=4"
    finally:
        await drop_schema(schema)


async def stored(store: Store, records: list[InvocationRecord]) -> None:
    await InvocationRecords(store, clock=lambda: TEN + 7200).add_many(records)


async def test_usage_outlives_its_records_and_a_restart_without_counting_twice(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        await stored(store, [record("ship", TEN + i, sent=100, returned=10) for i in range(5)])
        rollup = UsageRollup(store)
        assert await rollup.roll() == 5
        # The records go (as retention trims them), then more come: the rolled-up part stays, new ones add to it.
        assert await store.log.trim(record_stream("ship"), max_bytes=0) == 5
        assert await InvocationRecords(store, clock=time.time).query("ship") == []
        await stored(store, [record("ship", TEN + 60, status="failed")])
    finally:
        await store.close()
    store = await open_store(store_url)  # a restart: a new rollup over the same store
    try:
        (row,) = await UsageRollup(store).report(by="function")
        assert (row.key, row.usage.invocations, row.usage.requests, row.usage.errors) == ("ship", 6, 6, 1)
        assert row.usage.billed_ms == 600
        assert (row.usage.bytes_in, row.usage.bytes_out) == (500, 50)
        assert await UsageRollup(store).roll() == 0  # nothing left to fold
    finally:
        await store.close()


async def test_two_nodes_rolling_the_same_hour_at_once_lose_nothing(store_url: str) -> None:
    first, second = await open_store(store_url), await open_store(store_url)
    try:
        for batch in range(4):
            await stored(first, [record(f, TEN + batch, n=i) for i in range(50) for f in ("ship", "quote")])
        a, b = UsageRollup(first), UsageRollup(second)
        folded = await asyncio.gather(a.roll(), b.roll(), a.roll(), b.roll())
        assert sum(folded) == 400
        rows = await a.report(by="function")
        assert [(r.key, r.usage.invocations) for r in rows] == [("quote", 200), ("ship", 200)]
        buckets = await first.kv.scan(USAGE_NAMESPACE)
        assert [r.key for r in buckets] == ["2026-12-06T10/quote", "2026-12-06T10/ship"]
    finally:
        await first.close()
        await second.close()


async def test_a_report_covers_the_whole_hours_overlapping_since_and_until(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        await stored(store, [record("ship", TEN + h * 3600 + 30) for h in range(4)])  # 10:00, 11:00, 12:00, 13:00
        rollup = UsageRollup(store)
        hours = await rollup.report(since=TEN + 3600 + 1800, until=TEN + 3 * 3600, by="hour")
        assert [r.key for r in hours] == ["2026-12-06T11", "2026-12-06T12"]  # 13:00 starts at `until`: excluded
        with pytest.raises(InvalidInputError, match="before since"):
            await rollup.report(since=TEN, until=TEN - 1)
        with pytest.raises(InvalidInputError, match="since must be a time from year 1 to 9999"):
            await rollup.report(since=1e20)
    finally:
        await store.close()


# --- GET /usage ---------------------------------------------------------------------------------------------------


APP = """
import triggerfish

app = triggerfish.App("billed")


@app.function(memory_mb=512)
def work(event, context):
    return event


@app.function()
def fail(event, context):
    raise ValueError("no")
"""


async def test_the_control_api_reports_usage_with_and_without_prices(tmp_path: Path) -> None:
    async for served in serve_app(tmp_path, APP):
        async with httpx.AsyncClient(base_url=f"{served.url}/-/api/v1") as api:
            for n in range(3):
                assert (await api.post("/functions/work/invoke", json={"n": n})).status_code == 200
            assert (await api.post("/functions/fail/invoke", json={})).status_code == 200  # the error, reported
            await served.platform.current.invoker.records.settled()

            plain = (await api.get("/usage")).json()
            assert plain["app"] == "billed"
            assert plain["prices"] is None
            by_function = {row["key"]: row for row in plain["rows"]}
            assert by_function["work"]["invocations"] == 3
            assert by_function["fail"]["errors"] == 1
            assert "cost" not in by_function["work"]
            # Data in and out: each event's JSON as sent (`{"n":0}`, 7 bytes), the result (the event, echoed).
            assert (by_function["work"]["bytes_in"], by_function["work"]["bytes_out"]) == (21, 21)
            assert (by_function["fail"]["bytes_in"], by_function["fail"]["bytes_out"]) == (2, 0)  # `{}`, no result
            assert (plain["total"]["bytes_in"], plain["total"]["bytes_out"]) == (23, 21)
            assert plain["total"]["requests"] == 4

            priced = (
                await api.get(
                    "/usage", params={"by": "day", "gb_second_price": 0.0000166667, "million_requests_price": 0.2}
                )
            ).json()
            (day,) = priced["rows"]
            assert day["key"] == datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
            assert day["cost"] == pytest.approx(day["gb_seconds"] * 0.0000166667 + 4 / 1e6 * 0.2)
            assert priced["total"]["cost"] == day["cost"]

            refused = await api.get("/usage", params={"gb_second_price": -1})
            assert refused.status_code == 400
            assert "gb_second_price" in refused.text
            assert (await api.get("/usage", params={"by": "week"})).status_code == 400


async def test_the_in_process_runner_measures_data_in_and_out_too() -> None:
    import triggerfish
    from triggerfish.testing import TestPlatform

    app = triggerfish.App("sized")

    @app.function()
    def echo(event: object, context: object) -> object:
        return {"got": event}

    async with TestPlatform(app) as platform:
        assert await platform.invoke("echo", {"n": 12345}) == {"got": {"n": 12345}}
        (done,) = await platform.invocations("echo")
        assert (done.input_bytes, done.output_bytes) == (len(b'{"n":12345}'), len(b'{"got":{"n":12345}}'))
