"""The built-in stream on the real platform, on SQLite and on PostgreSQL: records put are read in order per key,
each reader checkpointed in the store, so a restarted platform resumes after the last committed batch."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.backends import platform_store
from tests.streams.running import lines, wait_for
from triggerfish.names import partitioned_stream
from triggerfish.server.platform import Platform

INGEST = """
import base64, json, triggerfish
app = triggerfish.App("home")

@app.on_stream("readings", partition_key="device", batch_size=7, parallelization=2)
def ingest(event, context):
    with open({out!r}, "a") as f:
        for record in event["Records"]:
            reading = json.loads(base64.b64decode(record["kinesis"]["data"]))
            f.write(json.dumps([reading["device"], reading["n"]]) + "\\n")
"""
# Deployed once the stream has records: LATEST must start after them.
LATEST = """
@app.on_stream("readings", partition_key="device", parallelization=2, starting_position="LATEST")
def latest(event, context):
    with open({late!r}, "a") as f:
        for record in event["Records"]:
            f.write(record["kinesis"]["partitionKey"] + "\\n")
"""


@pytest.fixture(params=["sqlite", "postgres"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str | None]:
    async with platform_store(request.param) as url:
        yield url


async def test_records_are_read_in_order_per_key_and_a_restart_resumes_from_the_checkpoint(
    tmp_path: Path, store_url: str | None
) -> None:
    out, late = tmp_path / "out.jsonl", tmp_path / "late.txt"
    (tmp_path / "app").mkdir()
    app = tmp_path / "app" / "app.py"

    def platform() -> Platform:
        return Platform(str(app), data_dir=tmp_path / "data", store_url=store_url)

    # "old" is put and read while `latest` does not exist yet, so its LATEST lies after it. (Put after the app with
    # `latest` started, whether it was before `latest`'s first read was a race the test could not see.)
    app.write_text(INGEST.format(out=str(out)))
    before = platform()
    await before.start()
    try:
        await before.sources.partitioned.put("readings", [({"device": "old", "n": -1}, None)])
        await wait_for(lambda: len(lines(out)) == 1, seconds=40)
    finally:
        await before.stop()
    app.write_text((INGEST + LATEST).format(out=str(out), late=str(late)))
    first = platform()
    await first.start()
    try:
        streams = first.sources.partitioned
        # LATEST is where `latest` stood when it first read: wait until both its partitions have started.
        for partition in range(2):
            while "fn.latest" not in await first.store.log.groups(partitioned_stream("readings", partition)):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await streams.put("readings", [({"device": f"d{n % 5}", "n": n}, None) for n in range(100)])
        await wait_for(lambda: len(lines(out)) == 101, seconds=40)
        try:
            await wait_for(lambda: _latest_devices(late) == {f"d{d}": 20 for d in range(5)}, seconds=40)
        except AssertionError as exc:
            # Say whether `latest` got fewer records than were put after it started (a LATEST placed late) or some
            # twice (a batch retried). Seen once in 32 runs at load 14-17 on PostgreSQL, and once more (2026-12-07)
            # with every record and "old" too: `latest` had read before "old" was put, now allowed for (above).
            got = Counter(late.read_text().split() if late.exists() else [])
            raise AssertionError(f"{exc}; `latest` wrote {got.total()} lines (20 a key wanted): {dict(got)}") from None
    finally:
        await first.stop()
    second = platform()
    await second.start()
    try:
        await second.sources.partitioned.put("readings", [({"device": "d0", "n": 100}, None)])
        await wait_for(lambda: len(lines(out)) == 102, seconds=40)
    finally:
        await second.stop()
    order: dict[str, list[int]] = {}
    for device, n in lines(out):
        order.setdefault(device, []).append(n)
    expected = {f"d{d}": [n for n in range(100) if n % 5 == d] for d in range(5)}
    expected["d0"].append(100)
    expected["old"] = [-1]
    assert order == expected, "each record once, in order per key, across the restart"
    assert "old" not in late.read_text().split(), "LATEST starts after what was there"


def _latest_devices(late: Path) -> dict[str, int]:
    """How many records `latest` wrote per device, past "old" (which it reads only when it started before it)."""
    got = Counter(late.read_text().split() if late.exists() else [])
    got.pop("old", None)
    return dict(got)
