"""Invocation records: billing maths, storage with retention, and queries, on both stores."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from triggerfish.errors import InvalidInputError
from triggerfish.observe.usage import fold
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


KEPT = b'{"size":7,"redacted":[],"truncated":false,"event":{"n":1}}'


async def test_records_given_to_add_soon_together_are_one_commit_and_readable_after_settled(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/s.db")
    try:
        seen: list[str] = []
        records = InvocationRecords(
            store, clock=Clock(1000.0), listeners=[lambda record: seen.append(record.request_id)]
        )
        commits = store.write_stats.batches  # type: ignore[attr-defined]
        for n in range(20):
            records.add_soon(make("a" if n % 2 else "b", f"r{n}", 1000.0 + n), ("r0", KEPT) if n == 0 else None)
        await records.settled()
        # One transaction for all twenty (the rows with their keys and the kept input): the writer woke once for them.
        assert store.write_stats.batches == commits + 1  # type: ignore[attr-defined]
        assert sorted(seen) == sorted(f"r{n}" for n in range(20))
        assert [r.request_id for r in await records.query(function="a")] == [f"r{n}" for n in range(1, 20, 2)]
        found = await records.get("r7")
        assert found is not None
        assert found.function == "a"
        assert await records.input("r0") == {**orjson.loads(KEPT), "rerunnable": True}
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


def _everything_set(request_id: str, started: float) -> InvocationRecord:
    """A record whose every field holds something other than its default."""
    return InvocationRecord(
        **{
            **make("a", request_id, started, ok=False).to_dict(),
            "version": "3",
            "init_duration_ms": 80.5,
            "output_truncated": True,
            "worker_pid": 4242,
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "span_id": "00f067aa0ba902b7",
            "parent_span_id": "00f067aa0ba902b8",
            "max_memory_used_mb": 61,
            "links": ["00-4bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b9-01"],
            "input_bytes": 17,
            "output_bytes": 23,
            "http_route": "GET /orders/{id}",
            "http_status": 500,
            "consumed": {"messaging.system": "triggerfish"},
        }
    )


def _json(record: InvocationRecord | None) -> bytes:
    """A record as the API shows it (links come back from JSON as a list, as they always did)."""
    assert record is not None
    return orjson.dumps({**record.to_dict(), "links": list(record.links)})


async def test_records_are_stored_without_their_defaults_and_read_back_whole(store: Store) -> None:
    records = InvocationRecords(store, clock=Clock(1000.0))
    plain, full = make("a", "r1", 1000.0), _everything_set("r2", 1001.0)
    await records.add(plain)
    await records.add_many([full])
    [plain_row, full_row] = await store.log.read("invocations.a")
    plain_stored = orjson.loads(plain_row.data)
    # Fields holding their defaults are left out (no error, no trace, no HTTP route, ...): fewer bytes per copy.
    assert not {"error", "http_route", "links"} & plain_stored.keys()
    assert len(plain_row.data) < len(orjson.dumps(plain)) * 0.8
    # Stored once: the log row is what a read by request id finds (by its key), and there is no key-value copy.
    assert await store.kv.get("invocations", "r/r1/00001") is None
    assert await store.log.find("r/r1/") == [("r/r1/00001", plain_row)]
    # What earlier versions' readers do with a stored record gives it back whole, as every reader here does.
    assert _json(InvocationRecord(**plain_stored)) == _json(plain)
    assert _json(InvocationRecord(**orjson.loads(full_row.data))) == _json(full)
    assert _json(await records.get("r1")) == _json(plain)
    assert _json(await records.get("r2")) == _json(full)
    assert [_json(r) for r in await records.query(function="a")] == [_json(plain), _json(full)]
    # Usage counts the stored rows as it did whole ones.
    assert fold([plain_stored, orjson.loads(full_row.data)]) == fold(
        [orjson.loads(orjson.dumps(plain)), orjson.loads(orjson.dumps(full))]
    )


async def test_records_stored_whole_by_earlier_versions_read_as_before(tmp_path: Path) -> None:
    # A store as earlier versions left it: each record's JSON whole (orjson's writing of the dataclass), in the
    # log and in the key-value part.
    path = f"sqlite:///{tmp_path}/s.db"
    store = await open_store(path)
    old = [make("a", "r1", 1000.0, ok=False), _everything_set("r1", 1001.0)]
    old = [old[0], InvocationRecord(**{**old[1].to_dict(), "attempt": 2})]
    await store.log.append_many("invocations.a", [orjson.dumps(record) for record in old])
    for record in old:
        await store.kv.put("invocations", f"r/r1/{record.attempt:05d}", orjson.dumps(record), ttl=3600)
    await store.close()
    store = await open_store(path)
    try:
        records = InvocationRecords(store, clock=Clock(1000.0))
        await records.add(make("a", "r2", 1002.0))  # and one written now, beside them
        assert [_json(r) for r in await records.attempts("r1")] == [_json(r) for r in old]
        found = await records.query(function="a")
        assert [(r.request_id, r.attempt) for r in found] == [("r1", 1), ("r1", 2), ("r2", 1)]
        assert [_json(r) for r in found[:2]] == [_json(r) for r in old]
    finally:
        await store.close()


def test_a_batch_writer_batches_what_arrives_while_it_writes_in_each_event_loop_it_serves() -> None:
    """Items submitted while a batch is written go out together in the next, each answered with its own result;
    the writer (which takes the loop from its flushing task) serves a second event loop after the first closed."""
    import asyncio

    from triggerfish.runtime.records import BatchWriter

    batches: list[list[int]] = []
    writing: list[asyncio.Event] = []

    async def write(items: list[int]) -> list[int]:
        batches.append(items)
        writing[-1].set()
        await asyncio.sleep(0.01)
        return [item * 10 for item in items]

    writer: BatchWriter[int, int] = BatchWriter(write)

    async def burst(first: int) -> list[int]:
        writing.append(asyncio.Event())
        alone = asyncio.ensure_future(writer.submit(first))
        await writing[-1].wait()  # its batch is being written
        rest = await asyncio.gather(*(writer.submit(item) for item in range(first + 1, first + 5)))
        return [await alone, *rest]

    assert asyncio.run(burst(0)) == [0, 10, 20, 30, 40]
    assert asyncio.run(burst(5)) == [50, 60, 70, 80, 90]
    assert batches == [[0], [1, 2, 3, 4], [5], [6, 7, 8, 9]]
