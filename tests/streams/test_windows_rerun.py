"""A window's state is checkpointed with its batch: a batch run again after a crash (its claim never committed)
does not fold its records into the state twice, on a real SQLite store."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

from triggerfish.bus.publisher import Publisher
from triggerfish.names import SOURCE_GROUP
from triggerfish.store import open_store
from triggerfish.streams.consumer import StreamConsumers, StreamSubscription
from triggerfish.streams.partition_batches import PartitionBatches
from triggerfish.streams.records import SourceRecord, encode_record

SUB = StreamSubscription("sums", "mqtt", "arn:aws:iot:local:000000000000:topicfilter/#", batch_size=10, window=60)


class Summing:
    """A window function that sums the readings into its state; every event it got is kept."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def invoke(self, function: str, event: Any = None, **options: Any) -> Any:
        self.events.append(event)
        total = event["state"].get("total", 0)
        total += sum(json.loads(base64.b64decode(r["mqtt"]["data"])) for r in event["Records"])
        return {"state": {"total": total}}

    async def invoke_async(self, function: str, event: Any = None, **options: Any) -> str:
        return "id"


async def test_a_batch_run_again_after_a_crash_is_not_counted_twice(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/s.db")
    try:
        now = time.time()
        start = now - now % 60
        stream = SUB.stream(0)
        for value in (1, 2, 3):
            await store.log.append(stream, encode_record(SourceRecord("t", start + 1, json.dumps(value).encode())))
        function = Summing()
        consumers = StreamConsumers(store, function, Publisher(store), app="home", node="n1", clock=lambda: start + 5)
        batches = PartitionBatches(consumers, SUB, 0)
        claim = await store.log.claim(stream, SOURCE_GROUP, limit=10)
        assert claim is not None
        await batches.run([claim], _instant)
        # The node dies here, before the commit: the next reader claims the same records again.
        await store.log.seek(stream, SOURCE_GROUP, 0)
        await store.log.append(stream, encode_record(SourceRecord("t", start + 2, b"4")))
        again = await store.log.claim(stream, SOURCE_GROUP, limit=10)
        assert again is not None
        assert len(again.records) == 4
        await batches.run([again], _instant)
        await store.log.commit(again)
        consumers.clock = lambda: start + 61  # the minute ends
        await batches.close_due()
    finally:
        await store.close()
    assert [len(e["Records"]) for e in function.events] == [3, 1, 0], "the rerun held only the new record"
    final = function.events[-1]
    assert final["isFinalInvokeForWindow"] is True
    assert final["state"] == {"total": 10}, "1 + 2 + 3 + 4, each once"


async def _instant(seconds: float) -> None:
    return None
