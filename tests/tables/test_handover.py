"""A write hands its change to `@app.on_change` functions in its own transaction once the mover has caught up,
and leaves it to the mover otherwise: either way each change reaches the function once, in order (a SQLite file and
PostgreSQL, in a schema of its own)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import POSTGRES_URL, drop_schema, require_postgres
from triggerfish import App
from triggerfish.store import open_store
from triggerfish.tables.table import Tables, TransactItem
from triggerfish.testing import TestPlatform

app = App("handover")
seen: list[tuple[str, str, int]] = []


@app.on_change("orders", starting_position="TRIM_HORIZON", parallelization=2)
def trail(event: dict[str, Any], context: Any) -> None:
    for r in event["Records"]:
        version = r["dynamodb"]["NewImage"]["v"]["S"]
        seen.append((r["dynamodb"]["Keys"]["id"]["S"], version, int(r["dynamodb"]["SequenceNumber"])))


@pytest.fixture(params=["sqlite", "postgresql"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    require_postgres()
    schema = f"changes11_{uuid.uuid4().hex[:12]}"
    yield f"{POSTGRES_URL}?schema={schema}&pool_size=4"
    await drop_schema(schema)


async def test_writes_hand_changes_over_once_the_mover_caught_up_and_every_change_arrives_once_in_order(
    url: str,
) -> None:
    seen.clear()
    async with TestPlatform(app, store_url=url) as platform:
        await platform.create_table("orders", "id")
        here = Tables(platform.store)
        # Another process writing the same file (another node, a CLI): its writes know of no on_change function.
        other_store = await open_store(url)
        try:
            elsewhere = Tables(other_store)
            changes = platform.platform.changes
            [sub] = changes._subs

            async def put(tables: Tables, key: str, version: str) -> None:
                await tables.put("orders", {"id": {"S": key}, "v": {"S": version}})

            await put(elsewhere, "a", "1")
            await put(here, "a", "2")  # a1 is not copied yet: handing a2 over now would put it first
            assert await changes.move(sub) == 2
            await put(here, "a", "3")
            await put(here, "b", "1")
            assert await changes.move(sub) == 0  # both handed over by their own writes
            await put(elsewhere, "b", "2")
            await put(here, "b", "3")
            await put(here, "a", "4")
            assert await changes.move(sub) == 3
            await put(here, "b", "4")
            assert await changes.move(sub) == 0
            # A transaction of several items hands all of them over, each to the partition its key hashes to.
            items = [TransactItem("put", "orders", item={"id": {"S": key}, "v": {"S": "5"}}) for key in "abc"]
            await here.transact_write(items)
            assert await changes.move(sub) == 0
        finally:
            await other_store.close()
        await platform.drain()
    written = ["a1", "a2", "a3", "b1", "b2", "b3", "a4", "b4", "a5", "b5", "c5"]
    assert sorted((key + version, sequence) for key, version, sequence in seen) == sorted(
        (change, sequence) for sequence, change in enumerate(written, 1)
    )  # each change once, with its place in the table's stream as its sequence number
    for key in "abc":  # and each item's changes in the order they were written
        assert [version for k, version, _ in seen if k == key] == sorted(c[1] for c in written if c[0] == key)
