"""A real platform (worker processes, SQLite): a stalled `on_change` handler holds up only its own partition."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from tests.server.conftest import serve_app
from triggerfish.streams.records import partition_of
from triggerfish.tables.schema import KeyAttribute, TableSchema
from triggerfish.tables.table import Tables

APP = """
import json, os, time, triggerfish
app = triggerfish.App("shop")

@app.on_change("orders", parallelization=2, timeout=60)
def record(event, context):
    for r in event["Records"]:
        key = r["dynamodb"]["Keys"]["id"]["S"]
        if key.startswith("slow"):
            deadline = time.time() + 50
            while not os.path.exists({release!r}) and time.time() < deadline:
                time.sleep(0.05)
        with open({out!r}, "a") as f:
            f.write(json.dumps(key) + "\\n")
"""


def keys_in_two_partitions() -> tuple[str, str]:
    schema = TableSchema("orders", KeyAttribute("id"))
    slow = next(f"slow-{n}" for n in range(100) if partition_of(schema.item_key({"id": {"S": f"slow-{n}"}}), 2) == 0)
    fast = next(f"fast-{n}" for n in range(100) if partition_of(schema.item_key({"id": {"S": f"fast-{n}"}}), 2) == 1)
    return slow, fast


async def test_a_stalled_item_does_not_hold_up_items_of_other_partitions(tmp_path: Path) -> None:
    out, release = tmp_path / "out.jsonl", tmp_path / "release"
    slow, fast = keys_in_two_partitions()
    async for served in serve_app(tmp_path, APP.format(out=str(out), release=str(release))):
        tables = Tables(served.platform.store)
        await tables.create(TableSchema("orders", KeyAttribute("id")))
        await tables.put("orders", {"id": {"S": slow}})
        await tables.put("orders", {"id": {"S": fast}})

        def handled() -> list[str]:
            return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []

        deadline = time.monotonic() + 30
        while fast not in handled():
            assert time.monotonic() < deadline, "the other partition's change never ran while one item stalled"
            await asyncio.sleep(0.05)
        assert slow not in handled()  # still stalled: the fast item did not wait for it
        release.touch()
        while slow not in handled():
            assert time.monotonic() < deadline + 30, "the stalled item never finished once released"
            await asyncio.sleep(0.05)
