"""Testing a change handler with triggerfish.testing against a real PostgreSQL: drain() runs the capture."""

import asyncio
import os

import triggerfish
from triggerfish.testing import TestPlatform

app = triggerfish.App("pgdocstest")
shipped = []


@app.on_change("env:ORDERS_DB", table="shop_docs_test.orders", filter={"eventName": ["MODIFY"]})
def ship(event, context):
    shipped.extend(record["dynamodb"]["Keys"]["id"]["N"] for record in event["Records"])


async def main() -> None:
    import psycopg

    os.environ.setdefault("ORDERS_DB", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        db = await psycopg.AsyncConnection.connect(os.environ["ORDERS_DB"], autocommit=True)
    except psycopg.OperationalError:
        if os.environ.get("CI") == "true":
            raise
        print("skipped: no PostgreSQL at ORDERS_DB")
        return
    await db.execute("CREATE SCHEMA IF NOT EXISTS shop_docs_test")
    await db.execute("CREATE TABLE IF NOT EXISTS shop_docs_test.orders (id int PRIMARY KEY, status text)")
    try:
        # A fresh slot for the test (changes from now on), dropped when the platform stops.
        async with TestPlatform(app) as platform:
            await db.execute("INSERT INTO shop_docs_test.orders VALUES (7, 'NEW')")
            await db.execute("UPDATE shop_docs_test.orders SET status = 'PAID' WHERE id = 7")
            await platform.drain()
        assert shipped == ["7"], shipped  # the filter let only the MODIFY through
    finally:
        await db.execute("DROP SCHEMA shop_docs_test CASCADE")
        await db.close()


asyncio.run(main())
