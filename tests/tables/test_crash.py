"""Kill -9 `triggerfish dev` during a burst of table writes, with the on_change consumer mid-batch: after a restart
every acknowledged write has exactly its change record, in order per item, and the consumer resumes from its
checkpoint (records it had handled but not checkpointed come again, with the same sequence numbers)."""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.crash_child import rows, start_dev, wait_logged, wait_served

APP = """
import json, time, triggerfish
app = triggerfish.App("shop")

@app.on_change("orders", batch_size=25, batch_window=0.05, parallelization=2, starting_position="TRIM_HORIZON")
def record(event, context):
    rows = [[r["dynamodb"]["Keys"]["id"]["S"], r["eventName"], r["dynamodb"]["SequenceNumber"]]
            for r in event["Records"]]
    time.sleep(0.02)  # a batch takes a moment, so the kill lands inside one
    with open({out!r}, "a") as f:
        f.writelines(json.dumps(row) + "\\n" for row in rows)
"""
TOML = """
[tables.orders]
partition_key = "id"
"""


def dynamodb(port: int) -> Any:
    return boto3.client(
        "dynamodb", endpoint_url=f"http://127.0.0.1:{port}/-/aws", region_name="local", aws_access_key_id="test",
        aws_secret_access_key="test", config=Config(retries={"max_attempts": 0}, connect_timeout=2, read_timeout=10),
    )  # fmt: skip


def write(client: Any, key: str, event: str) -> None:
    if event == "INSERT":
        client.put_item(TableName="orders", Item={"id": {"S": key}, "v": {"N": "1"}})
    else:
        client.update_item(
            TableName="orders", Key={"id": {"S": key}}, UpdateExpression="SET v = :two",
            ExpressionAttributeValues={":two": {"N": "2"}},
        )  # fmt: skip


def ready(port: int) -> bool:
    try:
        dynamodb(port).describe_table(TableName="orders")
    except Exception:
        return False
    return True


@pytest.mark.timeout(180)
async def test_kill_9_during_a_burst_of_writes_keeps_exactly_the_acknowledged_changes(tmp_path: Path) -> None:
    app_dir, out, log = tmp_path / "app", tmp_path / "out.jsonl", tmp_path / "platform.log"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(APP.format(out=str(out)))
    (app_dir / "triggerfish.toml").write_text(TOML)
    first = start_dev(app_dir / "app.py", tmp_path / "data", log, "--quiet")
    acknowledged: list[tuple[str, str]] = []
    stop = threading.Event()

    def burst() -> None:
        client = dynamodb(port)
        for n in range(400):
            key = f"o-{n:04d}"
            for event in ("INSERT", "MODIFY"):
                if stop.is_set():
                    return
                try:
                    write(client, key, event)
                except Exception:
                    return  # the platform died under this write: it was not acknowledged
                acknowledged.append((key, event))

    try:
        port = await wait_served(log, 0, 60)
        await wait_logged(lambda: ready(port), 60, "the platform to serve", log)
        writer = threading.Thread(target=burst)
        writer.start()
        await wait_logged(lambda: len(rows(out)) >= 60 and len(acknowledged) >= 200, 60, "the first changes", log)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        writer.join(30)
        stop.set()
        handled_before = len(rows(out))
        assert len(acknowledged) < 800, "the kill came after every write; nothing was tested"
        since = log.stat().st_size
        second = start_dev(app_dir / "app.py", tmp_path / "data", log, "--quiet")
        try:
            port = await wait_served(log, since, 60)
            await wait_logged(lambda: ready(port), 60, "the restarted platform", log)
            items = dynamodb(port).scan(TableName="orders")["Items"]
            present = {item["id"]["S"] for item in items}
            wanted = set(acknowledged)
            await wait_logged(
                lambda: wanted <= {(key, event) for key, event, _ in rows(out)}, 60, "every acknowledged change", log
            )
            await asyncio.sleep(0)  # nothing more to wait for: the checks below read what was handled
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(30)
    finally:
        stop.set()
        if first.poll() is None:
            first.kill()
            first.wait()
    handled = rows(out)
    assert handled_before > 0
    distinct = {(key, event, sequence) for key, event, sequence in handled}
    by_key: dict[str, list[tuple[int, str]]] = {}
    for key, event, sequence in distinct:
        by_key.setdefault(key, []).append((int(sequence), event))
    for key, changes in by_key.items():
        events = [event for _, event in sorted(changes)]
        # Exactly one record per write that committed: an INSERT, then at most one MODIFY, in that order.
        assert events in (["INSERT"], ["INSERT", "MODIFY"]), f"{key} has changes {events}"
    # A change record exists exactly for the items that exist: the write and its record commit together.
    assert set(by_key) == present
    # The consumer handled records again after the restart only from its checkpoint on, in order per item.
    for key in by_key:
        seen = [event for k, event, _ in handled if k == key]
        assert list(dict.fromkeys(seen)) == sorted(set(seen), key=["INSERT", "MODIFY"].index)
