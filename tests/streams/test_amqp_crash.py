"""Kill -9 the platform mid-stream on RabbitMQ: every message published with a confirm is handled, in order per key."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import pytest

from tests.crash_child import rows, start_dev, wait_logged
from tests.services import require_service

HOST, PORT = "127.0.0.1", 5672
URL = f"amqp://guest:guest@{HOST}:{PORT}/"

APP = """
import base64, json, time, triggerfish
app = triggerfish.App("shop")

@app.on_amqp({queue!r}, exchange={exchange!r}, batch_size=20, batch_window=0.05, parallelization=2)
def ingest(event, context):
    rows = [[r["amqp"]["routingKey"], base64.b64decode(r["amqp"]["data"]).decode()] for r in event["Records"]]
    time.sleep(0.02)  # a batch takes a moment, so the kill lands inside one
    with open({out!r}, "a") as f:
        f.writelines(json.dumps(row) + "\\n" for row in rows)
"""


@pytest.mark.timeout(180)
async def test_kill_9_mid_stream_loses_no_confirmed_message_and_keeps_order_per_routing_key(tmp_path: Path) -> None:
    require_service("RabbitMQ", HOST, PORT)
    aio_pika = pytest.importorskip("aio_pika", reason="AMQP tests need the amqp extra: pip install 'triggerfish[amqp]'")
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    exchange = f"{queue}-x"
    app_dir, out, log = tmp_path / "app", tmp_path / "out.jsonl", tmp_path / "platform.log"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(APP.format(queue=queue, exchange=exchange, out=str(out)))
    (app_dir / "triggerfish.toml").write_text(f'[amqp]\nurl = "{URL}"\n')
    sent = [(f"orders.store{n % 3}", str(n)) for n in range(600)]
    connection = await aio_pika.connect(URL)
    first = start_dev(app_dir / "app.py", tmp_path / "data", log)
    try:
        channel = await connection.channel(publisher_confirms=True)
        # The platform declares the queue and exchange when it starts; a message before that would be unroutable.
        deadline = time.monotonic() + 60
        while True:
            try:
                target = await channel.get_exchange(exchange)
                break
            except aio_pika.exceptions.ChannelClosed:
                assert time.monotonic() < deadline, "the platform did not declare its exchange"
                channel = await connection.channel(publisher_confirms=True)
                await asyncio.sleep(0.2)
        for key, text in sent:
            await target.publish(aio_pika.Message(text.encode(), delivery_mode=2), routing_key=key)  # confirmed
            if text == "150":
                await wait_logged(lambda: len(rows(out)) >= 100, 30, "the first batches", log)
                first.send_signal(signal.SIGKILL)
                first.wait(10)
        assert len(rows(out)) < len(sent), "the kill came after everything was handled; nothing was tested"
        second = start_dev(app_dir / "app.py", tmp_path / "data", log)
        try:
            every = {text for _, text in sent}
            await wait_logged(
                lambda: every <= {row[1] for row in rows(out)}, 60, "every message after the restart", log
            )
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        cleanup = await connection.channel()
        await cleanup.queue_delete(queue)
        await cleanup.exchange_delete(exchange)
        await connection.close()
    handled = rows(out)
    for store in range(3):
        key = f"orders.store{store}"
        firsts = list(dict.fromkeys(int(text) for k, text in handled if k == key))
        assert firsts == [int(t) for k, t in sent if k == key], f"{key} was handled out of order"
