"""examples/iot/devices.py with real MQTT devices and a kill -9 mid-stream: no acknowledged reading is lost, and
each device's readings are handled in order (the shadow ends at the last report; the readings stream is in order)."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.crash_child import start_dev
from tests.patience import scaled
from tests.services import require_service
from triggerfish.names import partitioned_stream
from triggerfish.server.platform import STORE_FILE
from triggerfish.store import open_store
from triggerfish.streams.records import decode_record

aiomqtt = pytest.importorskip("aiomqtt", reason="MQTT tests need the mqtt extra: pip install 'triggerfish[mqtt]'")

HOST, PORT = "127.0.0.1", 1883
ROOT = Path(__file__).resolve().parents[2]
DEVICES = ROOT / "examples" / "iot" / "devices.py"


async def shadows_and_readings(data: Path) -> tuple[dict[str, Any], dict[str, list[int]]]:
    store = await open_store(f"sqlite:///{data / STORE_FILE}")
    try:
        shadows = {record.key: json.loads(record.value) for record in await store.kv.scan("home", prefix="shadows/")}
        seqs: dict[str, list[int]] = {}
        for partition in range(2):
            for stored in await store.log.read(partitioned_stream("readings", partition), limit=10_000):
                reading = json.loads(decode_record(stored.data).payload)
                seqs.setdefault(f"{reading['room']}/{reading['device']}", []).append(reading["seq"])
        return shadows, seqs
    finally:
        await store.close()


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_devices_survive_a_kill_9_of_the_platform(tmp_path: Path) -> None:
    require_service("Mosquitto", HOST, PORT)
    home = f"home{uuid.uuid4().hex[:6]}"
    app_dir, data, log = tmp_path / "app", tmp_path / "data", tmp_path / "platform.log"
    app_dir.mkdir()
    # The example, with its topics moved under a prefix of this test's own, so runs do not meet on the broker.
    source = DEVICES.read_text().replace("'home/+/+/reported'", f"'{home}/+/+/reported'")
    source = source.replace('"home/+/+/reported"', f'"{home}/+/+/reported"')
    (app_dir / "devices.py").write_text(source)
    client = f"c{uuid.uuid4().hex[:10]}"
    (app_dir / "triggerfish.toml").write_text(f'[mqtt]\nurl = "mqtt://{HOST}:{PORT}"\nclient_id = "{client}"\n')
    devices = [(f"room{n % 3}", f"thermo{n}") for n in range(6)]
    reports = 100

    async def count() -> int:
        if not (data / STORE_FILE).exists():
            return 0
        _, seqs = await shadows_and_readings(data)
        return sum(len(s) for s in seqs.values())

    first = start_dev(app_dir / "devices.py", data, log)
    try:
        async with aiomqtt.Client(HOST, PORT) as device:
            deadline = time.monotonic() + scaled(60)
            while await count() == 0:  # until the platform is subscribed (its session then keeps what comes)
                assert time.monotonic() < deadline, f"the platform did not start:\n{log.read_text()[-3000:]}"
                await device.publish(f"{home}/warm/up/reported", json.dumps({"seq": 0, "temperature": 1}), qos=1)
                await asyncio.sleep(0.5)
            for seq in range(1, reports + 1):
                for room, name in devices:
                    body = json.dumps({"seq": seq, "temperature": 20 + seq % 15})
                    await device.publish(f"{home}/{room}/{name}/reported", body, qos=1)  # acked: must arrive
                if seq == 30:
                    first.send_signal(signal.SIGKILL)
                    first.wait(10)
                    killed_at = await count()
        assert killed_at < reports * len(devices), "the kill came after everything was handled; nothing was tested"
        second = start_dev(app_dir / "devices.py", data, log)
        try:
            deadline = time.monotonic() + scaled(120)
            while True:
                shadows, seqs = await shadows_and_readings(data)
                done = [shadows.get(f"shadows/{r}/{n}", {}).get("reported", {}).get("seq") for r, n in devices]
                if done == [reports] * len(devices):
                    break
                assert time.monotonic() < deadline, f"not every report arrived:\n{log.read_text()[-3000:]}"
                await asyncio.sleep(0.25)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        async with aiomqtt.Client(HOST, PORT, identifier=f"{client}-shadow", clean_session=True):
            pass
        async with aiomqtt.Client(HOST, PORT, identifier=f"{client}-hot_rooms", clean_session=True):
            pass
    for room, name in devices:
        firsts: list[int] = []
        for seq in seqs[f"{room}/{name}"]:
            if seq not in firsts:
                firsts.append(seq)
        assert firsts == list(range(1, reports + 1)), f"{room}/{name}: readings lost or out of order"
    shutil.rmtree(data / "work", ignore_errors=True)
