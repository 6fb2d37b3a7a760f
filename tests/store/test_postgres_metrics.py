"""The PostgreSQL store's commit figures (`write_stats`), as `/-/metrics` reports them: the SQLite writer's names."""

from __future__ import annotations

import asyncio
import uuid

from tests.services import POSTGRES_URL, drop_schema, require_postgres
from triggerfish.observe.metrics import store_state
from triggerfish.store import open_store
from triggerfish.store.postgres import PostgresStore


async def test_postgres_store_reports_commits_batch_sizes_and_commit_seconds() -> None:
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        store = await open_store(f"{POSTGRES_URL}?schema={schema}&pool_size=3")
        try:
            assert isinstance(store, PostgresStore)
            before = store.write_stats
            commits, operations = before.batches, before.operations
            # One conditional put: a transaction of its own, one operation.
            await store.kv.put("ns", "solo", b"1", if_version=0)
            assert (store.write_stats.batches, store.write_stats.operations) == (commits + 1, operations + 1)
            # Unconditional puts at once merge (one transaction in flight, pool_size // 3): 20 operations in fewer
            # commits, the largest batch more than one.
            await asyncio.gather(*(store.kv.put("ns", f"k{i}", b"v") for i in range(20)))
            stats = store.write_stats
            assert stats.operations == operations + 21
            assert commits + 2 <= stats.batches < commits + 21
            assert stats.largest > 1
            assert stats.seconds > 0
            families = {family.name: family for family in store_state(store)}
            assert set(families) == {
                "triggerfish_store_commits",
                "triggerfish_store_committed_operations",
                "triggerfish_store_commit_seconds",
                "triggerfish_store_largest_batch_operations",
            }
            assert families["triggerfish_store_commits"].samples[0].value == stats.batches
            assert families["triggerfish_store_committed_operations"].samples[0].value == stats.operations
            assert families["triggerfish_store_commit_seconds"].samples[0].value == stats.seconds
            assert families["triggerfish_store_largest_batch_operations"].samples[0].value == stats.largest
        finally:
            await store.close()
    finally:
        await drop_schema(schema)
