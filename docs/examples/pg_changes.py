"""Changes to a PostgreSQL table of your own run a function, as DynamoDB Streams records, in commit order."""

import asyncio
import json
import os
import tempfile
from pathlib import Path

import triggerfish

app = triggerfish.App("pgdocs")


@app.on_change("env:ORDERS_DB", table="shop_docs.orders", batch_size=100, batch_window=0.2)
def ship(event, context):
    for record in event["Records"]:
        order = record["dynamodb"].get("NewImage", {})
        if record["eventName"] == "MODIFY" and order["status"]["S"] == "PAID":
            context.send("shipments", json.dumps({"order": record["dynamodb"]["Keys"]["id"]["N"]}))


async def main() -> None:
    import psycopg

    from triggerfish.server.platform import Platform

    # The database's URL comes from the environment: never written in code.
    os.environ.setdefault("ORDERS_DB", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        db = await psycopg.AsyncConnection.connect(os.environ["ORDERS_DB"], autocommit=True)
    except psycopg.OperationalError:
        if os.environ.get("CI") == "true":
            raise
        print("skipped: no PostgreSQL at ORDERS_DB")
        return
    await db.execute("CREATE SCHEMA IF NOT EXISTS shop_docs")
    await db.execute("CREATE TABLE IF NOT EXISTS shop_docs.orders (id int PRIMARY KEY, status text NOT NULL)")
    try:
        with tempfile.TemporaryDirectory() as data:
            platform = Platform(f"{__file__}:app", data_dir=Path(data))
            await platform.start()  # checks wal_level, the role, the table; makes the replication slot
            try:
                await db.execute("INSERT INTO shop_docs.orders VALUES (1, 'NEW'), (2, 'NEW')")
                await db.execute("UPDATE shop_docs.orders SET status = 'PAID' WHERE id = 2")
                async with asyncio.timeout(20):
                    shipped = []
                    while not shipped:
                        shipped = await platform.store.queues.receive("shipments", wait=1)
                assert json.loads(shipped[0].body) == {"order": "2"}
                print(platform.pg_changes.status()["ship"]["slot"])  # tf_pgdocs_ship_..., lag in bytes beside it
            finally:
                await platform.stop()  # the slot stays: changes made while the platform is down wait in it
    finally:
        # Removing the trigger from the code drops its slot on the next deploy; this example ends here, so it
        # drops the slot itself, and its table.
        await db.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                         " WHERE slot_name LIKE 'tf_pgdocs_ship_%'")  # fmt: skip
        await db.execute("DROP SCHEMA shop_docs CASCADE")
        await db.close()


if __name__ == "__main__":
    asyncio.run(main())
