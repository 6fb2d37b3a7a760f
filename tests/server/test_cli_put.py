"""`triggerfish events put`: the real console script publishing to a real served platform."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import pytest_asyncio

from triggerfish.gateway import GatewayServer
from triggerfish.names import bus_stream
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

pytestmark = pytest.mark.asyncio(loop_scope="module")

SCRIPT = Path(sys.executable).parent / "triggerfish"
APP = """
from triggerfish import App

app = App("put")


@app.on_event({"type": ["OrderPlaced"]})
def on_order(event, context):
    return None
"""


@dataclass
class Served:
    platform: Platform
    url: str
    files: Path


@dataclass
class Done:
    code: int
    out: str
    err: str


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    directory = tmp_path_factory.mktemp("put")
    (directory / "app.py").write_text(APP, encoding="utf-8")
    platform = Platform(str(directory / "app.py"), data_dir=directory / "data")
    await platform.start()
    try:
        server = GatewayServer(platform_asgi(platform), port=0)
        await server.start()
        try:
            yield Served(platform, server.url, directory)
        finally:
            await server.stop()
    finally:
        await platform.stop()


async def put(*args: str, env: dict[str, str] | None = None) -> Done:
    """Run the console script without blocking the event loop that serves the platform."""
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "events",
        "put",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())


async def stored(served: Served, bus: str = "default") -> dict[str, dict[str, object]]:
    records = await served.platform.store.log.read(bus_stream(bus), limit=10_000)
    return {document["id"]: document for document in (orjson.loads(r.data) for r in records)}


async def test_an_event_built_from_type_source_and_data(served: Served) -> None:
    done = await put("--type", "OrderPlaced", "--source", "shop", "--data", '{"total": 250}', "--server", served.url)
    assert (done.code, done.err) == (0, "")
    [event_id] = done.out.split()
    event = (await stored(served))[event_id]
    assert (event["type"], event["source"], event["data"]) == ("OrderPlaced", "shop", {"total": 250})


async def test_data_from_a_file_and_the_server_from_the_environment(served: Served) -> None:
    data = served.files / "data.json"
    data.write_text('{"order_id": "o-9"}', encoding="utf-8")
    done = await put(
        "--type", "OrderPlaced", "--source", "shop", "--data", f"@{data}", env={"TRIGGERFISH_SERVER": served.url}
    )
    assert done.code == 0
    assert (await stored(served))[done.out.strip()]["data"] == {"order_id": "o-9"}


async def test_a_cloudevent_file_and_a_batch_to_another_bus(served: Served) -> None:
    single = served.files / "event.json"
    single.write_text(
        json.dumps({"specversion": "1.0", "id": "ce-1", "source": "shop", "type": "OrderPlaced", "data": {"n": 1}}),
        encoding="utf-8",
    )
    done = await put("--event", f"@{single}", "--server", served.url)
    assert (done.code, done.out) == (0, "ce-1\n")
    batch = served.files / "batch.json"
    batch.write_text(
        json.dumps([{"specversion": "1.0", "id": f"b-{n}", "source": "shop", "type": "Shipped"} for n in range(2)]),
        encoding="utf-8",
    )
    done = await put("--event", f"@{batch}", "--bus", "shipping", "--server", served.url)
    assert (done.code, done.out) == (0, "b-0\nb-1\n")
    assert {"b-0", "b-1"} <= set(await stored(served, "shipping"))


@pytest.mark.parametrize("wrapped", [False, True])
async def test_putevents_entries(served: Served, wrapped: bool) -> None:
    entries = [
        {"Source": "shop", "DetailType": "OrderPlaced", "Detail": '{"n": 1}'},
        {"Source": "shop", "DetailType": "OrderPlaced", "Detail": '{"n": 2}', "EventBusName": "default"},
    ]
    path = served.files / f"entries-{wrapped}.json"
    path.write_text(json.dumps({"Entries": entries} if wrapped else entries), encoding="utf-8")
    done = await put("--entries", f"@{path}", "--bus", "audit", "--server", served.url)
    assert done.code == 0, done.err
    first, second = done.out.split()
    assert first in await stored(served, "audit")
    assert second in await stored(served, "default")


async def test_a_refused_event_exits_1_with_the_servers_reason(served: Served) -> None:
    done = await put("--event", '{"specversion": "1.0", "id": "x", "type": "T"}', "--server", served.url)
    assert done.code == 1
    assert done.out == ""
    assert "source" in done.err
    assert "refused" in done.err


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["--type", "T", "--source", "s", "--data", '{"a": 1,\n "b": }'], "invalid JSON in --data at line 2 column 7"),
        (["--event", "{nope"], "invalid JSON in --event at line 1 column 2"),
        (["--event", "@/no/such/file.json"], "cannot read the event file"),
        (["--event", "7"], "JSON object"),
        (["--entries", '{"Records": []}'], "Entries"),
        (["--type", "T"], "--type and --source go together"),
        ([], "give one of"),
        (["--type", "T", "--source", "s", "--event", "{}"], "not --type and --event together"),
        (["--event", "{}", "--data", "{}"], "--data goes with --type"),
        (["--type", "T", "--source", "not a uri"], "source"),
        (["--type", "T", "--source", "s", "--server", "127.0.0.1:8080"], "not an http:// or https:// URL"),
    ],
)
async def test_bad_local_input_exits_2_naming_the_fault(served: Served, args: list[str], mentions: str) -> None:
    done = await put(*args, env={"TRIGGERFISH_SERVER": served.url})
    assert done.code == 2, done.err
    assert mentions in done.err
    assert done.out == ""


async def test_no_server_exits_3_saying_where_it_looked() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now: the connection is refused.
    done = await put("--type", "T", "--source", "s", "--server", f"http://127.0.0.1:{port}")
    assert done.code == 3
    assert (
        f"server unreachable at http://127.0.0.1:{port} (from --server): is `triggerfish dev` or"
        " `triggerfish serve` running there? Give another with --server URL (or $TRIGGERFISH_SERVER)" in done.err
    )
