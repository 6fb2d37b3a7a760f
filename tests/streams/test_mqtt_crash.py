"""Kill -9 the platform mid-stream: no message the broker was told was received is lost, and order per topic holds."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import pytest

from tests.crash_child import rows, start_dev, wait_logged
from tests.patience import scaled
from tests.services import require_service

aiomqtt = pytest.importorskip("aiomqtt", reason="MQTT tests need the mqtt extra: pip install 'triggerfish[mqtt]'")

HOST, PORT = "127.0.0.1", 1883

APP = """
import base64, json, time, triggerfish
app = triggerfish.App("home")

@app.on_mqtt({topic!r}, batch_size=20, batch_window=0.05, parallelization=2)
def ingest(event, context):
    rows = [[r["mqtt"]["topic"], base64.b64decode(r["mqtt"]["data"]).decode()] for r in event["Records"]]
    time.sleep(0.02)  # a batch takes a moment, so the kill lands inside one
    with open({out!r}, "a") as f:
        f.writelines(json.dumps(row) + "\\n" for row in rows)
"""


@pytest.mark.timeout(180)
async def test_kill_9_mid_stream_loses_no_acknowledged_message_and_keeps_order_per_topic(tmp_path: Path) -> None:
    require_service("Mosquitto", HOST, PORT)
    base = f"crash-{uuid.uuid4().hex[:8]}"
    app_dir, out, log = tmp_path / "app", tmp_path / "out.jsonl", tmp_path / "platform.log"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(APP.format(topic=f"{base}/+", out=str(out)))
    client = f"c{uuid.uuid4().hex[:10]}"
    (app_dir / "triggerfish.toml").write_text(f'[mqtt]\nurl = "mqtt://{HOST}:{PORT}"\nclient_id = "{client}"\n')
    sent = [(f"{base}/device{n % 3}", str(n)) for n in range(600)]

    first = start_dev(app_dir / "app.py", tmp_path / "data", log)
    try:
        # A message sent before the platform subscribed has no session to wait in: warm-ups go out until one
        # is handled, which proves the subscription exists.
        async with aiomqtt.Client(HOST, PORT) as publisher:
            deadline = time.monotonic() + scaled(60)
            while not rows(out):
                assert time.monotonic() < deadline, f"the platform did not start:\n{log.read_text()[-3000:]}"
                await publisher.publish(f"{base}/warmup", "warmup", qos=1)
                await asyncio.sleep(0.5)
            for topic, payload in sent:
                await publisher.publish(topic, payload, qos=1)  # acknowledged by the broker: it must arrive
                if payload == "150":
                    await wait_logged(lambda: len(rows(out)) >= 100, 30, "the first batches", log)
                    first.send_signal(signal.SIGKILL)
                    first.wait(10)
        assert len(rows(out)) < len(sent), "the kill came after everything was handled; nothing was tested"
        second = start_dev(app_dir / "app.py", tmp_path / "data", log)
        try:
            every = {payload for _, payload in sent}
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
        # End the session the test made, so the broker keeps nothing of it.
        async with aiomqtt.Client(HOST, PORT, identifier=f"{client}-ingest", clean_session=True):
            pass
    handled = rows(out)
    for device in range(3):
        topic = f"{base}/device{device}"
        firsts: list[int] = []
        for row_topic, payload in handled:
            if row_topic == topic and int(payload) not in firsts:
                firsts.append(int(payload))
        assert firsts == [int(p) for t, p in sent if t == topic], f"{topic} was handled out of order"
