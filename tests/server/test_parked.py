"""A record the bus cannot read is parked, never dropped: `triggerfish dev` parks it and the CLI shows it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.server.devserver import DevServer
from triggerfish.names import bus_stream
from triggerfish.store import open_store

APP = """
import triggerfish

app = triggerfish.App("parking")


@app.on_event({"source": ["shop"]})
def seen(event, context):
    return None
"""


@pytest.mark.slow
async def test_an_unreadable_bus_record_is_parked_and_shown_by_the_cli(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    dev = DevServer("app.py", "--port", "0", cwd=tmp_path).start()
    try:
        # Written behind the publisher's back, as a buggy or newer version might have.
        store = await open_store(f"sqlite:///{tmp_path / '.triggerfish' / 'parking' / 'store.db'}")
        try:
            await store.log.append(bus_stream("default"), b'{"specversion": "1.0", "id": "x"}')
        finally:
            await store.close()
        parked = await asyncio.to_thread(_parked_as_the_cli_shows_them, dev.url, tmp_path)
        [entry] = parked
        assert (entry["stream"], entry["offset"]) == ("bus.default", 1)
        assert "source" in entry["reason"]  # what is missing, named
        assert json.loads(entry["data"]) == {"specversion": "1.0", "id": "x"}
    finally:
        dev.stop()


def _parked_as_the_cli_shows_them(server: str, cwd: Path) -> list[dict[str, Any]]:
    """`triggerfish events parked --json`, run until it shows something (the consumer parks within a second)."""
    deadline = time.monotonic() + 20
    while True:
        done = subprocess.run(
            [sys.executable, "-m", "triggerfish", "events", "parked", "--server", server, "--json"],
            capture_output=True,
            text=True,
            cwd=cwd,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        parked: list[dict[str, Any]] = json.loads(done.stdout)["parked"]
        if parked or time.monotonic() > deadline:
            return parked
        time.sleep(0.1)
