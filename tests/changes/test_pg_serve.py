"""Under `triggerfish serve`: a deployed capture reads its slot; removing the app drops the slot."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.changes.conftest import PgPlace
from triggerfish.deploy.bundle import pack
from triggerfish.gateway import GatewayServer
from triggerfish.names import pg_change_slot
from triggerfish.server.host import Host
from triggerfish.server.host_http import HostASGI

APP = """
import triggerfish
app = triggerfish.App({app!r})

@app.on_change("env:PGC_SERVE_DB", table={table!r})
def ship(event, context):
    return None
"""


async def test_removing_an_app_drops_its_slot(tmp_path: Path, pg: PgPlace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGC_SERVE_DB", pg.url)
    await pg.sql(f"CREATE TABLE {pg.name}.orders (id int PRIMARY KEY)")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "app.py").write_text(APP.format(app=pg.name, table=f"{pg.name}.orders"))
    slot = pg_change_slot(pg.name, "ship")
    host = Host(data_dir=tmp_path / "server", idle_timeout=60)
    await host.start()
    try:
        async with (
            GatewayServer(HostASGI(host), port=0) as served,
            httpx.AsyncClient(base_url=served.url, timeout=30) as http,
        ):
            headers = {"authorization": f"Bearer {host.first_admin_key}"}
            bundle = pack(tmp_path / "app")
            base = f"/-/api/v1/apps/{pg.name}"
            gzip = {**headers, "content-type": "application/gzip"}
            stored = await http.put(f"{base}/bundles/{bundle.sha256}", content=bundle.data, headers=gzip)
            assert stored.status_code in (200, 201), stored.text
            deployed = await http.post(f"{base}/deploys", json={"bundle": bundle.sha256}, headers=headers)
            assert deployed.status_code == 201, deployed.text
            assert slot in await pg.slots()
            changes = host.apps[pg.name].pg_changes
            deadline = time.monotonic() + 30
            while not changes.status()["ship"]["reading"]:
                assert time.monotonic() < deadline, changes.status()
                await asyncio.sleep(0.05)
            assert (await http.delete(base, headers=headers)).status_code == 204
            assert slot not in await pg.slots()
    finally:
        await host.stop()
