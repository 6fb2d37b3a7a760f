"""A kept input rides in its record's log row (no row of its own); inputs that earlier versions kept in the record's
key-value copy, or in a row of their own (`i/<request id>`), still read, and so does one too large to share its
record's row. On a real SQLite file and a real PostgreSQL (CI)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from tests.backends import opened_store
from tests.sample_records import sample_record
from triggerfish.names import INVOCATIONS_NAMESPACE
from triggerfish.runtime.inputs import keep_input, read_input
from triggerfish.runtime.records import InvocationRecords, encode_record, record_key
from triggerfish.runtime.types import InvokeRequest
from triggerfish.store import Store
from triggerfish.store.atomic import Put

EVENT = {"order": "o-1", "items": [{"sku": "net", "quantity": 2}], "note": "ring twice"}
RECORD = sample_record(request_id="0193a1b2c3d4-kept")


def kept(event: object = EVENT) -> tuple[str, bytes]:
    found = keep_input(InvokeRequest(RECORD.request_id, RECORD.function, event))
    assert found is not None
    return found


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with opened_store(request.param, tmp_path) as opened:
        yield opened


def records_of(store: Store) -> InvocationRecords:
    return InvocationRecords(store, clock=lambda: RECORD.started_at)


async def keys(store: Store) -> list[str]:
    return [row.key for row in await store.kv.scan(INVOCATIONS_NAMESPACE, prefix="")]


async def logged(store: Store) -> list[tuple[str, bytes]]:
    """The records' log rows, by their first key."""
    return [(key, row.data) for key, row in await store.log.find("r/")]


async def test_an_input_kept_in_a_row_of_its_own_by_an_earlier_version_reads_back(store: Store) -> None:
    # As the version before wrote it: the record's key-value copy, and the input under `i/<request id>`.
    request_id, document = kept()
    await store.atomic(
        [
            Put(INVOCATIONS_NAMESPACE, record_key(request_id, 1), encode_record(RECORD), ttl=3600),
            Put(INVOCATIONS_NAMESPACE, f"i/{request_id}", document, ttl=3600),
        ]
    )
    records = records_of(store)
    assert await records.input(request_id) == read_input(document)
    assert (await records.input(request_id) or {})["event"] == EVENT
    assert await records.get(request_id) == RECORD


async def test_an_input_kept_in_its_records_key_value_copy_by_an_earlier_version_reads_back(store: Store) -> None:
    # As rec13's version wrote it: the input as the last field of the record's key-value copy.
    request_id, document = kept()
    copy = encode_record(RECORD)[:-1] + b',"kept_input":' + document + b"}"
    await store.atomic([Put(INVOCATIONS_NAMESPACE, record_key(request_id, 1), copy, ttl=3600)])
    records = records_of(store)
    assert await records.input(request_id) == read_input(document)
    assert await records.attempts(request_id) == [RECORD]


@pytest.mark.parametrize("path", ["add_soon", "add"])
async def test_an_input_is_kept_in_its_records_row_and_reads_back(store: Store, path: str) -> None:
    records = records_of(store)
    if path == "add_soon":  # the sync path's batches
        records.add_soon(RECORD, kept())
        await records.settled()
    else:  # a throttled or expired attempt's, or an async failure's
        await records.add(RECORD, kept())
    assert await keys(store) == []  # no key-value row: no copy, no `i/` row
    [(key, data)] = await logged(store)  # one log row, found by its request id
    assert key == record_key(RECORD.request_id, 1)
    assert orjson.loads(data)["kept_input"] == orjson.loads(kept()[1])
    shown = await records.input(RECORD.request_id)
    assert shown == read_input(kept()[1])
    assert shown is not None
    assert shown["event"] == EVENT
    assert shown["rerunnable"] is True
    # The record reads as it was given: the input is not a field of it.
    assert await records.attempts(RECORD.request_id) == [RECORD]
    assert [r.request_id for r in await records.query()] == [RECORD.request_id]


async def test_each_attempt_keeps_the_input_and_the_latest_is_shown(store: Store) -> None:
    records = records_of(store)
    second = replace(RECORD, attempt=2, started_at=RECORD.started_at + 1, ended_at=RECORD.ended_at + 1)
    await records.add(replace(RECORD, status="failed", error={"errorType": "E"}), kept({"try": 1}))
    await records.add(second, kept({"try": 2}))
    assert (await records.input(RECORD.request_id) or {})["event"] == {"try": 2}
    assert [r.attempt for r in await records.attempts(RECORD.request_id)] == [1, 2]


@pytest.mark.parametrize("path", ["add_soon", "add"])
async def test_an_input_too_large_to_share_its_records_row_keeps_a_row_of_its_own(store: Store, path: str) -> None:
    store.kv.max_record_bytes = store.log.max_record_bytes = 3000  # the record and this input fit alone, not together
    large = kept({"note": "x" * 2700})
    assert len(large[1]) < 3000 < len(large[1]) + len(encode_record(RECORD))
    records = records_of(store)
    if path == "add_soon":
        records.add_soon(RECORD, large)
        await records.settled()
    else:
        await records.add(RECORD, large)
    assert await keys(store) == [f"i/{RECORD.request_id}"]
    assert [key for key, _ in await logged(store)] == [record_key(RECORD.request_id, 1)]
    assert (await records.input(RECORD.request_id) or {})["event"] == orjson.loads(large[1])["event"]
    assert await records.get(RECORD.request_id) == RECORD


async def test_an_invocation_retried_across_the_upgrade_reads_whole(store: Store) -> None:
    # Its first attempt stored by the version before (the key-value copy, with its input), its second by this one.
    first = replace(RECORD, status="failed", error={"errorType": "E"})
    second = replace(RECORD, attempt=2, started_at=RECORD.started_at + 1, ended_at=RECORD.ended_at + 1)
    request_id, document = kept({"try": 1})
    copy = encode_record(first)[:-1] + b',"kept_input":' + document + b"}"
    await store.atomic([Put(INVOCATIONS_NAMESPACE, record_key(request_id, 1), copy, ttl=3600)])
    records = records_of(store)
    await records.add(second)
    assert await records.attempts(request_id) == [first, second]
    assert await records.get(request_id) == second
    assert (await records.input(request_id) or {})["event"] == {"try": 1}


def test_a_queued_event_s_input_is_its_bytes_as_queued_whether_or_not_the_request_carries_them_as_its_json() -> None:
    # The dispatcher hands a queued event over as an orjson fragment with its bytes as the request's JSON: the kept
    # document is the same either way, and the bytes are kept as they were queued (spacing and key order too).
    queued = b'{"zeta": 1,  "alpha": [1, 2.50]}'
    given = InvokeRequest(RECORD.request_id, RECORD.function, orjson.Fragment(queued), event_json=queued)
    copied = InvokeRequest(RECORD.request_id, RECORD.function, orjson.Fragment(queued))
    assert keep_input(given) == keep_input(copied)
    found = keep_input(given)
    assert found is not None
    assert found[0] == RECORD.request_id
    assert queued in found[1]
    assert read_input(found[1])["event"] == {"zeta": 1, "alpha": [1, 2.5]}
