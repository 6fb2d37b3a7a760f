"""The server's apps in their boxes, through `Host` as `triggerfish serve` builds it: requirements built
as the app's uid without the server's files, imported from inside the box, the same uid after a restart,
and `network = "none"` from the app's triggerfish.toml."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import httpx

from tests.isolation.conftest import require_bwrap, require_root
from tests.isolation.test_install import probe_index
from tests.server.test_host import Served
from triggerfish.gateway import GatewayServer
from triggerfish.isolation.policy import Isolation
from triggerfish.server.host import ADMIN_KEY_FILE, Host
from triggerfish.server.host_http import HostASGI

APP = """
import os
import socket

import probe
import triggerfish

app = triggerfish.App("builds")


@app.http("GET", "/seen")
def seen(event, context):
    return {"build": probe.SEEN, "uid": os.getuid()}


@app.http("GET", "/connect/{port}")
def connect(event, context):
    try:
        socket.create_connection(("127.0.0.1", int(event["pathParameters"]["port"])), timeout=2).close()
        return "connected"
    except OSError as exc:
        return type(exc).__name__
"""


def _project(directory: Path, config: str = "") -> Path:
    directory.mkdir(parents=True)
    (directory / "requirements.txt").write_text("probe==1.0\n")
    (directory / "app.py").write_text(textwrap.dedent(APP))
    (directory / "triggerfish.toml").write_text(config)
    return directory


def _host(tmp_path: Path, server_dir: Path) -> Host:
    """A boxed server installing from an index of its own, which holds `probe` (built from source: the build
    code then tries to read the server's admin key, `server_dir`/admin.key)."""
    index = probe_index(tmp_path / "index", server_dir / ADMIN_KEY_FILE)
    pip_args = ("--no-index", "--find-links", str(index))
    return Host(data_dir=server_dir, pip_args=pip_args, source_builds=True, isolation=Isolation())


async def _served(host: Host) -> tuple[GatewayServer, httpx.AsyncClient]:
    server = GatewayServer(HostASGI(host, open_access=True), port=0)
    await server.start()
    return server, httpx.AsyncClient(base_url=server.url, timeout=60)


async def test_an_app_s_requirements_build_and_run_in_its_box_as_its_uid(tmp_path: Path) -> None:
    require_bwrap()
    require_root()
    server_dir = tmp_path / "server"
    project = _project(tmp_path / "builds")
    host = _host(tmp_path, server_dir)
    await host.start()
    server, http = await _served(host)
    try:
        deployed = await Served(host, server.url, http).deploy("builds", project)
        assert deployed.status_code == 201, deployed.text
        seen = (await http.get("/builds/seen")).json()
    finally:
        await http.aclose()
        await server.stop()
        await host.stop()
    assert (server_dir / ADMIN_KEY_FILE).exists()
    assert seen["build"]["secret"] in ("FileNotFoundError", "PermissionError")  # the build could not read it
    assert seen["build"]["uid"] == seen["uid"] >= 1_900_000_000  # built and run as the app's own uid

    again = _host(tmp_path, server_dir)
    await again.start()  # a restart serves the app again, in a box, as the same uid
    server, http = await _served(again)
    try:
        assert (await http.get("/builds/seen")).json()["uid"] == seen["uid"]
    finally:
        await http.aclose()
        await server.stop()
        await again.stop()


async def test_network_none_in_triggerfish_toml_leaves_the_app_only_its_own_loopback(tmp_path: Path) -> None:
    require_bwrap()
    server_dir = tmp_path / "server"
    host = _host(tmp_path, server_dir)
    await host.start()
    server, http = await _served(host)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        served = Served(host, server.url, http)
        open_app = _project(tmp_path / "open")
        assert (await served.deploy("open", open_app)).status_code == 201
        closed = _project(tmp_path / "closed", 'network = "none"\n')
        assert (await served.deploy("closed", closed)).status_code == 201
        assert (await http.get(f"/open/connect/{port}")).text == "connected"
        assert (await http.get(f"/closed/connect/{port}")).text == "ConnectionRefusedError"
        bad = _project(tmp_path / "bad", 'network = "sometimes"\n')
        refused = await served.deploy("bad", bad)
        assert refused.status_code == 422, refused.text  # the deploy fails, naming the setting
        assert "network" in refused.json()["error"]["message"]
        assert (await http.get("/bad/connect/1")).status_code == 404
    finally:
        listener.close()
        await http.aclose()
        await server.stop()
        await host.stop()
