"""SIGKILL of `triggerfish dev` during a publish burst: after a restart, every acknowledged event reaches
every matching target at least once."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
from pathlib import Path

import httpx
import orjson
import pytest

from tests.server.devserver import DevServer, poll

APP = """
from pathlib import Path

import triggerfish

app = triggerfish.App("crash")
OUT = Path({out!r})


@app.on_event({{"type": ["Burst"]}})
def first(event, context):
    (OUT / f"first-{{event['id']}}").touch()


@app.on_event({{"type": ["Burst"], "data": {{"n": [{{"numeric": [">=", 0]}}]}}}})
def second(event, context):
    (OUT / f"second-{{event['id']}}").touch()
"""

BATCH = {"content-type": "application/cloudevents-batch+json"}


def publish_until(url: str, prefix: str, acked: list[str], stop: threading.Event) -> None:
    """Publish batches of 10 events until `stop` or the server goes away; keep the ids acknowledged with 202."""
    number = 0
    with httpx.Client(timeout=5) as client:
        while not stop.is_set():
            ids = [f"{prefix}-{number + i}" for i in range(10)]
            number += 10
            events = [{"specversion": "1.0", "id": i, "source": "t", "type": "Burst", "data": {"n": 1}} for i in ids]
            try:
                answer = client.post(f"{url}/-/events", content=orjson.dumps(events), headers=BATCH)
            except httpx.HTTPError:
                return
            if answer.status_code == 202:
                acked.extend(answer.json()["ids"])


@pytest.mark.slow
def test_every_acknowledged_event_is_delivered_to_every_target_after_a_sigkill(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "app.py").write_text(textwrap.dedent(APP).format(out=str(out)))
    server = DevServer("app.py", "--port", "0", "--no-reload", cwd=tmp_path).start()
    acked: list[str] = []
    stop = threading.Event()
    publishers = [threading.Thread(target=publish_until, args=(server.url, f"p{n}", acked, stop)) for n in range(4)]
    try:
        for thread in publishers:
            thread.start()
        poll(lambda: len(acked) >= 400, timeout=30)
        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
    finally:
        stop.set()
        for thread in publishers:
            thread.join()
        server.stop()
    assert len(acked) >= 400

    restarted = DevServer("app.py", "--port", "0", "--no-reload", cwd=tmp_path).start()
    try:

        def missing() -> list[str]:
            seen = {path.name for path in out.iterdir()}
            return [i for i in acked for fn in ("first", "second") if f"{fn}-{i}" not in seen]

        poll(lambda: not missing(), timeout=45, interval=0.2)
    finally:
        restarted.stop()
    assert missing() == []


JOBS_APP = """
from pathlib import Path

import triggerfish

app = triggerfish.App("crash-jobs")
OUT = Path({out!r})


@app.function()
def job(event, context):
    (OUT / event["id"]).touch()
"""


def invoke_until(url: str, prefix: str, acked: list[str], stop: threading.Event, batch: int) -> None:
    """Send jobs until `stop` or the server goes away, `batch` at a time to invoke-batch, or one at a time to
    Invoke of type Event when `batch` is 1; keep those answered 202."""
    number = 0
    with httpx.Client(timeout=5) as client:
        while not stop.is_set():
            ids = [f"{prefix}-{number + i}" for i in range(batch)]
            number += batch
            try:
                if batch == 1:
                    answer = client.post(
                        f"{url}/-/api/v1/functions/job/invoke",
                        json={"id": ids[0]},
                        headers={"X-Amz-Invocation-Type": "Event"},
                    )
                else:
                    answer = client.post(
                        f"{url}/-/api/v1/functions/job/invoke-batch", json={"events": [{"id": i} for i in ids]}
                    )
            except httpx.HTTPError:
                return
            if answer.status_code == 202:
                acked.extend(ids)


@pytest.mark.slow
@pytest.mark.parametrize(("batch", "enough"), [(10, 400), (1, 100)])
def test_every_acknowledged_async_invocation_runs_after_a_sigkill(tmp_path: Path, batch: int, enough: int) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "app.py").write_text(textwrap.dedent(JOBS_APP).format(out=str(out)))
    server = DevServer("app.py", "--port", "0", "--no-reload", cwd=tmp_path).start()
    acked: list[str] = []
    stop = threading.Event()
    producers = [
        threading.Thread(target=invoke_until, args=(server.url, f"p{n}", acked, stop, batch)) for n in range(4)
    ]
    try:
        for thread in producers:
            thread.start()
        poll(lambda: len(acked) >= enough, timeout=30)
        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
    finally:
        stop.set()
        for thread in producers:
            thread.join()
        server.stop()
    assert len(acked) >= enough

    restarted = DevServer("app.py", "--port", "0", "--no-reload", cwd=tmp_path).start()
    try:

        def missing() -> list[str]:
            seen = {path.name for path in out.iterdir()}
            return [i for i in acked if i not in seen]

        poll(lambda: not missing(), timeout=45, interval=0.2)
    finally:
        restarted.stop()
    assert missing() == []
