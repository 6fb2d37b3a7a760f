"""Invocation records: billing maths, storage with retention, and queries, on both stores."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from triggerfish.errors import InvalidInputError
from triggerfish.runtime.records import (
    InvocationRecord,
    InvocationRecords,
    billed_ms,
    gb_seconds,
    record_from_outcome,
    status_of,
)
from triggerfish.runtime.types import InvokeOutcome, InvokeRequest
from triggerfish.store import Store, open_store


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/s.db"
    store = await open_store(url)
    yield store
    await store.close()


@pytest.mark.parametrize(
    ("duration", "billed"), [(0.0, 1), (0.2, 1), (1.0, 1), (1.0001, 2), (99.5, 100), (3000.0, 3000)]
)
def test_billed_duration_rounds_up_to_the_millisecond(duration: float, billed: int) -> None:
    assert billed_ms(duration) == billed


def test_gb_seconds_at_the_memory_size() -> None:
    assert gb_seconds(1000, 1024) == 1.0
    assert gb_seconds(100, 128) == pytest.approx(0.0125)


def test_statuses_from_outcomes() -> None:
    timeout = InvokeOutcome("r", ok=False, error={"errorType": "Runtime.Timeout"})
    assert status_of(timeout) == "timed_out"
    assert status_of(InvokeOutcome("r", ok=False, error={"errorType": "KeyError"})) == "failed"
    assert status_of(InvokeOutcome("r", ok=False, error={"errorType": "Runtime.OutOfMemory"})) == "out_of_memory"
    assert status_of(InvokeOutcome("r", ok=True)) == "succeeded"


def make(function: str, request_id: str, started: float, *, ok: bool = True, attempt: int = 1) -> InvocationRecord:
    request = InvokeRequest(request_id=request_id, function=function, event={}, attempt=attempt, trigger="async")
    outcome = InvokeOutcome(
        request_id,
        ok=ok,
        duration_ms=12.3,
        started_at=started,
        ended_at=started + 0.0123,
        cold_start=True,
        error=None if ok else {"errorType": "E"},
        output="hi\n",
    )
    return record_from_outcome(request, outcome, memory_mb=512)


async def test_records_are_stored_and_found_by_request_id(store: Store) -> None:
    records = InvocationRecords(store, clock=Clock(1000.0))
    await records.add(make("a", "r1", 1000.0, ok=False))
    await records.add(make("a", "r1", 1001.0, attempt=2))
    latest = await records.get("r1")
    assert latest is not None
    assert (latest.attempt, latest.status) == (2, "succeeded")
    assert (latest.billed_duration_ms, latest.memory_mb, latest.output, latest.cold_start) == (13, 512, "hi\n", True)
    assert latest.gb_seconds == pytest.approx(13 / 1000 * 0.5)
    assert [r.status for r in await records.attempts("r1")] == ["failed", "succeeded"]
    assert await records.get("nope") is None


async def test_queries_by_function_status_and_time_range(store: Store) -> None:
    clock = Clock(1000.0)
    store.log.clock = store.kv.clock = clock
    records = InvocationRecords(store, clock=clock)
    for n in range(6):
        clock.now = 1000.0 + n * 10 + 0.02  # records are written as attempts end
        await records.add(make("a" if n % 2 else "b", f"r{n}", 1000.0 + n * 10, ok=n != 3))
    assert [r.request_id for r in await records.query(function="a")] == ["r1", "r3", "r5"]
    assert [r.request_id for r in await records.query(status="failed")] == ["r3"]
    assert [r.request_id for r in await records.query()] == [f"r{n}" for n in range(6)]
    assert [r.request_id for r in await records.query(since=1015.0, until=1045.0)] == ["r2", "r3", "r4"]
    assert [r.request_id for r in await records.query(function="b", since=1015.0, until=1045.0)] == ["r2", "r4"]
    assert [r.request_id for r in await records.query(limit=2)] == ["r0", "r1"]


async def test_records_expire_after_the_retention(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    store = await open_store("memory://")
    store.kv.clock = store.log.clock = clock
    records = InvocationRecords(store, retention=60.0, clock=clock)
    await records.add(make("a", "r1", 1000.0))
    clock.now = 1059.0
    assert await records.get("r1") is not None
    assert len(await records.query(function="a")) == 1
    clock.now = 1061.0
    assert await records.get("r1") is None
    assert await records.query(function="a") == []  # the log copy is trimmed to the retention too
    await store.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"status": "ok"}, "unknown invocation status 'ok'"),
        ({"limit": 0}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"function": ""}, "function name"),
    ],
)
async def test_bad_queries_are_refused(store: Store, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        await InvocationRecords(store, clock=Clock(0)).query(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("request_id", ["", "a/b", 5])
async def test_bad_request_ids_are_refused(store: Store, request_id: object) -> None:
    with pytest.raises(InvalidInputError, match="request id"):
        await InvocationRecords(store, clock=Clock(0)).get(request_id)  # type: ignore[arg-type]


@pytest.mark.parametrize("retention", [0, -1, True, "7d"])
def test_bad_retention_is_refused(retention: object) -> None:
    with pytest.raises(InvalidInputError, match="retention"):
        InvocationRecords(None, retention=retention, clock=Clock(0))  # type: ignore[arg-type]


async def test_records_given_to_add_soon_together_are_one_commit_and_readable_after_settled(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/s.db")
    try:
        seen: list[str] = []
        records = InvocationRecords(
            store, clock=Clock(1000.0), listeners=[lambda record: seen.append(record.request_id)]
        )
        commits = store.write_stats.batches  # type: ignore[attr-defined]
        for n in range(20):
            records.add_soon(
                make("a" if n % 2 else "b", f"r{n}", 1000.0 + n), ("r0", b'{"kept":1}') if n == 0 else None
            )
        await records.settled()
        # One transaction for all twenty (both copies, spans and the kept input): the writer woke once for them.
        assert store.write_stats.batches == commits + 1  # type: ignore[attr-defined]
        assert sorted(seen) == sorted(f"r{n}" for n in range(20))
        assert [r.request_id for r in await records.query(function="a")] == [f"r{n}" for n in range(1, 20, 2)]
        found = await records.get("r7")
        assert found is not None
        assert found.function == "a"
        assert await store.kv.get("invocations", "i/r0") is not None
    finally:
        await store.close()


async def test_a_record_the_store_refuses_loses_only_itself(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    store.log.max_record_bytes = store.kv.max_record_bytes = 4000
    records = InvocationRecords(store, clock=Clock(1000.0))
    too_big = make("a", "big", 1000.0)
    too_big = InvocationRecord(**{**too_big.to_dict(), "output": "x" * 5000})
    records.add_soon(make("a", "r1", 1000.0))
    records.add_soon(too_big)
    records.add_soon(make("a", "r2", 1001.0))
    with caplog.at_level(logging.ERROR, logger="triggerfish.runtime"):
        await records.settled()
    assert "invocation record big (attempt 1) could not be stored" in caplog.text
    assert [r.request_id for r in await records.query(function="a")] == ["r1", "r2"]
    assert await records.get("big") is None
