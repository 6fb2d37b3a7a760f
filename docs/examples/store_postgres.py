"""The PostgreSQL store: the same contract on many machines; each node opens the same URL."""

import asyncio
import os
import sys
import uuid

import psycopg
from psycopg import sql

from triggerfish.errors import StoreUnavailableError
from triggerfish.store import open_store

DATABASE = os.environ.get("TRIGGERFISH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
# A schema of this run's own, dropped after: a shared server may hold older runs' schemas.
SCHEMA = f"docs_example_{uuid.uuid4().hex[:8]}"
URL = f"{DATABASE}?schema={SCHEMA}&pool_size=4"


async def main() -> None:
    # Two nodes of one platform: two stores over one schema (migrated on open, under a lock).
    node_a = await open_store(URL)
    node_b = await open_store(URL)
    try:
        # A receive waiting on one node is woken by a send on the other (LISTEN/NOTIFY).
        waiting = asyncio.ensure_future(node_a.queues.receive("jobs", wait=10))
        await node_b.queues.send("jobs", b"resize image 7")
        [message] = await waiting
        assert message.body == b"resize image 7"
        assert await node_a.queues.ack("jobs", message.receipt)
    finally:
        await node_a.close()
        await node_b.close()
        async with await psycopg.AsyncConnection.connect(DATABASE, autocommit=True) as conn:
            await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))


try:
    asyncio.run(main())
except StoreUnavailableError as exc:  # no PostgreSQL here: say so (CI has one, and must run this)
    print(f"skipped: {exc}")
    sys.exit(1 if os.environ.get("CI") == "true" else 0)
